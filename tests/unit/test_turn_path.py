"""A turn is one round trip to its host through every way in (Fleet, SyncFleet, the gateway), and routing
asks the hosts only when it does not know where an agent runs. Real NodeClients over socket pairs to
scripted nodes that count the frames they receive."""

import asyncio
import socket
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sac_fleet.api import Fleet
from sac_fleet.frontends.gateway.http import make_app
from sac_fleet.frontends.gateway.service import Gateway
from sac_fleet.remote.host_link import HostLink
from sac_fleet.remote.node_client import NodeClient
from sac_fleet.sync import SyncFleet
from sac_node.protocol.errors import AgentNotFound
from sac_node.rpc import RpcPeer
from tests.fixtures.gateway import keyring_with

TOKEN = "t" * 43


class ScriptedNode:
    """A node daemon running `agents`; every request it receives is kept in `methods`."""

    def __init__(self, name, agents=("a1",)):
        self.name, self.agents, self.methods, self.turns = name, set(agents), [], {}
        self._peers = []

    def _known(self, agent):
        if agent not in self.agents:
            raise AgentNotFound("no agent named %s on %s" % (agent, self.name))

    def handlers(self):
        async def submit(peer, p):
            self._known(p["agent"])
            tid = "%s.%016x" % (p["agent"], len(self.turns) + 1)
            self.turns[tid] = {"id": tid, "status": "completed" if p.get("wait_s") else "pending",
                               "text": p["text"], "reply": "echo: " + p["text"]}
            return {"turn": self.turns[tid], "created": True}

        async def wait(peer, p):
            self.turns[p["id"]]["status"] = "completed"
            return self.turns[p["id"]]

        async def subscribe(peer, p):
            peer.notify("event", {"sub": p["sub"], "record": {"seq": 1, "event": {
                "type": "sac", "subtype": "turn_ended", "status": "completed"}}})
            return {}

        async def listing(peer, p):
            return [{"name": a, "state": "idle"} for a in sorted(self.agents)]

        async def status(peer, p):
            self._known(p["name"])
            return {"name": p["name"], "state": "idle"}

        async def nothing(peer, p):
            return {}

        table = {"turns.submit": submit, "turns.wait": wait, "events.subscribe": subscribe,
                 "events.unsubscribe": nothing, "agents.list": listing, "agents.status": status}

        def counted(method, fn):
            async def call(peer, p):
                self.methods.append(method)
                return await fn(peer, p)
            return call
        return {method: counted(method, fn) for method, fn in table.items()}

    async def client(self):
        a, b = socket.socketpair()
        near = await asyncio.open_connection(sock=a)
        far = await asyncio.open_connection(sock=b)
        peer = RpcPeer(far[0], far[1], self.handlers(), name=self.name)
        self._peers.append(asyncio.ensure_future(peer.run()))
        return NodeClient(*near, host=self.name)


async def this_machine(node):
    fleet = Fleet()
    fleet.links = {"local": HostLink("local", client=await node.client())}
    return fleet


async def _link(node):
    return HostLink(node.name, client=await node.client())


async def inventory_of(*nodes):
    fleet = Fleet(inventory="inv.yaml")
    fleet.inventory = SimpleNamespace(path="inv.yaml", host=lambda name: SimpleNamespace(transport="ssh"))
    fleet.links = {node.name: HostLink(node.name, client=await node.client()) for node in nodes}
    return fleet


async def test_a_turn_through_fleet_is_one_request():
    node = ScriptedNode("local")
    fleet = await this_machine(node)
    turn = await fleet.send("a1", "hi")
    assert turn["reply"] == "echo: hi" and turn["prompt"] == "hi"
    assert node.methods == ["turns.submit"]
    await fleet.close()


async def test_a_streamed_turn_submits_then_follows_and_waits_at_once():
    node = ScriptedNode("local")
    fleet = await this_machine(node)
    seen = []
    turn = await fleet.send("a1", "hi", on_record=seen.append)
    assert turn["status"] == "completed" and [r["seq"] for r in seen] == [1]
    assert node.methods[0] == "turns.submit" and sorted(node.methods[1:3]) == ["events.subscribe", "turns.wait"]
    await fleet.close()


def test_a_turn_through_sync_fleet_is_one_request():
    node = ScriptedNode("local")
    with SyncFleet() as sync:
        sync.fleet.links = {"local": sync._run(_link(node))}
        assert sync.send("a1", "hi")["reply"] == "echo: hi"
    assert node.methods == ["turns.submit"]


async def test_a_turn_through_the_gateway_is_one_request(tmp_path):
    node = ScriptedNode("local")
    fleet = await this_machine(node)
    keyring = keyring_with(tmp_path, {TOKEN: ("test", ["admin"])})
    async with TestClient(TestServer(make_app(Gateway(fleet), keyring))) as client:
        resp = await client.post("/v1/turn", json={"agent": "a1", "prompt": "hi"},
                                 headers={"Authorization": "Bearer " + TOKEN})
        assert resp.status == 200 and (await resp.json())["reply"] == "echo: hi"
    assert node.methods == ["turns.submit"]


async def test_routing_asks_the_hosts_once_then_goes_straight_to_the_agents_host():
    h1, h2 = ScriptedNode("h1", ()), ScriptedNode("h2", ("a1",))
    fleet = await inventory_of(h1, h2)
    await fleet.send("a1", "one")
    assert h1.methods == ["agents.list"] and h2.methods == ["agents.list", "turns.submit"]
    for _ in range(3):
        await fleet.send("a1", "again")
    assert h1.methods == ["agents.list"] and h2.methods.count("agents.list") == 1
    assert await fleet.host_of("a1") == "h2"
    await fleet.close()


async def test_an_agent_that_moved_is_found_where_it_runs_now():
    h1, h2 = ScriptedNode("h1", ()), ScriptedNode("h2", ("a1",))
    fleet = await inventory_of(h1, h2)
    await fleet.send("a1", "one")
    h2.agents.clear()
    h1.agents.add("a1")  # deleted on h2 and started on h1 by someone else
    assert (await fleet.send("a1", "two"))["id"].startswith("a1.")
    assert h1.methods[-1] == "turns.submit" and await fleet.host_of("a1") == "h1"
    await fleet.close()


async def test_an_agent_no_host_runs_is_not_found_naming_the_inventory():
    fleet = await inventory_of(ScriptedNode("h1", ()))
    with pytest.raises(AgentNotFound, match="no agent named ghost runs on any host of inv.yaml"):
        await fleet.send("ghost", "hi")
    await fleet.close()
