"""A turn as an A2A task, in the 0.3 and 1.0 spellings; incoming messages checked field by field."""

import pytest

from sac_fleet.frontends.gateway.a2a_wire import (V03, V10, card, message_key, parse_send, render, status_update,
                                                  task_of)
from sac_fleet.frontends.gateway.schema import (BadRequest, ContentTypeNotSupported, PushNotSupported,
                                                UnsupportedOperation)

DONE = {"id": "a1.0123456789abcdef", "status": "completed", "text": "hi", "reply": "echo: hi",
        "accepted_at": 1.0, "started_at": 2.0, "ended_at": 3.5, "session_id": "s", "usage": {"output_tokens": 2},
        "key": message_key("ctx-1", "m-1")}


@pytest.mark.parametrize("status, state, v1_state", [
    ("pending", "submitted", "TASK_STATE_SUBMITTED"), ("running", "working", "TASK_STATE_WORKING"),
    ("completed", "completed", "TASK_STATE_COMPLETED"), ("failed", "failed", "TASK_STATE_FAILED"),
    ("interrupted", "failed", "TASK_STATE_FAILED"), ("cancelled", "canceled", "TASK_STATE_CANCELED"),
])
def test_turn_states_map_onto_task_states(status, state, v1_state):
    task = task_of(dict(DONE, status=status), "a1")
    assert task["status"]["state"] == state
    assert render(task, V10)["status"]["state"] == v1_state


def test_a_completed_turn_is_a_task_with_the_reply_as_artifact_and_message():
    task = task_of(DONE, "a1")
    assert task["kind"] == "task" and task["id"] == DONE["id"] and task["contextId"] == "ctx-1"
    assert task["artifacts"] == [{"artifactId": DONE["id"] + ".reply", "name": "reply",
                                  "parts": [{"kind": "text", "text": "echo: hi"}]}]
    assert [(m["role"], m["parts"][0]["text"]) for m in task["history"]] == [("user", "hi"), ("agent", "echo: hi")]
    assert task["history"][0]["messageId"] == "m-1"  # the client's own id comes back
    assert task["status"]["timestamp"] == "1970-01-01T00:00:03.500Z"
    assert task["metadata"]["sac"]["usage"] == {"output_tokens": 2}


def test_a_failed_turn_says_why_in_its_status_message():
    task = task_of(dict(DONE, status="failed", reply=None, error="provider returned 529"), "a1")
    assert task["artifacts"] == [] and task["status"]["message"]["parts"][0]["text"] == "provider returned 529"


def test_a_turn_sent_outside_a2a_gets_the_agent_as_context():
    task = task_of(dict(DONE, key=None), "a1")
    assert task["contextId"] == "a1" and task["history"][0]["messageId"] == DONE["id"] + ".input"


def test_history_length_keeps_the_newest_messages():
    assert [m["role"] for m in task_of(DONE, "a1", history_length=1)["history"]] == ["agent"]
    assert task_of(DONE, "a1", history_length=0)["history"] == []


def test_v1_spelling_drops_kind_and_wraps_results():
    v1 = render(task_of(DONE, "a1"), V10, wrap=True)
    task = v1["task"]
    assert "kind" not in task and task["history"][0]["role"] == "ROLE_USER"
    assert task["artifacts"][0]["parts"] == [{"text": "echo: hi"}]
    assert task["metadata"]["sac"]["status"] == "completed"  # metadata is passed through untouched
    update = render(status_update(DONE, "ctx-1", final=True), V10, wrap=True)
    assert list(update) == ["statusUpdate"] and "final" not in update["statusUpdate"]
    assert render(status_update(DONE, "ctx-1", final=True), V03)["final"] is True


def msg(**fields):
    base = {"kind": "message", "role": "user", "messageId": "m-9", "parts": [{"kind": "text", "text": "do it"}]}
    return {"message": dict(base, **fields)}


def test_parse_send_joins_text_parts_and_reads_the_configuration():
    got = parse_send(dict(msg(parts=[{"kind": "text", "text": "a"}, {"text": "b"}], contextId="c"),
                          configuration={"blocking": False, "historyLength": 0}), V03, "a1")
    assert (got.text, got.message_id, got.context_id, got.blocking, got.history_length) == ("a\nb", "m-9", "c",
                                                                                            False, None)
    v1 = parse_send({"message": {"role": "ROLE_USER", "messageId": "x", "parts": [{"text": "t"}]},
                     "configuration": {"returnImmediately": True, "historyLength": 0}}, V10, "a1")
    assert (v1.context_id, v1.blocking, v1.history_length) == ("a1", False, 0)


@pytest.mark.parametrize("params, error, says", [
    ({}, BadRequest, "params.message is required"),
    (msg(role="agent"), BadRequest, "role"),
    (msg(messageId=""), BadRequest, "messageId"),
    (msg(parts=[]), BadRequest, "parts"),
    (msg(parts=[{"kind": "text", "text": "  "}]), BadRequest, "no text"),
    (msg(parts=[{"kind": "file", "file": {"uri": "file:///x"}}]), ContentTypeNotSupported, "file part"),
    (msg(taskId="a1.0123456789abcdef"), UnsupportedOperation, "omit taskId"),
    (dict(msg(), configuration={"pushNotificationConfig": {"url": "http://x"}}), PushNotSupported, "push"),
    (dict(msg(), configuration={"historyLength": -1}), BadRequest, "historyLength"),
])
def test_parse_send_refuses_what_it_cannot_run(params, error, says):
    with pytest.raises(error, match=says):
        parse_send(params, V03, "a1")


def test_cards_offer_both_protocol_versions_and_labels_as_skills():
    status = {"name": "a1", "host": "h1", "labels": {"team": "docs"}}
    v1 = card(status, "http://gw/a2a/a1", V10)
    assert [(i["protocolVersion"], i["url"]) for i in v1["supportedInterfaces"]] == [
        ("1.0", "http://gw/a2a/a1"), ("0.3", "http://gw/a2a/a1")]
    assert [s["id"] for s in v1["skills"]] == ["turn", "label-team"] and "team=docs" in v1["skills"][0]["tags"]
    assert "h1" in v1["description"]
    old = card(status, "http://gw/a2a/a1", V03)
    assert old["url"] == "http://gw/a2a/a1" and old["securitySchemes"]["bearer"]["type"] == "http"
