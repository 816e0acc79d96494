"""NodeClient: typed calls to one node daemon over any byte stream.

The stream may be a local unix socket, an SSH stream-local channel or an SSH
exec channel bridged by `node.pyz attach`; the client cannot tell them apart.

Where the head can open streams to the node's sockets (SSH stream-local), the
turn calls (submit, wait, get, cancel) go straight to the agent's shim over a
stream of their own, and the daemon stays out of the turn path. Whenever that
stream cannot be had (the shim is not running, is being respawned, or the
server refuses), the call goes to the daemon, which relays it or answers for a
stopped agent; a failed attempt is not retried for SHIM_RETRY_S.
"""

import asyncio
import time

from sac_node.protocol import messages as m
from sac_node.protocol.errors import SacError
from sac_node.rpc import RpcPeer
from sac_node.state_dir import StateDir

SHIM_RETRY_S = 1.0
SHIM_OPEN_TIMEOUT_S = 10.0


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
        self._open_stream = None  # path -> NodeStream, when turn calls may go straight to shims
        self._state = None
        self._shims = {}  # agent -> RpcPeer on its shim's socket, or the future of one being opened
        self._shim_retry_at = {}

    def direct_to_shims(self, open_stream, state_dir):
        """Send turn calls straight to each agent's shim; `open_stream(path)` opens a stream to a node socket."""
        self._open_stream, self._state = open_stream, StateDir(state_dir)

    async def _turn_call(self, agent, method, params):
        """A turn method, on the agent's shim when a stream to it can be had, else through the daemon."""
        shim = await self._shim(agent) if self._open_stream is not None else None
        if shim is None:
            return await self.call(method, params)
        direct = dict(params)
        direct.pop("agent", None)
        try:
            return await shim.call(method, direct)
        except SacError:
            # The stream closed under the call: the shim died, perhaps before it read the request.
            # The daemon respawns it; asking again there is safe for all but a submit without a key
            # (the dead shim may have journalled it, and it would then run twice).
            if not shim.closed or not m.safe_to_repeat(method, params):
                raise
        return await self.call(method, params)

    async def _shim(self, agent):
        shim = self._shims.get(agent)
        if isinstance(shim, RpcPeer) and not shim.closed:
            return shim
        if shim is None or isinstance(shim, RpcPeer):
            if self.peer.closed or not m.NAME_RE.fullmatch(agent or "") or \
                    time.monotonic() < self._shim_retry_at.get(agent, 0):
                return None
            shim = self._shims[agent] = asyncio.ensure_future(self._open_shim(agent))
        return await asyncio.shield(shim)

    async def _open_shim(self, agent):
        try:
            stream = await asyncio.wait_for(self._open_stream(self._state.agent(agent).socket), SHIM_OPEN_TIMEOUT_S)
        except (SacError, OSError, asyncio.TimeoutError):
            self._shims.pop(agent, None)
            self._shim_retry_at[agent] = time.monotonic() + SHIM_RETRY_S
            return None
        except BaseException:
            self._shims.pop(agent, None)  # not kept: the next call tries again
            raise
        shim = RpcPeer(stream.reader, stream.writer, name="shim:%s@%s" % (agent, self.host), prefixed=True)
        self._shims[agent] = shim
        shim.context["runner"] = asyncio.ensure_future(shim.run())
        if self.peer.closed:  # this client closed while the stream opened
            await shim.close()
            return None
        return shim

    def _on_notification(self, method, params):
        sub = self._subs.get(params.get("sub"))
        if sub is not None:
            sub.queue.put_nowait(params["record"])

    async def call(self, method, params=None, timeout=None):
        return await self.peer.call(method, params or {}, timeout=timeout)

    async def facts(self, timeout=None):
        return await self.call(m.HOST_FACTS, timeout=timeout)

    async def timed_facts(self, timeout=None):
        """(host.facts, its round trip in ms)."""
        ping = time.monotonic()
        facts = await self.facts(timeout=timeout)
        return facts, (time.monotonic() - ping) * 1000

    async def put_secrets(self, values):
        """Set {NAME: value} in the host's secrets.env; -> {changed, secrets: {NAME: hash}}."""
        return await self.call(m.HOST_SECRETS, {"values": values})

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
        return await self._turn_call(agent, m.TURNS_SUBMIT, params)

    async def wait_turn(self, turn_id, timeout):
        return await self._turn_call(m.agent_of_turn(turn_id), m.TURNS_WAIT, {"id": turn_id, "timeout_s": timeout})

    async def get_turn(self, turn_id):
        return await self._turn_call(m.agent_of_turn(turn_id), m.TURNS_GET, {"id": turn_id})

    async def cancel_turn(self, turn_id):
        return await self._turn_call(m.agent_of_turn(turn_id), m.TURNS_CANCEL, {"id": turn_id})

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
        for shim in list(self._shims.values()):
            if isinstance(shim, RpcPeer):
                await shim.close()
