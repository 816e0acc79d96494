"""The journal: accepted turns are durable, end exactly once, survive torn writes, and a
long-lived agent's journal stays bounded (retention and compaction) without breaking any of that."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings, strategies as st

from sac_node.journal import Journal, Retention
from sac_node.protocol.errors import TurnNotFound


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


# -- retention and compaction ------------------------------------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Clock:
    """A clock the test moves; every call returns the same time until it does."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def run_turn(j, text, key=None, status="completed", tokens=2):
    turn, created = j.accept("a", text, key=key)
    if created:
        j.start(turn["id"])
        j.finish(turn["id"], status, reply="re: " + text, usage={"output_tokens": tokens},
                 error=None if status == "completed" else "it broke")
    return turn["id"]


def lines(path):
    with open(path) as fh:
        return [json.loads(l) for l in fh]


def visible(j):
    """Everything a caller can see of a journal (status, turns.get/list, a retry with a key)."""
    return json.loads(json.dumps({"turns": list(j.turns.values()), "counts": j.counts(), "summary": j.summary(),
                                  "usage": j.usage_total(), "last": j.last_turn_at(),
                                  "pending": [t["id"] for t in j.pending()],
                                  # A shim runs one turn at a time: the order of several has no meaning.
                                  "running": sorted(t["id"] for t in j.running())}))


