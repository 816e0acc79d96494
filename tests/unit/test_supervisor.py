"""The supervisor's loop (supervision/supervisor.py): spawn, serve, apply the restart policy, stop.

The engine is a stand-in: `_spawn` hands out one, and the runner's `serve` returns the
exit code the test scripts. Backoff delays are 0 (the policy is a value: its delays are
tested in test_restart_policy.py), so nothing sleeps.
"""

import asyncio
import json

from sac_node.accounts import AccountPool
from sac_node.node_spec import NodeSpec
from sac_node.protocol import messages as m
from sac_node.protocol.errors import SandboxUnavailable
from sac_node.state_dir import StateDir
from sac_node.supervision import states
from sac_node.supervision.supervisor import Session, Supervisor


class StandIn:
    pid, returncode = 77, None


class ScriptedSupervisor(Supervisor):
    """Spawns stand-ins (or raises `spawn_error`); terminate() does nothing to a real process."""

    spawn_error = None

    async def _spawn(self, on_stdout):
        if self.spawn_error:
            raise self.spawn_error
        self.proc, self.engine_started_at, self.state = StandIn(), self.clock(), states.IDLE
        self.record(m.ENGINE_STARTED, pid=StandIn.pid)

    async def terminate(self):
        pass


class Runner:
    """Serves each engine by returning the next scripted exit code (after `action(sup)`, if any)."""

    def __init__(self, exits):
        self.exits = list(exits)
        self.supervisor = None

    def on_stdout(self, line):
        pass

    async def serve(self, proc):
        code, action = self.exits.pop(0)
        if action:
            await action(self.supervisor)
        return code


def supervise(tmp_path, exits, restart, spawn_error=None):
    events = []

    async def main():
        state = StateDir(str(tmp_path / "state")).create()
        spec = NodeSpec.from_wire({"name": "a1", "restart": restart})
        sup = ScriptedSupervisor(spec, state.agent("a1"), state, AccountPool(()),
                                 lambda subtype, **f: events.append((subtype, f)), lambda: 100.0)
        sup.spawn_error = spawn_error
        runner = Runner(exits)
        runner.supervisor = sup

        async def ready():
            return True

        loop = asyncio.ensure_future(sup.run(runner, ready))
        for _ in range(100):
            if loop.done() or sup.state == states.FAILED:
                break
            await asyncio.sleep(0)
        sup.stop()  # a FAILED supervisor waits for the stop; a finished one ignores it
        await asyncio.wait_for(loop, 2)
        return sup

    sup = asyncio.run(main())
    return sup, [subtype for subtype, _ in events], events


NO_WAIT = {"policy": "on-failure", "max_retries": 1, "backoff": {"initial": 0.0, "max": 0.001}}


def test_a_failing_engine_is_restarted_by_its_policy_then_given_up(tmp_path):
    sup, names, events = supervise(tmp_path, [(1, None), (1, None)], NO_WAIT)
    assert names == [m.ENGINE_STARTED, m.ENGINE_EXITED, m.ENGINE_STARTED, m.ENGINE_EXITED]
    assert [f["decision"] for subtype, f in events if subtype == m.ENGINE_EXITED] == [states.RESTARTING, states.FAILED]
    assert sup.state == states.FAILED and sup.tracker.restarts == 1
    assert sup.last_error == "engine exited with code 1; gave up after 1 restarts (max_retries 1)"


def test_an_engine_ended_on_purpose_starts_again_at_once_without_counting_a_failure(tmp_path):
    async def cancel(sup):
        await sup.restart("turn a1.00 cancelled")

    sup, names, events = supervise(tmp_path, [(-15, cancel), (1, None), (1, None)], NO_WAIT)
    assert sup.state == states.FAILED
    assert names[:3] == [m.ENGINE_STARTED, m.ENGINE_RESTART, m.ENGINE_STARTED]
    assert events[1][1] == {"reason": "turn a1.00 cancelled"}
    assert sup.tracker.restarts == 1  # only the exit that was not asked for


def test_an_engine_that_cannot_start_fails_the_agent_with_the_reason(tmp_path):
    why = SandboxUnavailable("isolation.runtime is bwrap but `bwrap` is not on PATH")
    sup, names, events = supervise(tmp_path, [], NO_WAIT, spawn_error=why)
    assert names == [m.ENGINE_FAILED] and sup.state == states.FAILED
    assert sup.last_error == events[0][1]["error"] == "isolation.runtime is bwrap but `bwrap` is not on PATH"


def test_a_stop_ends_the_loop_stopped(tmp_path):
    async def stop(sup):
        sup.stop()

    sup, names, _ = supervise(tmp_path, [(-15, stop)], NO_WAIT)
    assert sup.state == states.STOPPED and names[-1] == m.ENGINE_EXITED


def test_the_session_is_kept_on_disk_and_a_lost_one_can_be_told(tmp_path):
    path = tmp_path / "session.json"
    session = Session(str(path))
    assert session.id is None
    session.save("s1")
    assert json.loads(path.read_text()) == {"session_id": "s1"} and Session(str(path)).id == "s1"
    session.notice = "told once"
    assert (session.forget(), session.id, path.exists()) == ("s1", None, False)
    assert (session.take_notice(), session.take_notice()) == ("told once", None)
