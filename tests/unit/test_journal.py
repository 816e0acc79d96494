"""The journal: accepted turns are durable, end exactly once, and survive torn writes."""

import json

import pytest
from hypothesis import given, strategies as st

from sac_node.journal import Journal


def test_replay_rebuilds_turns(tmp_path):
    path = tmp_path / "journal.jsonl"
    j = Journal(str(path), clock=lambda: 100.0)
    t1, created = j.accept("a", "one")
    t2, _ = j.accept("a", "two")
    j.start(t1["id"])
    j.finish(t1["id"], "completed", reply="r1", session_id="s", usage={"input_tokens": 3, "output_tokens": 2})
    j.close()
    again = Journal(str(path))
    assert created and [t["status"] for t in again.turns.values()] == ["completed", "pending"]
    assert again.turns[t1["id"]]["reply"] == "r1"
    assert [t["id"] for t in again.pending()] == [t2["id"]]
    assert again.usage_total() == {"input_tokens": 3, "output_tokens": 2}


def test_a_turn_ends_exactly_once(tmp_path):
    j = Journal(str(tmp_path / "j"))
    t, _ = j.accept("a", "x")
    assert j.finish(t["id"], "interrupted", error="engine died")
    assert not j.finish(t["id"], "completed", reply="late")
    j.close()
    lines = [json.loads(l) for l in (tmp_path / "j").read_text().splitlines()]
    assert [l["op"] for l in lines] == ["accepted", "interrupted"]
    assert Journal(str(tmp_path / "j")).turns[t["id"]]["status"] == "interrupted"


def test_torn_last_line_is_ignored(tmp_path):
    path = tmp_path / "j"
    j = Journal(str(path))
    t, _ = j.accept("a", "kept")
    j.close()
    with open(path, "ab") as fh:
        fh.write(b'{"op": "accepted", "id": "a.torn", "te')
    again = Journal(str(path))
    assert list(again.turns) == [t["id"]]
    t2, _ = again.accept("a", "after the tear")
    again.close()
    # The torn fragment does not swallow the next record.
    replayed = Journal(str(path)).turns
    assert replayed[t["id"]]["text"] == "kept"
    assert replayed[t2["id"]]["text"] == "after the tear"


def test_idempotency_key_returns_the_same_turn(tmp_path):
    j = Journal(str(tmp_path / "j"))
    first, created = j.accept("a", "x", key="k1")
    second, created_again = j.accept("a", "different text", key="k1")
    assert created and not created_again and first["id"] == second["id"]
    j.close()
    third, created_third = Journal(str(tmp_path / "j")).accept("a", "x", key="k1")
    assert not created_third and third["id"] == first["id"]


def test_finish_requires_a_terminal_status(tmp_path):
    j = Journal(str(tmp_path / "j"))
    t, _ = j.accept("a", "x")
    with pytest.raises(ValueError):
        j.finish(t["id"], "running")


@given(st.lists(st.tuples(st.sampled_from(["accept", "start", "requeue", "completed", "failed", "interrupted",
                                           "cancelled"]), st.integers(0, 5)), max_size=40))
def test_running_counts_match_a_full_scan_also_after_replay(tmp_path_factory, ops):
    path = tmp_path_factory.mktemp("j") / "journal.jsonl"
    j = Journal(str(path), clock=iter(range(1, 1000)).__next__)
    ids = []
    for op, n in ops:
        if op == "accept":
            ids.append(j.accept("a", "t%d" % len(ids))[0]["id"])
            continue
        if not ids:
            continue
        tid = ids[n % len(ids)]
        status = j.turns[tid]["status"]
        if op == "start" and status == "pending":
            j.start(tid)
        elif op == "requeue":
            j.requeue(tid, "limited")
        elif op not in ("start", "requeue"):
            j.finish(tid, op, usage={"output_tokens": 2})
    j.close()
    for journal in (j, Journal(str(path))):
        scan = {s: sum(1 for t in journal.turns.values() if t["status"] == s) for s in journal.counts()}
        assert journal.counts() == scan
        assert [t["id"] for t in journal.pending()] == [t for t in ids if journal.turns[t]["status"] == "pending"]
        done = sum(1 for t in journal.turns.values() if t["status"] in ("completed", "failed", "interrupted",
                                                                          "cancelled"))
        assert journal.usage_total() == ({"output_tokens": 2 * done} if done else {})


def test_with_on_write_records_wait_for_write_and_sync(tmp_path, monkeypatch):
    """The shim's group commit: records of one moment leave in one write and one fsync."""
    path = tmp_path / "j"
    ops, fsyncs = [], []
    real_fsync = __import__("os").fsync
    monkeypatch.setattr("sac_node.journal.os.fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    j = Journal(str(path), on_write=ops.append)
    t, _ = j.accept("a", "x")
    j.start(t["id"])
    assert ops == ["accepted", "started"] and j.pending_io(sync=False)
    assert not path.exists() or path.read_text() == ""  # applied in memory only
    assert j.turns[t["id"]]["status"] == "running"
    j.sync()
    assert [json.loads(l)["op"] for l in path.read_text().splitlines()] == ["accepted", "started"]
    assert len(fsyncs) == 1 and not j.pending_io()
    j.finish(t["id"], "completed", reply="r")
    j.write()  # handed to the OS, not yet fsynced
    assert json.loads(path.read_text().splitlines()[-1])["op"] == "completed"
    assert not j.pending_io(sync=False) and j.pending_io(sync=True) and len(fsyncs) == 1
    j.close()  # close syncs what is left
    assert len(fsyncs) == 2
    assert Journal(str(path)).turns[t["id"]]["reply"] == "r"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=8))
def test_journal_lines_are_what_json_dumps_writes(record):
    from sac_node.state_dir import compact_json
    assert compact_json(record) == json.dumps(record, separators=(",", ":"))
