"""The supervisor: one agent's engine process, started, restarted by its policy, ended.

The restart policy decides (restart_policy.py); this class only spawns, waits, sleeps
and terminates. Whoever runs turns on the engine (the shim's TurnRunner) is handed each
new process by `run` and gives its exit code back; the supervisor asks it nothing else.
It also keeps the engine's conversation (`Session`): `--resume` of it at each start,
or a new one, said so, when Claude Code had not saved it.
"""

import asyncio
import json
import logging
import os
import signal

from .. import egress, engine, launch
from ..engine_proc import EngineProcess
from ..protocol import messages as m
from ..protocol.errors import SacError
from ..protocol.messages import secret_hash
from ..state_dir import write_atomic
from . import states
from .restart_policy import RestartTracker

log = logging.getLogger("sac_node.supervisor")

STOP_GRACE_S = 5.0
STDERR_LINES = 20
OUTPUT_DRAIN_S = 2.0  # after an exit, how long the lines it wrote just before may take to be read


class Session:
    """The engine's conversation: its id on disk (<agent>/session.json) and what to tell of a lost one."""

    def __init__(self, path):
        self.path = path
        self.notice = None  # told with the next turn to end: its conversation was started again
        try:
            with open(path) as fh:
                self.id = json.load(fh).get("session_id")
        except (OSError, ValueError):
            self.id = None

    def save(self, session_id):
        if session_id and session_id != self.id:
            self.id = session_id
            write_atomic(self.path, json.dumps({"session_id": session_id}))

    def forget(self):
        lost, self.id = self.id, None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        return lost

    def take_notice(self):
        notice, self.notice = self.notice, None
        return notice


