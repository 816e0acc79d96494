"""The shim: one small process per agent that owns its engine (containerd's model).

It owns the engine's process group, stdin/stdout, the journal, the transcript
and the heartbeat, and it outlives the node daemon: the daemon talks to it over
<agent>/shim.sock with the same msgpack-rpc framing, and re-attaches after a
restart. Turns run one at a time, in the order they were accepted.
"""

import asyncio
import fcntl
import json
import logging
import os
import signal
import sys
import time

from . import __version__, egress, engine, launch
from .accounts import AccountPool
from .handlers import shim_side
from .quota import QuotaGuard
from .refusals import RefusalWatch
from .commit import GroupCommit
from .engine_proc import EngineProcess
from .journal import Journal, Retention
from .provider_watch import ProviderWatch, diagnose
from .protocol.errors import SacError
from .protocol import messages as m
from .node_spec import NodeSpec
from .protocol.messages import secret_hash
from .rpc import RpcPeer
from .state_dir import StateDir, write_atomic
from .supervision import states
from .supervision.restart_policy import RestartTracker
from .transcript import Transcript

log = logging.getLogger("sac_node.shim")

HEARTBEAT_S = 2.0
STOP_GRACE_S = 5.0
ENGINE_START_GRACE_S = 10.0  # added to stall_timeout_s until a new engine prints its first line


class EngineExited(Exception):
    """The engine process ended while a turn waited for it."""


ENGINE_EXITED = object()  # what a turn's result future gets when the engine ends first


def _settle(fut, value):
    if fut is not None and not fut.done():
        fut.set_result(value)


