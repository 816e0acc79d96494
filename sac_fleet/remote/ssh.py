"""The SSH transport: one asyncssh connection per host, possibly through jump hosts.

`connect_host(target)` opens an `SSHConnection`, which runs commands, uploads
files and opens byte streams to a node (`NodeStream`, in ssh_streams.py). Only
remote/ssh*.py and known_hosts.py import asyncssh; every asyncssh or socket
error is translated there, once, into the sac error tree (ssh_errors.py), and
nothing above them sees an asyncssh type. ssh_socket.py tunes the connections'
sockets.
"""

import asyncio
import logging
import os
import shlex
import uuid
from dataclasses import dataclass

import asyncssh

from sac_node.protocol.errors import BootstrapFailed, HostUnreachable
from sac_node.protocol.messages import READY_MARKER

from .host_settings import DEFAULT_KNOWN_HOSTS, DEFAULT_SSH_CONFIG, SSHTarget  # noqa: F401 (re-exported)
from .known_hosts import expand, has_known_key, load_known_hosts, record_host_key  # noqa: F401
from .ssh_errors import StreamLocalRefused, translate_error, where  # noqa: F401
from .ssh_socket import tune
from .ssh_streams import ChannelReader, ChannelWriter, NodeStream, drain_stderr, scan_ready

log = logging.getLogger("sac_fleet.remote.ssh")

KEEPALIVE_COUNT_MAX = 3
ENCRYPTION_PREFERENCE = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
                         "aes128-ctr", "aes192-ctr", "aes256-ctr"]
NODELAY_TIMEOUT_S = 10.0  # for the no-op exec on a host behind a jump host


@dataclass(frozen=True)
class RunResult:
    """A finished remote command; `returncode` is negative for a signal."""

    returncode: int
    stdout: bytes
    stderr: bytes



async def _options(hop, known):
    config = expand(hop.ssh_config) if hop.ssh_config else None
    kwargs = {
        "config": [config] if config and os.path.exists(config) else None,
        "host": hop.address or hop.name,
        "known_hosts": known,
        "connect_timeout": hop.connect_timeout,
        "keepalive_interval": hop.keepalive_s,
        "keepalive_count_max": KEEPALIVE_COUNT_MAX,
        # AES-GCM first: asyncssh's chacha20-poly1305 costs ~6x more CPU per packet, and every RPC frame
        # is a packet. All of these are standard OpenSSH ciphers, so any server finds one it has.
        "encryption_algs": ENCRYPTION_PREFERENCE,
    }
    if hop.port is not None:
        kwargs["port"] = hop.port
    if hop.user is not None:
        kwargs["username"] = hop.user
    if hop.identity_file is not None:
        kwargs["client_keys"] = [expand(hop.identity_file)]
    return await asyncssh.SSHClientConnectionOptions.construct(**kwargs)


async def _connect_hop(target, hop, tunnel, accept_new):
    """Connect to one hop (directly, or through `tunnel`), checking its host key."""
    known_path = expand(hop.known_hosts or DEFAULT_KNOWN_HOSTS)
    host, port, has_key = hop.address or hop.name, hop.port or 22, False
    try:
        known = load_known_hosts(known_path)
        options = await _options(hop, known)
        host, port = options.host, options.port
        key_name = options.host_key_alias or host  # the name known_hosts lists it under
        has_key = await has_known_key(known, key_name, host, port, tunnel is not None or bool(options.tunnel))
        tunnel_arg = tunnel if tunnel is not None else ()
        if accept_new and not has_key:
            key = await asyncssh.get_server_host_key(host, port, tunnel=tunnel_arg, options=options)
            if key is None:
                raise asyncssh.HostKeyNotVerifiable("the server presented no host key")
            record_host_key(known_path, key_name, port, key)
            options = await _options(hop, load_known_hosts(known_path))
        return await asyncssh.connect(host, port, tunnel=tunnel_arg, options=options)
    except asyncio.CancelledError:
        raise
    except (asyncssh.Error, OSError, asyncio.TimeoutError, ValueError) as exc:
        raise translate_error(exc, target, hop, host, port, known_path, has_key) from exc


