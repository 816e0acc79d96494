"""An agent's transcript: every engine and supervisor event, numbered, on disk and live.

Each record is {"seq", "ts", "turn", "event"}; subscribers get them as notifications.
The file is rotated at ROTATE_BYTES: transcript.jsonl becomes transcript.jsonl.1
(the one before is deleted), so a long-lived agent keeps at most about twice that
on disk, and a shim starting up reads only the end of it.
"""

import json
import logging
import os
import time
from collections import deque

from .protocol import messages as m
from .state_dir import compact_json, open_for_append

log = logging.getLogger("sac_node.transcript")

RECENT = 2000
ROTATE_BYTES = 64 * 1024 * 1024
TAIL_BLOCK = 256 * 1024


class Transcript:
    """Append-only event log with live subscribers (peer, sub id, optional turn filter)."""

    def __init__(self, path, clock=time.time, rotate_bytes=ROTATE_BYTES):
        self.path = path
        self._clock = clock
        self._rotate_bytes = rotate_bytes
        self.recent = deque(read_tail(path, RECENT), maxlen=RECENT)
        self.seq = max((rec.get("seq", 0) for rec in self.recent), default=0)
        self._fh = self._open()
        self.subscribers = {}

    def _open(self):
        fh = os.fdopen(open_for_append(self.path), "a", encoding="utf-8")
        self._size = fh.tell()
        return fh

    def append(self, turn_id, event, raw=None):
        """Record one event and push it to matching subscribers; return the record.

        `raw` is the event's JSON text as the engine wrote it (one line): written as it is
        rather than encoded again.
        """
        self.seq += 1
        rec = {"seq": self.seq, "ts": self._clock(), "turn": turn_id, "event": event}
        # Buffered: the journal is what must survive a crash; the transcript is flushed at each
        # turn's end, on every heartbeat and whenever it is read from disk.
        line = _line(rec, raw)
        self._fh.write(line)
        self._size += len(line)
        if self._size >= self._rotate_bytes:
            self._rotate()
        elif event.get("type") == m.SAC and event.get("subtype") in (m.TURN_ENDED, m.ENGINE_EXITED):
            self._fh.flush()
        self.recent.append(rec)
        for sub_id, (peer, turn_filter) in list(self.subscribers.items()):
            if peer.closed:
                self.subscribers.pop(sub_id, None)
            elif turn_filter is None or turn_filter == turn_id:
                peer.notify(m.EVENT, {"sub": sub_id, "record": rec})
        return rec

    def _rotate(self):
        """transcript.jsonl -> transcript.jsonl.1 (replacing the one before); a new file goes on."""
        try:
            self._fh.close()
            os.replace(self.path, rotated(self.path))
        except OSError as exc:
            log.error("rotating %s failed, it goes on growing: %s", self.path, exc)
        self._fh = self._open()

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
                peer.notify(m.EVENT, {"sub": sub_id, "record": rec})
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


def rotated(path):
    return path + ".1"


def _records(lines):
    for raw in lines:
        try:
            rec = json.loads(raw)
        except ValueError:
            continue  # a line torn by a crash
        if isinstance(rec, dict):
            yield rec


def read_records(path):
    """Every record kept on disk (the rotated file's, then the current one's), skipping torn lines."""
    for name in (rotated(path), path):
        try:
            with open(name, "rb") as fh:
                yield from _records(fh)
        except FileNotFoundError:
            continue


def read_tail(path, n):
    """The last n records on disk (all with n=0), reading each file from its end: the cost does not
    grow with the transcript."""
    if not n:
        return list(read_records(path))
    found = []
    for name in (path, rotated(path)):
        found = _tail_of(name, n - len(found)) + found
        if len(found) >= n:
            break
    return found[-n:]


def _tail_of(path, n):
    """The last n records of one file."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return []
    with fh:
        end = fh.seek(0, os.SEEK_END)
        data, start = b"", end
        while start > 0 and data.count(b"\n") <= n:
            start = max(0, start - TAIL_BLOCK)
            fh.seek(start)
            data = fh.read(end - start)
        lines = data.split(b"\n")
        if start > 0:
            lines = lines[1:]  # the first is likely cut
        return list(_records(line for line in lines if line.strip()))[-n:]


