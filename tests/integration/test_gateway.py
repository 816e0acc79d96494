"""`sac fleet serve`: a real gateway process on a free loopback port, real agents on the built-in provider.

One gateway and one agent serve the whole module (local mode: this machine's
node); the last test puts the gateway in front of a real sshd host.
"""

import asyncio
import io
import json
import time
import uuid

import aiohttp
import pytest
import yaml

from sac_fleet.provider.server import ProviderServer
from tests.fixtures.agents import SacEnv
from tests.fixtures.gateway import GatewayProcess
from tests.fixtures.tools import require

pytestmark = pytest.mark.integration

SCRIPT = {"rules": [
    {"match": "very slow", "reply": "you will not see this", "fault": {"chunk_delay": 3.0}},
    {"match": "slow", "reply": "slowly done", "fault": {"chunk_delay": 0.5}},
]}


@pytest.fixture(scope="module")
def gw(tmp_path_factory, claude_bin, bwrap_bin):
    root = tmp_path_factory.mktemp("gateway")
    provider = ProviderServer(SCRIPT).start()
    env = SacEnv(root, provider.url, claude_bin)
    spec = env.write_spec("a1") / "spec.yaml"
    doc = yaml.safe_load(spec.read_text())
    doc["metadata"]["labels"] = {"team": "docs"}
    spec.write_text(yaml.safe_dump(doc))
    gateway = None
    try:
        env.sac("agents", "start", spec.parent)
        gateway = GatewayProcess(env.env)
        gateway.env = env
        yield gateway
        assert gateway.stop() == 0
        assert "Traceback" not in gateway.log(), gateway.log()
    finally:
        if gateway is not None:
            gateway.stop()
        env.cleanup()
        provider.stop()


async def call(gw, method, path, body=None, token=True, headers=None, data=None):
    """(status, JSON body) of one request to the gateway."""
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = "Bearer %s" % (gw.token if token is True else token)
    if body is not None:
        data, body = io.BytesIO(json.dumps(body).encode()), None
        hdrs["Content-Type"] = "application/json"
    async with aiohttp.ClientSession() as session:
        async with session.request(method, gw.url + path, data=data, headers=hdrs) as resp:
            return resp.status, await resp.json(content_type=None), resp.headers


async def sse(resp, until):
    """(id, data) of each SSE event of `resp` until `until(data)` is true."""
    events, event = [], {}
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 30)).decode()
        if not line:
            return events
        line = line.rstrip("\n")
        if line.startswith("id: "):
            event["id"] = int(line[4:])
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])
        elif not line and "data" in event:
            events.append((event.get("id"), event["data"]))
            if until(event["data"]):
                return events
            event = {}


def turn_ended(turn_id):
    def ended(rec):
        event = rec["event"]
        return rec["turn"] == turn_id and event.get("type") == "sac" and event.get("subtype") == "turn_ended"
    return ended


async def test_turn_round_trip_status_and_openapi(gw):
    status, turn, _ = await call(gw, "POST", "/v1/turn", {"agent": "a1", "text": "round trip"})
    assert status == 200 and turn["status"] == "completed" and turn["text"] == "echo: round trip"
    assert turn["session_id"] and turn["usage"]["output_tokens"] > 0 and turn["timings"]["run_s"] >= 0
    assert turn["turn_id"].startswith("a1.")
    status, again, _ = await call(gw, "GET", "/v1/turns/" + turn["turn_id"])
    assert status == 200 and again["text"] == "echo: round trip" and again["input"] == "round trip"
    status, by_path, _ = await call(gw, "POST", "/agents/a1/turn", {"text": "by path"})
    assert status == 200 and by_path["text"] == "echo: by path" and by_path["session_id"] == turn["session_id"]

    status, agents, _ = await call(gw, "GET", "/v1/agents")
    assert status == 200 and [(a["name"], a["host"]) for a in agents] == [("a1", "local")]
    status, one, _ = await call(gw, "GET", "/v1/agents/a1")
    assert status == 200 and one["state"] == "idle" and one["labels"] == {"team": "docs"}
    status, listing, _ = await call(gw, "GET", "/v1/status")
    assert status == 200 and listing[0]["name"] == "a1" and listing[0]["turns"]["completed"] >= 2

    status, doc, _ = await call(gw, "GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    for path in ("/v1/health", "/v1/status", "/v1/agents", "/v1/agents/{name}", "/v1/turn", "/agents/{name}/turn",
                 "/v1/turns/{turn_id}", "/v1/turns/{turn_id}/cancel", "/v1/agents/{name}/events",
                 "/a2a/{name}/.well-known/agent-card.json", "/a2a/{name}"):
        assert path in doc["paths"], path


