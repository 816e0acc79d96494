"""spec.comms: selectors, both sides' consent, the depth of a chain and the rate limit (sac_node/comms.py)."""

import asyncio

import pytest

from sac_fleet.core.spec import validate_spec
from sac_fleet.core.documents import load_document
from sac_node.comms import ASK, TELL, Comms, RateLimit, check_accept, check_send, visible
from sac_node.node_spec import NodeSpec
from sac_node.outbox import Outbox
from sac_node.protocol.errors import CommsRefused, SacError


def lead(**fields):
    return Comms.from_wire(dict({"ask": ["role=worker", "critic"]}, **fields))


def test_ask_reaches_named_and_labelled_agents_and_nobody_else():
    comms = lead()
    check_send("lead", comms, ASK, "w1", {"role": "worker"}, 1)
    check_send("lead", comms, ASK, "critic", {}, 1)
    with pytest.raises(CommsRefused, match=r"lead may not ask boss: its spec's comms.ask lists role=worker, critic"):
        check_send("lead", comms, ASK, "boss", {"role": "lead"}, 1)
    with pytest.raises(CommsRefused, match="may not ask itself"):
        check_send("lead", Comms.from_wire({"ask": ["*"]}), ASK, "lead", {}, 1)


def test_tell_goes_where_tell_or_ask_may():
    comms = Comms.from_wire({"tell": ["log"], "ask": ["w1"]})
    check_send("a", comms, TELL, "log", {}, 1)
    check_send("a", comms, TELL, "w1", {}, 1)
    with pytest.raises(CommsRefused, match="may not ask log"):
        check_send("a", comms, ASK, "log", {}, 1)


def test_a_chain_deeper_than_max_depth_is_refused():
    comms = lead(max_depth=2)
    check_send("lead", comms, ASK, "critic", {}, 2)
    with pytest.raises(CommsRefused, match="3 deep is refused: agent lead's comms.max_depth is 2"):
        check_send("lead", comms, ASK, "critic", {}, 3)


def test_the_callee_accepts_only_whom_accept_from_names():
    check_accept("w1", Comms.from_wire({"accept_from": ["role=lead"]}), "lead", {"role": "lead"})
    with pytest.raises(CommsRefused, match="w1 does not accept messages from x: its spec's comms.accept_from lists "
                                           "nobody"):
        check_accept("w1", Comms(), "x", {})


def test_rate_limit_per_minute():
    now = [100.0]
    limit = RateLimit(2, lambda: now[0])
    limit.take("a")
    limit.take("a")
    with pytest.raises(CommsRefused, match="sent 2 messages in the last minute"):
        limit.take("a")
    now[0] += 60.5
    limit.take("a")


def test_visible_lists_only_reachable_agents():
    agents = [{"name": "w1", "labels": {"role": "worker"}}, {"name": "boss", "labels": {}}]
    assert [a["name"] for a in visible(lead(), agents)] == ["w1"]


def test_no_comms_means_no_server_and_nobody():
    spec = NodeSpec.from_wire({"name": "a"})
    assert spec.comms == Comms() and not spec.comms.talks
    assert NodeSpec.from_wire({"name": "a", "comms": {"tell": ["b"]}}).comms.talks


def spec_doc(comms):
    return "apiVersion: sac/v1\nkind: Agent\nmetadata: {name: a}\nspec:\n  comms: %s\n" % comms


def test_spec_comms_round_trips_and_bad_selectors_name_the_field(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(spec_doc("{ask: [role=worker], accept_from: ['*']}"))
    node = validate_spec(load_document(path)).to_node()
    assert node["comms"]["ask"] == ["role=worker"] and node["comms"]["max_depth"] == 3
    path.write_text(spec_doc("{ask: ['two words']}"))
    with pytest.raises(SacError, match=r"spec.comms.ask\[0\]: 'two words' is not an agent selector"):
        validate_spec(load_document(path))
    path.write_text("apiVersion: sac/v1\nkind: Agent\nmetadata: {name: a}\n")
    assert "comms" not in validate_spec(load_document(path)).to_node()


def message(key, **fields):
    return dict({"from": "lead", "to": "w1", "kind": TELL, "text": "note", "key": key, "depth": 1}, **fields)


def test_the_outbox_keeps_queued_messages_across_a_restart_and_forgets_done_ones(tmp_path):
    box = Outbox(str(tmp_path))
    box.put(message("msg-1"))
    box.put(message("msg-2"))
    box.put(message("msg-1"))  # the same key again: still one message
    assert list(box.queued) == ["msg-1", "msg-2"]
    assert box.finish("msg-1", turn={"id": "w1.0000000000000001", "status": "pending"})
    assert not box.finish("msg-1", turn={"id": "w1.0000000000000002"})  # told twice: the first word stands
    box.close()
    again = Outbox(str(tmp_path))  # a daemon restart
    assert list(again.queued) == ["msg-2"]


def test_an_ask_waits_for_its_outcome_and_a_drain_makes_a_head(tmp_path):
    class Peer:
        closed = False

    async def scenario():
        box = Outbox(str(tmp_path))
        assert not box.head_attached()
        head = Peer()
        assert [m["id"] for m in await box.drain(head, 0)] == []
        assert box.head_attached()
        box.put(message("msg-3", kind=ASK))
        waiting = asyncio.ensure_future(box.outcome("msg-3", 5))
        await asyncio.sleep(0)
        box.finish("msg-3", turn={"id": "w1.0000000000000003", "status": "completed", "reply": "4"})
        assert (await waiting)["turn"]["reply"] == "4"
        head.closed = True
        assert not box.head_attached()

    asyncio.run(scenario())
