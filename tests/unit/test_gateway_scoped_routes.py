"""Each gateway route asks the token's scopes for what it does: reading, following one agent, sending."""

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sac_fleet.frontends.gateway.http import make_app
from sac_fleet.frontends.gateway.service import Gateway
from sac_node.protocol.errors import AgentNotFound
from tests.fixtures.gateway import OneNodeFleet, keyring_with

LABELS = {"lead": {"role": "lead"}, "w1": {"role": "worker"}}
TOKENS = {"admin-token-admin-token": ("ops", ["admin"]), "read-token-read-token": ("dash", ["read"]),
          "send-token-send-token": ("ci", ["send:role=worker"]), "name-token-name-token": ("one", ["send:lead"])}


class LabelledNode:
    """Two agents, `lead` and `w1`, whose turns echo at once; counts its calls."""

    host = "local"

    def __init__(self):
        self.calls = []

    async def agent_status(self, name):
        self.calls.append(("status", name))
        if name not in LABELS:
            raise AgentNotFound("no agent named %s" % name)
        return {"name": name, "state": "idle", "labels": LABELS[name]}

    async def list_agents(self):
        return [{"name": n, "state": "idle", "labels": l} for n, l in LABELS.items()]

    async def submit(self, agent, text, key=None, wait_s=None):
        self.calls.append(("submit", agent))
        return {"turn": {"id": "%s.%016x" % (agent, 1), "status": "completed", "text": text, "reply": "ok"},
                "created": True}

    async def get_turn(self, tid, wait=None):
        return {"id": tid, "status": "completed", "text": "t", "reply": "ok"}

    async def cancel(self, tid):
        return await self.get_turn(tid)


@pytest.fixture
async def client(tmp_path):
    fleet = OneNodeFleet(LabelledNode())
    async with TestClient(TestServer(make_app(Gateway(fleet), keyring_with(tmp_path, TOKENS)))) as c:
        c.node = fleet.client
        yield c


async def ask(client, token, method, path, body=None):
    resp = await client.request(method, path, json=body, headers={"Authorization": "Bearer " + token})
    return resp.status, await resp.json()


async def test_a_send_token_for_the_workers_cannot_send_to_the_lead(client):
    status, body = await ask(client, "send-token-send-token", "POST", "/v1/turn", {"agent": "lead", "prompt": "hi"})
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert "token ci may not send to agent lead" in body["error"]["message"]
    assert body["error"]["data"] == {"token": "ci", "needed": "send:lead"}
    assert "\n" not in body["error"]["message"]
    assert ("submit", "lead") not in client.node.calls  # nothing reached the lead
    status, body = await ask(client, "send-token-send-token", "POST", "/agents/lead/turn", {"prompt": "hi"})
    assert status == 403 and ("submit", "lead") not in client.node.calls
    status, body = await ask(client, "send-token-send-token", "POST", "/v1/turn", {"agent": "w1", "prompt": "hi"})
    assert status == 200 and body["reply"] == "ok" and ("submit", "w1") in client.node.calls


@pytest.mark.parametrize("token, method, path, allowed", [
    ("read-token-read-token", "GET", "/v1/status", True),
    ("read-token-read-token", "GET", "/v1/agents", True),
    ("read-token-read-token", "GET", "/v1/agents/lead", True),
    ("read-token-read-token", "GET", "/v1/turns/lead.0000000000000001", True),
    ("read-token-read-token", "GET", "/a2a/lead/.well-known/agent-card.json", True),
    ("read-token-read-token", "POST", "/v1/turns/lead.0000000000000001/cancel", False),
    ("send-token-send-token", "GET", "/v1/status", False),
    ("send-token-send-token", "GET", "/v1/agents", False),
    ("send-token-send-token", "GET", "/v1/agents/w1", True),
    ("send-token-send-token", "GET", "/v1/agents/lead", False),
    ("send-token-send-token", "GET", "/v1/turns/w1.0000000000000001", True),
    ("send-token-send-token", "GET", "/v1/turns/lead.0000000000000001", False),
    ("send-token-send-token", "POST", "/v1/turns/w1.0000000000000001/cancel", True),
    ("send-token-send-token", "POST", "/v1/turns/lead.0000000000000001/cancel", False),
    ("send-token-send-token", "GET", "/v1/agents/lead/events", False),
    ("send-token-send-token", "GET", "/a2a/lead/.well-known/agent.json", False),
    ("send-token-send-token", "GET", "/v1/agents/ghost", False),  # no such agent: no label matches
    ("name-token-name-token", "GET", "/v1/agents/lead", True),
    ("name-token-name-token", "GET", "/v1/agents/w1", False),
    ("admin-token-admin-token", "GET", "/v1/status", True),
    ("admin-token-admin-token", "POST", "/v1/turns/lead.0000000000000001/cancel", True),
])
async def test_each_route_asks_for_its_scope(client, token, method, path, allowed):
    status, body = await ask(client, token, method, path)
    assert (status != 403) == allowed, (status, body)
    if not allowed:
        assert "needs scope" in body["error"]["message"]


async def test_a2a_methods_are_scoped_and_a_refusal_is_http_403(client):
    def rpc(method, params):
        return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}

    send = rpc("message/send", {"message": {"kind": "message", "role": "user", "messageId": "m1",
                                            "parts": [{"kind": "text", "text": "hi"}]}})
    status, body = await ask(client, "read-token-read-token", "POST", "/a2a/w1", send)
    assert status == 403 and "send:w1" in body["error"]["message"]
    status, body = await ask(client, "send-token-send-token", "POST", "/a2a/lead", send)
    assert status == 403 and ("submit", "lead") not in client.node.calls
    status, body = await ask(client, "send-token-send-token", "POST", "/a2a/w1", send)
    assert status == 200 and body["result"]["id"] == "w1.0000000000000001"
    status, body = await ask(client, "read-token-read-token", "POST", "/a2a/lead",
                             rpc("tasks/get", {"id": "lead.0000000000000001"}))
    assert status == 200 and body["result"]["id"] == "lead.0000000000000001"


async def test_an_admin_or_named_send_costs_no_extra_call(client):
    await ask(client, "admin-token-admin-token", "POST", "/v1/turn", {"agent": "lead", "prompt": "hi"})
    await ask(client, "name-token-name-token", "POST", "/v1/turn", {"agent": "lead", "prompt": "hi"})
    assert client.node.calls == [("submit", "lead"), ("submit", "lead")]
