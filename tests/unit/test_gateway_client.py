"""The CLI's gateway client against the real gateway app (over a scripted node), and against broken servers."""

import asyncio
import socket

import pytest
from aiohttp.test_utils import TestServer

from sac_fleet.frontends.gateway.http import make_app
from sac_fleet.frontends.gateway.schema import turn_view
from sac_fleet.frontends.gateway.service import Gateway
from sac_fleet.remote import gateway_client
from sac_fleet.remote.gateway_client import GatewayClient, node_turn, register
from sac_node.protocol.errors import AgentNotFound, HostUnreachable, RpcError, SacError, TurnTimeout
from tests.fixtures.cli_imports import run_sac
from tests.fixtures.gateway import OneNodeFleet, keyring_with

TOKEN = "t" * 43
BIG = "x" * 200_000  # longer than asyncio's 64 KiB line limit and than one HTTP chunk


class Records:
    """A subscription that replays `records`, then (with hang) waits forever."""

    def __init__(self, records, hang=False):
        self.records, self.hang = records, hang

    async def __aiter__(self):
        for record in self.records:
            yield record
        if self.hang:
            await asyncio.Event().wait()

    async def close(self):
        pass


class ScriptedNode:
    host = "local"

    def __init__(self):
        self.turns, self.submitted, self.hang = {}, [], False

    async def submit(self, agent, text, key=None, wait_s=None):
        if agent == "ghost":
            raise AgentNotFound("no agent named ghost on this machine")
        self.submitted.append((agent, text, key))
        tid = "%s.%016x" % (agent, len(self.turns) + 1)
        self.turns[tid] = {"id": tid, "status": "pending", "text": text, "key": key}
        return {"turn": self.turns[tid], "created": True}

    async def subscribe(self, agent, turn_id=None, from_seq=None):
        ended = {"seq": 3, "event": {"type": "sac", "subtype": "turn_ended", "status": "completed"}}
        self.turns[turn_id].update(status="completed", reply="echo: " + self.turns[turn_id]["text"])
        return Records([{"seq": 1, "event": {"type": "assistant", "text": "é ✓"}},
                        {"seq": 2, "event": {"type": "assistant", "text": BIG}}] + ([] if self.hang else [ended]),
                       hang=self.hang)

    async def get_turn(self, tid):
        return self.turns[tid]


@pytest.fixture
async def gateway(tmp_path_factory):
    fleet = OneNodeFleet(ScriptedNode())
    keyring = keyring_with(tmp_path_factory.mktemp("tokens"), {TOKEN: ("test", ["admin"])})
    server = TestServer(make_app(Gateway(fleet), keyring), host="127.0.0.1")
    await server.start_server()
    server.node = fleet.client
    server.url = str(server.make_url("")).rstrip("/")
    yield server
    await server.close()


async def test_send_streams_the_turns_records_and_returns_the_node_turn(gateway):
    seen = []
    turn = await GatewayClient(gateway.url, TOKEN).send("a1", "hi", on_record=seen.append, key="k1")
    assert [r["seq"] for r in seen] == [1, 2, 3]
    assert seen[0]["event"]["text"] == "é ✓" and seen[1]["event"]["text"] == BIG
    assert gateway.node.submitted == [("a1", "hi", "k1")]
    expected = node_turn(turn_view(gateway.node.turns["a1.0000000000000001"]))
    assert turn == expected and turn["reply"] == "echo: hi" and turn["status"] == "completed"


async def test_the_cli_sends_through_the_gateway_without_an_http_library(gateway, tmp_path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    register(gateway.url, None, tmp_path / "token", environ={"SAC_HOME": str(tmp_path)})  # pid: this process
    ran = await asyncio.to_thread(run_sac, ["agents", "send", "a1", "hi"], tmp_path)
    assert ran.code == 0 and ran.stdout == "echo: hi\n", ran.stderr
    assert gateway.node.submitted[0][:2] == ("a1", "hi")
    assert "sac_fleet.remote.gateway_client" in ran.modules and "aiohttp" not in ran.modules


async def test_no_wait_returns_the_accepted_turn(gateway):
    turn = await GatewayClient(gateway.url, TOKEN).send("a1", "hi", wait=False)
    assert turn == {"id": "a1.0000000000000001", "status": "pending", "text": "hi"}
    assert gateway.node.submitted[0][2].startswith("cli-")  # a key of its own: a retried POST runs once


async def test_the_gateways_error_comes_back_as_its_class(gateway):
    with pytest.raises(AgentNotFound, match="no agent named ghost"):
        await GatewayClient(gateway.url, TOKEN).send("ghost", "hi")
    with pytest.raises(SacError, match="token"):
        await GatewayClient(gateway.url, "wrong").send("a1", "hi")


async def test_a_turn_that_outlasts_the_timeout_raises_turn_timeout(gateway):
    gateway.node.hang = True
    with pytest.raises(TurnTimeout) as caught:
        await GatewayClient(gateway.url, TOKEN).send("a1", "hi", timeout=0.5)
    assert caught.value.data == {"turn_id": "a1.0000000000000001", "exit_code": 1}


async def test_a_gateway_that_is_gone_is_host_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HostUnreachable, match="does not answer"):
        await GatewayClient("http://127.0.0.1:%d" % port, TOKEN).send("a1", "hi")


async def answering(reply, hold=False):
    """A server that reads one request head and writes `reply` (then holds the connection, or closes it)."""
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        if hold:
            await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, "http://127.0.0.1:%d" % server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("reply, error, says", [
    (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nupstream ko", RpcError, "HTTP 502: upstream ko"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{\"turn", RpcError, "broke off its answer"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", RpcError, "broke off its answer"),
    (b"", RpcError, "sent no HTTP answer"),
])
async def test_broken_answers_are_rpc_errors(reply, error, says):
    server, url = await answering(reply)
    async with server:
        with pytest.raises(error, match=says):
            await GatewayClient(url, TOKEN).send("a1", "hi")


async def test_a_gateway_that_never_answers_times_out(monkeypatch):
    monkeypatch.setattr(gateway_client, "REQUEST_TIMEOUT_S", 0.2)
    server, url = await answering(b"", hold=True)
    async with server:
        with pytest.raises(HostUnreachable, match="did not answer POST /v1/turn"):
            await GatewayClient(url, TOKEN).send("a1", "hi")
