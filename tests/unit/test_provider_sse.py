"""SSE encoding of provider replies: event order, deltas that reassemble, usage."""

import json

from hypothesis import given
from hypothesis import strategies as st

from sac_fleet.provider.responder import Reply
from sac_fleet.provider.sse import json_chunks, message_body, stream_events, text_chunks


def parse_sse(chunks):
    """[(event name, data dict)] from the bytes the server writes."""
    out = []
    for frame in b"".join(chunks).decode().split("\n\n"):
        if not frame:
            continue
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


TOOL = {"type": "tool_use", "id": "toolu_sac0s0n000001", "name": "Bash", "input": {"command": "touch a b", "description": "x"}}


def test_text_then_tool_use_stream_in_the_documented_order():
    reply = Reply("rules[0]", [{"type": "text", "text": "I will run it"}, TOOL], "tool_use", input_tokens=7)
    events = parse_sse(stream_events(reply, "claude-sonnet-4-5", 3))
    names = [name for name, _ in events]
    assert names[:4] == ["message_start", "ping", "content_block_start", "content_block_delta"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert (start["id"], start["model"], start["usage"]["input_tokens"], start["content"]) == ("msg_sac00000003", "claude-sonnet-4-5", 7, [])
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta" and d["index"] == 0)
    assert text == "I will run it"
    tool_start = [d for n, d in events if n == "content_block_start" and d["index"] == 1][0]["content_block"]
    assert (tool_start["type"], tool_start["name"], tool_start["input"]) == ("tool_use", "Bash", {})
    pieces = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["index"] == 1]
    assert len(pieces) > 1 and json.loads("".join(pieces)) == TOOL["input"]
    delta = [d for n, d in events if n == "message_delta"][0]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] == reply.output_tokens == 4 + 4  # words of the text + words of the tool input's values


def test_non_streaming_body_carries_the_whole_message():
    reply = Reply("echo", [{"type": "text", "text": "echo: hi"}], input_tokens=2)
    out = message_body(reply, "m", 1)
    assert out["content"] == [{"type": "text", "text": "echo: hi"}]
    assert (out["stop_reason"], out["usage"]["input_tokens"], out["usage"]["output_tokens"]) == ("end_turn", 2, 2)


@given(st.text())
def test_text_chunks_reassemble_exactly(text):
    assert "".join(text_chunks(text)) == text


@given(st.dictionaries(st.text(), st.one_of(st.text(), st.integers(), st.booleans())))
def test_json_chunks_reassemble_to_the_input(value):
    assert json.loads("".join(json_chunks(value))) == value