def test_memory_and_file_stay_bounded_after_many_turns(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    clock = Clock()
    j = Journal(path, clock, retention=Retention(keep_turns=5, keep_keys_s=3600, max_keys=8))
    waiting = [j.accept("a", "waits %d" % i)[0]["id"] for i in range(2)]  # pending turns are always kept
    sizes = []
    for i in range(60):
        clock.now += 1
        run_turn(j, "t%d" % i, key="k%d" % i)
        j.maybe_compact("a")
        sizes.append(len(lines(path)))
    assert len(j.turns) == 5 + 2 and all(t in j.turns for t in waiting)
    assert len(j._keys) == 8 and len(j._by_key) == 5 + 8  # summaries of dropped keyed turns, at most max_keys
    assert j.summary() == {"completed": 60, "pending": 2, "failed": 0, "cancelled": 0}
    # Uncompacted, the file would hold 2 + 3 * 60 records; compacted, never much more than the kept state.
    assert max(sizes) <= 2 * (7 + 8 + 1) + 4 * 5 and len(lines(path)) < 2 + 3 * 60
    assert Journal(path, clock, retention=j.retention).counts() == j.counts()


def test_counters_survive_compaction_and_replay(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    clock = Clock()
    j = Journal(path, clock, retention=Retention(keep_turns=3))
    for i, status in enumerate(["completed", "failed", "interrupted", "cancelled", "completed", "completed",
                                "failed", "completed"]):
        clock.now += 1
        run_turn(j, "t%d" % i, status=status, tokens=i)
    running = j.accept("a", "running")[0]["id"]
    j.start(running)
    j.accept("a", "pending")
    before = (j.counts(), j.summary(), j.usage_total(), j.last_turn_at())
    assert before[1] == {"completed": 4, "pending": 2, "failed": 3, "cancelled": 1}
    assert before[2] == {"output_tokens": sum(range(8))} and before[3] == clock.now
    state = visible(j)
    j.compact()
    assert (j.counts(), j.summary(), j.usage_total(), j.last_turn_at()) == before and visible(j) == state
    assert [r["op"] for r in lines(path)] == ["turn"] * 5 + ["snapshot"]
    again = Journal(path, clock, retention=j.retention)
    assert (again.counts(), again.summary(), again.usage_total(), again.last_turn_at()) == before
    assert visible(again) == state
    assert [t["id"] for t in again.running()] == [running]  # a started turn never looks pending again


def test_refused_tool_calls_are_counted_per_turn_and_in_total_across_compaction(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    j = Journal(path, Clock(), retention=Retention(keep_turns=10))
    ids = []
    for refused in (2, 0, 1):
        tid = j.accept("a", "t")[0]["id"]
        j.start(tid)
        j.finish(tid, "completed", reply="r", tools_refused=refused)
        ids.append(tid)
    assert [j.turns[t].get("tools_refused") for t in ids] == [2, None, 1] and j.refused_total() == 3
    ends = [r for r in lines(path) if r["op"] == "completed"]
    assert [r.get("tools_refused") for r in ends] == [2, None, 1]  # refusing nothing writes what it wrote before
    assert Journal(path).refused_total() == 3
    j.compact()
    assert Journal(path).refused_total() == 3
    j.close()


def test_turns_by_caller_are_counted_over_every_turn_and_across_compaction(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    j = Journal(path, Clock(), retention=Retention(keep_turns=10))
    for origin in ({"from": "lead", "depth": 2}, None, {"from": "lead", "depth": 1}, {"from": "critic", "depth": 1}):
        turn, _ = j.accept("w1", "t", origin=origin)
        j.start(turn["id"])
        j.finish(turn["id"], "completed", reply="r")
    assert j.callers() == {"lead": 2, "critic": 1}
    assert (turn["from"], turn["depth"]) == ("critic", 1)
    assert Journal(path).callers() == {"lead": 2, "critic": 1}
    for _ in range(12):  # the turns from callers are dropped; their count stays
        run_turn(j, "user's")
    j.compact()
    assert Journal(path).callers() == {"lead": 2, "critic": 1}
    j.close()


def test_a_retry_with_the_key_of_a_dropped_turn_gets_that_turn_for_keep_keys_s(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    clock = Clock()
    retention = Retention(keep_turns=2, keep_keys_s=600)
    j = Journal(path, clock, retention=retention)
    first = run_turn(j, "first", key="k-first", status="failed")
    for i in range(4):
        clock.now += 10
        run_turn(j, "later %d" % i)
    assert first not in j.turns
    j.compact()
    j.close()
    for journal in (j, Journal(path, clock, retention=retention)):
        turn, created = journal.accept("a", "first, sent again", key="k-first")
        assert not created and turn["id"] == first and turn["status"] == "failed"
        assert turn["error"] == "it broke" and turn["key"] == "k-first" and "reply" not in turn
        assert journal.get(first, "a") == turn  # what a wait on the retried turn answers
    clock.now += 600  # the key is kept for keep_keys_s after the turn ended, not longer
    again = Journal(path, clock, retention=retention)
    turn, created = again.accept("a", "first, much later", key="k-first")
    assert created and turn["id"] != first and turn["status"] == "pending"
    assert again.accept("a", "and again", key="k-first") == (turn, False)


def test_a_kept_turn_answers_its_key_even_after_keep_keys_s(tmp_path):
    clock = Clock()
    j = Journal(str(tmp_path / "j"), clock, retention=Retention(keep_turns=5, keep_keys_s=60))
    tid = run_turn(j, "quiet agent", key="k")
    clock.now += 3600
    assert j.accept("a", "retry", key="k") == (j.turns[tid], False)


def test_a_dropped_turn_is_not_found_with_a_message_naming_the_setting(tmp_path):
    path = str(tmp_path / "j")
    j = Journal(path, Clock(), retention=Retention(keep_turns=3))
    old = run_turn(j, "old")
    with pytest.raises(TurnNotFound, match=r"^turn a\.nope not found on agent a$"):
        j.get("a.nope", "a")  # nothing dropped yet: nothing to explain
    for i in range(3):
        run_turn(j, "t%d" % i)
    j.compact()
    for journal in (j, Journal(path, retention=j.retention)):
        with pytest.raises(TurnNotFound) as info:
            journal.get(old, "a")
        assert info.value.message == ("turn %s not found on agent a: it is older than the 3 ended turns agent a "
                                      "keeps (journal.keep_turns), or it never existed" % old)


def test_compaction_takes_the_records_not_yet_written(tmp_path):
    path = str(tmp_path / "j")
    ops = []
    j = Journal(path, Clock(), on_write=ops.append)
    pending = j.accept("a", "accepted, not yet on disk")[0]["id"]
    running = j.accept("a", "started, not yet on disk")[0]["id"]
    j.start(running)
    assert j.pending_io(sync=False) and j.compaction_due() is False
    j.compact()
    assert not j.pending_io()  # on disk: the group commit has nothing left to write or fsync
    again = Journal(path)
    assert [t["id"] for t in again.pending()] == [pending] and [t["id"] for t in again.running()] == [running]
    j.finish(running, "completed", reply="r")  # appends go on in the new file
    j.close()
    assert Journal(path).turns[running]["reply"] == "r"


def test_compaction_is_due_by_a_count_of_records(tmp_path):
    path = str(tmp_path / "j")
    j = Journal(path, Clock(), retention=Retention(keep_turns=2))
    assert j._compact_at == 2 + 4 * 2
    for text in ("one", "two", "three"):
        run_turn(j, text)
    assert not j.maybe_compact("a") and len(lines(path)) == 9  # not due: the file is not touched
    run_turn(j, "four")
    assert j.maybe_compact("a") and [r["op"] for r in lines(path)] == ["turn"] * 2 + ["snapshot"]
    assert j._compact_at == 2 * (2 + 1) + 4 * 2 and not j.maybe_compact("a")


def test_a_failed_compaction_leaves_the_journal_whole_and_waits_before_trying_again(tmp_path, caplog):
    path = str(tmp_path / "j")
    j = Journal(path, Clock(), retention=Retention(keep_turns=2))
    for i in range(4):
        run_turn(j, "t%d" % i)
    before = Path(path).read_text()
    with mock.patch("sac_node.state_dir.os.fsync", side_effect=OSError(28, "No space left on device")):
        assert not j.maybe_compact("a")
    assert "[agent=a] journal compaction failed" in caplog.text and "No space left" in caplog.text
    assert Path(path).read_text() == before and not os.path.exists(path + ".tmp")
    assert not j.maybe_compact("a")  # the next try waits for keep_turns more records
    tid = run_turn(j, "after")
    assert j.maybe_compact("a")
    assert Journal(path).turns[tid]["reply"] == "re: after"


CRASH = """
import os, sys
sys.path.insert(0, %(repo)r)
from sac_node import journal, state_dir
j = journal.Journal(%(path)r, retention=journal.Retention(keep_turns=2))
j.accept("a", "pending, accepted before the crash", key="k-late")
def crash(*args):
    os._exit(9)
setattr(%(where)s, %(name)r, crash)
j.compact()
"""


@pytest.mark.parametrize("where,name", [("state_dir.os", "rename"), ("journal", "fsync_dir")])
def test_a_crash_during_compaction_leaves_the_old_journal_or_the_new_one(tmp_path, where, name):
    path = str(tmp_path / "journal.jsonl")
    j = Journal(path, retention=Retention(keep_turns=2))
    for i in range(4):
        run_turn(j, "t%d" % i, key="k%d" % i)
    j.close()
    done = subprocess.run([sys.executable, "-c", CRASH % {"repo": REPO, "path": path, "where": where, "name": name}],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 9, done.stderr
    ops = [r["op"] for r in lines(path)]
    if name == "rename":  # the new file was written and fsynced beside the journal, not yet renamed over it
        assert os.path.exists(path + ".tmp") and ops == ["accepted", "started", "completed"] * 4 + ["accepted"]
    else:
        assert not os.path.exists(path + ".tmp") and ops == ["key"] * 2 + ["turn"] * 3 + ["snapshot"]
    again = Journal(path, retention=Retention(keep_turns=2))
    assert again.summary() == {"completed": 4, "pending": 1, "failed": 0, "cancelled": 0}
    assert [t["text"] for t in again.pending()] == ["pending, accepted before the crash"]
    assert again.accept("a", "retry", key="k1")[1] is False  # a dropped turn's key is still known
    again.compact()  # a tmp file left by the crash is simply overwritten
    assert not os.path.exists(path + ".tmp") and visible(Journal(path, retention=again.retention)) == visible(again)


def test_a_torn_last_line_after_compaction_is_ignored_and_cut_off(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    j = Journal(path, retention=Retention(keep_turns=2))
    for i in range(4):
        run_turn(j, "t%d" % i)
    j.compact()
    kept = run_turn(j, "after the compaction")
    j.close()
    with open(path, "ab") as fh:
        fh.write(b'{"op":"accepted","id":"a.torn","te')
    again = Journal(path, retention=Retention(keep_turns=2))
    assert "a.torn" not in again.turns and again.turns[kept]["status"] == "completed"
    assert again.summary()["completed"] == 5
    later = run_turn(again, "after the tear")
    again.close()
    replayed = Journal(path, retention=Retention(keep_turns=2))
    assert list(replayed.turns) == [kept, later] and replayed.summary()["completed"] == 6


def test_a_smaller_keep_turns_trims_a_journal_compacted_with_a_larger_one(tmp_path):
    path = str(tmp_path / "j")
    j = Journal(path, Clock(), retention=Retention(keep_turns=10))
    ids = [run_turn(j, "t%d" % i, key="k%d" % i) for i in range(6)]
    j.compact()
    smaller = Journal(path, Clock(), retention=Retention(keep_turns=2))
    assert list(smaller.turns) == ids[-2:] and smaller.counts() == j.counts()
    assert smaller.accept("a", "retry", key="k0")[0]["id"] == ids[0]


ACTIONS = ["accept", "accept", "accept_key", "start", "requeue", "completed", "failed", "interrupted", "cancelled",
           "compact", "sync", "tick"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 40)), max_size=80), st.integers(1, 4),
       st.sampled_from([0.5, 25.0, 1e9]), st.integers(1, 4))
def test_compaction_at_any_point_shows_what_an_uncompacted_journal_shows(tmp_path_factory, actions, keep_turns,
                                                                         keep_keys_s, max_keys):
    """Two journals get the same records; one is compacted at random points (and group-commits),
    the other never. Both, and both files replayed, show the same turns, counts and key answers."""
    root = tmp_path_factory.mktemp("j")
    clock, retention = Clock(), Retention(keep_turns, keep_keys_s, max_keys)
    serial = itertools.count()
    with mock.patch("sac_node.journal.new_turn_id", lambda agent: "%s.%016x" % (agent, next(serial) // 2)):
        compacted = Journal(str(root / "compacted"), clock, on_write=lambda op: None, retention=retention)
        plain = Journal(str(root / "plain"), clock, retention=retention)
        ids, keys = [], set()
        for action, n in actions:
            clock.now += 1
            if action in ("accept", "accept_key"):
                key = "k%d" % (n % 5) if action == "accept_key" else None
                keys.discard(None) if key is None else keys.add(key)
                answers = [j.accept("a", "t%d" % n, key=key) for j in (compacted, plain)]
                assert answers[0][0]["id"] == answers[1][0]["id"] and answers[0][1] == answers[1][1]
                ids.append(answers[0][0]["id"])
            elif action == "compact":
                compacted.compact()
            elif action == "sync":
                compacted.sync()
            elif action == "tick":
                clock.now += n
            elif ids:
                tid = ids[n % len(ids)]
                for j in (compacted, plain):
                    status = j.turns[tid]["status"] if tid in j.turns else None
                    if action == "start" and status == "pending":
                        j.start(tid)
                    elif action == "requeue" and status == "running":
                        j.requeue(tid, "limited")
                    elif action not in ("start", "requeue") and status in ("pending", "running"):
                        j.finish(tid, action, usage={"output_tokens": n})
        compacted.close()
        plain.close()
        journals = [compacted, plain] + [Journal(j.path, clock, retention=retention) for j in (compacted, plain)]

    def answers(j):
        found = {}
        for tid in ids:
            try:
                found[tid] = j.get(tid, "a")
            except TurnNotFound as exc:
                found[tid] = exc.message
        return json.loads(json.dumps([visible(j), found, {k: j.turn_for_key(k) for k in sorted(keys)}]))

    expected = answers(plain)
    for j in journals:
        assert answers(j) == expected
        assert len(j.turns) - len(j.pending()) - len(j.running()) <= retention.keep_turns


def test_a_notice_is_kept_with_the_turn_and_written_only_when_there_is_one(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = Journal(str(path))
    noted, _ = journal.accept("a", "one")
    plain, _ = journal.accept("a", "two")
    for tid, notice in ((noted["id"], "the conversation was started again"), (plain["id"], None)):
        journal.start(tid)
        journal.finish(tid, "completed", reply="ok", notice=notice)
    journal.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r.get("notice") for r in records if r["op"] == "completed"] == ["the conversation was started again", None]
    assert "notice" not in records[-1]
    replayed = Journal(str(path))
    assert replayed.turns[noted["id"]]["notice"] == "the conversation was started again"
    assert "notice" not in replayed.turns[plain["id"]]
