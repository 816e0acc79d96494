"""The node daemon's handlers (handlers/agents.py, turns.py) on a real state dir, with no shim running.

What the head sees of a stopped agent comes from its dir (spec.json, journal, session);
a request for an agent that is not there, or a bad name, is a clear error; fencing
stops an older copy of a singleton for good. Every agent here is `desired: stopped`,
so no handler starts a shim.
"""

import asyncio
import json
import os

import pytest

from sac_node.daemon import Node
from sac_node.handlers import HANDLERS, table, turns
from sac_node.journal import Journal
from sac_node.protocol import messages as m
from sac_node.protocol.errors import AgentNotFound, AgentNotRunning, SpecError, TurnNotFound
from sac_node.state_dir import StateDir

SPEC = {"name": "rev", "labels": {"team": "a"}, "engine": {"kind": "command", "command": ["x"]},
        "journal": {"keep_turns": 10}, "generation": 2, "fleet": "f1"}


class Clock:
    def __call__(self):
        return 5000.0


def stopped_agent(tmp_path, spec=SPEC, turns=()):
    """A state dir holding one stopped agent with `turns` [(text, status, reply)] in its journal."""
    state = StateDir(str(tmp_path / "state")).create()
    agent = state.agent(spec["name"])
    os.makedirs(agent.path)
    with open(agent.spec, "w") as fh:
        json.dump(spec, fh)
    agent.write_desired("stopped")
    journal, ids = Journal(agent.journal, Clock()), []
    for text, status, reply in turns:
        turn, _ = journal.accept(spec["name"], text)
        ids.append(turn["id"])
        if status != m.PENDING:
            journal.start(turn["id"])
            journal.finish(turn["id"], status, reply=reply)
    journal.close()
    return Node(state, clock=Clock()), ids


def call(node, method, params):
    return asyncio.run(table(node)[method](None, params))


def test_every_method_of_the_protocol_has_a_handler():
    methods = {v for k, v in vars(m).items() if k.split("_")[0] in ("HOST", "AGENTS", "TURNS", "EVENTS", "COMMS")
               and isinstance(v, str) and "." in v}
    assert set(HANDLERS) == methods


def test_a_stopped_agent_status_is_read_from_its_dir(tmp_path):
    node, _ = stopped_agent(tmp_path, turns=[("a", m.COMPLETED, "A"), ("b", m.FAILED, None), ("c", m.PENDING, None)])
    status = call(node, m.AGENTS_STATUS, {"name": "rev"})
    assert (status["state"], status["desired"], status["pid"], status["last_error"]) == ("stopped", "stopped", None,
                                                                                        None)
    assert status["turns"] == {"completed": 1, "pending": 1, "failed": 1, "cancelled": 0}
    assert (status["labels"], status["generation"], status["fleet"]) == ({"team": "a"}, 2, "f1")
    assert status["isolation"] == {"runtime": "auto"}
    assert status["workdir"] == os.path.join(node.state.agent("rev").path, "work")
    assert [s["name"] for s in call(node, m.AGENTS_LIST, {})] == ["rev"]


def test_turns_of_a_stopped_agent_are_read_from_its_journal_by_id_alone(tmp_path):
    node, ids = stopped_agent(tmp_path, turns=[("a", m.COMPLETED, "A"), ("b", m.FAILED, None)])
    turn = call(node, m.TURNS_GET, {"id": ids[0]})  # no `agent`: the id names it
    assert (turn["text"], turn["status"], turn["reply"]) == ("a", m.COMPLETED, "A")
    listed = call(node, m.TURNS_LIST, {"agent": "rev", "status": m.FAILED})
    assert [t["id"] for t in listed] == [ids[1]]
    assert [t["id"] for t in call(node, m.TURNS_LIST, {"agent": "rev", "limit": 1})] == [ids[1]]
    with pytest.raises(TurnNotFound, match="turn rev.00 not found on agent rev"):
        call(node, m.TURNS_GET, {"id": "rev.00"})


@pytest.mark.parametrize("params, message", [
    ({"id": "ghost.0123456789abcdef"}, "no agent named ghost on this host"),
    ({"id": "no-dot-here"}, "no agent named None on this host"),
    ({"agent": "../etc", "id": "x"}, "no agent named '../etc' on this host"),
])
def test_a_turn_of_no_agent_here_is_agent_not_found(tmp_path, params, message):
    node, _ = stopped_agent(tmp_path)
    with pytest.raises(AgentNotFound, match=message.replace(".", r"\.")):
        call(node, m.TURNS_GET, params)


def test_starting_an_agent_with_a_bad_name_says_what_a_name_is(tmp_path):
    node, _ = stopped_agent(tmp_path)
    with pytest.raises(SpecError, match=r"metadata.name 'Bad_Name' is not a valid agent name \(lowercase"):
        call(node, m.AGENTS_START, {"spec": dict(SPEC, name="Bad_Name")})


def test_a_copy_of_an_older_generation_is_fenced_and_stays_stopped(tmp_path):
    node, _ = stopped_agent(tmp_path)
    kept = call(node, m.AGENTS_FENCE, {"name": "rev", "generation": 2, "by": "h2"})
    assert kept["fenced"] is False and not os.path.exists(os.path.join(node.state.agent("rev").path, "fenced.json"))
    fenced = call(node, m.AGENTS_FENCE, {"name": "rev", "generation": 3, "by": "h2"})
    assert fenced["fenced"] is True and fenced["desired"] == "stopped"
    with open(os.path.join(node.state.agent("rev").path, "fenced.json")) as fh:
        assert json.load(fh) == {"generation": 2, "by_generation": 3, "by": "h2"}
    assert call(node, m.AGENTS_STATUS, {"name": "rev"})["fenced"] is True


def test_only_turn_methods_of_attached_shims_take_the_relay(tmp_path):
    node, ids = stopped_agent(tmp_path, turns=[("a", m.COMPLETED, "A")])
    assert turns.relay(node, None, 1, m.TURNS_GET, {"id": ids[0]}) is False  # no shim attached: the handler answers
    assert turns.relay(node, None, 1, m.AGENTS_STATUS, {"name": "rev"}) is False
    assert turns.relay(node, None, 1, m.TURNS_GET, ["not", "a", "dict"]) is False


def test_a_shim_being_killed_is_waited_out_not_reported_as_not_answering(tmp_path):
    """Regression (CI at 9d9d1ce, test_fast_engine): a relayed call asked again right after kill -9 of
    the shim found its pid alive and its socket refusing (a dying process closes its files first),
    and failed with "its shim does not answer" instead of waiting for the respawn."""
    import socket
    import subprocess
    import sys
    import time

    node, _ = stopped_agent(tmp_path)
    agent = node.state.agent("rev")
    dying = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    with open(agent.shim_info, "w") as fh:
        json.dump({"pid": dying.pid}, fh)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(agent.socket)  # a socket file nobody listens on: connect() is refused
    stale.close()
    node.clock = time.monotonic

    async def scenario():
        asyncio.get_event_loop().call_later(0.3, dying.kill)
        began = time.monotonic()
        with pytest.raises(AgentNotRunning) as caught:
            await node.shim("rev")
        return time.monotonic() - began, caught.value

    try:
        waited, error = asyncio.run(scenario())
    finally:
        dying.kill()
        dying.wait()
    # It waited for the process to go, then said what is true of a stopped agent (no respawn: desired stopped).
    assert waited >= 0.25 and "is not running; start it" in error.message
