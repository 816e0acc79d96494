"""The SSH transport: one asyncssh connection per host, possibly through jump hosts.

This is the only module that imports asyncssh (ssh_socket.py tunes the sockets of
its connections). Every asyncssh or socket error is translated here, once, into
the sac error tree (HostUnreachable, AuthFailed, HostKeyUnknown, HostKeyChanged,
BootstrapFailed, StreamLocalRefused); nothing above it sees an asyncssh type. The
byte streams it hands out (`NodeStream`) have the `read` / `write` / `drain` /
`close` shape `sac_node.rpc.RpcPeer` needs, whether they ride a stream-local
channel or an exec'd bridge.
"""

import asyncio
import ipaddress
import logging
import os
import shlex
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Tuple

import asyncssh

from sac_node.protocol.errors import (
    AuthFailed,
    BootstrapFailed,
    HostError,
    HostKeyChanged,
    HostKeyUnknown,
    HostUnreachable,
)
from sac_node.protocol.messages import READY_MARKER

from .ssh_socket import tune

log = logging.getLogger("sac_fleet.remote.ssh")

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_SSH_CONFIG = "~/.ssh/config"
KEEPALIVE_COUNT_MAX = 3
ENCRYPTION_PREFERENCE = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
                         "aes128-ctr", "aes192-ctr", "aes256-ctr"]
MAX_BANNER_BYTES = 64 * 1024
NODELAY_TIMEOUT_S = 10.0  # for the no-op exec on a host behind a jump host
STDERR_TAIL_BYTES = 4096


class StreamLocalRefused(HostError):
    """The server would not open a stream-local channel: forwarding is off
    (`AllowStreamLocalForwarding no`) or nothing listens at the path.
    The caller falls back to exec'ing the bridge."""

    code = "stream_local_refused"


@dataclass(frozen=True)
class SSHTarget:
    """How to reach one host. `None` fields are left to ~/.ssh/config, then to SSH defaults.

    `address` defaults to `name`, so a `Host` alias in ssh_config works as is.
    `ssh_config` is a path ("" for none). `jump` is the chain of jump hosts, first hop first.
    """

    name: str
    address: Optional[str] = None
    port: Optional[int] = None
    user: Optional[str] = None
    identity_file: Optional[str] = None
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    ssh_config: str = DEFAULT_SSH_CONFIG
    connect_timeout: float = 10.0
    keepalive_s: float = 2.0
    jump: Tuple["SSHTarget", ...] = ()


@dataclass(frozen=True)
class RunResult:
    """A finished remote command; `returncode` is negative for a signal."""

    returncode: int
    stdout: bytes
    stderr: bytes


@dataclass
class NodeStream:
    """A binary byte stream to a node: `reader.read(n)`, `writer.write(b)`, `await writer.drain()`,
    `writer.close()`. `kind` is "stream-local" or "exec"; `ready` holds the fields of the
    READY line (exec only, e.g. {"proto": "1", "version": ..., "sha": ...})."""

    reader: "ChannelReader"
    writer: "ChannelWriter"
    kind: str
    ready: dict = field(default_factory=dict)


class ChannelReader:
    """Wraps an asyncssh reader; connection failures surface as ConnectionResetError."""

    def __init__(self, reader):
        self._reader = reader

    async def read(self, n=-1):
        try:
            return await self._reader.read(n)
        except (asyncssh.Error, asyncssh.BreakReceived, asyncssh.SignalReceived) as exc:
            raise ConnectionResetError("SSH channel lost: %s" % exc) from None

    async def readline(self):
        try:
            return await self._reader.readline()
        except (asyncssh.Error, asyncssh.BreakReceived, asyncssh.SignalReceived) as exc:
            raise ConnectionResetError("SSH channel lost: %s" % exc) from None


class ChannelWriter:
    """Wraps an asyncssh writer; `close()` also stops helper tasks of the channel."""

    def __init__(self, writer, tasks=()):
        self._writer = writer
        self._tasks = list(tasks)

    def write(self, data):
        try:
            self._writer.write(data)
        except asyncssh.Error as exc:
            raise ConnectionResetError("SSH channel lost: %s" % exc) from None

    async def drain(self):
        try:
            await self._writer.drain()
        except asyncssh.Error as exc:
            raise ConnectionResetError("SSH channel lost: %s" % exc) from None

    def write_eof(self):
        self._writer.write_eof()

    def is_closing(self):
        return self._writer.is_closing()

    def close(self):
        for task in self._tasks:
            task.cancel()
        self._writer.close()


def _where(target, host=None, port=None):
    return "%s (%s:%s)" % (target.name, host or target.address or target.name, port or target.port or 22)


def translate_error(exc, target, hop, host, port, known_hosts_path=None, has_known_key=False):
    """Map one asyncssh/OS exception raised while reaching `hop` (on the way to `target`) to a SacError.

    `data` carries host, hop, address and `reason` (refused, timed_out, dns, unreachable,
    auth_failed, host_key_unknown, host_key_changed) for status tables.
    """
    place = _where(target, host, port) if hop is target else \
        "%s via jump host %s" % (_where(target), _where(hop, host, port))
    error = _key_error(exc, place, host, port, known_hosts_path, has_known_key) or \
        _auth_error(exc, place, hop) or _network_error(exc, place, hop, host)
    error.data = {"host": target.name, "hop": hop.name, "address": "%s:%s" % (host, port),
                  "reason": error.data.get("reason", error.code)}
    return error