async def test_auth_token_file_and_public_health(gw):
    status, health, _ = await call(gw, "GET", "/v1/health", token=False)
    assert status == 200 and health["ok"] is True and health["mode"] == "local"
    for path in ("/v1/status", "/v1/agents", "/openapi.json", "/a2a/a1/.well-known/agent-card.json", "/v1/nope"):
        status, body, headers = await call(gw, "GET", path, token=False)
        assert status == 401 and body["error"]["code"] == "unauthorized", path
        assert headers["WWW-Authenticate"].startswith("Bearer")
        status, body, _ = await call(gw, "GET", path, token="x" * 43)  # a token the gateway does not know
        assert status == 401 and body["error"]["code"] == "unauthorized", path
    status, _, _ = await call(gw, "POST", "/v1/turn", {"agent": "a1", "text": "no"}, token=False)
    assert status == 401

    token_file = gw.env.home / "gateway.token"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert token_file.read_text().strip() == gw.token and len(gw.token) >= 43  # 256 bits, urlsafe base64
    assert any(str(token_file) in line for line in gw.lines)
    assert gw.token not in gw.log() and '"GET /v1/status HTTP/1.1" 401' in gw.log()

    # Without --print-token the value is not shown; the existing file is reused; SIGTERM stops it
    # promptly even with an SSE stream open.
    second = GatewayProcess(gw.env.env, print_token=False)
    try:
        assert not any(gw.token in line for line in second.lines)
        assert any(str(token_file) in line for line in second.lines)
        second.token = gw.token
        status, _, _ = await call(second, "GET", "/v1/agents")
        assert status == 200
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer " + gw.token}) as session:
            async with session.get(second.url + "/v1/agents/a1/events") as stream:
                assert stream.status == 200
                started = time.monotonic()
                assert second.stop() == 0 and time.monotonic() - started < 8
        assert "Traceback" not in second.log()
    finally:
        second.stop()


async def test_same_idempotency_key_runs_one_turn(gw):
    key = "order-%s" % uuid.uuid4().hex
    before = (await call(gw, "GET", "/v1/agents/a1"))[1]["turns"]
    s1, first, _ = await call(gw, "POST", "/v1/turn", {"agent": "a1", "text": "only once", "wait": False,
                                                       "idempotency_key": key})
    s2, second, _ = await call(gw, "POST", "/v1/turn", {"agent": "a1", "text": "only once", "wait": False,
                                                        "idempotency_key": key})
    assert (s1, s2) == (202, 202) and first["status"] == "accepted"
    assert first["turn_id"] == second["turn_id"] and first["created"] and not second["created"]
    s3, done, _ = await call(gw, "POST", "/agents/a1/turn", {"text": "only once", "idempotency_key": key})
    assert s3 == 200 and done["turn_id"] == first["turn_id"] and done["text"] == "echo: only once"
    after = (await call(gw, "GET", "/v1/agents/a1"))[1]["turns"]
    assert after["completed"] == before["completed"] + 1


