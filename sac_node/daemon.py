"""The node daemon: one per (user, state dir), serving msgpack-rpc on <state>/node.sock.

It holds no state beyond the state dir: it can be killed and restarted at any
time; at start it re-attaches to the shims that are still running, and while it
runs it respawns the shim of any agent that should run but whose shim died.
"""

import asyncio
import fcntl
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import time

from . import __version__
from .protocol import messages as m
from .protocol.errors import AgentNotRunning, SacError
from .rpc import RpcPeer, open_unix_peer
from .slurm import AgentPending, SlurmAgents, settings_of, submit_startup_prompts
from .state_dir import write_atomic

log = logging.getLogger("sac_node.daemon")

SUPERVISE_EVERY_S = 1.0
SHIM_START_TIMEOUT_S = 15.0
SHIM_GOING_S = 5.0  # how long a killed shim's process may outlive its socket before we call it hung
SLURM_ATTACH_WAIT_S = 5.0  # how long a request waits for a Slurm job to report its agent's shim
SHIM_ALREADY_RUNNING = 3  # the exit code of a shim that found another holding the agent's lock


def started_with(environ):
    """What the head started this daemon with (SAC_NODE_SETTINGS: {field: hash}), or None."""
    try:
        found = json.loads(environ.get("SAC_NODE_SETTINGS") or "null")
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def node_command():
    """argv prefix that runs this node's code again (the pyz when we run from one)."""
    pkg = os.path.dirname(os.path.abspath(__file__))
    archive = os.path.dirname(pkg)
    if os.path.isfile(archive):  # running from node.pyz
        return [sys.executable, archive]
    return [sys.executable, "-m", "sac_node"]


class ShimRefused(AgentNotRunning):
    """The shim's pid lives but its socket refuses: it is being killed, or it is hung."""


def pid_alive(pid):
    """True for a running process; a zombie (dead, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class ShimHandle:
    """The daemon's link to one running shim."""

    def __init__(self, name, pid, peer, popen=None):
        self.name, self.pid, self.peer, self.popen = name, pid, peer, popen


