"""Encoding a Reply as the Messages API does: SSE events when streaming, one JSON body otherwise.

Pure functions; the server writes what they return. Text is streamed a word at a time
and tool input as `input_json_delta` pieces, so clients see real incremental deltas.
"""

import json
import re

WORD = re.compile(r"\s*\S+\s*|\s+")


def message_id(number):
    """A stable message id for the n-th reply of a provider."""
    return "msg_sac%08d" % number


def event(name, data):
    """One SSE event as bytes."""
    return ("event: %s\ndata: %s\n\n" % (name, json.dumps(data, separators=(",", ":")))).encode()


def text_chunks(text):
    """Split text into word-sized deltas whose concatenation is the text."""
    return WORD.findall(text) or [""]


def json_chunks(value, pieces=3):
    """Split the JSON of a tool input into a few partial strings, as the API streams them."""
    raw = json.dumps(value, separators=(",", ":"))
    size = max(1, -(-len(raw) // pieces))
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def usage(reply, output_tokens=None):
    """The usage object of a reply (deterministic word counts)."""
    return {
        "input_tokens": reply.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": reply.output_tokens if output_tokens is None else output_tokens,
    }


def message_body(reply, model, number):
    """The non-streaming response body."""
    return {
        "id": message_id(number),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.blocks,
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": usage(reply),
    }


def stream_events(reply, model, number):
    """The SSE events of a streamed reply, in order, as a list of bytes.

    The first item is message_start (plus a ping); every later item is one chunk the
    server may delay (the `chunk_delay` fault) before writing.
    """
    start = message_body(reply, model, number)
    start.update(content=[], stop_reason=None, usage=usage(reply, output_tokens=1))
    events = [event("message_start", {"type": "message_start", "message": start}) + event("ping", {"type": "ping"})]
    for index, block in enumerate(reply.blocks):
        events.extend(_block_events(index, block))
    events.append(
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            },
        )
        + event("message_stop", {"type": "message_stop"})
    )
    return events


def error_body(error_type, message):
    """The Messages API error body."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _block_events(index, block):
    if block["type"] == "tool_use":
        opening = dict(block, input={})
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in json_chunks(block["input"])]
    else:
        opening = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in text_chunks(block["text"])]
    out = [event("content_block_start", {"type": "content_block_start", "index": index, "content_block": opening})]
    out.extend(event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas)
    out.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
    return out
