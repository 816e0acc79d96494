"""The gateway's view of the fleet: the few calls HTTP and A2A make, over one open Fleet.

A turn costs one RPC (a submit that waits) on the connection the Fleet already
holds to the agent's host (no new SSH handshake, no event subscription). Every
call goes through the Fleet; this module never sees a node client.
"""

import asyncio
import logging
import time

from sac_node.protocol.errors import AgentNotFound, SacError

from .schema import check_agent_name, check_turn_id

log = logging.getLogger("sac.gateway")


class Gateway:
    """Turns, agents and transcripts of one Fleet (an inventory's hosts, or this machine's node)."""

    def __init__(self, fleet, reconnect_s=30.0):
        self.fleet = fleet
        self.started_at = time.time()
        self.reconnect_s = reconnect_s
        self._keeper = None

    async def open(self, on_host=None):
        """Connect now, so the first request pays no handshake; then keep the connections up. Nothing is
        started on a host: a node daemon that does not run is attached to once it does."""
        self.fleet.load()
        links = await self.fleet.connect(on_host=on_host)
        self._keeper = asyncio.ensure_future(self._keep_connected())
        return links

    async def _keep_connected(self):
        """Reopen the links of hosts that dropped or never answered: after 1 s, then 2, 4 ... up to
        `reconnect_s` while they stay down; rows recover by themselves when the host is back."""
        delay = 1.0
        while True:
            await asyncio.sleep(delay if not all(l.ok for l in self.fleet.links.values()) else 1.0)
            if all(link.ok for link in self.fleet.links.values()):
                delay = 1.0
                continue
            try:
                await self.fleet.connect()
            except SacError as exc:
                log.warning("reconnecting hosts: %s", exc.message)
            delay = min(self.reconnect_s, delay * 2)

    async def close(self):
        if self._keeper is not None:
            self._keeper.cancel()
        await self.fleet.close()

    @property
    def mode(self):
        """"inventory", or "local" for this machine's node alone."""
        return "local" if self.fleet.inventory_path is None else "inventory"

    async def status(self):
        """`sac fleet status --json` with an inventory; this machine's agents (`Fleet.list`) without."""
        if self.mode == "local":
            return await self.fleet.list()  # no desired state to set beside them
        return await self.fleet.fleet_status()

    async def agents(self):
        """Every agent with its host: those this Fleet's hosts run (of the inventory, with one)."""
        if self.mode == "local":
            return await self.fleet.list()
        return (await self.fleet.fleet_status())["agents"]

    async def agent(self, name):
        """An agent's full status, with the host it runs on."""
        check_agent_name(name)
        status = await self.fleet.status(name)
        return dict(status, host=await self.fleet.host_of(name))

    async def labels(self, name):
        """An agent's labels, for a token's label selectors: {} when no host runs it."""
        try:
            return (await self.fleet.status(name)).get("labels") or {}
        except AgentNotFound:
            return {}

    async def submit(self, agent, text, key=None, wait_s=None):
        """Accept a turn (journalled on its host before this returns): (turn, created).

        With wait_s the turn comes back ended (or as it stands after wait_s): one RPC per turn.
        """
        check_agent_name(agent)
        return await self.fleet.submit(agent, text, key, wait_s=wait_s)

    async def wait(self, turn_id, timeout):
        """The turn once it ends, or as it stands when `timeout` passes."""
        return await self.fleet.wait(check_turn_id(turn_id), timeout)

    async def turn(self, turn_id):
        return await self.fleet.get_turn(check_turn_id(turn_id))

    async def cancel(self, turn_id):
        return await self.fleet.cancel(check_turn_id(turn_id))

    async def subscribe(self, agent, turn_id=None, from_seq=None):
        """Subscribe to an agent's transcript (of one turn): past records after `from_seq` come first.

        Raises here (AgentNotFound, AgentNotRunning, ...) so a stream can still answer with an error status.
        """
        check_agent_name(agent)
        return await self.fleet.subscribe(agent, turn_id=turn_id, from_seq=from_seq)

    async def records(self, sub, keepalive_s=10.0):
        """The records of a subscription; None every `keepalive_s` while nothing happens. Closes `sub`."""
        queue = asyncio.Queue()

        async def pump():
            # Only this task reads the subscription: cancelling a reader mid-wait could drop a record.
            try:
                async for record in sub:
                    queue.put_nowait(record)
            finally:
                queue.put_nowait(StopAsyncIteration)

        pumping = asyncio.ensure_future(pump())
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), keepalive_s)
                except asyncio.TimeoutError:
                    yield None
                    continue
                if item is StopAsyncIteration:
                    return
                yield item
        finally:
            pumping.cancel()
            try:
                await sub.close()
            except (SacError, OSError):  # the connection is gone; the node dropped the subscription with it
                pass
