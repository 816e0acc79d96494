"""The shim's turn loop (turn_runner.py) against a scripted engine process and an injected clock.

The engine is a stand-in with EngineProcess's surface (write, drain, exited, wait); its
replies are stream-json lines handed to the runner as the real pipe would. The
supervisor is the real one, but ending the engine ends the stand-in instead of
signalling a process group. Nothing sleeps: a timeout is the clock moving on.
"""

import asyncio
import json

import pytest

from sac_node import journal as journal_mod
from sac_node.accounts import AccountPool
from sac_node.commit import GroupCommit
from sac_node.node_spec import NodeSpec
from sac_node.protocol import messages as m
from sac_node.provider_watch import ProviderWatch
from sac_node.quota import QuotaGuard
from sac_node.refusals import RefusalWatch
from sac_node.state_dir import StateDir
from sac_node.supervision import states
from sac_node.supervision.supervisor import Supervisor
from sac_node.transcript import Transcript
from sac_node.turn_runner import TurnRunner


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class ScriptedEngine:
    """An engine process whose answer to each turn is `reply(text) -> [event dicts]` (None: say nothing)."""

    pid = 4242

    def __init__(self, runner, reply, clock, jump=0.0):
        loop = asyncio.get_event_loop()
        self.runner, self.reply, self.clock, self.jump = runner, reply, clock, jump
        self.exited, self.output_closed = loop.create_future(), loop.create_future()
        self.returncode = None
        self.lines = []

    def write(self, data):
        text = json.loads(data)["message"]["content"]
        self.lines.append(text)
        self.clock.now += self.jump  # time passes before the engine answers (if it does)
        for event in self.reply(text) or []:
            line = (json.dumps(event) + "\n").encode()
            asyncio.get_event_loop().call_soon(self.runner.on_stdout, line)

    async def drain(self):
        pass

    def exit(self, code):
        if not self.exited.done():
            self.returncode = code
            self.exited.set_result(code)
            self.output_closed.set_result(None)

    async def wait(self):
        return await asyncio.shield(self.exited)


class StandInSupervisor(Supervisor):
    """The real supervisor, but its engine is the stand-in: terminate() ends it with -15."""

    restarts_asked = ()

    async def terminate(self):
        self.proc.exit(-15)

    async def restart(self, reason):
        self.restarts_asked += (reason,)
        await super().restart(reason)


def result(text, **over):
    event = {"type": "result", "subtype": "success", "is_error": False, "result": text, "session_id": "sess-1",
             "usage": {"input_tokens": 3, "output_tokens": 5}, "duration_ms": 12}
    event.update(over)
    return event


OPEN = []  # the runners of a test, whose files are closed after it


@pytest.fixture(autouse=True)
def close_files():
    yield
    while OPEN:
        runner = OPEN.pop()
        runner.transcript.close()
        runner.journal.close()


def make_runner(tmp_path, wire=None):
    clock = Clock()
    state = StateDir(str(tmp_path / "state")).create()
    agent = state.agent("a1")
    agent_path = tmp_path / "state" / "agents" / "a1"
    agent_path.mkdir(parents=True)
    spec = NodeSpec.from_wire(dict({"name": "a1", "engine": {"kind": "command", "command": ["x"]}}, **(wire or {})))
    commit = GroupCommit("a1")
    journal = commit.journal = journal_mod.Journal(agent.journal, clock, on_write=commit.written)
    transcript = Transcript(agent.transcript, clock)
    pool = AccountPool(spec.claude.accounts, spec.claude.quota)
    runner = None

    def record(subtype, **fields):
        transcript.append(runner.current, m.sac_event(subtype, **fields))

    sup = StandInSupervisor(spec, agent, state, pool, record, clock)
    runner = TurnRunner(spec, journal, transcript, commit, sup, QuotaGuard(pool, clock, record, sup), ProviderWatch(),
                        RefusalWatch(), clock)
    OPEN.append(runner)
    return runner, clock


def sac_events(runner):
    return [r["event"]["subtype"] for r in runner.transcript.records_since(0) if r["event"].get("type") == m.SAC]


async def serve_until(runner, engine, done):
    """Serve turns on `engine` until `done()` holds, then end the engine; the serve loop's exit code."""
    runner.supervisor.proc = engine
    task = asyncio.ensure_future(runner.serve(engine))
    for _ in range(200):
        if done():
            break
        await asyncio.sleep(0)
    engine.exit(0)
    return await asyncio.wait_for(task, 5)


def test_a_turn_runs_and_ends_completed_with_its_reply(tmp_path):
    async def main():
        runner, clock = make_runner(tmp_path)
        engine = ScriptedEngine(runner, lambda text: [{"type": "assistant", "message": {"content": [
            {"type": "text", "text": "hi"}]}}, result("echo: " + text)], clock)
        turn, created = runner.submit("hello", key="k1")
        waiter = asyncio.ensure_future(runner.wait_turn(turn["id"], 30))
        await serve_until(runner, engine, waiter.done)
        return runner, engine, turn, created, await waiter

    runner, engine, turn, created, waited = asyncio.run(main())
    assert created and engine.lines == ["hello"]
    assert waited["status"] == m.COMPLETED and waited["reply"] == "echo: hello"
    assert waited["session_id"] == "sess-1" and waited["usage"] == {"input_tokens": 3, "output_tokens": 5}
    assert waited["timings"]["engine_ms"] == 12
    assert sac_events(runner) == [m.TURN_ACCEPTED, m.TURN_STARTED, m.TURN_ENDED]
    assert runner.supervisor.session.id == "sess-1" and runner.current is None
    assert runner.supervisor.state == states.IDLE
    assert runner.submit("again", key="k1") == (runner.get_turn(turn["id"]), False)  # the key names the turn