class Node:
    """The daemon's state: the state dir and a handle per live shim."""

    def __init__(self, state, clock=time.time):
        self.state = state
        self.clock = clock
        self.started_at = clock()
        self.shims = {}
        self.subs = {}
        self._sub_ids = 0
        self.shim_respawns = {}
        self._spawning = {}
        self.sha = os.environ.get("SAC_NODE_SHA") or "-"
        self.settings = started_with(os.environ)
        self.post = None  # messages between agents (handlers/comms.py), made on first use
        self._lock_fh = None
        self._server = None
        self._stop = None
        self.slurm = SlurmAgents(state, node_command(), clock)

    # -- shims --------------------------------------------------------------------

    def add_sub(self, client, agent, client_sub):
        """A daemon-wide id for `client`'s subscription `client_sub` to `agent`'s events."""
        self._sub_ids += 1
        sub = "s%d" % self._sub_ids
        self.subs[sub] = (client, agent, client_sub)
        return sub

    def _on_shim_event(self, method, params):
        sub = self.subs.get(params.get("sub"))
        if sub is not None:
            client, agent, client_sub = sub
            if client.closed:
                self.subs.pop(params.get("sub"), None)
            else:
                client.notify(method, {"sub": client_sub, "agent": agent, "record": params["record"]})

    def live_shim_pid(self, name):
        if settings_of(self.state.agent(name)) is not None:
            return self.slurm.shim_pid(name)  # its shim runs in a Slurm job, maybe on another machine
        try:
            with open(self.state.agent(name).shim_info) as fh:
                pid = json.load(fh).get("pid")
        except (OSError, ValueError):
            return None
        return pid if pid and pid_alive(pid) else None

    async def shim(self, name):
        """A connected peer for the agent's shim; raises AgentNotRunning when it has none."""
        peer = await self._attach_unless_dying(name)
        if peer is not None:
            return peer
        if self.state.agent(name).exists() and self.state.agent(name).read_desired() == "running":
            # it died a moment ago: back now, not in a second (in Slurm: once its job reports it)
            return await self.ensure_shim(name, respawn=True, wait_s=SLURM_ATTACH_WAIT_S)
        raise AgentNotRunning("agent %s is not running; start it with `sac agents start %s`" % (name, name))

    async def _attach_unless_dying(self, name):
        """`_attach`, waiting out a shim that is being killed: its files (the socket) close before its
        process ends, so for a moment its pid lives while its socket refuses. Once the pid is gone
        (or a zombie) `_attach` answers None and the caller respawns it."""
        deadline = self.clock() + SHIM_GOING_S
        while True:
            try:
                return await self._attach(name)
            except ShimRefused:
                if self.clock() >= deadline:
                    raise
                await asyncio.sleep(0.02)

    async def _attach(self, name):
        """A peer for the agent's live shim, or None when no shim runs."""
        handle = self.shims.get(name)
        if handle is not None and not handle.peer.closed:
            return handle.peer  # a shim that dies closes its socket, and with it this peer
        pid = self.live_shim_pid(name)
        if pid is None:
            return None
        peer = await self._connect_shim(name)
        self.shims[name] = ShimHandle(name, pid, peer, handle.popen if handle else None)
        await submit_startup_prompts(self.state.agent(name), peer, m.TURNS_SUBMIT)  # a Slurm agent's, kept
        return peer

    async def _connect_shim(self, name):
        from .handlers import turns  # the handlers import this module
        if settings_of(self.state.agent(name)) is not None:
            reader, writer = await self.slurm.open_shim(name)
            peer = RpcPeer(reader, writer, None, self._on_shim_event, "shim:%s" % name, prefixed=True,
                           relay_lost=turns.relay_lost)
            peer.context["runner"] = asyncio.ensure_future(peer.run())
            return peer
        try:
            return await open_unix_peer(self.state.agent(name).socket, on_notification=self._on_shim_event,
                                        name="shim:%s" % name, prefixed=True, relay_lost=turns.relay_lost)
        except OSError as exc:
            raise ShimRefused("agent %s: its shim does not answer (%s)" % (name, exc)) from exc

    async def ensure_shim(self, name, respawn=False, wait_s=0.0, queued=False):
        """The agent's shim, started unless one runs. One spawn at a time per agent, so the supervisor,
        `agents.start` and a request arriving during a respawn never start two. A Slurm agent's shim
        runs in its job (see SlurmAgents.place)."""
        lock = self._spawning.setdefault(name, asyncio.Lock())
        async with lock:
            peer = await self._attach(name)
            if peer is not None:
                return peer
            if settings_of(self.state.agent(name)) is not None:
                return await self._place_in_slurm(name, wait_s, queued)
            if respawn:
                self.shim_respawns[name] = self.shim_respawns.get(name, 0) + 1
                log.warning("[agent=%s] shim is gone; respawning (respawn %d)", name, self.shim_respawns[name])
            return await self._spawn_shim(name)

    async def _place_in_slurm(self, name, wait_s, queued):
        """A Slurm agent's shim runs in its job, never here: make sure a job holds it, then attach."""
        await self.slurm.place(name, wait_s, queued)
        peer = await self._attach(name)
        if peer is None:
            raise AgentPending("agent %s: its shim is not serving yet" % name)
        return peer

    async def _spawn_shim(self, name):
        """Start the agent's shim and wait until it serves its socket."""
        agent = self.state.agent(name)
        for stale in (agent.shim_info, agent.socket):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        logf = open(agent.shim_log, "ab")
        popen = subprocess.Popen(node_command() + ["shim", agent.path], stdin=subprocess.DEVNULL, stdout=logf,
                                 stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        logf.close()
        deadline = self.clock() + SHIM_START_TIMEOUT_S
        while self.clock() < deadline:
            if popen.poll() == SHIM_ALREADY_RUNNING:
                return await self._adopt(name)
            if popen.poll() is not None:
                raise AgentNotRunning("agent %s: its shim exited at start (code %s); see %s: %s"
                                      % (name, popen.returncode, agent.shim_log, _last_line(agent.shim_log)))
            if os.path.exists(agent.shim_info) and os.path.exists(agent.socket):
                peer = await self._connect_shim(name)
                self.shims[name] = ShimHandle(name, popen.pid, peer, popen)
                return peer
            await asyncio.sleep(0.02)
        popen.kill()
        raise AgentNotRunning("agent %s: its shim did not start within %ss; see %s"
                              % (name, SHIM_START_TIMEOUT_S, agent.shim_log))

    async def _adopt(self, name):
        """Another shim holds the agent's lock (e.g. one a previous daemon was starting): use it."""
        deadline = self.clock() + SHIM_START_TIMEOUT_S
        while self.clock() < deadline:
            if self.live_shim_pid(name) and os.path.exists(self.state.agent(name).socket):
                peer = await self._attach(name)
                if peer is not None:
                    return peer
            await asyncio.sleep(0.05)
        raise AgentNotRunning("agent %s: another shim holds its lock but does not serve" % name)

    async def wait_shim_exit(self, name, timeout=15.0):
        deadline = self.clock() + timeout
        while self.clock() < deadline:
            handle = self.shims.get(name)
            if handle and handle.popen is not None:
                handle.popen.poll()
            if self.live_shim_pid(name) is None:
                self.shims.pop(name, None)
                return True
            await asyncio.sleep(0.05)
        return False

    async def supervise(self):
        """Reap exited shims and respawn those of agents that should be running; queue the next Slurm
        job of those whose allocation ends soon."""
        while True:
            try:
                await self.slurm.hand_over()
            except SacError as exc:
                log.error("Slurm hand-over: %s", exc.message)
            for handle in list(self.shims.values()):
                if handle.popen is not None:
                    handle.popen.poll()
            in_slurm = []
            for name in self.state.agent_names():
                if self.state.agent(name).read_desired() != "running" or self.live_shim_pid(name):
                    continue
                if settings_of(self.state.agent(name)) is not None:
                    in_slurm.append(name)  # placed at once below: a resubmission packs them again
                else:
                    await self._respawn(name)
            await asyncio.gather(*(self._respawn(name) for name in in_slurm))
            await asyncio.sleep(SUPERVISE_EVERY_S)

    async def _respawn(self, name):
        try:
            await self.ensure_shim(name, respawn=True)
        except AgentPending:
            pass  # its job waits in the queue, or is starting its shim
        except SacError as exc:
            log.error("[agent=%s] %s", name, exc.message)

    # -- serving ------------------------------------------------------------------

    def acquire_lock(self):
        """Single instance per state dir; False when another daemon holds it."""
        self.state.create()
        self._lock_fh = open(self.state.lock, "a+")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_fh.close()
            return False
        return True

    async def serve(self, on_ready=None):
        from .handlers import table, turns

        handlers = table(self)
        relay = functools.partial(turns.relay, self)
        # Bound under a private name, then renamed into place: whoever finds node.sock answering
        # (`daemon --detach`, a head's probe) finds this daemon's daemon.json already written.
        bound = "%s.%x" % (self.state.socket, os.getpid())
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                lambda r, w: self._serve_client(RpcPeer(r, w, handlers, name="client", relay=relay)),
                path=bound)
        finally:
            os.umask(old)
        os.chmod(bound, 0o600)
        self._write_info()
        os.rename(bound, self.state.socket)
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_event_loop().add_signal_handler(sig, self.shutdown)
        supervisor = asyncio.ensure_future(self.supervise())
        if on_ready:
            on_ready()
        log.info("node daemon %s serving %s", __version__, self.state.socket)
        await self._stop.wait()
        # Before the socket closes: a head that finds no daemon then also finds it was stopped on purpose
        # (a daemon that died without this is started again by the next head that attaches).
        self._write_info(stopped_at=self.clock())
        supervisor.cancel()
        self._server.close()
        for handle in self.shims.values():
            await handle.peer.close()

    def _write_info(self, **extra):
        """<state>/daemon.json: who serves node.sock (pid, version, sha), and `stopped_at` once it stopped."""
        info = {"pid": os.getpid(), "version": __version__, "sha": self.sha, "started_at": self.started_at,
                "settings": self.settings, "engine_bin": os.environ.get("SAC_CLAUDE_BIN")}
        write_atomic(os.path.join(self.state.root, "daemon.json"), json.dumps(dict(info, **extra)))

    async def _serve_client(self, peer):
        await peer.run()
        for client_sub, sub in peer.context.get("subs", {}).items():
            entry = self.subs.pop(sub, None)
            handle = self.shims.get(entry[1]) if entry else None
            if handle is not None and not handle.peer.closed:
                try:
                    await handle.peer.call(m.EVENTS_UNSUBSCRIBE, {"sub": sub}, timeout=5)
                except SacError:
                    pass

    def shutdown(self):
        """Stop serving; shims and agents keep running."""
        if self._stop is not None:
            self._stop.set()


def _last_line(path):
    try:
        with open(path, "rb") as fh:
            lines = [l for l in fh.read()[-4000:].decode("utf-8", "replace").splitlines() if l.strip()]
        return lines[-1] if lines else "(empty)"
    except OSError:
        return "(no log)"
