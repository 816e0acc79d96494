"""The provider over HTTP: routes, streaming, faults on the wire, the log, the runners and the CLI."""

import asyncio
import json
import os
import subprocess
import sys
import time

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sac_fleet.provider.server import Provider, ProviderServer
from sac_node.protocol.errors import ConfigError

KEY = "sk-very-secret-key"


def ask(text, stream=False, **extra):
    return dict({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": stream, "messages": [{"role": "user", "content": text}]}, **extra)


@pytest.fixture
async def served():
    """(provider, client, log lines) for a provider behind aiohttp's test server."""
    lines = []
    provider = Provider(on_request=lambda record: lines.append(record.line()))
    client = TestClient(TestServer(provider.app()))
    await client.start_server()
    yield provider, client, lines
    await client.close()


def sse_text(raw):
    events = [dict(line.split(": ", 1) for line in frame.split("\n")) for frame in raw.split("\n\n") if frame]
    deltas = [json.loads(e["data"])["delta"] for e in events if e["event"] == "content_block_delta"]
    return [e["event"] for e in events], "".join(d.get("text", "") for d in deltas)


async def test_streaming_reply_on_the_beta_path_echoes_the_prompt(served):
    provider, client, lines = served
    response = await client.post("/v1/messages?beta=true", json=ask("hi there", stream=True), headers={"x-api-key": KEY})
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    names, text = sse_text(await response.text())
    assert text == "echo: hi there" and names[0] == "message_start" and names[-1] == "message_stop"
    assert provider.requests == [ask("hi there", stream=True)]
    assert lines == ["POST /v1/messages?beta=true model=claude-sonnet-4-5 stream=true rule=echo status=200"]


async def test_non_streaming_reply_and_count_tokens_and_models(served):
    _, client, _ = served
    response = await client.post("/v1/messages", json=ask("one two"))
    message = await response.json()
    assert message["content"] == [{"type": "text", "text": "echo: one two"}]
    assert message["usage"]["input_tokens"] == 2 and message["usage"]["output_tokens"] == 3
    counted = await client.post("/v1/messages/count_tokens", json=ask("a b c d"))
    assert await counted.json() == {"input_tokens": 4}
    models = await (await client.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]][:1] == ["claude-opus-4-5"]
    assert (await client.head("/")).status == 200


async def test_bad_json_is_a_400_in_the_api_error_shape(served):
    _, client, lines = served
    response = await client.post("/v1/messages", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["error"]["type"] == "invalid_request_error"
    assert lines[-1].endswith("status=400")


async def test_key_fault_429_sends_retry_after_then_clears_and_never_logs_the_key(served):
    provider, client, lines = served
    provider.load_script({"keys": {KEY: {"fault": {"status": 429, "retry_after": 2}, "times": 1}}})
    headers = {"Authorization": "Bearer " + KEY}
    first = await client.post("/v1/messages", json=ask("x"), headers=headers)
    assert first.status == 429 and first.headers["retry-after"] == "2"
    assert (await first.json())["error"]["type"] == "rate_limit_error"
    second = await client.post("/v1/messages", json=ask("x"), headers=headers)
    assert second.status == 200
    assert lines[0].endswith("rule=key fault #1 status=429")
    assert not any(KEY in line for line in lines) and not any(KEY in str(r) for r in provider.records)


async def test_rule_fault_529_is_overloaded_and_can_refuse_retries(served):
    provider, client, _ = served
    provider.load_script({"rules": [{"match": "busy", "fault": {"status": 529, "should_retry": False, "message": "try later"}}]})
    response = await client.post("/v1/messages", json=ask("busy now", stream=True))
    assert response.status == 529 and response.headers["x-should-retry"] == "false"
    assert (await response.json())["error"] == {"type": "overloaded_error", "message": "try later"}


async def test_chunk_delay_slows_each_streamed_event(served):
    provider, client, lines = served
    provider.load_script({"rules": [{"match": "slow", "reply": "a b c", "fault": {"chunk_delay": 0.05}}]})
    started = time.monotonic()
    response = await client.post("/v1/messages", json=ask("slow", stream=True))
    _, text = sse_text(await response.text())
    assert text == "a b c" and time.monotonic() - started >= 0.05 * 6  # 3 deltas + block start/stop + message end
    assert lines[-1].endswith("fault=slow")


async def test_hang_never_answers_until_the_client_gives_up(served):
    provider, client, lines = served
    provider.load_script({"rules": [{"match": "hang", "fault": {"hang": True}}]})
    with pytest.raises(asyncio.TimeoutError):
        await client.post("/v1/messages", json=ask("hang", stream=True), timeout=aiohttp.ClientTimeout(total=0.3))
    assert lines[-1].endswith("fault=hang")
    ok = await client.post("/v1/messages", json=ask("fine"))  # the provider still serves others
    assert ok.status == 200


async def test_stall_starts_the_stream_then_stops_sending(served):
    provider, client, _ = served
    provider.load_script({"rules": [{"match": "stall", "reply": "never finished", "fault": {"stall": True}}]})
    response = await client.post("/v1/messages", json=ask("stall", stream=True))
    assert response.status == 200
    first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 2)
    assert first.startswith(b"event: message_start")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(response.content.read(), 0.3)
    response.close()


def test_provider_server_thread_serves_real_sockets_and_reloads_scripts(tmp_path):
    script = tmp_path / "s.yaml"
    script.write_text("rules:\n  - match: ping\n    reply: pong\n")
    with ProviderServer() as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.client_env("k")["ANTHROPIC_BASE_URL"] == server.url
        server.load_script(script)
        assert _post(server.url, ask("ping"))["content"][0]["text"] == "pong"
        with pytest.raises(ConfigError):
            server.load_script({"rules": [{"match": "x"}]})
        assert _post(server.url, ask("ping"))["content"][0]["text"] == "pong"  # the old script still answers
    assert server.requests == [ask("ping"), ask("ping")] and server.records[0].rule == "rules[0]"


def test_provider_fixture_loads_a_script(provider):
    provider.load_script({"prefix": "fixture: "})
    assert _post(provider.url, ask("hey"))["content"][0]["text"] == "fixture: hey"
    assert provider.records[-1].prompt == "hey"


def _post(url, payload):
    import urllib.request

    request = urllib.request.Request(url + "/v1/messages", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _sac(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", "from sac_fleet.frontends.cli.app import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, NO_COLOR="1", COLUMNS="200"),
        **kwargs,
    )


def test_cli_serve_prints_its_url_and_logs_requests_without_the_key():
    process = _sac("provider", "serve", "--port", "0")
    try:
        first = process.stdout.readline().strip()
        assert first.startswith("sac provider listening on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1]
        _post(url, ask("from the cli"))
        assert process.stdout.readline().strip() == "POST /v1/messages model=claude-sonnet-4-5 stream=false rule=echo status=200"
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_cli_bad_script_is_one_line_naming_file_and_field(tmp_path):
    bad = tmp_path / "play.yaml"
    bad.write_text("rules:\n  - match: x\n    fault: {status: 429, retry_afterr: 1}\n")
    process = _sac("provider", "serve", "--port", "0", "--script", str(bad))
    out, err = process.communicate(timeout=30)
    assert process.returncode != 0 and out == ""
    assert err.strip() == "error: %s:3 rules[0].fault.retry_afterr: unknown field (did you mean 'retry_after'?)" % bad
