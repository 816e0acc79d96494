"""An engine event written as the engine sent it reads back as the same record."""

import json

from hypothesis import given, settings, strategies as st

from sac_node.transcript import Transcript, read_records

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
