"""The turn journal: a fsynced JSONL log per agent, appended to and compacted now and then.

By default each record is written and fsynced at once. The shim commits in
groups instead (`on_write`, called with each record's op): a record is applied
in memory; `write()` hands every record since the last one to the OS in one
write (from then on only a crash of the machine can lose it) and `sync()` also
fsyncs. sac_node/commit.py decides when the shim does which.
Records:
    {"op": "accepted", "id", "text", "ts", "key", "source"[, "from", "depth"]}   from: the agent that sent it
                                                  (comms), depth: how deep in a chain of asks
    {"op": "started", "id", "ts", "attempt"}
    {"op": "requeued", "id", "ts", "reason"}     back to pending: it had not acted yet
    {"op": "completed" | "failed" | "interrupted" | "cancelled", "id", "ts", "reply",
     "session_id", "usage", "timings", "error"[, "tools_refused"][, "notice"]}   tools_refused: the tool
                                                  calls refused, when any; notice: what the user should know of a turn
                                                  that ended well (its conversation was started again)
Replaying the log rebuilds the turns; a torn last line (a crash mid-write) is ignored.
A turn ends in exactly one terminal state: a second terminal record for it is ignored.

What is kept (`Retention`): every pending and running turn, the last `keep_turns`
ended turns, and for a dropped turn that had an idempotency key, a summary that
answers a retry with that key until `keep_keys_s` after the turn ended. Counts,
usage and the last turn time cover every turn ever. `compact()` rewrites the
file to what is kept; a compacted file starts with
    {"op": "key", "turn": {"id", "key", "status", "source", "accepted_at", "ended_at", "error"}}
                          a dropped turn's summary, oldest ended first
    {"op": "turn", "turn": {...}}
                          a kept turn as it stands, in accepted order
    {"op": "snapshot", "ts", "counts", "usage", "refused", "last_at", "dropped", "ended": [id, ...], "callers"}
                          closes them: totals over every turn, the kept ended turns in ended order
and goes on with the records above.
"""

import json
import logging
import os
import sys
import time
from collections import OrderedDict, namedtuple

from .node_spec import KEEP_KEYS_S, KEEP_TURNS
from .protocol.errors import TurnNotFound
from .protocol.messages import TERMINAL, TURN_STATES
from .protocol import messages
from .state_dir import compact_json, fsync_dir, open_for_append, replace_file

log = logging.getLogger("sac_node.journal")

MIN_KEEP_TURNS = 10  # so that a turn a reply is about to carry is still there
MAX_KEYS = 10000  # keys of dropped turns, at most (~0.5 KB each): a bound whatever the rate of keyed turns
SUMMARY = ("key", "ended_at", "status", "source", "accepted_at", "error")  # what a dropped turn's key keeps
ERROR_SUMMARY = 200  # characters of a dropped turn's error that its summary keeps


class Retention(namedtuple("Retention", "keep_turns keep_keys_s max_keys",
                           defaults=(KEEP_TURNS, KEEP_KEYS_S, MAX_KEYS))):
    """What a journal keeps of ended turns (spec `journal: {keep_turns, keep_keys_s}`)."""

    __slots__ = ()

    @classmethod
    def from_spec(cls, spec):
        return cls(max(MIN_KEEP_TURNS, spec.journal.keep_turns), spec.journal.keep_keys_s, MAX_KEYS)


def new_turn_id(agent):
    return messages.new_turn_id(agent, os.urandom(8))


