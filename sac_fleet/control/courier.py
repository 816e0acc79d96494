"""The courier: a head carries messages between agents on different hosts over the links it already holds.

Nothing on a host dials out: an agent's message for another host waits in its node's outbox
(sac_node/outbox.py). While a Fleet with an inventory holds its links (`sac fleet serve`, or a
`sac fleet` command that acts on agents, for as long as it runs), the courier long-polls each node (`comms.drain`,
which also tells the node which agents the fleet has: names, labels, state, description; never
hosts), delivers each message to the callee's node (`comms.deliver`, with the message's key, so
a message carried twice is one turn), waits for an ask's turn to end, and reports back
(`comms.done`). A courier that stops midway leaves the message queued; the next carries it again.
"""

import asyncio
import logging
import time

from sac_node.protocol import messages as m
from sac_node.protocol.errors import RpcError, SacError

log = logging.getLogger("sac_fleet.courier")

DRAIN_WAIT_S = 15.0
DIRECTORY_TTL_S = 5.0
ASK_TIMEOUT_S = 3600.0
RETRY_S = 1.0


class Courier:
    """One drain loop per connected host; `routes()` gives the links, `host_of(agent)` (async) the callee's host."""

    def __init__(self, routes, host_of, clock=time.monotonic):
        self.routes, self.host_of, self.clock = routes, host_of, clock
        self._loops = {}  # host -> its drain task
        self._carrying = {}  # message id -> task
        self._directory, self._directory_at = [], None

    def watch(self):
        """Start a drain loop for every connected host that has none (called after each connect)."""
        for name, link in self.routes().items():
            task = self._loops.get(name)
            if link.ok and (task is None or task.done()):
                self._loops[name] = asyncio.ensure_future(self._drain(name, link))

    async def stop(self):
        tasks = list(self._loops.values()) + list(self._carrying.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        self._loops, self._carrying = {}, {}

    async def refresh(self):
        """Tell every node the fleet's agents now (after `up` started some), and carry what waits."""
        self._directory_at = None
        for link in list(self.routes().values()):
            if link.ok:
                try:
                    await self._take(link, 0)
                except (SacError, asyncio.TimeoutError):
                    continue

    async def _drain(self, host, link):
        while link.ok:
            try:
                await self._take(link, DRAIN_WAIT_S)
            except RpcError as exc:
                if "unknown method" in exc.message:
                    return  # a node older than comms: it queues nothing
                await asyncio.sleep(RETRY_S)
            except (SacError, asyncio.TimeoutError):
                await asyncio.sleep(RETRY_S)

    async def _take(self, link, wait_s):
        """One `comms.drain` of a node (waiting up to wait_s for a message); each message it returns is carried."""
        directory = await self._fleet_directory()
        messages = await link.client.call(m.COMMS_DRAIN, {"wait_s": wait_s, "directory": directory},
                                          timeout=wait_s + 30)
        for message in messages:
            if message["id"] not in self._carrying:
                task = asyncio.ensure_future(self._carry(link, message))
                self._carrying[message["id"]] = task
                task.add_done_callback(lambda _, mid=message["id"]: self._carrying.pop(mid, None))

    async def _fleet_directory(self):
        """The fleet's agents as nodes may show them (no host), refreshed every DIRECTORY_TTL_S."""
        now = self.clock()
        if self._directory_at is None or now - self._directory_at > DIRECTORY_TTL_S:
            rows = []
            for link in list(self.routes().values()):
                if link.ok:
                    try:
                        rows += await link.client.list_agents()
                    except SacError:
                        continue
            self._directory = [{"name": r["name"], "labels": r.get("labels") or {}, "state": r.get("state"),
                                "description": r.get("description") or ""} for r in rows]
            self._directory_at = now
        return self._directory

    async def _carry(self, source, message):
        """Deliver one message and report its outcome to the sender's node."""
        try:
            outcome = {"turn": await self._deliver(message)}
        except SacError as exc:
            outcome = {"error": exc.message}
        try:
            await source.client.call(m.COMMS_DONE, dict(outcome, id=message["id"]))
        except SacError as exc:
            log.warning("[agent=%s] could not report message %s back: %s", message.get("from"), message["id"],
                        exc.message)

    async def _deliver(self, message):
        host = await self.host_of(message["to"])
        callee = self.routes()[host].client
        turn = (await callee.call(m.COMMS_DELIVER, dict(message, wait_s=None)))["turn"]
        if message["kind"] != "ask":
            return turn
        deadline = self.clock() + ASK_TIMEOUT_S
        while turn["status"] not in m.TERMINAL and self.clock() < deadline:
            turn = await callee.wait_turn(turn["id"], 60)
        return turn
