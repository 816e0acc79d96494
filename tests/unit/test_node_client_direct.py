"""Turn calls straight to a shim's stream, and when they go to the daemon instead (in-memory sockets)."""

import asyncio
import socket
from types import SimpleNamespace

import pytest

from sac_fleet.remote import node_client
from sac_fleet.remote.node_client import NodeClient
from sac_node.protocol.errors import RpcError, SacError
from sac_node.rpc import RpcPeer


async def _pair():
    a, b = socket.socketpair()
    near = await asyncio.open_connection(sock=a)
    far = await asyncio.open_connection(sock=b)
    return near, far


def _serve(node, streams, handlers, prefixed):
    peer = RpcPeer(streams[0], streams[1], handlers, name="far", prefixed=prefixed)
    node.served.append(asyncio.ensure_future(peer.run()))
    return peer


class Node:
    """A daemon and the shims of its agents, each answering turns.submit with who answered."""

    def __init__(self):
        self.opened, self.refuse, self.daemon_calls, self.shims, self.served = [], False, [], {}, []

    def handler(self, who):
        async def submit(peer, p):
            if who == "daemon":
                self.daemon_calls.append(p)
            elif p.get("text") == "die":
                await self.shims.pop(p.get("_agent", "a1")).close()  # the shim dies mid-call
                await asyncio.sleep(3600)
            return {"turn": {"id": "a1.00", "status": "completed", "reply": who}, "created": True}

        async def get(peer, p):
            return {"id": p["id"], "answered_by": who}
        return {"turns.submit": submit, "turns.get": get}

    async def client(self):
        near, far = await _pair()
        _serve(self, far, self.handler("daemon"), prefixed=False)
        client = NodeClient(*near, host="h1", channel="stream-local")
        client.direct_to_shims(self.open_stream, "/state")
        return client

    async def open_stream(self, path):
        self.opened.append(path)
        if self.refuse:
            raise SacError("the server refused a stream-local channel to %s" % path)
        near, far = await _pair()
        self.shims["a1"] = _serve(self, far, self.handler("shim"), prefixed=True)
        return SimpleNamespace(reader=near[0], writer=near[1])

    async def close(self, client):
        await client.close()
        await asyncio.wait(self.served, timeout=5)  # the far ends see EOF and stop


async def test_turns_go_to_the_agents_shim_on_a_stream_of_its_own():
    node = Node()
    client = await node.client()
    for _ in range(3):
        assert (await client.submit("a1", "hi"))["turn"]["reply"] == "shim"
    assert node.opened == ["/state/agents/a1/shim.sock"] and node.daemon_calls == []  # one stream, reused
    await node.close(client)


async def test_no_stream_to_the_shim_means_the_daemon_and_no_new_try_for_a_while(monkeypatch):
    node = Node()
    node.refuse = True
    client = await node.client()
    assert (await client.submit("a1", "hi"))["turn"]["reply"] == "daemon"
    assert (await client.submit("a1", "again"))["turn"]["reply"] == "daemon"
    assert len(node.opened) == 1  # not tried again within SHIM_RETRY_S
    assert node.daemon_calls[0] == {"agent": "a1", "text": "hi", "key": None}
    monkeypatch.setattr(node_client, "SHIM_RETRY_S", 0.0)
    client._shim_retry_at.clear()
    node.refuse = False
    assert (await client.submit("a1", "later"))["turn"]["reply"] == "shim"
    await node.close(client)


@pytest.mark.parametrize("key, reply", [("k1", "daemon"), (None, None)])
async def test_a_shim_dying_under_a_submit(key, reply):
    node = Node()
    client = await node.client()
    await client.submit("a1", "open the stream")
    if reply is None:  # without a key asking again could run the turn twice: the error reaches the caller
        with pytest.raises(RpcError, match="connection to shim:a1@h1 closed"):
            await client.submit("a1", "die", key=key)
        assert node.daemon_calls == []
    else:  # with one the daemon is asked (it respawns the shim; the key stops a second run)
        assert (await client.submit("a1", "die", key=key))["turn"]["reply"] == reply
        assert node.daemon_calls == [{"agent": "a1", "text": "die", "key": "k1"}]
    await node.close(client)


async def test_a_name_that_is_not_an_agent_name_never_becomes_a_path():
    node = Node()
    client = await node.client()
    assert (await client.submit("../etc", "hi"))["turn"]["reply"] == "daemon"
    assert (await client.get_turn("no-dot-here"))["answered_by"] == "daemon" and node.opened == []
    await node.close(client)