class Journal:
    """One agent's journal; `turns` is the kept state, id -> dict, in accepted order."""

    def __init__(self, path, clock=time.time, on_write=None, retention=Retention()):
        self.path = path
        self._clock = clock
        self._on_write = on_write  # set: records wait for write() or sync(), which the caller runs soon
        self.retention = retention
        self._unwritten = []
        self._unsynced = False
        self.turns = {}
        self._by_key = {}  # key -> id of the turn (kept, or summarised in _keys) that key names
        # Kept up to date as records apply, so a long-lived agent's every turn costs O(1), not O(history).
        self._pending = OrderedDict()
        self._running = OrderedDict()
        self._ended = OrderedDict()  # the kept ended turns, oldest ended first: the next to drop
        self._keys = OrderedDict()  # id -> SUMMARY tuple of a dropped turn whose key is kept, oldest ended first
        self._counts = dict.fromkeys(TURN_STATES, 0)
        self._usage = {}
        self._refused = 0  # tool calls the engine refused, over every turn
        self._callers = {}  # agent -> turns it sent this one (comms), over every turn
        self._last_at = None
        self._dropped = 0
        self._records = 0  # lines in the file: compact() once they are many more than the kept state needs
        self._replay()
        self._compact_at = self._compaction_threshold()
        self._fd = None

    def _replay(self):
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return
        with fh:
            for raw in fh:
                self._records += 1
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue  # torn write at the end of a crash
                restore = self._RESTORE.get(rec.get("op"))
                if restore is None:
                    self._apply(rec)
                else:
                    restore(self, rec)

    def _apply(self, rec):
        turn = self.turns.get(rec.get("id"))
        before = turn["status"] if turn is not None else None
        self._apply_record(rec)
        turn = self.turns.get(rec.get("id"))
        if turn is None or turn["status"] == before:
            return
        if before is None and turn.get("from"):
            self._callers[turn["from"]] = self._callers.get(turn["from"], 0) + 1
        if before is not None:
            self._counts[before] -= 1
            self._pending.pop(turn["id"], None)
            self._running.pop(turn["id"], None)
        self._counts[turn["status"]] += 1
        if turn["status"] == "pending":
            self._pending[turn["id"]] = turn
        elif turn["status"] == "running":
            self._running[turn["id"]] = turn
        else:
            for key, value in (turn.get("usage") or {}).items():
                if isinstance(value, (int, float)):
                    self._usage[key] = self._usage.get(key, 0) + value
            self._refused += turn.get("tools_refused") or 0
            self._ended[turn["id"]] = turn
            if len(self._ended) > self.retention.keep_turns:
                self._drop_oldest(rec.get("ts") or 0)
        when = rec.get("ts")
        if when and (self._last_at is None or when > self._last_at):
            self._last_at = when

    def _apply_record(self, rec):
        op, tid = rec.get("op"), rec.get("id")
        if op == "accepted":
            turn = {"id": tid, "status": "pending", "text": rec.get("text", ""), "accepted_at": rec.get("ts"),
                    "key": rec.get("key"), "source": rec.get("source", "user"), "attempts": 0}
            if rec.get("from"):
                turn["from"], turn["depth"] = rec["from"], rec.get("depth") or 1
            self.turns[tid] = turn
            if rec.get("key"):
                self._by_key[rec["key"]] = tid
            return
        turn = self.turns.get(tid)
        if turn is None or turn["status"] in TERMINAL:
            return
        if op == "requeued":
            turn["status"] = "pending"
            turn["requeued"] = turn.get("requeued", 0) + 1
            turn["last_requeue_reason"] = rec.get("reason")
        elif op == "started":
            turn["status"] = "running"
            turn["started_at"] = rec.get("ts")
            turn["attempts"] = rec.get("attempt", turn["attempts"] + 1)
        elif op in TERMINAL:
            turn["status"] = op
            turn["ended_at"] = rec.get("ts")
            for field in ("reply", "session_id", "usage", "timings", "error", "tools_refused", "notice"):
                if rec.get(field) is not None:
                    turn[field] = rec[field]

    # -- what is kept ------------------------------------------------------------

    def _drop_oldest(self, now):
        """Forget the kept ended turn that ended first; a key it carried lives on in a summary."""
        tid, turn = self._ended.popitem(last=False)
        del self.turns[tid]
        self._dropped += 1
        key = turn.get("key")
        if key and self._by_key.get(key) == tid:
            error = turn.get("error")
            self._keys[tid] = (key, turn.get("ended_at") or 0, turn["status"], turn.get("source"),
                               turn.get("accepted_at"), error[:ERROR_SUMMARY] if isinstance(error, str) else error)
            if len(self._keys) > self.retention.max_keys:  # expired ones go at compaction; lookups skip them
                self._forget_keys(now)

    def _forget_keys(self, now):
        """Drop the summaries past keep_keys_s at `now`, or beyond max_keys, oldest ended first."""
        keys = self._keys
        while keys:
            tid, summary = next(iter(keys.items()))
            if len(keys) <= self.retention.max_keys and not self._expired(summary, now):
                return
            keys.popitem(last=False)
            if self._by_key.get(summary[0]) == tid:
                del self._by_key[summary[0]]

    def _expired(self, summary, now):
        return summary[1] + self.retention.keep_keys_s < now

    def _summary(self, tid):
        """A dropped turn's summary as a turn dict (no text, reply, usage), while its key is kept."""
        summary = self._keys.get(tid)
        if summary is None or self._expired(summary, self._clock()):
            return None
        return dict(zip(SUMMARY, summary), id=tid)

    def turn_for_key(self, key):
        """The turn an idempotency key names, or None; a dropped turn's summary for keep_keys_s after it ended."""
        tid = self._by_key.get(key)
        if tid is None:
            return None
        return self.turns.get(tid) or self._summary(tid)

    def get(self, tid, agent):
        """The turn `tid` (a dropped one's summary while its key is kept), else TurnNotFound."""
        turn = self.turns.get(tid) or self._summary(tid)
        if turn is not None:
            return turn
        if not self._dropped:
            raise TurnNotFound("turn %s not found on agent %s" % (tid, agent))
        raise TurnNotFound("turn %s not found on agent %s: it is older than the %d ended turns agent %s keeps "
                           "(journal.keep_turns), or it never existed" % (tid, agent, self.retention.keep_turns, agent))

    # -- a compacted file --------------------------------------------------------

    def _restore_turn(self, rec):
        turn = rec["turn"]
        tid = turn["id"]
        self.turns[tid] = turn
        if turn.get("key"):
            self._by_key[turn["key"]] = tid
        if turn["status"] == "pending":
            self._pending[tid] = turn
        elif turn["status"] == "running":
            self._running[tid] = turn

    def _restore_key(self, rec):
        turn = rec["turn"]
        source = turn.get("source")  # status and source interned: one string each for thousands of keys
        self._keys[turn["id"]] = (turn["key"], turn.get("ended_at") or 0, sys.intern(turn["status"]),
                                  sys.intern(source) if isinstance(source, str) else source,
                                  turn.get("accepted_at"), turn.get("error"))
        self._by_key[turn["key"]] = turn["id"]

    def _restore_snapshot(self, rec):
        self._counts.update(rec["counts"])
        self._usage = dict(rec["usage"])
        self._refused = rec.get("refused") or 0
        self._callers = dict(rec.get("callers") or {})
        self._last_at = rec["last_at"]
        self._dropped = rec["dropped"]
        self._ended = OrderedDict((tid, self.turns[tid]) for tid in rec["ended"] if tid in self.turns)
        while len(self._ended) > self.retention.keep_turns:  # compacted when keep_turns was larger
            self._drop_oldest(rec.get("ts") or 0)

    _RESTORE = {"turn": _restore_turn, "key": _restore_key, "snapshot": _restore_snapshot}

    def _compaction_threshold(self):
        # Twice the records the kept state needs, plus 4 * keep_turns: more records are appended
        # between two compactions than one rewrites (with 1000 kept turns, one compaction per 1700
        # turns), so its cost per turn stays flat and small.
        return 2 * (len(self.turns) + len(self._keys) + 1) + 4 * self.retention.keep_turns

    def compaction_due(self):
        return self._records + len(self._unwritten) > self._compact_at

    def maybe_compact(self, agent):
        """compact() when the file holds many more records than the kept state needs; True if it did.

        One comparison when not due, so the shim calls it at every heartbeat. A failure is logged
        and leaves the old file whole; the next try waits for keep_turns more records.
        """
        if not self.compaction_due():
            return False
        try:
            self.compact()
        except OSError as exc:
            self._compact_at = self._records + len(self._unwritten) + self.retention.keep_turns
            log.error("[agent=%s] journal compaction failed, the journal goes on growing: %s", agent, exc)
            return False
        return True

    def compact(self):
        """Rewrite the file to the kept state, records not yet written included.

        The new file is written beside the journal (journal.jsonl.tmp) and fsynced, renamed over
        it, and the directory fsynced: a crash at any point leaves the old file or the new one.
        Appends go on in the new file.
        """
        now = self._clock()
        self._forget_keys(now)
        lines = [compact_json({"op": "key", "turn": dict(zip(SUMMARY, summary), id=tid)})
                 for tid, summary in self._keys.items()]
        lines.extend(compact_json({"op": "turn", "turn": turn}) for turn in self.turns.values())
        lines.append(compact_json({"op": "snapshot", "ts": now, "counts": self._counts, "usage": self._usage,
                                   "refused": self._refused, "last_at": self._last_at, "dropped": self._dropped,
                                   "ended": list(self._ended), "callers": self._callers}))
        fd = replace_file(self.path, ("\n".join(lines) + "\n").encode("utf-8"))
        if self._fd is not None:
            os.close(self._fd)  # the old file's: it is gone from the directory
        self._fd = fd
        self._unwritten.clear()
        self._unsynced = False
        self._records = len(lines)
        self._compact_at = self._compaction_threshold()
        fsync_dir(self.path)  # before any later record is acknowledged: the rename must outlive a power loss

    def _append(self, rec):
        self._unwritten.append(compact_json(rec) + "\n")
        self._apply(rec)
        if self._on_write is None:
            self.sync()
        else:
            self._on_write(rec["op"])

    def pending_io(self, sync=True):
        """True while some record is not yet written (or, with `sync`, not yet fsynced)."""
        return bool(self._unwritten) or (sync and self._unsynced)

    def write(self):
        """Hand every record not yet written to the OS, in one write."""
        if not self._unwritten:
            return
        if self._fd is None:
            self._fd = open_for_append(self.path)
        data = "".join(self._unwritten).encode("utf-8")
        self._records += len(self._unwritten)
        self._unwritten.clear()
        self._unsynced = True
        while data:
            data = data[os.write(self._fd, data):]

    def sync(self):
        """write(), then fsync (a no-op when every record is on disk already)."""
        self.write()
        if self._unsynced:
            self._unsynced = False
            os.fsync(self._fd)

    def close(self):
        self.sync()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def accept(self, agent, text, key=None, source="user", origin=None):
        """Append a new turn (or return the existing one for a known idempotency key).

        `origin`: {"from": agent, "depth": n} of a turn another agent sent (comms)."""
        if key:
            known = self.turn_for_key(key)
            if known is not None:
                return known, False
        tid = new_turn_id(agent)
        rec = {"op": "accepted", "id": tid, "text": text, "ts": self._clock(), "key": key, "source": source}
        self._append(dict(rec, **origin) if origin else rec)
        return self.turns[tid], True

    def start(self, tid):
        self._append({"op": "started", "id": tid, "ts": self._clock(), "attempt": self.turns[tid]["attempts"] + 1})

    def requeue(self, tid, reason):
        """Put a running turn back in line (it did nothing yet, e.g. the account was rate-limited)."""
        if self.turns[tid]["status"] == "running":
            self._append({"op": "requeued", "id": tid, "ts": self._clock(), "reason": reason})

    def finish(self, tid, status, reply=None, session_id=None, usage=None, timings=None, error=None,
               tools_refused=0, notice=None):
        """Record the one terminal state of a turn; a no-op if it already has one."""
        if status not in TERMINAL:
            raise ValueError("not a terminal status: %r" % status)
        if self.turns[tid]["status"] in TERMINAL:
            return False
        rec = {"op": status, "id": tid, "ts": self._clock(), "reply": reply, "session_id": session_id,
               "usage": usage, "timings": timings, "error": error}
        if tools_refused:
            rec["tools_refused"] = tools_refused
        if notice:
            rec["notice"] = notice
        self._append(rec)
        return True

    def pending(self):
        """Turns not yet started, oldest accepted first (a requeued turn keeps its place)."""
        return sorted(self._pending.values(), key=lambda t: t["accepted_at"] or 0)

    def running(self):
        return list(self._running.values())

    def counts(self):
        return dict(self._counts)

    def summary(self):
        """Turn counts as status shows them: running counts as pending, interrupted as failed."""
        c = self._counts
        return {"completed": c["completed"], "pending": c["pending"] + c["running"],
                "failed": c["failed"] + c["interrupted"], "cancelled": c["cancelled"]}

    def last_turn_at(self):
        return self._last_at

    def usage_total(self):
        return dict(self._usage)

    def refused_total(self):
        return self._refused

    def callers(self):
        """{agent: turns it sent this one}, over every turn."""
        return dict(self._callers)
