"""The shim: one small process per agent that owns its engine (containerd's model).

It outlives the node daemon: the daemon talks to it over <agent>/shim.sock with the
same msgpack-rpc framing, and re-attaches after a restart. The shim is three parts
and the files they share (journal, transcript):

- the supervisor (supervision/supervisor.py): spawns the engine, restarts it as the
  policy says, terminates it;
- the turn runner (turn_runner.py): runs the turns one at a time, in the order they
  were accepted, and records each one's outcome;
- this module: the socket the daemon calls (handlers/shim_side.py) and the heartbeat.

The accounts (quota.py), the provider's health (provider_watch.py), refused tool calls
(refusals.py), the provider relay (egress.py) and the `sac` MCP server (agent_talk.py) each sit
behind their own interface.
"""

import asyncio
import fcntl
import json
import logging
import os
import signal
import sys
import time

from . import __version__
from .accounts import AccountPool
from .agent_talk import TalkServer
from .activity import Activity
from .commit import GroupCommit
from .handlers import shim_side
from .hooks_socket import HooksServer
from .journal import Journal, Retention
from .lifecycle import Lifecycle
from .node_spec import NodeSpec
from .protocol import messages as m
from .provider_watch import ProviderWatch
from .quota import QuotaGuard
from .refusals import RefusalWatch
from .rpc import RpcPeer
from .state_dir import StateDir, write_atomic
from .supervision import states
from .supervision.supervisor import Supervisor
from .transcript import Transcript
from .turn_runner import TurnRunner

log = logging.getLogger("sac_node.shim")

HEARTBEAT_S = 2.0


class Shim:
    """One agent: its files, its supervisor and turn runner, and the socket the daemon calls."""

    def __init__(self, agent_dir, state_dir, clock=time.time):
        self.dir = agent_dir
        self.clock = clock
        with open(agent_dir.spec) as fh:
            self.spec = NodeSpec.from_wire(json.load(fh))
        self.name = self.spec.name
        self.commit = GroupCommit(self.name)
        self.journal = self.commit.journal = Journal(agent_dir.journal, clock, on_write=self.commit.written,
                                                     retention=Retention.from_spec(self.spec))
        self.transcript = Transcript(agent_dir.transcript, clock)
        self.accounts = AccountPool(self.spec.claude.accounts, self.spec.claude.quota)
        self.supervisor = Supervisor(self.spec, agent_dir, state_dir, self.accounts, self.record, clock)
        self.quota = QuotaGuard(self.accounts, clock, self.record, self.supervisor)
        self.provider = ProviderWatch()
        self.activity = Activity(clock)
        self.hooks = HooksServer(agent_dir, self.activity.hook)
        self.runner = TurnRunner(self.spec, self.journal, self.transcript, self.commit, self.supervisor,
                                 self.quota, self.provider, RefusalWatch(), clock, self.activity)
        self.lifecycle = Lifecycle(self.spec, agent_dir, state_dir, self.record, clock)
        self.started_at = clock()
        self._clients = {}  # RpcPeer -> the task serving it
        self._stopping = None  # the task that runs hooks.pre_stop, then stops the engine
        self.talk = TalkServer(self.name, agent_dir, state_dir.socket, self.spec.comms,
                               (self._depth_of_current, self.record, self.runner.engine_busy),
                               clock) if self.spec.comms.talks else None

    def _depth_of_current(self):
        """How deep in a chain of asks the running turn is (0: a user's turn)."""
        return (self.journal.turns.get(self.runner.current) or {}).get("depth") or 0

    def record(self, subtype, **fields):
        """One of the node's events in the transcript, under the running turn (if any)."""
        self.transcript.append(self.runner.current, m.sac_event(subtype, **fields))

    async def run(self):
        """Serve until asked to stop; returns the process exit code."""
        for turn in self.journal.running():
            self.runner.finish_turn(turn["id"], m.INTERRUPTED, error="the agent's shim restarted while this turn ran")
        server = await asyncio.start_unix_server(self._on_client, path=self._fresh_socket())
        os.chmod(self.dir.socket, 0o600)
        write_atomic(self.dir.shim_info, json.dumps({"pid": os.getpid(), "socket": self.dir.socket,
                                                     "started_at": self.started_at, "version": __version__}))
        beat = asyncio.ensure_future(self._heartbeat())
        try:
            if self.talk is not None:
                await self.talk.serve()  # before the engine starts: its MCP bridge connects at once
            await self.hooks.serve()
            await self.lifecycle.around(self.supervisor, self.supervisor.run(self.runner, self.quota.account_ready))
        finally:
            beat.cancel()
            server.close()
            self.hooks.close()
            if self.talk is not None:
                await self.talk.close()
            self.supervisor.relay.close()
            await self._close_clients()
            self._write_heartbeat()  # the last one says `stopped`; it flushes the files closed next
            self.transcript.close()
            self.journal.close()
        return 0 if self.supervisor.state == states.STOPPED else 1

    def stop(self):
        """Run hooks.pre_stop, stop the engine (a running turn ends interrupted; pending turns stay pending)
        and exit."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self.lifecycle.before_stop(self.supervisor))

    # -- heartbeat --------------------------------------------------------------------

    async def _heartbeat(self):
        while True:
            self._write_heartbeat()
            self.journal.maybe_compact(self.name)  # cheap unless due; the journal was just synced
            await asyncio.sleep(HEARTBEAT_S)

    def _write_heartbeat(self):
        self.transcript.flush()
        self.journal.sync()
        # A liveness signal, rewritten every HEARTBEAT_S: it need not survive the machine, so no fsync.
        write_atomic(self.dir.heartbeat, json.dumps({"ts": self.clock(), "state": self.supervisor.state,
                                                     "pid": os.getpid()}), durable=False)

    # -- the daemon's socket --------------------------------------------------------------

    def _fresh_socket(self):
        try:
            os.unlink(self.dir.socket)
        except FileNotFoundError:
            pass
        return self.dir.socket

    async def _on_client(self, reader, writer):
        peer = RpcPeer(reader, writer, shim_side.handlers(self), name="daemon", prefixed=True)
        self._clients[peer] = asyncio.current_task()
        try:
            await peer.run()
        finally:
            del self._clients[peer]
        for sub in [s for s, (p, _) in self.transcript.subscribers.items() if p is peer]:
            self.transcript.unsubscribe(sub)

    async def _close_clients(self):
        """Close the daemon's connections and let their tasks end (a task cancelled at exit logs an error)."""
        tasks = list(self._clients.values())
        for peer in list(self._clients):
            await peer.close()
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    def status(self):
        """agents.status: see handlers/shim_side.status_of."""
        return shim_side.status_of(self)


def main(agent_path):
    """Entry point: `python -m sac_node shim <agent dir>`."""
    agent_path = os.path.abspath(agent_path)
    state = StateDir(os.path.dirname(os.path.dirname(agent_path)))
    name = os.path.basename(agent_path)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lock = open(os.path.join(agent_path, "shim.lock"), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        # Another shim owns this agent: two would run the same turns twice.
        sys.stderr.write("sac shim: another shim already runs agent %s\n" % name)
        return 3
    async def serve():
        # Built inside the loop (Python 3.8's asyncio objects bind to the loop current at creation).
        shim = Shim(state.agent(name), state)
        loop = asyncio.get_event_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, shim.stop)
        return await shim.run()

    # asyncio.run cancels and awaits what is left (the daemon's connection, say), so the shim exits quietly.
    return asyncio.run(serve())