def _key_error(exc, place, host, port, known_hosts_path, has_known_key):
    if isinstance(exc, (asyncssh.HostKeyNotVerifiable, asyncssh.KeyExchangeFailed)) and has_known_key:
        fix = "ssh-keygen -R '%s' -f %s" % (_known_hosts_name(host, port), known_hosts_path)
        return HostKeyChanged(
            "host %s: its host key CHANGED from the one in %s (possible man-in-the-middle) and is never "
            "accepted automatically; if the change is expected, run `%s` and re-run with --accept-new-host-keys"
            % (place, known_hosts_path, fix))
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return HostKeyUnknown(
            "host %s: its host key is not in %s; check the host and re-run with --accept-new-host-keys "
            "to record it" % (place, known_hosts_path))
    return None


def _auth_error(exc, place, hop):
    if isinstance(exc, asyncssh.PermissionDenied):
        return AuthFailed(
            "host %s: authentication as %s failed (key %s); check `user` and `identity_file`, or add the "
            "public key to the host's authorized_keys"
            % (place, hop.user or "the default user", hop.identity_file or "from ssh config or agent"))
    if isinstance(exc, (FileNotFoundError, asyncssh.KeyImportError)):
        return AuthFailed("host %s: cannot load identity_file %s: %s; fix the path in the inventory"
                          % (place, hop.identity_file, exc))
    return None


def _network_error(exc, place, hop, host):
    if isinstance(exc, asyncio.TimeoutError):
        reason, why = "timed_out", "no answer within %ss (connect_timeout)" % hop.connect_timeout
    elif isinstance(exc, socket.gaierror):
        reason, why = "dns", "cannot resolve %r (DNS): %s; check `address`" % (host, exc.strerror)
    elif isinstance(exc, ConnectionRefusedError):
        reason, why = "refused", "connection refused; is sshd running there and is `port` right?"
    elif isinstance(exc, asyncssh.ChannelOpenError):
        reason, why = "refused", "the jump host could not connect to it: %s" % exc.reason
    elif isinstance(exc, OSError):
        reason, why = "unreachable", exc.strerror or str(exc)
    else:
        reason, why = "unreachable", "SSH failed: %s" % exc
    return HostUnreachable("host %s: %s" % (place, why), {"reason": reason})


def _known_hosts_name(host, port):
    return host if port == 22 else "[%s]:%d" % (host, port)


def _expand(path):
    return str(Path(path).expanduser())


def _load_known_hosts(path):
    if os.path.exists(path):
        return asyncssh.read_known_hosts(path)
    return asyncssh.import_known_hosts("")


async def _has_known_key(known, key_name, host, port, tunneled):
    """Does known_hosts hold any key for this host, by name or by the address asyncssh will see?"""
    addr = host
    if not tunneled:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addr = infos[0][4][0]
    matched = known.match(key_name, addr, port if port != 22 else None)
    return bool(matched[0] or matched[1])


def record_host_key(path, host, port, key):
    """Append `[host]:port type base64` to known_hosts (created 0600 in a 0700 dir if missing)."""
    public = key.export_public_key("openssh").decode().split()
    line = "%s %s %s\n" % (_known_hosts_name(host, port), public[0], public[1])
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as out:
        if out.tell() > 0:
            with open(path, "rb") as current:
                current.seek(-1, os.SEEK_END)
                if current.read(1) != b"\n":
                    out.write("\n")
        out.write(line)
    log.info("[host=%s] recorded host key %s in %s", host, key.get_fingerprint(), path)


async def _options(hop, known):
    config = _expand(hop.ssh_config) if hop.ssh_config else None
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
        kwargs["client_keys"] = [_expand(hop.identity_file)]
    return await asyncssh.SSHClientConnectionOptions.construct(**kwargs)


async def _connect_hop(target, hop, tunnel, accept_new):
    """Connect to one hop (directly, or through `tunnel`), checking its host key."""
    known_path = _expand(hop.known_hosts or DEFAULT_KNOWN_HOSTS)
    host, port, has_key = hop.address or hop.name, hop.port or 22, False
    try:
        known = _load_known_hosts(known_path)
        options = await _options(hop, known)
        host, port = options.host, options.port
        key_name = options.host_key_alias or host  # the name known_hosts lists it under
        has_key = await _has_known_key(known, key_name, host, port, tunnel is not None or bool(options.tunnel))
        tunnel_arg = tunnel if tunnel is not None else ()
        if accept_new and not has_key:
            key = await asyncssh.get_server_host_key(host, port, tunnel=tunnel_arg, options=options)
            if key is None:
                raise asyncssh.HostKeyNotVerifiable("the server presented no host key")
            record_host_key(known_path, key_name, port, key)
            options = await _options(hop, _load_known_hosts(known_path))
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
                              % (_where(target), timeout, "" if hop is target else ", stuck at jump host " + hop.name),
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
        drain = asyncio.ensure_future(_drain_stderr(process.stderr, stderr_tail))
        reader = ChannelReader(process.stdout)
        try:
            async with asyncio.timeout(ready_timeout):
                ready = await _scan_ready(reader)
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


async def _drain_stderr(stream, tail):
    """Keep reading stderr (an unread stream would stall the channel); remember its tail."""
    try:
        while True:
            chunk = await stream.read(4096)
            if not chunk:
                return
            tail.extend(chunk)
            del tail[:-STDERR_TAIL_BYTES]
    except (asyncssh.Error, OSError):
        return


async def _scan_ready(reader):
    """Read lines until one starts with READY_MARKER; return its `key=value` fields."""
    marker = READY_MARKER.encode()
    seen = 0
    while True:
        line = await reader.readline()
        if not line:
            raise BootstrapFailed("exited before it printed %s" % READY_MARKER)
        if line.startswith(marker):
            fields = line[len(marker):].decode(errors="replace").split()
            return dict(item.split("=", 1) for item in fields if "=" in item)
        seen += len(line)
        if seen > MAX_BANNER_BYTES:
            raise BootstrapFailed("printed over %d bytes without %s" % (MAX_BANNER_BYTES, READY_MARKER))
