"""Lifecycle: hook commands run in order, stop at the first failure, and each ends in one `hook` event.

Unsandboxed here (runtime none) to be quick; tests/integration/test_lifecycle_hooks.py runs them in bwrap.
"""

import asyncio
import time

from sac_node.lifecycle import Lifecycle
from sac_node.node_spec import NodeSpec
from sac_node.state_dir import StateDir


def lifecycle(tmp_path, hooks):
    spec = NodeSpec.from_wire({"name": "a1", "isolation": {"runtime": "none"}, "hooks": hooks})
    state = StateDir(str(tmp_path / "state")).create()
    events = []
    return Lifecycle(spec, state.agent("a1"), state, lambda subtype, **f: events.append(dict(f, subtype=subtype))), \
        events, tmp_path / "state" / "agents" / "a1" / "work"


def test_commands_run_in_order_in_the_workdir_and_stop_at_the_first_failure(tmp_path):
    life, events, work = lifecycle(tmp_path, {"pre_start": [
        "echo $SAC_AGENT $SAC_EVENT $SAC_WORKDIR > first.txt", "echo out; echo 'the reason' >&2; exit 4",
        "touch never.txt"]})
    reason = asyncio.run(life.run("pre_start"))
    assert reason == "hooks.pre_start[1] failed (exit 4): the reason"
    assert (work / "first.txt").read_text() == "a1 pre_start %s\n" % work
    assert not (work / "never.txt").exists()
    assert [(e["subtype"], e["index"], e["code"]) for e in events] == [("hook", 0, 0), ("hook", 1, 4)]
    assert events[1]["stdout"] == "out\n" and events[1]["stderr"] == "the reason\n"
    assert events[1]["error"] == reason and "error" not in events[0]


def test_a_command_past_its_timeout_is_killed_and_counts_as_failed(tmp_path):
    life, events, _ = lifecycle(tmp_path, {"post_stop": [{"run": "sleep 30", "timeout_s": 0.5}]})
    started = time.monotonic()
    reason = asyncio.run(life.run("post_stop"))
    assert time.monotonic() - started < 10
    assert reason == "hooks.post_stop[0] timed out after 0.5s: sleep 30"
    assert events[0]["code"] is None


def test_an_event_without_commands_does_nothing(tmp_path):
    life, events, _ = lifecycle(tmp_path, {})
    assert asyncio.run(life.run("on_failure")) is None and events == []
