"""NodeClient: typed calls to one node daemon over any byte stream.

The stream may be a local unix socket, an SSH stream-local channel or an SSH
exec channel bridged by `node.pyz attach`; the client cannot tell them apart.
"""

import asyncio

from sac_node.protocol import messages as m
from sac_node.rpc import RpcPeer


class Subscription:
    """Records of one events.subscribe, as an async iterator."""

    def __init__(self, client, sub):
        self.client, self.sub = client, sub
        self.queue = asyncio.Queue()

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.client.peer.closed and self.queue.empty():
            raise StopAsyncIteration
        getter = asyncio.ensure_future(self.queue.get())
        closed = asyncio.ensure_future(self.client.peer.wait_closed())
        done, _ = await asyncio.wait([getter, closed], return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            closed.cancel()
            return getter.result()
        getter.cancel()
        raise StopAsyncIteration

    async def close(self):
        self.client._subs.pop(self.sub, None)
        if not self.client.peer.closed:
            await self.client.call(m.EVENTS_UNSUBSCRIBE, {"sub": self.sub})


class NodeClient:
    """One node, seen from the head."""

    def __init__(self, reader, writer, host="local", channel=None):
        self.host = host
        self.channel = channel  # "unix", "stream-local" or "exec": how this head reaches the node
        self._subs = {}
        self._sub_ids = 0
        self.peer = RpcPeer(reader, writer, on_notification=self._on_notification, name="node:%s" % host)
        self._runner = asyncio.ensure_future(self.peer.run())

    def _on_notification(self, method, params):
        sub = self._subs.get(params.get("sub"))
        if sub is not None:
            sub.queue.put_nowait(params["record"])

    async def call(self, method, params=None, timeout=None):
        return await self.peer.call(method, params or {}, timeout=timeout)

    async def facts(self, timeout=None):
        return await self.call(m.HOST_FACTS, timeout=timeout)

    async def start_agent(self, spec, restart=False):
        return await self.call(m.AGENTS_START, {"spec": spec, "restart": restart})

    async def stop_agent(self, name):
        return await self.call(m.AGENTS_STOP, {"name": name})

    async def fence_agent(self, name, generation, by=None):
        return await self.call(m.AGENTS_FENCE, {"name": name, "generation": generation, "by": by})

    async def restart_agent(self, name):
        return await self.call(m.AGENTS_RESTART, {"name": name})

    async def delete_agent(self, name):
        return await self.call(m.AGENTS_DELETE, {"name": name})

    async def list_agents(self):
        return await self.call(m.AGENTS_LIST)

    async def agent_status(self, name):
        return await self.call(m.AGENTS_STATUS, {"name": name})

    async def submit(self, agent, text, key=None, wait_s=None):
        """Accept a turn; with wait_s, also wait (up to wait_s) for it to end, in the same round trip."""
        params = {"agent": agent, "text": text, "key": key}
        if wait_s:
            params["wait_s"] = wait_s
        return await self.call(m.TURNS_SUBMIT, params)

    async def wait_turn(self, turn_id, timeout):
        return await self.call(m.TURNS_WAIT, {"id": turn_id, "timeout_s": timeout})

    async def get_turn(self, turn_id):
        return await self.call(m.TURNS_GET, {"id": turn_id})

    async def cancel_turn(self, turn_id):
        return await self.call(m.TURNS_CANCEL, {"id": turn_id})

    async def list_turns(self, agent, limit=50, status=None):
        return await self.call(m.TURNS_LIST, {"agent": agent, "limit": limit, "status": status})

    async def tail(self, agent, n=50):
        return await self.call(m.EVENTS_TAIL, {"agent": agent, "n": n})

    async def subscribe(self, agent, turn_id=None, from_seq=None):
        """Subscribe to an agent's transcript; past records of `turn_id` (or after `from_seq`) come first."""
        # The id is ours and registered first: replayed records arrive ahead of the reply.
        self._sub_ids += 1
        sub = Subscription(self, "c%d" % self._sub_ids)
        self._subs[sub.sub] = sub
        await self.call(m.EVENTS_SUBSCRIBE, {"agent": agent, "sub": sub.sub, "turn_id": turn_id,
                                             "from_seq": from_seq})
        return sub

    async def shutdown(self):
        return await self.call(m.HOST_SHUTDOWN)

    async def close(self):
        await self.peer.close()
