"""The gateway app in-process over a scripted node: status codes, the error table, routes vs /openapi.json."""

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sac_fleet.frontends.gateway.http import make_app
from sac_fleet.frontends.gateway.openapi import document
from sac_fleet.frontends.gateway.schema import ERROR_TABLE, error_codes
from sac_fleet.frontends.gateway.service import Gateway
from sac_node.protocol.errors import AgentNotRunning, HostUnreachable, SacError, TurnTimeout
from tests.fixtures.gateway import OneNodeFleet, keyring_with

TOKEN = "t" * 43
AUTH = {"Authorization": "Bearer " + TOKEN}


class ScriptedNode:
    """A node whose turns end as the test says (`finish`), with idempotency keys like the real journal."""

    host = "local"

    def __init__(self):
        self.turns, self.keys, self.finish, self.fail = {}, {}, "completed", None

    async def submit(self, agent, text, key=None, wait_s=None):
        """Like the node: accept (or find by key), and with wait_s also wait, in one call."""
        if self.fail:
            raise self.fail
        if key in self.keys:
            turn, created = self.turns[self.keys[key]], False
        else:
            tid = "%s.%016x" % (agent, len(self.turns) + 1)
            self.turns[tid] = turn = {"id": tid, "status": "pending", "text": text, "key": key}
            if key:
                self.keys[key] = tid
            created = True
        if wait_s:
            turn = await self.wait_turn(turn["id"], wait_s)
        return {"turn": turn, "created": created}

    async def get_turn(self, tid):
        return self.turns[tid]

    async def wait_turn(self, tid, timeout):
        turn = self.turns[tid]
        turn["status"] = self.finish
        if self.finish == "completed":
            turn["reply"] = "echo: " + turn["text"]
        return turn


@pytest.fixture
async def client(tmp_path):
    fleet = OneNodeFleet(ScriptedNode())
    keyring = keyring_with(tmp_path, {TOKEN: ("test", ["admin"])})
    async with TestClient(TestServer(make_app(Gateway(fleet), keyring))) as c:
        c.node = fleet.client
        yield c


async def test_turn_answers_200_202_or_504_by_how_the_wait_ends(client):
    resp = await client.post("/v1/turn", json={"agent": "a1", "text": "x"}, headers=AUTH)
    assert resp.status == 200 and (await resp.json())["text"] == "echo: x"
    resp = await client.post("/v1/turn", json={"agent": "a1", "text": "x", "wait": False}, headers=AUTH)
    assert resp.status == 202 and (await resp.json())["status"] == "accepted"
    client.node.finish = "running"
    resp = await client.post("/agents/a1/turn", json={"text": "y", "timeout_s": 0.1}, headers=AUTH)
    body = await resp.json()
    assert resp.status == 504 and body["status"] == "running" and body["turn_id"] in body["message"]


async def test_an_idempotency_key_names_one_turn(client):
    body = {"agent": "a1", "text": "x", "wait": False, "idempotency_key": "k1"}
    first = await (await client.post("/v1/turn", json=body, headers=AUTH)).json()
    second = await (await client.post("/v1/turn", json=body, headers=AUTH)).json()
    assert first["turn_id"] == second["turn_id"] and (first["created"], second["created"]) == (True, False)


@pytest.mark.parametrize("exc, status, rpc_code", [
    (AgentNotRunning("a1 is stopped"), 409, -32013), (HostUnreachable("h1: refused"), 502, -32020),
    (TurnTimeout("slow"), 504, -32015), (SacError("odd"), 500, -32603),
])
async def test_node_errors_map_through_the_one_table(client, exc, status, rpc_code):
    client.node.fail = exc
    resp = await client.post("/v1/turn", json={"agent": "a1", "text": "x"}, headers=AUTH)
    assert resp.status == status and (await resp.json())["error"] == {"code": exc.code, "message": exc.message,
                                                                      "data": {}}
    rpc = {"jsonrpc": "2.0", "id": 7, "method": "message/send",
           "params": {"message": {"role": "user", "messageId": "m", "parts": [{"kind": "text", "text": "x"}]}}}
    answer = await (await client.post("/a2a/a1", json=rpc, headers=AUTH)).json()
    assert answer["id"] == 7 and answer["error"]["code"] == rpc_code and answer["error"]["data"]["sac_code"] == exc.code


def test_every_error_class_has_a_row_and_subclasses_come_first():
    classes = [row[0] for row in ERROR_TABLE]
    for i, cls in enumerate(classes):
        assert not any(issubclass(later, cls) and later is not cls for later in classes[i + 1:]), cls
    assert error_codes(TurnTimeout("x")) == (504, -32015)


async def test_the_token_is_checked_before_routing(client):
    assert (await client.get("/no/such/route")).status == 401
    resp = await client.get("/no/such/route", headers=AUTH)
    assert resp.status == 404 and "openapi.json" in (await resp.json())["error"]["message"]
    assert (await client.get("/v1/health")).status == 200


async def test_openapi_lists_exactly_the_routes_served(client):
    served = {r.resource.canonical for r in client.server.app.router.routes()}
    assert served == set(document()["paths"])


async def test_a_turn_is_a_prompt_and_a_reply_and_text_or_input_still_name_the_prompt(client):
    for field in ("prompt", "text", "input"):
        resp = await client.post("/v1/turn", json={"agent": "a1", field: "p"}, headers=AUTH)
        turn = await resp.json()
        assert resp.status == 200 and (turn["prompt"], turn["reply"]) == ("p", "echo: p"), (field, turn)
    resp = await client.post("/v1/turn", json={"agent": "a1", "message": "p"}, headers=AUTH)
    assert resp.status == 400 and "use `prompt`" in (await resp.json())["error"]["message"]
    schema = document()["paths"]["/v1/turn"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "prompt" in str(schema) or "prompt" in str(document()["components"])
