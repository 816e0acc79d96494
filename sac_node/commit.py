"""Group commit of a shim's journal: one write and at most one fsync per moment, not per record.

The journal records of one moment (a turn's end, the next turn's start, turns
accepted meanwhile) leave in one write and, when one is needed, one fsync, once
the tasks those records woke have had their turn on the event loop.

Two promises need the disk: "accepted" (a caller that hears it has the turn for
good) and `started` (a turn runs once, whatever crashes). Both are committed
when something depends on them: `durable()` before a reply, and before the
engine gets the turn. An outcome (a terminal record, `requeued`) is written in
the next pass of the loop, before anyone can hear of it, so no crash of a
process can take it back; it reaches the disk OUTCOME_SYNC_S later, or with the
next fsync if that comes first.
"""

import asyncio
import logging

from .protocol.messages import TERMINAL

log = logging.getLogger("sac_node.commit")

OUTCOME_SYNC_S = 0.1  # a written outcome reaches the disk this much later at most


class GroupCommit:
    """Decides when a journal's records are written and fsynced; `journal.on_write` is `written`."""

    def __init__(self, name):
        self.name = name
        self.journal = None  # set once the journal exists (it takes `written` as its on_write)
        self._scheduled = False
        self._waiters = []  # (future, needs fsync)
        self._outcome_sync = None  # the timer that fsyncs outcomes nobody waited on

    def written(self, op):
        """Journal.on_write: an outcome is committed at once; acceptance and start when needed."""
        if op not in ("accepted", "started"):
            self._soon()

    async def durable(self, sync=True):
        """Return once every journal record so far is on disk (`sync`) or written."""
        if not self.journal.pending_io(sync):
            return
        fut = asyncio.get_event_loop().create_future()
        self._waiters.append((fut, sync))
        self._soon()
        await fut

    async def settled(self, turn):
        """Before a reply carries `turn`: an outcome written, an acceptance on disk."""
        await self.durable(sync=turn["status"] not in TERMINAL)

    def _soon(self):
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_event_loop().call_soon(self._commit)

    def _commit(self):
        self._scheduled = False
        waiters, self._waiters = self._waiters, []
        try:
            if any(sync for _, sync in waiters):
                self.journal.sync()
                if self._outcome_sync is not None:
                    self._outcome_sync.cancel()
                    self._outcome_sync = None
            else:
                self.journal.write()
                if self.journal.pending_io() and self._outcome_sync is None:
                    self._outcome_sync = asyncio.get_event_loop().call_later(OUTCOME_SYNC_S, self._sync_outcomes)
        except OSError as exc:
            log.error("[agent=%s] journal write failed: %s", self.name, exc)
            for fut, _ in waiters:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for fut, _ in waiters:
            if not fut.done():
                fut.set_result(None)

    def _sync_outcomes(self):
        self._outcome_sync = None
        try:
            self.journal.sync()
        except OSError as exc:
            log.error("[agent=%s] journal fsync failed: %s", self.name, exc)
