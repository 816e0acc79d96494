"""protocol/messages.py: the words head and node share (turn ids, names, states, events)."""

import pytest

from sac_node import journal
from sac_node.protocol import messages as m


def test_a_new_turn_id_names_its_agent_and_has_the_documented_form():
    tid = journal.new_turn_id("rev-2")
    assert m.TURN_ID_RE.match(tid) and m.agent_of_turn(tid) == "rev-2"
    assert m.new_turn_id("a", bytes(range(8))) == "a.0001020304050607"


@pytest.mark.parametrize("turn_id", ["nodot", None, 42])
def test_an_id_without_an_agent_names_none(turn_id):
    assert m.agent_of_turn(turn_id) is None


@pytest.mark.parametrize("name, ok", [("a", True), ("rev-2", True), ("9x", True), ("-a", False), ("A", False),
                                      ("a_b", False), ("a" * 63, True), ("a" * 64, False), ("", False)])
def test_the_agent_name_pattern(name, ok):
    assert bool(m.NAME_RE.match(name)) is ok


def test_states_and_events():
    assert m.TURN_STATES == ("pending", "running", "completed", "failed", "interrupted", "cancelled")
    event = m.sac_event(m.TURN_ENDED, status=m.FAILED, error="x")
    assert event == {"type": "sac", "subtype": "turn_ended", "status": "failed", "error": "x"}
    assert m.is_sac_event(event, m.TURN_ENDED) and not m.is_sac_event(event, m.TURN_STARTED)
    assert not m.is_sac_event({"type": "assistant", "subtype": "turn_ended"}, m.TURN_ENDED)
