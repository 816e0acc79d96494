"""The transcript on disk: engine lines written as sent, rotation, a restart reading its end, torn lines."""

import json
import os

from hypothesis import given, settings, strategies as st

from sac_node import transcript
from sac_node.transcript import Transcript, read_records, read_tail

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 53, 2 ** 53) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10)
events = st.dictionaries(st.text(max_size=8), json_values, max_size=4).map(lambda d: dict(d, type="assistant"))


@settings(max_examples=150, deadline=None)
@given(events, st.sampled_from([(", ", ": "), (",", ":")]), st.booleans(), st.sampled_from([b"\n", b"\r\n", b""]))
def test_raw_lines_read_back_as_the_records_in_memory(tmp_path_factory, event, separators, ascii_only, ending):
    path = tmp_path_factory.mktemp("t") / "transcript.jsonl"
    transcript = Transcript(str(path), clock=lambda: 1795739819.7197053)
    raw = json.dumps(event, separators=separators, ensure_ascii=ascii_only).encode("utf-8") + ending
    rec = transcript.append("a.0123456789abcdef", event, raw=raw)
    transcript.append(None, {"type": "sac", "subtype": "turn_ended"})
    transcript.close()
    assert list(read_records(str(path))) == [rec, dict(rec, seq=2, turn=None, event={"type": "sac",
                                                                                    "subtype": "turn_ended"})]


def test_a_raw_line_json_would_not_read_back_is_written_encoded(tmp_path):
    path = tmp_path / "transcript.jsonl"
    transcript = Transcript(str(path))
    event = {"type": "assistant", "text": "hi"}
    bom = b"\xef\xbb\xbf" + json.dumps(event).encode()  # json.loads skips a BOM; a record line could not
    transcript.append("a.1", event, raw=bom)
    transcript.append("a.1", event, raw=b'{"type": "assistant", "text": "\xff"}')  # not UTF-8
    transcript.close()
    assert [r["event"] for r in read_records(str(path))] == [event, event]


def test_the_file_is_rotated_and_a_restart_goes_on_from_its_end(tmp_path, monkeypatch):
    monkeypatch.setattr(transcript, "TAIL_BLOCK", 64)  # several blocks per tail read
    path = str(tmp_path / "transcript.jsonl")
    t = Transcript(path, clock=lambda: 1.5, rotate_bytes=2000)
    for i in range(100):
        t.append("a.%d" % (i // 10), {"type": "assistant", "n": i})
    t.close()
    assert sorted(os.listdir(tmp_path)) == ["transcript.jsonl", "transcript.jsonl.1"]  # older ones are gone
    assert all(os.path.getsize(p) < 2000 + 100 for p in (path, path + ".1"))
    seqs = [r["seq"] for r in read_records(path)]
    assert seqs == list(range(seqs[0], 101)) and seqs[0] > 1  # contiguous, the oldest rotated away
    for n in (1, 5, len(seqs), len(seqs) + 10):
        assert read_tail(path, n) == list(read_records(path))[-n:]

    again = Transcript(path, rotate_bytes=2000)  # a restarted shim
    assert again.seq == 100 and again.recent[-1]["event"] == {"type": "assistant", "n": 99}
    assert [r["seq"] for r in again.recent] == seqs
    assert again.append(None, {"type": "sac", "subtype": "engine_started"})["seq"] == 101
    again.close()


def test_a_line_torn_by_a_crash_costs_no_later_record(tmp_path):
    path = tmp_path / "transcript.jsonl"
    good = {"seq": 7, "ts": 1.0, "turn": None, "event": {"type": "assistant"}}
    path.write_text("null\n" + json.dumps(good) + "\n" + '{"seq": 8, "ts": 2.0, "tu')  # the crash cut the last
    t = Transcript(str(path))
    assert t.seq == 7
    rec = t.append(None, {"type": "sac", "subtype": "engine_started"})
    t.close()
    assert rec["seq"] == 8 and list(read_records(str(path))) == [good, rec]


def test_a_subscriber_keeps_receiving_across_a_rotation(tmp_path):
    """`sac agents tail -f` relies on it: rotating the file does not drop the live subscribers."""
    import types

    seen = []
    peer = types.SimpleNamespace(closed=False, notify=lambda method, params: seen.append(params["record"]["seq"]))
    t = Transcript(str(tmp_path / "transcript.jsonl"), clock=lambda: 1.0, rotate_bytes=2000)
    t.subscribe(peer, "s1")
    for i in range(100):
        t.append("a.1", {"type": "assistant", "text": "x" * 50})
    assert (tmp_path / "transcript.jsonl.1").exists()
    assert seen == list(range(1, 101))
    t.close()