class Shim:
    """Supervises one engine and serves its agent's turns."""

    def __init__(self, agent_dir, state_dir, clock=time.time):
        self.dir = agent_dir
        self.state_dir = state_dir
        self.clock = clock
        with open(agent_dir.spec) as fh:
            self.spec = NodeSpec.from_wire(json.load(fh))
        self.name = self.spec.name
        self.commit = GroupCommit(self.name)
        self.journal = self.commit.journal = Journal(agent_dir.journal, clock, on_write=self.commit.written,
                                                     retention=Retention.from_spec(self.spec))
        self.transcript = Transcript(agent_dir.transcript, clock)
        self.tracker = RestartTracker.from_spec(self.spec.restart)
        self.accounts = AccountPool(self.spec.claude.accounts, self.spec.claude.quota)
        self.quota = QuotaGuard(self)
        self.provider = ProviderWatch()
        self._giving_up = None  # the task that ends a turn whose provider cannot be reached
        self.turn_used_tools = False
        self.turn_spoke = False  # the running turn produced output (an assistant or tool event)
        self.session_notice = None  # told with the next turn to end: its conversation was started again
        self.refusals = RefusalWatch()
        self.state = states.STARTING
        self.proc = None
        self.current = None
        self.last_error = None
        self.started_at = clock()
        self.engine_started_at = None
        self.last_output_at = None
        self.isolation = {}
        self.secrets_used = {}  # {NAME: hash} the running engine was started with
        self.relay = egress.ProviderRelay()
        self.engine_spoke = False
        self.session_id = self._load_session()
        self._wake = asyncio.Event()
        self.stopping = False
        self.kill_reason = None
        self._result = None  # the running turn's: its result event, None to look at the limits again
        self._result_event = None
        self._waiters = {}
        self._stderr_tail = []
        self._clients = {}  # RpcPeer -> the task serving it

    # -- lifecycle ----------------------------------------------------------------

    async def run(self):
        """Serve until asked to stop; returns the process exit code."""
        for turn in self.journal.running():
            self.finish_turn(turn["id"], "interrupted", error="the agent's shim restarted while this turn ran")
        server = await asyncio.start_unix_server(self._on_client, path=self._fresh_socket())
        os.chmod(self.dir.socket, 0o600)
        write_atomic(self.dir.shim_info, json.dumps({"pid": os.getpid(), "socket": self.dir.socket,
                                                     "started_at": self.started_at, "version": __version__}))
        beat = asyncio.ensure_future(self._heartbeat())
        try:
            await self._supervise()
        finally:
            beat.cancel()
            server.close()
            self.relay.close()
            await self._close_clients()
            self._write_heartbeat()  # the last one says `stopped`; it flushes the files closed next
            self.transcript.close()
            self.journal.close()
        return 0 if self.state == states.STOPPED else 1

    async def _close_clients(self):
        """Close the daemon's connections and let their tasks end (a task cancelled at exit logs an error)."""
        tasks = list(self._clients.values())
        for peer in list(self._clients):
            await peer.close()
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    def _fresh_socket(self):
        try:
            os.unlink(self.dir.socket)
        except FileNotFoundError:
            pass
        return self.dir.socket

    async def _heartbeat(self):
        while True:
            self._write_heartbeat()
            self.journal.maybe_compact(self.name)  # cheap unless due; the journal was just synced
            await asyncio.sleep(HEARTBEAT_S)

    def _write_heartbeat(self):
        self.transcript.flush()
        self.journal.sync()
        # A liveness signal, rewritten every HEARTBEAT_S: it need not survive the machine, so no fsync.
        write_atomic(self.dir.heartbeat, json.dumps({"ts": self.clock(), "state": self.state, "pid": os.getpid()}),
                     durable=False)

    def _load_session(self):
        try:
            with open(self.dir.session) as fh:
                return json.load(fh).get("session_id")
        except (OSError, ValueError):
            return None

    def _save_session(self, session_id):
        if session_id and session_id != self.session_id:
            self.session_id = session_id
            write_atomic(self.dir.session, json.dumps({"session_id": session_id}))

    def supervisor_event(self, subtype, **fields):
        self.transcript.append(self.current, m.sac_event(subtype, **fields))

    # -- supervision ----------------------------------------------------------------

    async def _supervise(self):
        while not self.stopping:
            if not await self.quota.account_ready():
                return
            try:
                await self._spawn()
            except SacError as exc:
                self.state, self.last_error = states.FAILED, exc.message
                self.supervisor_event(m.ENGINE_FAILED, error=exc.message)
                await self._wait_stop()
                return
            code = await self._serve_turns()
            ran = self.clock() - self.engine_started_at
            requested, reason = self.stopping, self.kill_reason
            self.kill_reason = None
            if reason and not requested:
                self.supervisor_event(m.ENGINE_RESTART, reason=reason)
                self.state = states.RESTARTING
                continue
            decision = self.tracker.record_exit(code, ran, requested)
            if not requested:
                self.last_error = decision.reason + self._stderr_hint()
            self.supervisor_event(m.ENGINE_EXITED, code=code, decision=decision.state, reason=decision.reason)
            self.state = decision.state
            if decision.state != states.RESTARTING:
                if decision.state == states.FAILED:
                    await self._wait_stop()
                return
            await self.sleep_unless_stopped(decision.delay)

    async def sleep_unless_stopped(self, delay):
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wait_stop(), delay)
        except asyncio.TimeoutError:
            pass

    async def _wait_stop(self):
        while not self.stopping:
            self._wake.clear()
            await self._wake.wait()

    def _stderr_hint(self):
        return (" (stderr: %s)" % self._stderr_tail[-1][:300]) if self._stderr_tail else ""

    def _forget_unsaved_session(self):
        """A session Claude Code never saved cannot be resumed: say so, and start a new conversation.

        The old engine saves each turn ~0.1 s after its result; killed in that window (with its shim,
        say) it leaves a session id and no conversation. `--resume` of it fails every turn, so the
        next engine starts fresh and the next turn to end carries a notice saying so.
        """
        if not self.session_id or not self.spec.engine.is_claude:
            return
        account = self.accounts.current if self.accounts.enabled else None
        if engine.session_saved(engine.config_dir(self.dir.home, account), self.session_id):
            return
        lost, self.session_id = self.session_id, None
        try:
            os.unlink(self.dir.session)
        except FileNotFoundError:
            pass
        reason = ("session %s could not be resumed: Claude Code had not saved it when its engine ended; "
                  "a new conversation was started, without the earlier turns" % lost)
        self.session_notice = self.last_error = reason
        self.supervisor_event(m.SESSION_LOST, session_id=lost, reason=reason)

    async def _spawn(self):
        self._forget_unsaved_session()
        plan = launch.prepare(self.spec, self.dir, self.state_dir, session_id=self.session_id,
                              account=self.accounts.current)
        self.isolation = plan.properties
        self.secrets_used = self.secret_hashes()
        if plan.egress.network == "provider":
            await self.relay.serve(plan.egress)  # listening before the engine's first request
        for path, content in plan.secret_files.items():
            write_atomic(path, content, 0o600)
        self._stderr_tail = []
        self.proc = await EngineProcess.start(plan.argv, self._on_stdout, self._on_stderr, env=plan.env,
                                              cwd=plan.cwd, start_new_session=True,
                                              preexec_fn=launch.die_with_parent)
        self.engine_started_at = self.last_output_at = self.clock()
        self.engine_spoke = False
        self.state = states.IDLE
        self.supervisor_event(m.ENGINE_STARTED, pid=self.proc.pid, runtime=plan.properties.get("runtime"),
                              resume=self.session_id,
                              account=self.accounts.current["name"] if self.accounts.enabled else None)

    def secret_hashes(self):
        """{NAME: hash} of the host's secrets this agent reads, as secrets.env has them now."""
        current = self.state_dir.secrets()
        return {name: secret_hash(current[name]) for name in self.spec.secret_names if name in current}

    async def _serve_turns(self):
        """Run pending turns until the engine exits; return its exit code."""
        exited = self.proc.exited
        exited.add_done_callback(self._engine_exited)
        while not exited.done() and not self.stopping:
            pending = self.journal.pending()
            if not pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._run_turn(pending[0], exited)
        if self.stopping and not exited.done():
            await self.terminate()
        code = await self.proc.wait()
        await asyncio.wait([self.proc.output_closed], timeout=2)  # the lines written just before the exit
        if self.current:
            self.finish_turn(self.current, "interrupted", error="engine exited (code %s) during the turn" % code)
        return code

    async def _run_turn(self, turn, exited):
        tid = turn["id"]
        self.current, self._result, self.state = tid, asyncio.get_event_loop().create_future(), states.WORKING
        self._result_event = None
        self.turn_used_tools = self.turn_spoke = False
        self.refusals.new_turn()
        self.journal.start(tid)
        self.transcript.append(tid, m.sac_event(m.TURN_STARTED, text=turn["text"]))
        await self.commit.durable()  # `started` is on disk before the turn can act: no double run after a crash
        if (self.journal.turns.get(tid) or {}).get("status") != "running":
            return  # cancelled while its start was being written
        started = self.last_output_at = self.clock()  # silence is measured from the turn's start
        try:
            self.proc.write(engine.user_line(turn["text"]))
            await self.proc.drain()
            event = await self._await_result(exited, started)
        except (BrokenPipeError, ConnectionResetError, EngineExited):
            return  # _serve_turns marks the turn interrupted once the exit code is known
        except asyncio.TimeoutError as exc:
            self.finish_turn(tid, "failed", error=str(exc))
            self.kill_reason = str(exc)
            await self.terminate()
            return
        status, reply, error = engine.result_outcome(event)
        error = egress.failure_hint(self.isolation.get("network"), error)
        if status == "failed" and self.accounts.enabled and await self.quota.failure(tid, event, error):
            return
        if status == "failed" and await self._retry_on_fresh_engine(tid, event, error):
            return
        timings = {"queued_s": round(started - (turn.get("accepted_at") or started), 3),
                   "run_s": round(self.clock() - started, 3), "engine_ms": event.get("duration_ms")}
        notice, self.session_notice = self.session_notice, None
        self.finish_turn(tid, status, reply=reply, session_id=event.get("session_id"), usage=event.get("usage"),
                         timings=timings, error=error, notice=notice)
        if status == "completed":
            self.tracker.record_success()
            self.accounts.healthy()
            await self.quota.count_usage(event)
        else:
            self.last_error = error

    async def _retry_on_fresh_engine(self, tid, event, error):
        """A turn that failed inside Claude Code before it acted runs once more, on a new engine; True if so."""
        turn = self.journal.turns[tid]
        if turn.get("attempts", 1) > 1 or not engine.failed_before_acting(event, self.turn_spoke):
            return False
        reason = "%s before the turn did anything%s; retrying it once on a fresh engine" % (
            error, self._stderr_hint())
        self.journal.requeue(tid, reason)
        self.transcript.append(tid, m.sac_event(m.TURN_RETRY, attempt=turn.get("attempts", 1), reason=reason))
        self.current, self.state = None, states.IDLE
        self.kill_reason = "turn %s failed inside the engine" % tid
        await self.terminate()
        return True

    async def _give_up_on_provider(self, tid, verdict):
        """End turn `tid` at once with why its provider cannot be reached, and restart the engine."""
        try:
            why = await diagnose(self.spec.claude.provider.base_url)
            reason = "%s; Claude Code: %s" % (why, verdict) if why else verdict
            self.provider.gave_up(reason, self.clock())
            if self.current == tid:
                error = "provider unreachable: %s" % reason
                self.finish_turn(tid, "failed", error=error)
                self.last_error = error
                self.kill_reason = error
                await self.terminate()
        finally:
            self._giving_up = None

    def _engine_exited(self, _):
        self._wake.set()
        _settle(self._result, ENGINE_EXITED)

    async def _await_result(self, exited, started):
        stall = self.spec.health.stall_timeout_s
        if not self.engine_spoke:
            stall += ENGINE_START_GRACE_S  # a fresh engine's start-up is not silence
        limit = self.spec.health.turn_timeout_s
        while True:
            now = self.clock()
            budget = min(limit - (now - started), stall - (now - self.last_output_at))
            if budget <= 0:
                if now - started >= limit:
                    raise asyncio.TimeoutError("timeout: no result within turn_timeout_s=%gs" % limit)
                raise asyncio.TimeoutError("stalled: no engine output for stall_timeout_s=%gs" % stall)
            if self._result_event is not None:  # came while the waiter woke to look at the limits
                return self._result_event
            if exited.done():
                raise EngineExited()
            loop = asyncio.get_event_loop()
            timer = loop.call_later(budget, _settle, self._result, None)  # None: look at the limits again
            try:
                event = await self._result
            finally:
                timer.cancel()
            if event is ENGINE_EXITED:
                raise EngineExited()
            if event is not None:
                return event
            self._result = loop.create_future()

    def finish_turn(self, tid, status, **fields):
        if tid == self.current:
            fields["tools_refused"] = self.refusals.turn_count
        if self.journal.finish(tid, status, **fields):
            turn = self.journal.turns[tid]
            ended = m.sac_event(m.TURN_ENDED, status=status, error=fields.get("error"))
            if fields.get("notice"):
                ended["notice"] = fields["notice"]
            self.transcript.append(tid, ended)
            for fut in self._waiters.pop(tid, []):
                if not fut.done():
                    fut.set_result(turn)
        if tid == self.current:
            self.current = None
            if self.state == states.WORKING:
                self.state = states.IDLE

    def _on_stdout(self, line):
        self.last_output_at = self.clock()
        self.engine_spoke = True
        event = engine.parse_event(line)
        if event is None:
            return
        for refusal in self.refusals.feed(event):  # before the event that shows it: the result, a tool error
            self.transcript.append(self.current, refusal)
        # The line as the engine wrote it goes into the transcript: it is JSON already (noise is not).
        self.transcript.append(self.current, event, raw=None if event.get("subtype") == m.ENGINE_NOISE else line)
        kind = event.get("type")
        if self.current is not None and kind in ("assistant", "user"):
            self.turn_spoke = True
        if kind == "assistant" or (kind == "result" and not event.get("is_error")):
            self.provider.answered()
        elif kind == "system" and event.get("subtype") == "api_retry" and self.current is not None:
            verdict = self.provider.retrying(event, self.clock())
            if verdict and self._giving_up is None:
                self._giving_up = asyncio.ensure_future(self._give_up_on_provider(self.current, verdict))
        if event.get("type") == "assistant" and any(
                isinstance(b, dict) and b.get("type") == "tool_use"
                for b in (event.get("message") or {}).get("content") or []):
            self.turn_used_tools = True
        if event.get("session_id"):
            self._save_session(event["session_id"])
        if event.get("type") == "result":
            self._result_event = event
            _settle(self._result, event)

    def _on_stderr(self, line):
        text = line.decode("utf-8", "replace").rstrip()
        if text:
            self._stderr_tail = (self._stderr_tail + [text])[-20:]
            log.info("[agent=%s] engine stderr: %s", self.name, text)

    async def terminate(self):
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

    # -- control socket -----------------------------------------------------------

    async def _on_client(self, reader, writer):
        peer = RpcPeer(reader, writer, shim_side.handlers(self), name="daemon", prefixed=True)
        self._clients[peer] = asyncio.current_task()
        try:
            await peer.run()
        finally:
            del self._clients[peer]
        for sub in [s for s, (p, _) in self.transcript.subscribers.items() if p is peer]:
            self.transcript.unsubscribe(sub)

    def submit(self, text, key=None, source="user"):
        # The serve loop is woken first, so on an idle engine the turn's start joins the
        # commit of its acceptance: one write and one fsync for both.
        self._wake.set()
        turn, created = self.journal.accept(self.name, text, key, source)
        if created:
            self.transcript.append(turn["id"], m.sac_event(m.TURN_ACCEPTED, source=source))
        return turn, created

    def get_turn(self, tid):
        return self.journal.get(tid, self.name)

    async def wait_turn(self, tid, timeout):
        turn = self.get_turn(tid)
        if turn["status"] in ("pending", "running"):
            loop = asyncio.get_event_loop()
            fut = loop.create_future()
            waiters = self._waiters.setdefault(tid, [])
            waiters.append(fut)
            timer = loop.call_later(timeout, _settle, fut, None)
            try:
                await fut
            finally:
                timer.cancel()
                if fut in waiters:
                    waiters.remove(fut)
        return self.get_turn(tid)

    async def cancel_turn(self, tid):
        turn = self.get_turn(tid)
        if turn["status"] == "pending":
            self.finish_turn(tid, "cancelled", error="cancelled before it started")
        elif turn["status"] == "running":
            self.finish_turn(tid, "cancelled", error="cancelled while running; the engine was restarted")
            self.kill_reason = "turn %s cancelled" % tid
            await self.terminate()
        return self.get_turn(tid)

    def stop(self):
        """Stop the engine (a running turn ends interrupted; pending turns stay pending) and exit."""
        self.stopping = True
        self._wake.set()
        asyncio.ensure_future(self.terminate())

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