async def test_wait_ends_with_504_then_the_turn_is_polled_to_its_end(gw):
    started = time.monotonic()
    status, body, _ = await call(gw, "POST", "/v1/turn", {"agent": "a1", "text": "slow please", "timeout_s": 1})
    assert status == 504 and body["status"] in ("pending", "running") and time.monotonic() - started < 3
    assert "/v1/turns/%s" % body["turn_id"] in body["message"]
    for _ in range(100):
        status, turn, _ = await call(gw, "GET", "/v1/turns/" + body["turn_id"])
        if turn["status"] not in ("pending", "running"):
            break
        await asyncio.sleep(0.2)
    assert status == 200 and turn["status"] == "completed" and turn["text"] == "slowly done"


async def test_cancel_a_running_turn(gw):
    status, accepted, _ = await call(gw, "POST", "/v1/turn", {"agent": "a1", "text": "very slow", "wait": False})
    assert status == 202
    turn_id = accepted["turn_id"]
    for _ in range(100):
        if (await call(gw, "GET", "/v1/turns/" + turn_id))[1]["status"] == "running":
            break
        await asyncio.sleep(0.1)
    status, cancelled, _ = await call(gw, "POST", "/v1/turns/%s/cancel" % turn_id)
    assert status == 200 and cancelled["status"] == "cancelled" and cancelled["text"] is None
    assert (await call(gw, "GET", "/v1/turns/" + turn_id))[1]["status"] == "cancelled"
    status, after, _ = await call(gw, "POST", "/v1/turn", {"agent": "a1", "text": "after the cancel"})
    assert status == 200 and after["text"] == "echo: after the cancel"


@pytest.mark.parametrize("body, status, says", [
    ({"agent": "a1", "text": "x", "colour": "red"}, 400, "unknown field `colour`"),
    ({"agent": "a1", "message": "x"}, 400, "unknown field `message`: use `prompt`"),
    ({"agent": "a1", "text": "x", "wait": "yes"}, 400, "field `wait`"),
    ({"agent": "a1", "text": "x", "timeout_s": "10"}, 400, "field `timeout_s`"),
    ({"agent": "a1", "text": 5}, 400, "field `text`"),
    ({"text": "x"}, 400, "missing field `agent`"),
    ({"agent": "nobody", "text": "x"}, 404, "no agent named nobody"),
    ({"agent": "a1", "text": "x" * (2 << 20)}, 413, "limit"),
])
async def test_bad_bodies_are_refused_naming_the_field(gw, body, status, says):
    got, answer, _ = await call(gw, "POST", "/v1/turn", body)
    assert got == status and says in answer["error"]["message"], answer


async def test_bad_requests_that_are_not_fields(gw):
    status, answer, _ = await call(gw, "POST", "/v1/turn", data=b"{not json",
                                   headers={"Content-Type": "application/json"})
    assert status == 400 and "not JSON" in answer["error"]["message"]
    status, answer, _ = await call(gw, "POST", "/v1/turn", body=[{"agent": "a1"}])
    assert status == 400 and "JSON object" in answer["error"]["message"]
    status, answer, _ = await call(gw, "GET", "/v1/turns/a1.nothex")
    assert status == 404 and answer["error"]["code"] == "turn_not_found"
    status, answer, _ = await call(gw, "GET", "/v1/turns/a1.0123456789abcdef")
    assert status == 404 and answer["error"]["code"] == "turn_not_found"
    status, answer, _ = await call(gw, "GET", "/v1/agents/a1/events", headers={"Last-Event-ID": "yesterday"})
    assert status == 400 and "Last-Event-ID" in answer["error"]["message"]


async def test_slow_clients_do_not_hold_up_the_others(gw):
    """Clients that send their body a byte at a time, or never finish it, cost only their own connection."""
    host, port = gw.url.split("//")[1].split(":")
    slow = []
    for _ in range(20):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(("POST /v1/turn HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{" % gw.token).encode())
        await writer.drain()
        slow.append(writer)
    try:
        started = time.monotonic()
        status, turn, _ = await call(gw, "POST", "/v1/turn", {"agent": "a1", "text": "past the lagging ones"})
        assert status == 200 and turn["text"] == "echo: past the lagging ones"
        assert time.monotonic() - started < 30
        assert (await call(gw, "GET", "/v1/health", token=False))[0] == 200
    finally:
        for writer in slow:
            writer.close()