def test_turns_run_one_at_a_time_in_the_order_they_were_accepted(tmp_path):
    async def main():
        runner, clock = make_runner(tmp_path)
        engine = ScriptedEngine(runner, lambda text: [result(text.upper())], clock)
        ids = [runner.submit(text)[0]["id"] for text in ("one", "two", "three")]
        await serve_until(runner, engine, lambda: not runner.journal.pending() and runner.current is None)
        return engine, [runner.get_turn(tid)["reply"] for tid in ids]

    engine, replies = asyncio.run(main())
    assert engine.lines == ["one", "two", "three"] and replies == ["ONE", "TWO", "THREE"]


def test_a_turn_without_a_result_within_turn_timeout_fails_and_the_engine_restarts(tmp_path):
    async def main():
        runner, clock = make_runner(tmp_path, {"health": {"turn_timeout_s": 60, "stall_timeout_s": 600}})
        engine = ScriptedEngine(runner, lambda text: None, clock, jump=61)
        tid = runner.submit("slow")[0]["id"]
        await serve_until(runner, engine, lambda: runner.get_turn(tid)["status"] != m.PENDING and not runner.current)
        return runner, runner.get_turn(tid)

    runner, turn = asyncio.run(main())
    assert turn["status"] == m.FAILED and turn["error"] == "timeout: no result within turn_timeout_s=60s"
    assert runner.supervisor.restarts_asked == ("timeout: no result within turn_timeout_s=60s",)


def test_a_silent_new_engine_gets_its_start_up_grace_before_it_counts_as_stalled(tmp_path):
    async def main():
        runner, clock = make_runner(tmp_path, {"health": {"stall_timeout_s": 5}})
        engine = ScriptedEngine(runner, lambda text: None, clock, jump=5 + 10 + 1)
        tid = runner.submit("quiet")[0]["id"]
        await serve_until(runner, engine, lambda: runner.get_turn(tid)["status"] == m.FAILED)
        return runner.get_turn(tid)

    turn = asyncio.run(main())
    assert turn["error"] == "stalled: no engine output for stall_timeout_s=15s"


def test_a_turn_that_failed_inside_the_engine_before_acting_is_retried_once_on_a_fresh_engine(tmp_path):
    async def main():
        runner, clock = make_runner(tmp_path)
        failure = result(None, subtype="error_during_execution", is_error=True)
        engine = ScriptedEngine(runner, lambda text: [failure], clock)
        tid = runner.submit("try")[0]["id"]
        code = await serve_until(runner, engine, lambda: engine.exited.done())
        return runner, runner.get_turn(tid), code

    runner, turn, code = asyncio.run(main())
    assert code == -15 and turn["status"] == m.PENDING and turn["requeued"] == 1
    assert "retrying it once on a fresh engine" in turn["last_requeue_reason"]
    assert sac_events(runner) == [m.TURN_ACCEPTED, m.TURN_STARTED, m.TURN_RETRY]
    assert runner.supervisor.restarts_asked == ("turn %s failed inside the engine" % turn["id"],)


def test_the_engine_exiting_mid_turn_interrupts_it_with_the_exit_code(tmp_path):
    async def main():
        runner, clock = make_runner(tmp_path)
        engine = ScriptedEngine(runner, lambda text: None, clock)
        engine.write = lambda data, write=engine.write: (write(data), engine.exit(3))
        tid = runner.submit("bye")[0]["id"]
        code = await serve_until(runner, engine, lambda: engine.exited.done())
        return runner.get_turn(tid), code

    turn, code = asyncio.run(main())
    assert code == 3 and turn["status"] == m.INTERRUPTED
    assert turn["error"] == "engine exited (code 3) during the turn"


def test_cancelling_a_pending_turn_ends_it_and_wakes_its_waiter(tmp_path):
    async def main():
        runner, _ = make_runner(tmp_path)
        tid = runner.submit("never")[0]["id"]
        waiter = asyncio.ensure_future(runner.wait_turn(tid, 30))
        await asyncio.sleep(0)
        cancelled = await runner.cancel_turn(tid)
        return cancelled, await asyncio.wait_for(waiter, 1)

    cancelled, waited = asyncio.run(main())
    assert cancelled["status"] == waited["status"] == m.CANCELLED
    assert waited["error"] == "cancelled before it started"


def test_a_rate_limited_account_puts_the_turn_back_and_moves_to_the_next_account(tmp_path):
    accounts = [{"name": "first", "api_key_env": "KA"}, {"name": "second", "api_key_env": "KB"}]

    async def main():
        runner, clock = make_runner(tmp_path, {"claude": {"accounts": accounts}})
        limited = result("rate limit reached", is_error=True, subtype="error", api_error_status=429)
        engine = ScriptedEngine(runner, lambda text: [limited], clock)
        tid = runner.submit("busy")[0]["id"]
        await serve_until(runner, engine, lambda: engine.exited.done())
        return runner, runner.get_turn(tid)

    runner, turn = asyncio.run(main())
    assert turn["status"] == m.PENDING and turn["requeued"] == 1
    assert sac_events(runner)[-1] == m.ACCOUNT_LIMITED
    assert runner.supervisor.restarts_asked == ("account first limited",)
    assert runner.supervisor.last_error.startswith("account first: provider returned HTTP 429")
