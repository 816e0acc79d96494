"""A host's node over SSH, as one object whose steps run top to bottom.

    path = SSHPath(settings)
    client = await path.open(mode)
      connect      one SSH connection (through the jump chain), under connect_timeout
      attach_warm  straight to a running daemon of this head's sha over stream-local: no exec, no probe
      probe        one round trip: python, cached pyz, the daemon; by mode it also starts the daemon
      upload       node.pyz, only when the probe did not find it cached, and the engine (Claude Code),
                   only when the probe found none that fits there (engine_ship.py)
      start        the probe again once the pyz is there, which starts (or upgrades) the daemon
      attach       a stream-local channel to node.sock, else `python3 node.pyz attach` over exec

The probe is sac_node/probe.py, whose text is sent as `python3 -c` (the host may
have no node.pyz yet). Modes are host_link's: "attach" provisions nothing (it
only starts again a daemon that died) and says in `would` what provisioning
would do; "provision" uploads and starts what is missing; "restart" also
replaces a running daemon (its agents keep running). After `open`: `conn` (None
when no daemon runs: the connection is closed then), `done` (what was done on
the host), `would`, and `answered` ((host.facts, round trip ms) when the open
already asked for them, else None).

host_link imports this module only for hosts with an SSH transport: it brings in
asyncssh (~0.4 s to import), which an inventory of local hosts never needs.
"""

import asyncio
import json
import shlex
from functools import lru_cache
from pathlib import Path

from sac_node import probe as node_probe
from sac_node.protocol.errors import BootstrapFailed, PythonMissing, SacError

from . import engine_ship
from .node_client import NodeClient
from .node_settings import probe_wish
from .pyz import build_pyz
from .ssh import StreamLocalRefused, connect_host, shell_path
from .state_hints import remember_state_dir, state_dir_hint

BUSY_POLLS, BUSY_WAIT_S = 600, 1.0  # up to 10 minutes for another host's upload to the same state dir
REVIVED = "started the node daemon again (it had died; its agents kept running)"


@lru_cache(maxsize=1)
def probe_source():
    """The text of sac_node/probe.py, as the head sends it."""
    return Path(node_probe.__file__).read_text()


def probe_command(settings, sha, mode, want):
    """The shell command that runs the probe on the host (after its env preamble); `want` is its ENGINE."""
    return settings.shell("%s -c %s %s %s %s %s" % (settings.python, shlex.quote(probe_source()),
                                                    shell_path(settings.state_dir), sha, mode,
                                                    shlex.quote(json.dumps(want, sort_keys=True))))


