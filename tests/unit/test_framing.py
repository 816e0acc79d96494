"""msgpack-rpc framing: round trips in any chunking, and refusal of garbage."""

import msgpack
import pytest
from hypothesis import given, strategies as st

from sac_node.protocol import framing
from sac_node.protocol.errors import (AgentNotFound, ProtocolError, RpcError, SacError, SpecError, from_wire)

values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10)


@given(st.lists(st.tuples(st.integers(0, 2**31), st.text(min_size=1, max_size=20), values), max_size=8),
       st.integers(1, 17))
def test_frames_survive_any_chunking(requests, chunk):
    stream = b"".join(framing.encode_request(i, m, p) for i, m, p in requests)
    decoder = framing.FrameDecoder()
    frames = []
    for start in range(0, len(stream), chunk):
        frames.extend(decoder.feed(stream[start:start + chunk]))
    assert frames == [[framing.REQUEST, i, m, p] for i, m, p in requests]


def test_response_and_notification_shapes():
    decoder = framing.FrameDecoder()
    data = framing.encode_response(7, None, {"ok": True}) + framing.encode_notification("event", {"seq": 1})
    assert decoder.feed(data) == [[framing.RESPONSE, 7, None, {"ok": True}], [framing.NOTIFICATION, "event", {"seq": 1}]]


@pytest.mark.parametrize("obj", [5, "x", [], [9, 1, "m", {}], [0, "id", "m", {}], [0, 1, 2, {}], [2, 3]])
def test_non_rpc_objects_are_refused(obj):
    with pytest.raises(ProtocolError):
        framing.FrameDecoder().feed(msgpack.packb(obj))


def test_oversized_frame_is_refused():
    decoder = framing.FrameDecoder(max_frame_bytes=1024)
    with pytest.raises(ProtocolError, match="larger than 1024"):
        decoder.feed(framing.encode_request(1, "x", "y" * 4096))


def test_garbage_bytes_are_refused():
    with pytest.raises(ProtocolError):
        framing.FrameDecoder().feed(b"\xc1" * 10)


def test_errors_rebuild_from_code_not_message():
    err = from_wire(AgentNotFound("no agent named x", {"agent": "x"}).to_wire())
    assert type(err) is AgentNotFound and err.data == {"agent": "x"}
    assert type(from_wire({"code": "spec_error", "message": "agent_not_found"})) is SpecError
    assert type(from_wire({"code": "something_new", "message": "m"})) is RpcError
    assert isinstance(from_wire("junk"), SacError)


# -- a shim's socket: length-prefixed frames, replies passed on without decoding ----------------


@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), values), max_size=8), st.integers(1, 17))
def test_prefixed_frames_survive_any_chunking(replies, chunk):
    frames = [framing.encode_response(i, None, v) for i, v in replies]
    stream = b"".join(framing.prefixed(f) for f in frames)
    splitter = framing.PrefixedSplitter()
    got = []
    for start in range(0, len(stream), chunk):
        got.extend(splitter.feed(stream[start:start + chunk]))
    assert got == frames
    assert [framing.decode_frame(f) for f in got] == [[framing.RESPONSE, i, None, v] for i, v in replies]


@given(st.integers(0, 2**64 - 1), st.integers(-2**63, 2**64 - 1), values, st.none() | st.just({"code": "x"}))
def test_a_reply_is_readdressed_without_decoding(shim_msgid, client_msgid, result, error):
    frame = framing.encode_response(shim_msgid, error, result)
    msgid, offset = framing.response_id(frame)
    assert msgid == shim_msgid
    assert framing.FrameDecoder().feed(framing.readdressed(frame, offset, client_msgid)) == [
        [framing.RESPONSE, client_msgid, error, result]]


@pytest.mark.parametrize("frame", [framing.encode_request(1, "m", {}), framing.encode_notification("event", {}),
                                   b"\x94\x01", b"\x93\x01\x01\x01", b"\x94\x01\xd0\x01\xc0\xc0"])
def test_only_responses_have_a_response_id(frame):
    assert framing.response_id(frame) is None


def test_an_oversized_prefixed_frame_is_refused_before_it_arrives():
    with pytest.raises(ProtocolError, match="larger than 1024"):
        framing.PrefixedSplitter(max_frame_bytes=1024).feed(framing.PREFIX.pack(4096))


def test_a_prefixed_frame_that_is_not_rpc_is_refused():
    with pytest.raises(ProtocolError):
        framing.decode_frame(b"\xc1")
    with pytest.raises(ProtocolError):
        framing.decode_frame(msgpack.packb({"not": "rpc"}))
