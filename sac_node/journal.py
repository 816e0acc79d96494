"""The turn journal: an append-only, fsynced JSONL log per agent.

By default each record is written and fsynced at once. The shim commits in
groups instead (`on_write`, called with each record's op): a record is applied
in memory; `write()` hands every record since the last one to the OS in one
write (from then on only a crash of the machine can lose it) and `sync()` also
fsyncs. sac_node/commit.py decides when the shim does which.
Records:
    {"op": "accepted", "id", "text", "ts", "key", "source"}
    {"op": "started", "id", "ts", "attempt"}
    {"op": "requeued", "id", "ts", "reason"}     back to pending: it had not acted yet
    {"op": "completed" | "failed" | "interrupted" | "cancelled", "id", "ts", "text",
     "session_id", "usage", "timings", "error"}
Replaying the log rebuilds every turn; a torn last line (a crash mid-write) is ignored.
A turn ends in exactly one terminal state: a second terminal record for it is ignored.
"""

import json
import os
import time
from collections import OrderedDict

from .state_dir import compact_json

TERMINAL = ("completed", "failed", "interrupted", "cancelled")


def new_turn_id(agent):
    return "%s.%s" % (agent, os.urandom(8).hex())


class Journal:
    """One agent's journal; `turns` is the replayed state, id -> dict, in order."""

    def __init__(self, path, clock=time.time, on_write=None):
        self.path = path
        self._clock = clock
        self._on_write = on_write  # set: records wait for write() or sync(), which the caller runs soon
        self._unwritten = []
        self._unsynced = False
        self.turns = {}
        self._by_key = {}
        # Kept up to date as records apply, so a long-lived agent's every turn costs O(1), not O(history).
        self._pending = OrderedDict()
        self._running = OrderedDict()
        self._counts = dict.fromkeys(("pending", "running") + TERMINAL, 0)
        self._usage = {}
        self._last_at = None
        self._replay()
        self._fd = None

    def _replay(self):
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return
        with fh:
            for raw in fh:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue  # torn write at the end of a crash
                self._apply(rec)

    def _apply(self, rec):
        turn = self.turns.get(rec.get("id"))
        before = turn["status"] if turn is not None else None
        self._apply_record(rec)
        turn = self.turns.get(rec.get("id"))
        if turn is None or turn["status"] == before:
            return
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
        when = rec.get("ts")
        if when and (self._last_at is None or when > self._last_at):
            self._last_at = when

    def _apply_record(self, rec):
        op, tid = rec.get("op"), rec.get("id")
        if op == "accepted":
            turn = {"id": tid, "status": "pending", "text": rec.get("text", ""), "accepted_at": rec.get("ts"),
                    "key": rec.get("key"), "source": rec.get("source", "user"), "attempts": 0}
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
            for field in ("reply", "session_id", "usage", "timings", "error"):
                if rec.get(field) is not None:
                    turn[field] = rec[field]

    def _open_for_append(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        size = os.fstat(fd).st_size
        if size:
            # A crash mid-write leaves a line without its newline: cut it off, or
            # the next record would be glued to it and lost on replay.
            tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
            if not tail.endswith(b"\n"):
                keep = size - len(tail) + tail.rfind(b"\n") + 1
                os.ftruncate(fd, keep)
        return fd

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
            self._fd = self._open_for_append()
        data = "".join(self._unwritten).encode("utf-8")
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

    def accept(self, agent, text, key=None, source="user"):
        """Append a new turn (or return the existing one for a known idempotency key)."""
        if key and key in self._by_key:
            return self.turns[self._by_key[key]], False
        tid = new_turn_id(agent)
        self._append({"op": "accepted", "id": tid, "text": text, "ts": self._clock(), "key": key, "source": source})
        return self.turns[tid], True

    def start(self, tid):
        self._append({"op": "started", "id": tid, "ts": self._clock(), "attempt": self.turns[tid]["attempts"] + 1})

    def requeue(self, tid, reason):
        """Put a running turn back in line (it did nothing yet, e.g. the account was rate-limited)."""
        if self.turns[tid]["status"] == "running":
            self._append({"op": "requeued", "id": tid, "ts": self._clock(), "reason": reason})

    def finish(self, tid, status, reply=None, session_id=None, usage=None, timings=None, error=None):
        """Record the one terminal state of a turn; a no-op if it already has one."""
        if status not in TERMINAL:
            raise ValueError("not a terminal status: %r" % status)
        if self.turns[tid]["status"] in TERMINAL:
            return False
        self._append({"op": status, "id": tid, "ts": self._clock(), "reply": reply, "session_id": session_id,
                      "usage": usage, "timings": timings, "error": error})
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
