"""The turn runner: one agent's turns, one at a time, in the order they were accepted.

It takes turns from the journal, writes each to the engine, reads the engine's
events into the transcript until the turn's `result` (or a limit: turn_timeout_s,
stall_timeout_s, a provider that cannot be reached), and records the one outcome.
The engine process is the supervisor's: the runner gets it in `serve(proc)` and,
to end it on purpose (a timeout, a cancel, a retry), asks `supervisor.restart`.
"""

import asyncio

from . import egress, engine
from .activity import Activity
from .protocol import messages as m
from .provider_watch import diagnose
from .supervision import states

ENGINE_START_GRACE_S = 10.0  # added to stall_timeout_s until a new engine prints its first line


class EngineExited(Exception):
    """The engine process ended while a turn waited for it."""


ENGINE_EXITED = object()  # what a turn's result future gets when the engine ends first


def settle(fut, value):
    if fut is not None and not fut.done():
        fut.set_result(value)


class TurnRunner:
    """Runs an agent's turns on the engine the supervisor started; `current` is the running turn's id."""

    def __init__(self, spec, journal, transcript, commit, supervisor, quota, provider, refusals, clock,
                 activity=None):
        self.spec, self.name = spec, spec.name
        self.journal, self.transcript, self.commit = journal, transcript, commit
        self.supervisor, self.quota, self.provider, self.refusals = supervisor, quota, provider, refusals
        self.clock = clock
        self.activity = activity or Activity(clock)  # what Claude Code's hooks tell (activity.py)
        self.current = None
        self.engine_spoke = False  # the engine printed a line since it started
        self.last_output_at = None
        self._turn_used_tools = False
        self._turn_spoke = False  # the running turn produced output (an assistant or tool event)
        self._result = None  # the running turn's future: its result event, None to look at the limits again
        self._result_event = None
        self._giving_up = None  # the task that ends a turn whose provider cannot be reached
        self._waiters = {}  # turn id -> futures of turns.wait calls

    # -- turns on one engine --------------------------------------------------------------

    async def serve(self, proc):
        """Run pending turns until the engine exits (or the agent stops); return its exit code."""
        sup = self.supervisor
        self.engine_spoke, self.last_output_at = False, self.clock()
        self.activity.engine_started()
        exited = proc.exited
        exited.add_done_callback(self._engine_exited)
        while not exited.done() and not sup.stopping:
            pending = self.journal.pending()
            if not pending:
                await sup.wait_wake()
                continue
            await self._run_turn(pending[0], proc)
        if sup.stopping and not exited.done():
            await sup.terminate()
        code = await proc.wait()
        await sup.output_drained()  # the lines written just before the exit
        if self.current:
            self.finish_turn(self.current, m.INTERRUPTED, error="engine exited (code %s) during the turn" % code)
        return code

    def engine_busy(self):
        """The engine waits on sac itself (a `sac` tool call): not silence, for stall_timeout_s."""
        self.last_output_at = self.clock()

    def _engine_exited(self, _):
        self.supervisor.wake()
        settle(self._result, ENGINE_EXITED)

    async def _start(self, turn):
        """Journal the turn's start, on disk before the engine gets it; False if it was cancelled meanwhile."""
        tid = turn["id"]
        self.current, self._result = tid, asyncio.get_event_loop().create_future()
        self.supervisor.state = states.WORKING
        self._result_event = None
        self._turn_used_tools = self._turn_spoke = False
        self.refusals.new_turn()
        self.activity.turn_started()
        self.journal.start(tid)
        origin = {"from": turn["from"], "depth": turn.get("depth")} if turn.get("from") else {}
        self.transcript.append(tid, m.sac_event(m.TURN_STARTED, text=turn["text"], **origin))
        await self.commit.durable()  # `started` is on disk before the turn can act: no double run after a crash
        return (self.journal.turns.get(tid) or {}).get("status") == m.RUNNING

    async def _run_turn(self, turn, proc):
        tid = turn["id"]
        if not await self._start(turn):
            return  # cancelled while its start was being written
        started = self.last_output_at = self.clock()  # silence is measured from the turn's start
        try:
            proc.write(engine.user_line(turn["text"]))
            await proc.drain()
            event = await self._await_result(proc.exited, started)
        except (BrokenPipeError, ConnectionResetError, EngineExited):
            return  # serve() marks the turn interrupted once the exit code is known
        except asyncio.TimeoutError as exc:
            self.finish_turn(tid, m.FAILED, error=str(exc))
            await self.supervisor.restart(str(exc))
            return
        status, reply, error = engine.result_outcome(event)
        error = egress.failure_hint(self.supervisor.isolation.get("network"), error)
        if status == m.FAILED and (await self._limit_met(tid, event, error) or
                                   await self._retry_on_fresh_engine(tid, event, error)):
            return
        timings = {"queued_s": round(started - (turn.get("accepted_at") or started), 3),
                   "run_s": round(self.clock() - started, 3), "engine_ms": event.get("duration_ms")}
        self.finish_turn(tid, status, reply=reply, session_id=event.get("session_id"), usage=event.get("usage"),
                         timings=timings, error=error, notice=self.supervisor.session.take_notice())
        if status == m.COMPLETED:
            self.supervisor.tracker.record_success()
            await self.quota.turn_completed(event)
        else:
            self.supervisor.last_error = error

    def _put_back(self, tid, reason):
        """The running turn goes back in line (it did nothing yet): it runs again, first."""
        self.journal.requeue(tid, reason)
        self.current, self.supervisor.state = None, states.IDLE

    async def _limit_met(self, tid, event, error):
        """Rate limit, quota or overload with several accounts: the turn waits for the next account; True if so."""
        kind = self.quota.failure_kind(event, error)
        if kind is None:
            return False
        if self._turn_used_tools:
            self.finish_turn(tid, m.FAILED, error=error + " (not retried: the turn had already used tools)")
        else:
            self._put_back(tid, error)
        await self.quota.limit_met(kind, error)
        return True

    async def _retry_on_fresh_engine(self, tid, event, error):
        """A turn that failed inside Claude Code before it acted runs once more, on a new engine; True if so."""
        turn = self.journal.turns[tid]
        if turn.get("attempts", 1) > 1 or not engine.failed_before_acting(event, self._turn_spoke):
            return False
        # The engine ends first, so the reason carries the last line it wrote to stderr (a pipe of its
        # own, which can come after the result line on stdout).
        await self.supervisor.restart("turn %s failed inside the engine" % tid)
        await self.supervisor.output_drained()
        reason = "%s before the turn did anything%s; retrying it once on a fresh engine" % (
            error, self.supervisor.stderr_hint())
        self._put_back(tid, reason)
        self.transcript.append(tid, m.sac_event(m.TURN_RETRY, attempt=turn.get("attempts", 1), reason=reason))
        return True

    async def _await_result(self, exited, started):
        health = self.spec.health
        stall = health.stall_timeout_s + (0 if self.engine_spoke else ENGINE_START_GRACE_S)  # start-up is not silence
        limit = health.turn_timeout_s
        while True:
            now = self.clock()
            # A tool that runs (Claude Code's hooks said so) is not a stall, however quiet; a hook's report
            # is a sign of life like a line of output.
            quiet = 0 if self.activity.busy() else now - max(self.last_output_at, self.activity.last_at or 0)
            budget = min(limit - (now - started), stall - quiet)
            if budget <= 0:
                if now - started >= limit:
                    raise asyncio.TimeoutError("timeout: no result within turn_timeout_s=%gs" % limit)
                raise asyncio.TimeoutError("stalled: no engine output for stall_timeout_s=%gs" % stall)
            if self._result_event is not None:  # came while the waiter woke to look at the limits
                return self._result_event
            if exited.done():
                raise EngineExited()
            loop = asyncio.get_event_loop()
            timer = loop.call_later(budget, settle, self._result, None)  # None: look at the limits again
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
        """Record turn `tid`'s one terminal state (a no-op if it has one) and wake its waiters."""
        if tid == self.current:
            fields["tools_refused"] = self.refusals.turn_count
        if self.journal.finish(tid, status, **fields):
            turn = self.journal.turns[tid]
            ended = m.sac_event(m.TURN_ENDED, status=status, error=fields.get("error"))
            if fields.get("notice"):
                ended["notice"] = fields["notice"]
            self.transcript.append(tid, ended)
            for fut in self._waiters.pop(tid, []):
                settle(fut, turn)
        if tid == self.current:
            self.current = None
            if self.supervisor.state == states.WORKING:
                self.supervisor.state = states.IDLE

    # -- the engine's output ----------------------------------------------------------------

    def on_stdout(self, line):
        """One line of the engine's stdout: into the transcript, and what it tells of the turn."""
        self.last_output_at = self.clock()
        self.engine_spoke = True
        event = engine.parse_event(line)
        if event is None:
            return
        self.activity.engine_event(event)
        for refusal in self.refusals.feed(event):  # before the event that shows it: the result, a tool error
            self.transcript.append(self.current, refusal)
        # The line as the engine wrote it goes into the transcript: it is JSON already (noise is not).
        self.transcript.append(self.current, event, raw=None if event.get("subtype") == m.ENGINE_NOISE else line)
        kind = event.get("type")
        if self.current is not None and kind in ("assistant", "user"):
            self._turn_spoke = True
        self._watch_provider(event)
        if kind == "assistant" and any(isinstance(b, dict) and b.get("type") == "tool_use"
                                       for b in (event.get("message") or {}).get("content") or []):
            self._turn_used_tools = True
        if event.get("session_id"):
            self.supervisor.session.save(event["session_id"])
        if kind == "result":
            self._result_event = event
            settle(self._result, event)

    def _watch_provider(self, event):
        kind = event.get("type")
        if kind == "assistant" or (kind == "result" and not event.get("is_error")):
            self.provider.answered()
        elif kind == "system" and event.get("subtype") == "api_retry" and self.current is not None:
            verdict = self.provider.retrying(event, self.clock())
            if verdict and self._giving_up is None:
                self._giving_up = asyncio.ensure_future(self._give_up_on_provider(self.current, verdict))

    async def _give_up_on_provider(self, tid, verdict):
        """End turn `tid` at once with why its provider cannot be reached, and restart the engine."""
        try:
            why = await diagnose(self.spec.claude.provider.base_url)
            reason = "%s; Claude Code: %s" % (why, verdict) if why else verdict
            self.provider.gave_up(reason, self.clock())
            if self.current == tid:
                error = "provider unreachable: %s" % reason
                self.finish_turn(tid, m.FAILED, error=error)
                self.supervisor.last_error = error
                await self.supervisor.restart(error)
        finally:
            self._giving_up = None

    # -- what the daemon asks -------------------------------------------------------------------

    def submit(self, text, key=None, source="user", origin=None):
        # The serve loop is woken first, so on an idle engine the turn's start joins the
        # commit of its acceptance: one write and one fsync for both.
        self.supervisor.wake()
        turn, created = self.journal.accept(self.name, text, key, source, origin)
        if created:
            self.transcript.append(turn["id"], m.sac_event(m.TURN_ACCEPTED, source=source, **(origin or {})))
        return turn, created

    def get_turn(self, tid):
        return self.journal.get(tid, self.name)

    async def wait_turn(self, tid, timeout):
        """The turn once it ends, or as it stands when `timeout` passes."""
        turn = self.get_turn(tid)
        if turn["status"] not in m.TERMINAL:
            loop = asyncio.get_event_loop()
            fut = loop.create_future()
            waiters = self._waiters.setdefault(tid, [])
            waiters.append(fut)
            timer = loop.call_later(timeout, settle, fut, None)
            try:
                await fut
            finally:
                timer.cancel()
                if fut in waiters:
                    waiters.remove(fut)
        return self.get_turn(tid)

    async def cancel_turn(self, tid):
        turn = self.get_turn(tid)
        if turn["status"] == m.PENDING:
            self.finish_turn(tid, m.CANCELLED, error="cancelled before it started")
        elif turn["status"] == m.RUNNING:
            self.finish_turn(tid, m.CANCELLED, error="cancelled while running; the engine was restarted")
            await self.supervisor.restart("turn %s cancelled" % tid)
        return self.get_turn(tid)