def read_probe(settings, result):
    """The probe's answer in a finished command's output (past any login-banner noise).

    PythonMissing when the host's python was not found or is older than 3.8, BootstrapFailed
    when the probe printed no answer.
    """
    for line in result.stdout.decode("utf-8", "replace").splitlines():
        if line.startswith(node_probe.MARKER):
            info = json.loads(line[len(node_probe.MARKER):])
            _check_python(settings, info)
            return info
    err = (result.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
    if result.returncode == 127 or "not found" in err:
        raise PythonMissing("host %s: `%s` was not found (%s); set `python:` for this host in the inventory, "
                            "or an `env_preamble` such as `module load python`" % (settings.name, settings.python, err))
    raise BootstrapFailed("host %s: the probe failed (exit %s): %s" % (settings.name, result.returncode, err))


def _check_python(settings, info):
    version = tuple(info["python"])
    if version < node_probe.MIN_PYTHON:
        raise PythonMissing("host %s: %s is Python %s; sac needs >= 3.8: set `python:` for this host in the "
                            "inventory" % (settings.name, info["executable"], ".".join(map(str, version))))


def started(info):
    """What a START or RESTART probe did, in words."""
    done = []
    if info.get("upgraded_from"):
        done.append("upgraded the node from %s" % (info["upgraded_from"] or "?")[:12])
    if info.get("restarted"):
        done.append("stopped the node daemon (its agents keep running)")
    if info.get("started"):
        done.append("started the node daemon")
    return done


class SSHPath:
    """The way to one host's node over SSH (see the module docstring)."""

    def __init__(self, settings, accept_new_host_keys=False, report=None):
        self.settings = settings
        self.accept_new = accept_new_host_keys
        self.report = report  # report(words): how the engine upload goes, for a live table
        self.pyz, self.sha = build_pyz()
        self.conn = None
        self.done, self.would, self.answered = [], [], None

    async def open(self, mode):
        """A NodeClient on the host's daemon, provisioned as `mode` says; None when no daemon runs ("attach")."""
        await self.connect()
        nodelay = asyncio.ensure_future(self.conn.disable_nagle())  # alongside the attach: no added round trip
        try:
            client = None if mode == "restart" else await self.attach_warm(mode)
            await nodelay  # before any probe, and before a command could close the connection under it
            if client is None:
                client = await (self.look() if mode == "attach" else self.provision(restart=mode == "restart"))
        except BaseException:
            nodelay.cancel()
            self.close()
            raise
        if client is None:
            self.close()
        return client

    async def connect(self):
        self.conn = await connect_host(self.settings.target, accept_new_host_keys=self.accept_new,
                                       timeout=self.settings.connect_timeout)

    async def attach_warm(self, mode):
        """A client on a daemon of this head's sha at the state dir last seen, else None (then: the probe,
        which also upgrades an old node, and to provision, replaces an engine that changed since it was
        verified). Sets `answered`: the check asked for host.facts."""
        hint = state_dir_hint(self.settings)
        if not hint:
            return None
        try:
            stream = await self.conn.open_unix_connection(hint.rstrip("/") + "/node.sock")
        except StreamLocalRefused:
            return None
        client = self._client(stream)
        try:
            answered = await client.timed_facts(self.settings.connect_timeout)
        except SacError:
            answered = ({}, None)
        engine = answered[0].get("engine") or {}
        if answered[0].get("sha") != self.sha or (mode == "provision" and engine.get("bin")
                                                  and not engine.get("intact")):
            await client.close()
            return None
        self.answered = answered
        return client

    async def probe(self, mode):
        """The probe's answer (sac_node/probe.py); by `mode` it also starts, upgrades or restarts the daemon."""
        result = await self.conn.run(probe_command(self.settings, self.sha, mode, probe_wish(self.settings)),
                                     timeout=self.settings.open_timeout)
        return read_probe(self.settings, result)

    async def upload(self, path):
        await self.conn.upload(path, self.pyz, mode=0o600)
        self.done.append("uploaded node.pyz (%d KB)" % (len(self.pyz) // 1024))

    async def start(self, mode, info):
        """The daemon of this head's sha, running: a START or RESTART probe started it when node.pyz was
        cached; else upload node.pyz and probe again, which starts it now."""
        info = await self.bring(mode, info)
        self.done += started(info)
        if not (info.get("daemon") or {}).get("alive"):
            raise BootstrapFailed("host %s: the node daemon did not start; see %s/daemon.log on that host"
                                  % (self.settings.name, info["state_dir"]))
        return info

    async def bring(self, mode, info):
        """Upload what the probe found missing (node.pyz, the engine) and probe again, which starts the
        daemon; while another host sends the engine to the same (shared) state dir, wait for it."""
        for _ in range(BUSY_POLLS):
            engine = info.get("engine") or {}
            if engine.get("problem"):
                raise engine_ship.engine_problem(self.settings.name, engine)
            if info["pyz_cached"] and not engine.get("upload"):
                return info
            if not info["pyz_cached"]:
                await self.upload(info["pyz"])
            if engine.get("upload"):
                done = await engine_ship.send(self.conn, self.settings, info, info["pyz"], self.report)
                if done is None:
                    if self.report:
                        self.report("waiting: another host is sending the engine to this state dir")
                    await asyncio.sleep(BUSY_WAIT_S)
                else:
                    self.done.append(done)
            info = await self.probe(mode)
        raise BootstrapFailed("host %s: the engine in %s/engines stayed busy (another upload) for %ds"
                              % (self.settings.name, info["state_dir"], BUSY_POLLS * BUSY_WAIT_S))

    async def provision(self, restart):
        """Make sure this head's node runs there (a fresh daemon when `restart`); attach to it."""
        mode = node_probe.RESTART if restart else node_probe.START
        info = await self.start(mode, await self.probe(mode))
        client = await self.attach(info)
        remember_state_dir(self.settings, info["state_dir"])
        return client

    async def look(self):
        """Provision nothing; attach to whatever daemon runs (None when none does) and fill `would`.

        The one thing done: a daemon that died (did not stop on purpose) is started again, from
        the pyz it ran, as nothing else would (its agents' shims run on without it).
        """
        info = await self.probe(node_probe.LOOK)
        daemon = info.get("daemon") or {}
        self.would = [] if info["pyz_cached"] else ["upload node.pyz (%d KB)" % (len(self.pyz) // 1024)]
        self.would += engine_ship.would(info.get("engine"))
        self.done = [REVIVED] if info.get("revived") else []
        client = None
        if daemon.get("alive") and daemon.get("sha") != self.sha:
            self.would.append("upgrade the node from %s" % (daemon.get("sha") or "?")[:12])
            info = dict(info, pyz="%s/node/%s.pyz" % (info["state_dir"], daemon.get("sha")), sha=daemon.get("sha"))
        elif not daemon.get("alive"):
            self.would.append("start the node daemon")
            self.answered = ({"python": ".".join(map(str, info["python"]))}, None)
        if daemon.get("alive"):
            client = await self.attach(info)
        remember_state_dir(self.settings, info["state_dir"])
        return client

    async def attach(self, info):
        """A NodeClient on the daemon the probe found: stream-local first, the exec bridge where that is refused."""
        try:
            stream = await self.conn.open_unix_connection(info["state_dir"] + "/node.sock")
        except StreamLocalRefused:
            command = "SAC_NODE_SHA=%s %s %s attach --state-dir %s" % (
                info.get("sha") or self.sha, self.settings.python, shlex.quote(info["pyz"]),
                shlex.quote(info["state_dir"]))
            stream = await self.conn.open_exec(self.settings.shell(command))
        return self._client(stream)

    def _client(self, stream):
        return NodeClient(stream.reader, stream.writer, host=self.settings.name, channel=stream.kind)

    def close(self):
        """Drop the connection (when no daemon runs, or on failure)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
