"""Named gateway tokens on a real `sac fleet serve` in front of real agents (built-in provider, bwrap).

A token with `send:role=worker` reaches the worker and not the lead; `sac fleet token add|revoke`
take effect on the running gateway; the token of before keeps working as `default`, and so does the
CLI that talks through the gateway; every request's log line names its token, never its value.
"""

import os
import re

import pytest

from sac_fleet.provider.server import ProviderServer
from tests.fixtures.agents import SacEnv
from tests.fixtures.gateway import GatewayProcess
from tests.integration.test_gateway import call

pytestmark = pytest.mark.integration

OLD_TOKEN = "old-single-token-" + "x" * 30


@pytest.fixture
def env(tmp_path, claude_bin, bwrap_bin):
    provider = ProviderServer({"rules": []}).start()
    env = SacEnv(tmp_path, provider.url, claude_bin)
    try:
        for name in ("lead", "worker"):
            env.sac("agents", "start", env.write_spec(name, labels={"role": name}))
        yield env
    finally:
        env.cleanup()
        provider.stop()


def completed_turns(env, name):
    return env.sac_json("agents", "status", name)["turns"]["completed"]


async def test_a_send_token_for_the_workers_cannot_send_to_the_lead(env):
    env.home.mkdir(parents=True, exist_ok=True)
    fd = os.open(env.home / "gateway.token", os.O_WRONLY | os.O_CREAT, 0o600)  # a gateway of before made it
    os.write(fd, (OLD_TOKEN + "\n").encode())
    os.close(fd)
    gw = GatewayProcess(env.env)
    try:
        assert gw.token == OLD_TOKEN  # the single token of before is `default`, still admin
        status, _, _ = await call(gw, "GET", "/v1/status")
        assert status == 200
        ci = env.sac("fleet", "token", "add", "ci", "--scope", "send:role=worker").stdout.strip()
        lead_before = completed_turns(env, "lead")

        status, body, _ = await call(gw, "POST", "/v1/turn", {"agent": "lead", "prompt": "hi lead"}, token=ci)
        assert status == 403 and body["error"]["data"] == {"token": "ci", "needed": "send:lead"}
        assert "token ci may not send to agent lead" in body["error"]["message"]
        status, body, _ = await call(gw, "POST", "/v1/turn", {"agent": "worker", "prompt": "hi worker"}, token=ci)
        assert status == 200 and body["reply"] == "echo: hi worker"
        status, body, _ = await call(gw, "GET", "/v1/status", token=ci)
        assert status == 403 and "needs scope read" in body["error"]["message"]
        assert completed_turns(env, "lead") == lead_before  # nothing reached the lead

        via_cli = env.sac("agents", "send", "worker", "through the gateway")
        assert via_cli.stdout.strip() == "echo: through the gateway"

        env.sac("fleet", "token", "revoke", "ci")  # no restart: the next request already sees it
        status, body, _ = await call(gw, "POST", "/v1/turn", {"agent": "worker", "prompt": "again"}, token=ci)
        assert status == 401 and body["error"]["code"] == "unauthorized"
    finally:
        assert gw.stop() == 0
    log = gw.log()
    assert re.search(r'"POST /v1/turn HTTP/1.1" 403 \d+ [\d.]+s token=ci', log), log
    assert re.search(r'"POST /v1/turn HTTP/1.1" 200 \d+ [\d.]+s token=ci', log), log
    assert re.search(r'"POST /v1/turn HTTP/1.1" 202 \d+ [\d.]+s token=default', log), log  # the CLI's turn
    assert re.search(r'"POST /v1/turn HTTP/1.1" 401 \d+ [\d.]+s token=-', log), log
    assert ci not in log and OLD_TOKEN not in log and "Traceback" not in log