class Supervisor:
    """Starts the agent's engine, restarts it as its policy says, and ends it on request.

    `state` and `last_error` are what status shows. `record(subtype, **fields)` writes one of
    the node's transcript events.
    """

    def __init__(self, spec, agent_dir, state_dir, accounts, record, clock):
        self.spec, self.dir, self.state_dir = spec, agent_dir, state_dir
        self.accounts = accounts
        self.record = record
        self.clock = clock
        self.tracker = RestartTracker.from_spec(spec.restart)
        self.session = Session(agent_dir.session)
        self.relay = egress.ProviderRelay()
        self.state = states.STARTING
        self.last_error = None
        self.proc = None
        self.engine_started_at = None
        self.isolation = {}  # the running engine's sandbox, as status shows it
        self.secrets_used = {}  # {NAME: hash} the running engine was started with
        self.stopping = False
        self._kill_reason = None
        self._wake = asyncio.Event()
        self._stderr_tail = []
        loop = asyncio.get_event_loop()
        self.first_start = loop.create_future()  # done once an engine has started (hooks.post_start)
        self.gave_up = loop.create_future()  # the reason, once the agent is failed for good (hooks.on_failure)

    # -- the loop -------------------------------------------------------------------

    async def run(self, runner, account_ready):
        """Spawn, let `runner.serve(proc)` use the engine until it exits, decide, again; until stopped
        or given up. `account_ready()` is awaited before each start (False: stop)."""
        while not self.stopping:
            if not await account_ready():
                return
            try:
                await self._spawn(runner.on_stdout)
            except SacError as exc:
                self.state, self.last_error = states.FAILED, exc.message
                self.record(m.ENGINE_FAILED, error=exc.message)
                await self.give_up()
                return
            code = await runner.serve(self.proc)
            if not await self._after_exit(code):
                return

    async def _after_exit(self, code):
        """Apply the restart policy to an exit; True to start the engine again."""
        ran = self.clock() - self.engine_started_at
        requested, reason = self.stopping, self._kill_reason
        self._kill_reason = None
        if reason and not requested:
            self.record(m.ENGINE_RESTART, reason=reason)
            self.state = states.RESTARTING
            return True
        decision = self.tracker.record_exit(code, ran, requested)
        if not requested:
            self.last_error = decision.reason + self.stderr_hint()
        self.record(m.ENGINE_EXITED, code=code, decision=decision.state, reason=decision.reason)
        self.state = decision.state
        if decision.state != states.RESTARTING:
            if decision.state == states.FAILED:
                await self.give_up()
            return False
        await self.sleep_unless_stopped(decision.delay)
        return True

    async def give_up(self):
        """The agent is failed for good (state FAILED, last_error says why): say so, and wait for a stop."""
        if not self.gave_up.done():
            self.gave_up.set_result(self.last_error)
        await self.wait_stop()

    async def _spawn(self, on_stdout):
        self._forget_unsaved_session()
        plan = launch.prepare(self.spec, self.dir, self.state_dir, session_id=self.session.id,
                              account=self.accounts.current)
        self.isolation = plan.properties
        self.secrets_used = self.secret_hashes()
        if plan.egress.network == "provider":
            await self.relay.serve(plan.egress)  # listening before the engine's first request
        for path, content in plan.secret_files.items():
            write_atomic(path, content, 0o600)
        self._stderr_tail = []
        self.proc = await EngineProcess.start(plan.argv, on_stdout, self._on_stderr, env=plan.env, cwd=plan.cwd,
                                              start_new_session=True, preexec_fn=launch.die_with_parent)
        self.engine_started_at = self.clock()
        self.state = states.IDLE
        if not self.first_start.done():
            self.first_start.set_result(None)
        self.record(m.ENGINE_STARTED, pid=self.proc.pid, runtime=plan.properties.get("runtime"),
                    resume=self.session.id, account=self.accounts.current["name"] if self.accounts.enabled else None)

    def _forget_unsaved_session(self):
        """A session Claude Code never saved cannot be resumed: say so, and start a new conversation.

        The old engine saves each turn ~0.1 s after its result; killed in that window (with its shim,
        say) it leaves a session id and no conversation. `--resume` of it fails every turn, so the
        next engine starts fresh and the next turn to end carries a notice saying so.
        """
        if not self.session.id or not self.spec.engine.is_claude:
            return
        account = self.accounts.current if self.accounts.enabled else None
        if engine.session_saved(engine.config_dir(self.dir.home, account), self.session.id):
            return
        lost = self.session.forget()
        reason = ("session %s could not be resumed: Claude Code had not saved it when its engine ended; "
                  "a new conversation was started, without the earlier turns" % lost)
        self.session.notice = self.last_error = reason
        self.record(m.SESSION_LOST, session_id=lost, reason=reason)

    def secret_hashes(self):
        """{NAME: hash} of the host's secrets this agent reads, as secrets.env has them now."""
        current = self.state_dir.secrets()
        return {name: secret_hash(current[name]) for name in self.spec.secret_names if name in current}

    def _on_stderr(self, line):
        text = line.decode("utf-8", "replace").rstrip()
        if text:
            self._stderr_tail = (self._stderr_tail + [text])[-STDERR_LINES:]
            log.info("[agent=%s] engine stderr: %s", self.spec.name, text)

    async def output_drained(self, timeout=OUTPUT_DRAIN_S):
        """Wait (a little) until the engine's stdout and stderr are read to their end."""
        if self.proc is not None:
            await asyncio.wait([self.proc.output_closed], timeout=timeout)

    def stderr_hint(self):
        return (" (stderr: %s)" % self._stderr_tail[-1][:300]) if self._stderr_tail else ""

    # -- waking, stopping, ending the engine ---------------------------------------------

    def wake(self):
        """Something changed (a turn came, the engine exited, a stop): waiters look again."""
        self._wake.set()

    async def wait_wake(self):
        self._wake.clear()
        await self._wake.wait()

    async def sleep_unless_stopped(self, delay):
        self._wake.clear()
        try:
            await asyncio.wait_for(self.wait_stop(), delay)
        except asyncio.TimeoutError:
            pass

    async def wait_stop(self):
        while not self.stopping:
            await self.wait_wake()

    def stop(self):
        """End the engine and the loop (a running turn ends interrupted; pending turns stay pending)."""
        self.stopping = True
        self._wake.set()
        asyncio.ensure_future(self.terminate())

    async def restart(self, reason):
        """End the engine on purpose; the loop starts the next one at once (no restart policy, no backoff)."""
        self._kill_reason = reason
        await self.terminate()

    async def terminate(self):
        """SIGTERM the engine's process group, SIGKILL after STOP_GRACE_S."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            self.proc.close_stdin()
            os.killpg(self.proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError, OSError):
            pass
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_GRACE_S)
        except asyncio.TimeoutError:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def running_pid(self):
        """The engine's pid while it runs, else None."""
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None