async def test_sse_transcript_streams_and_resumes_with_last_event_id(gw):
    headers = {"Authorization": "Bearer " + gw.token}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(gw.url + "/v1/agents/a1/events") as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
            _, turn, _ = await call(gw, "POST", "/v1/turn", {"agent": "a1", "text": "stream me", "wait": False})
            live = await sse(resp, turn_ended(turn["turn_id"]))
        mine = [(i, r) for i, r in live if r["turn"] == turn["turn_id"]]
        assert all(i == r["seq"] for i, r in live) and [i for i, _ in live] == sorted(i for i, _ in live)
        kinds = [r["event"].get("subtype") or r["event"]["type"] for _, r in mine]
        assert kinds[0] == "turn_accepted" and "turn_started" in kinds and kinds[-1] == "turn_ended"
        assert any(r["event"]["type"] == "assistant" and "echo: stream me" in json.dumps(r["event"]) for _, r in mine)

        resume_after = mine[1][0]
        async with session.get(gw.url + "/v1/agents/a1/events", headers={"Last-Event-ID": str(resume_after)}) as resp:
            resumed = await sse(resp, turn_ended(turn["turn_id"]))
        assert [i for i, _ in resumed] == [i for i, _ in mine if i > resume_after]
        async with session.get(gw.url + "/v1/agents/a1/events?turn=%s&from_seq=0" % turn["turn_id"]) as resp:
            whole = await sse(resp, lambda rec: False)  # a stream of one turn ends with it
        assert [r for _, r in whole] == [r for _, r in mine]


async def rpc(gw, method, params, rpc_id=1):
    status, body, _ = await call(gw, "POST", "/a2a/a1", {"jsonrpc": "2.0", "id": rpc_id, "method": method,
                                                         "params": params})
    assert status == 200 and body["jsonrpc"] == "2.0" and body["id"] == rpc_id
    return body


def a2a_message(text, v1=False, message_id=None, **extra):
    part = {"text": text} if v1 else {"kind": "text", "text": text}
    msg = {"role": "ROLE_USER" if v1 else "user", "parts": [part], "messageId": message_id or uuid.uuid4().hex}
    if not v1:
        msg["kind"] = "message"
    return dict(msg, **extra)


async def test_a2a_card_and_json_rpc_in_both_dialects(gw):
    status, card, _ = await call(gw, "GET", "/a2a/a1/.well-known/agent-card.json")
    assert status == 200 and card["name"] == "a1" and card["capabilities"]["streaming"] is True
    assert {i["protocolVersion"] for i in card["supportedInterfaces"]} == {"1.0", "0.3"}
    assert all(i["url"] == gw.url + "/a2a/a1" for i in card["supportedInterfaces"])
    assert any(s["id"] == "label-team" and "docs" in s["tags"] for s in card["skills"])
    status, old_card, _ = await call(gw, "GET", "/a2a/a1/.well-known/agent.json")
    assert old_card["url"] == gw.url + "/a2a/a1" and old_card["protocolVersion"].startswith("0.3")
    assert (await call(gw, "GET", "/a2a/nobody/.well-known/agent-card.json"))[0] == 404

    message_id = uuid.uuid4().hex
    task = (await rpc(gw, "message/send", {"message": a2a_message("a2a hello", message_id=message_id)}))["result"]
    assert task["kind"] == "task" and task["status"]["state"] == "completed"
    assert task["artifacts"][0]["parts"] == [{"kind": "text", "text": "echo: a2a hello"}]
    assert task["status"]["message"]["role"] == "agent" and task["history"][0]["messageId"] == message_id
    retried = (await rpc(gw, "message/send", {"message": a2a_message("a2a hello", message_id=message_id)}))["result"]
    assert retried["id"] == task["id"]  # the same message never runs twice
    got = (await rpc(gw, "tasks/get", {"id": task["id"], "historyLength": 1}))["result"]
    assert got["id"] == task["id"] and len(got["history"]) == 1 and got["history"][0]["role"] == "agent"

    v1 = (await rpc(gw, "SendMessage", {"message": a2a_message("a2a one", v1=True, contextId="ctx-7")}))["result"]
    assert v1["task"]["status"]["state"] == "TASK_STATE_COMPLETED" and v1["task"]["contextId"] == "ctx-7"
    assert v1["task"]["artifacts"][0]["parts"] == [{"text": "echo: a2a one"}] and "kind" not in v1["task"]
    got = (await rpc(gw, "GetTask", {"id": v1["task"]["id"]}))["result"]
    assert got["status"]["message"]["role"] == "ROLE_AGENT" and got["contextId"] == "ctx-7"

    errors = {
        "CancelTask": (await rpc(gw, "CancelTask", {"id": v1["task"]["id"]}))["error"]["code"],
        "tasks/get": (await rpc(gw, "tasks/get", {"id": "a1.0123456789abcdef"}))["error"]["code"],
        "tasks/list": (await rpc(gw, "tasks/list", {}))["error"]["code"],
        "file part": (await rpc(gw, "message/send", {"message": dict(a2a_message("x"), parts=[
            {"kind": "file", "file": {"uri": "file:///etc/passwd"}}])}))["error"]["code"],
        "no message": (await rpc(gw, "message/send", {}))["error"]["code"],
    }
    assert errors == {"CancelTask": -32002, "tasks/get": -32001, "tasks/list": -32601, "file part": -32005,
                      "no message": -32602}


