"""An agent's transcript: every engine and supervisor event, numbered, on disk and live.

Each record is {"seq", "ts", "turn", "event"}; subscribers get them as notifications.
"""

import json
import time
from collections import deque

from .state_dir import compact_json

RECENT = 2000


class Transcript:
    """Append-only event log with live subscribers (peer, sub id, optional turn filter)."""

    def __init__(self, path, clock=time.time):
        self.path = path
        self._clock = clock
        self.recent = deque(maxlen=RECENT)
        self.seq = 0
        self._load_tail()
        self._fh = open(path, "a", encoding="utf-8")
        self.subscribers = {}

    def _load_tail(self):
        for rec in read_records(self.path):
            self.recent.append(rec)
            self.seq = max(self.seq, rec.get("seq", 0))

    def append(self, turn_id, event, raw=None):
        """Record one event and push it to matching subscribers; return the record.

        `raw` is the event's JSON text as the engine wrote it (one line): written as it is
        rather than encoded again.
        """
        self.seq += 1
        rec = {"seq": self.seq, "ts": self._clock(), "turn": turn_id, "event": event}
        # Buffered: the journal is what must survive a crash; the transcript is flushed at each
        # turn's end, on every heartbeat and whenever it is read from disk.
        self._fh.write(_line(rec, raw))
        if event.get("type") == "sac" and event.get("subtype") in ("turn_ended", "engine_exited"):
            self._fh.flush()
        self.recent.append(rec)
        for sub_id, (peer, turn_filter) in list(self.subscribers.items()):
            if peer.closed:
                self.subscribers.pop(sub_id, None)
            elif turn_filter is None or turn_filter == turn_id:
                peer.notify("event", {"sub": sub_id, "record": rec})
        return rec

    def records_since(self, from_seq=0, turn_id=None):
        """Past records after `from_seq` (from memory when possible, else from disk)."""
        if self.recent and self.recent[0]["seq"] <= from_seq + 1:
            source = list(self.recent)
        else:
            source = self._read_all()
        return [r for r in source if r["seq"] > from_seq and (turn_id is None or r.get("turn") == turn_id)]

    def flush(self):
        self._fh.flush()

    def _read_all(self):
        self.flush()
        return list(read_records(self.path))

    def tail(self, n):
        return list(self.recent)[-n:] if n else list(self.recent)

    def subscribe(self, peer, sub_id, turn_id=None, from_seq=None):
        """Replay past records (synchronously, so none is missed), then stream live ones."""
        if from_seq is not None or turn_id is not None:
            for rec in self.records_since(from_seq or 0, turn_id):
                peer.notify("event", {"sub": sub_id, "record": rec})
        self.subscribers[sub_id] = (peer, turn_id)

    def unsubscribe(self, sub_id):
        self.subscribers.pop(sub_id, None)

    def close(self):
        self._fh.close()


def _line(rec, raw):
    if raw is not None:
        try:
            event = raw.strip().decode("utf-8")
        except UnicodeDecodeError:
            event = ""
        if event.startswith("{"):  # what json.loads took as an object (a BOM it skips would not be)
            return '{"seq":%d,"ts":%s,"turn":%s,"event":%s}\n' % (
                rec["seq"], compact_json(rec["ts"]), compact_json(rec["turn"]), event)
    return compact_json(rec) + "\n"


def read_records(path):
    """Every record of a transcript file, skipping a torn line; nothing when there is no file."""
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                try:
                    yield json.loads(raw)
                except ValueError:
                    continue
    except FileNotFoundError:
        return


def read_tail(path, n):
    """The last n records of a transcript file, for an agent whose shim is not running."""
    return list(deque(read_records(path), maxlen=n or None))