async def connect_host(target, *, accept_new_host_keys=False, timeout=None):
    """Open an `SSHConnection` to `target` through its jump chain, under one overall `timeout`.

    Raises HostUnreachable (data.reason: refused, timed_out, dns, unreachable), AuthFailed,
    HostKeyUnknown or HostKeyChanged. With `accept_new_host_keys`, a host with no key in
    known_hosts has its key recorded first; a changed key is still refused.
    """
    hops = []
    try:
        async with asyncio.timeout(timeout):
            for hop in tuple(target.jump) + (target,):
                hops.append(await _connect_hop(target, hop, hops[-1] if hops else None, accept_new_host_keys))
    except TimeoutError as exc:
        _close_all(hops)
        hop = (tuple(target.jump) + (target,))[len(hops)]
        raise HostUnreachable("host %s: not connected within %ss (overall timeout)%s"
                              % (where(target), timeout, "" if hop is target else ", stuck at jump host " + hop.name),
                              {"host": target.name, "hop": hop.name, "reason": "timed_out"}) from exc
    except BaseException:
        _close_all(hops)
        raise
    return SSHConnection(target, hops)


def _close_all(conns):
    for conn in reversed(conns):
        conn.close()


def shell_path(path):
    """Quote a path for a POSIX shell, keeping a leading `~/` as `$HOME`."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


class SSHConnection:
    """One live connection to a host (plus its jump hops); closes them all on `close()`."""

    def __init__(self, target, conns):
        self.target = target
        self._conns = conns
        self._conn = conns[-1]
        for conn in conns:
            tune(conn)

    @property
    def name(self):
        return self.target.name

    def _lost(self, exc, what):
        return HostUnreachable("host %s: connection lost while %s: %s" % (self.name, what, exc),
                               {"host": self.name, "reason": "unreachable"})

    async def run(self, command, input=None, timeout=None):
        """Run a shell command; return RunResult (non-zero status is not an error)."""
        try:
            result = await self._conn.run(command, input=input, encoding=None, timeout=timeout, check=False)
        except asyncssh.TimeoutError as exc:
            raise HostUnreachable("host %s: command did not finish within %ss: %s" % (self.name, timeout, command),
                                  {"host": self.name, "reason": "timed_out"}) from exc
        except (asyncssh.Error, OSError) as exc:
            raise self._lost(exc, "running a command") from exc
        returncode = result.returncode if result.returncode is not None else -1
        return RunResult(returncode, result.stdout or b"", result.stderr or b"")

    @property
    def tunneled(self):
        """True when the connection goes through jump hosts."""
        return len(self._conns) > 1

    async def disable_nagle(self, timeout=NODELAY_TIMEOUT_S):
        """Behind a jump host, run one no-op exec on the target so that its sshd sends small packets at once.

        sshd turns Nagle's algorithm off (TCP_NODELAY) only for a session that execs
        something, and the head's quick ACKs (ssh_socket.ack_at_once) reach only the first hop: the
        target's replies travel to the jump host, whose kernel delays its ACKs. Without
        this, two turns at once to hosts behind a bastion took ~50 ms instead of 6-12.
        Awaited, so that no command closes the connection while the user's shell starts
        (a login shell killed midway can leave its own state behind). Never raises: a
        target that refuses exec keeps Nagle (logged), and everything still works.
        """
        if not self.tunneled:
            return
        try:
            result = await asyncio.wait_for(self._conn.run("true", check=False), timeout)
        except asyncio.CancelledError:
            raise
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
            log.info("host %s: the no-op exec failed (%s): replies through the jump host may wait for "
                     "delayed ACKs", self.name, str(exc) or type(exc).__name__)
            return
        if result.exit_status != 0:
            log.info("host %s: the no-op exec exited %s: replies through the jump host may wait for "
                     "delayed ACKs", self.name, result.exit_status)

    async def upload(self, path, data, mode=0o644, timeout=None):
        """Write `data` to `path` atomically (temp file, then rename); parent dirs are created."""
        tmp = "%s.tmp-%s" % (path, uuid.uuid4().hex[:12])
        parent = os.path.dirname(path) or "."
        command = "umask 077 && mkdir -p %s && cat > %s && chmod %o %s && mv -f %s %s" % (
            shell_path(parent), shell_path(tmp), mode, shell_path(tmp), shell_path(tmp), shell_path(path))
        result = await self.run(command, input=data, timeout=timeout)
        if result.returncode != 0:
            await self.run("rm -f %s" % shell_path(tmp), timeout=timeout)
            raise BootstrapFailed("host %s: could not write %s: %s" % (
                self.name, path, result.stderr.decode(errors="replace").strip()), {"host": self.name, "path": path})

    async def stream_in(self, command, frames):
        """Run `command` with the byte strings of the async iterator `frames` on its stdin (each written
        as the host takes it, so memory stays one frame), then EOF; RunResult once it exits."""
        try:
            process = await self._conn.create_process(command, encoding=None)
            try:
                try:
                    async for frame in frames:
                        process.stdin.write(frame)
                        await process.stdin.drain()
                    process.stdin.write_eof()
                except (BrokenPipeError, ConnectionResetError, asyncssh.Error):
                    pass  # it stopped reading (it answers why on stdout), or the connection dropped: wait() says
                result = await process.wait(check=False)
            finally:
                process.close()
        except (asyncssh.Error, OSError, BrokenPipeError) as exc:
            raise self._lost(exc, "sending to `%s`" % command.splitlines()[-1][:80]) from exc
        returncode = result.returncode if result.returncode is not None else -1
        return RunResult(returncode, result.stdout or b"", result.stderr or b"")

    async def open_unix_connection(self, path):
        """A direct stream-local channel to the unix socket `path` (absolute, no `~`)."""
        try:
            reader, writer = await self._conn.open_unix_connection(path, encoding=None)
        except asyncssh.ChannelOpenError as exc:
            raise StreamLocalRefused(
                "host %s: the server refused a stream-local channel to %s (%s): forwarding is off "
                "(AllowStreamLocalForwarding no) or nothing listens there" % (self.name, path, exc.reason),
                {"host": self.name, "path": path, "reason": "stream_local_refused"}) from exc
        except (asyncssh.Error, OSError) as exc:
            raise self._lost(exc, "opening a channel") from exc
        return NodeStream(ChannelReader(reader), ChannelWriter(writer), "stream-local")

    async def open_exec(self, command, ready_timeout=30.0):
        """Exec `command` (e.g. `python3 node.pyz attach`), skip banner noise up to the READY line,
        and return the process's stdio as a NodeStream. Raises BootstrapFailed if it never says READY."""
        try:
            process = await self._conn.create_process(command, encoding=None)
        except (asyncssh.Error, OSError) as exc:
            raise self._lost(exc, "starting `%s`" % command) from exc
        stderr_tail = bytearray()
        drain = asyncio.ensure_future(drain_stderr(process.stderr, stderr_tail))
        reader = ChannelReader(process.stdout)
        try:
            async with asyncio.timeout(ready_timeout):
                ready = await scan_ready(reader)
        except (TimeoutError, ConnectionError, BootstrapFailed) as exc:
            process.close()
            drain.cancel()
            detail = bytes(stderr_tail).decode(errors="replace").strip()[-800:]
            why = "did not print %s within %ss" % (READY_MARKER, ready_timeout) if isinstance(exc, TimeoutError) \
                else (getattr(exc, "message", None) or str(exc))
            raise BootstrapFailed("host %s: `%s` %s%s" % (self.name, command, why, "; stderr: " + detail if detail else ""),
                                  {"host": self.name, "command": command}) from exc
        return NodeStream(reader, ChannelWriter(process.stdin, [drain]), "exec", ready)

    def close(self):
        """Close the connection and its jump hops (no wait)."""
        _close_all(self._conns)

    async def wait_closed(self):
        for conn in reversed(self._conns):
            await conn.wait_closed()

    async def aclose(self):
        self.close()
        await self.wait_closed()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()