async def test_a2a_message_stream_is_sse_of_task_updates(gw):
    body = {"jsonrpc": "2.0", "id": "s1", "method": "message/stream",
            "params": {"message": a2a_message("slow stream")}}
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer " + gw.token}) as session:
        async with session.post(gw.url + "/a2a/a1", json=body) as resp:
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            events = [d["result"] for _, d in await sse(resp, lambda d: d["result"].get("final"))]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "task" and events[0]["status"]["state"] in ("submitted", "working")
    assert "status-update" in kinds[1:-1] and kinds[-2:] == ["artifact-update", "status-update"]
    assert events[-1]["status"]["state"] == "completed" and events[-1]["final"] is True
    assert events[-2]["artifact"]["parts"][0]["text"] == "slowly done"
    assert all(e.get("taskId", e.get("id")) == events[0]["id"] for e in events)


async def test_off_the_shelf_a2a_client(gw):
    try:
        import httpx
        from a2a.client import ClientConfig, ClientFactory
        from a2a.types.a2a_pb2 import CancelTaskRequest, GetTaskRequest, Message, Part, Role, SendMessageRequest
        from a2a.utils.errors import TaskNotCancelableError
    except ImportError:
        require("a2a-sdk", "pip install -e '.[test]' (the A2A client library the gateway is tested with)")
    results = {}
    for streaming in (True, False):
        for card_path in (None, "/.well-known/agent.json"):  # A2A 1.0, then the 0.3 card and transport
            async with httpx.AsyncClient(headers={"Authorization": "Bearer " + gw.token}, timeout=60) as http:
                factory = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming))
                client = await factory.create_from_url(gw.url + "/a2a/a1", relative_card_path=card_path)
                text = "sdk %s %s" % ("stream" if streaming else "send", card_path or "1.0")
                msg = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text=text)])
                events = [ev async for ev in client.send_message(SendMessageRequest(message=msg))]
                last = events[-1]
                task_id = last.task.id if last.HasField("task") else last.status_update.task_id
                task = await client.get_task(GetTaskRequest(id=task_id))
                with pytest.raises(TaskNotCancelableError):  # it is completed
                    await client.cancel_task(CancelTaskRequest(id=task_id))
                results[(streaming, card_path)] = (type(client._transport).__name__, task.artifacts[0].parts[0].text)
                await client.close()
    old = "/.well-known/agent.json"
    assert results == {
        (True, None): ("JsonRpcTransport", "echo: sdk stream 1.0"),
        (True, old): ("CompatJsonRpcTransport", "echo: sdk stream " + old),
        (False, None): ("JsonRpcTransport", "echo: sdk send 1.0"),
        (False, old): ("CompatJsonRpcTransport", "echo: sdk send " + old),
    }


