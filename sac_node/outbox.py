"""A node's outbox: messages its agents send to agents on other hosts, until a head carries them.

Nothing on a host dials out. A message for an agent this node does not run is written
here (<state>/outbox.jsonl, fsynced before the sender hears back); a head attached to
this node (any `sac fleet serve`, or the next CLI) drains it over the connection it
already holds (`comms.drain`), delivers it to the callee's node with the message's key
(so a message delivered twice is one turn), and reports the outcome (`comms.done`):
the callee's turn, ended for an ask, accepted for a tell, or an error.
Records:
    {"op": "queued", "id", "ts", "message": {from, from_labels, to, kind, text, depth, key}}
    {"op": "done", "id", "ts", "turn"?, "error"?}
An ask needs a head now (`head_attached`); a tell waits for one. Done messages are
dropped when the file is rewritten at start.
"""

import asyncio
import json
import os
import time
from collections import OrderedDict

from .state_dir import compact_json, open_for_append, replace_file

FILE_NAME = "outbox.jsonl"
KEEP_DONE = 200  # done messages kept in memory, for `turn` polls of asks that outlived their wait


class Outbox:
    """The queued and recently done messages of one node, and the heads draining them."""

    def __init__(self, root, clock=time.time):
        self.path = os.path.join(root, FILE_NAME)
        self.clock = clock
        self.queued = OrderedDict()  # id -> message dict
        self.done = OrderedDict()  # id -> {"turn"?, "error"?}
        self.heads = set()  # peers that drain: a head is attached while one of them is open
        self._changed = None
        self._waiters = {}  # id -> [future]
        self._replay()
        self._fd = None

    def _replay(self):
        try:
            with open(self.path, "rb") as fh:
                lines = fh.readlines()
        except FileNotFoundError:
            return
        for raw in lines:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue  # a torn last line
            if rec.get("op") == "queued":
                self.queued[rec["id"]] = dict(rec["message"], id=rec["id"])
            elif rec.get("op") == "done":
                self.queued.pop(rec["id"], None)
        data = "".join(compact_json({"op": "queued", "id": i, "ts": self.clock(), "message": msg}) + "\n"
                       for i, msg in self.queued.items())
        os.close(replace_file(self.path, data.encode("utf-8")))

    def _append(self, rec):
        if self._fd is None:
            self._fd = open_for_append(self.path)
        os.write(self._fd, (compact_json(rec) + "\n").encode("utf-8"))
        os.fsync(self._fd)

    def head_attached(self):
        self.heads = {peer for peer in self.heads if not peer.closed}
        return bool(self.heads)

    def put(self, message):
        """Queue a message (on disk before this returns); its id is its key."""
        mid = message["key"]
        if mid not in self.queued and mid not in self.done:
            self._append({"op": "queued", "id": mid, "ts": self.clock(), "message": message})
            self.queued[mid] = dict(message, id=mid)
            self._wake()
        return mid

    def finish(self, mid, turn=None, error=None):
        """A head's word on a message: the callee's turn, or why it could not be delivered."""
        if mid not in self.queued:
            return False
        self._append({"op": "done", "id": mid, "ts": self.clock(), "turn": turn, "error": error})
        self.queued.pop(mid)
        self.done[mid] = {"turn": turn, "error": error}
        while len(self.done) > KEEP_DONE:
            self.done.popitem(last=False)
        for fut in self._waiters.pop(mid, []):
            if not fut.done():
                fut.set_result(None)
        return True

    async def drain(self, peer, wait_s):
        """The queued messages, waiting up to `wait_s` for one; `peer` counts as an attached head from now."""
        self.heads.add(peer)
        if not self.queued and wait_s > 0:
            self._changed = self._changed or asyncio.Event()
            try:
                await asyncio.wait_for(self._changed.wait(), wait_s)
            except asyncio.TimeoutError:
                pass
        return list(self.queued.values())

    def _wake(self):
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def outcome(self, mid, timeout):
        """{"turn", "error"} once a head reported on message `mid`, else None after `timeout`."""
        if mid in self.queued and timeout > 0:
            fut = asyncio.get_event_loop().create_future()
            self._waiters.setdefault(mid, []).append(fut)
            try:
                await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                pass
        return self.done.get(mid)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