async def test_gateway_in_front_of_an_ssh_host(fleet_env):
    host, = fleet_env.sshd.start(1)
    fleet_env.add_host(host, labels={"site": "lab"})
    fleet_env.add_agent("remote1", {"hosts": [host.name]})
    inventory = fleet_env.write()
    assert fleet_env.sac_json("fleet", "up", inventory)["ok"]
    gateway = GatewayProcess(fleet_env.env, inventory)
    try:
        assert any(l.startswith("host %s" % host.name) and " ok" in l for l in gateway.lines), gateway.lines
        status, turn, _ = await call(gateway, "POST", "/v1/turn", {"agent": "remote1", "text": "over ssh"})
        assert status == 200 and turn["text"] == "echo: over ssh" and turn["turn_id"].startswith("remote1.")
        status, one, _ = await call(gateway, "GET", "/v1/agents/remote1")
        assert status == 200 and one["host"] == host.name
        status, report, _ = await call(gateway, "GET", "/v1/status")
        cli = fleet_env.sac_json("fleet", "status", inventory)
        assert status == 200 and set(report) == set(cli)
        assert [(h["name"], h["state"]) for h in report["hosts"]] == [(h["name"], h["state"]) for h in cli["hosts"]]
        assert [(a["name"], a["host"], a["turns"]) for a in report["agents"]] == \
            [(a["name"], a["host"], a["turns"]) for a in cli["agents"]]
        status, card, _ = await call(gateway, "GET", "/a2a/remote1/.well-known/agent-card.json")
        assert status == 200 and host.name in card["description"]
        body = await rpc_to(gateway, "remote1", "message/send", {"message": a2a_message("a2a over ssh")})
        assert body["result"]["artifacts"][0]["parts"][0]["text"] == "echo: a2a over ssh"
        assert (await call(gateway, "POST", "/v1/turn", {"agent": "ghost", "text": "x"}))[0] == 404
    finally:
        assert gateway.stop() == 0


async def rpc_to(gateway, agent, method, params):
    status, body, _ = await call(gateway, "POST", "/a2a/%s" % agent, {"jsonrpc": "2.0", "id": 1, "method": method,
                                                                       "params": params})
    assert status == 200, body
    return body


async def test_cli_send_goes_through_a_running_gateway(fleet_env):
    host, = fleet_env.sshd.start(1)
    fleet_env.add_host(host)
    fleet_env.add_agent("remote2", {"hosts": [host.name]})
    inventory = fleet_env.write()
    assert fleet_env.sac_json("fleet", "up", inventory)["ok"]
    direct = fleet_env.sac("fleet", "send", "remote2", "direct", "-i", inventory)
    gateway = GatewayProcess(fleet_env.env, inventory)
    try:
        via = fleet_env.sac("fleet", "send", "remote2", "via gateway", "-i", inventory)
        assert via.stdout.strip() == "echo: via gateway"
        # the same output as the direct path: progress on stderr, reply on stdout
        assert direct.stdout.strip() == "echo: direct"
        assert "assistant  echo: via gateway" in via.stderr and "assistant  echo: direct" in direct.stderr
        assert "POST /v1/turn" in gateway.log()
        as_json = json.loads(fleet_env.sac("fleet", "send", "remote2", "json please", "-i", inventory,
                                           "--json").stdout)
        assert as_json["status"] == "completed" and as_json["reply"] == "echo: json please"
        missing = fleet_env.sac("fleet", "send", "ghost", "x", "-i", inventory, check=False)
        assert missing.returncode == 2 and "ghost" in missing.stderr and "Traceback" not in missing.stderr
    finally:
        assert gateway.stop() == 0
    assert not (fleet_env.root / "head-home" / "gateway.json").exists()
    after = fleet_env.sac("fleet", "send", "remote2", "direct again", "-i", inventory)
    assert after.stdout.strip() == "echo: direct again"
