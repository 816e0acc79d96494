"""Hosts that drop and come back, seen through a long-lived gateway (real sshd, real agents)."""

import asyncio
import json
import os
import signal
import time

import aiohttp
import pytest

from tests.fixtures import procs
from tests.fixtures.gateway import GatewayProcess

pytestmark = pytest.mark.integration


async def get(gw, path):
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer " + gw.token}) as session:
        async with session.get(gw.url + path) as resp:
            return resp.status, await resp.json()


async def turn(gw, agent, text, timeout_s=30, key=None):
    body = {"agent": agent, "text": text, "timeout_s": timeout_s}
    if key is not None:
        body["idempotency_key"] = key
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer " + gw.token},
                                     timeout=aiohttp.ClientTimeout(total=timeout_s + 15)) as session:
        async with session.post(gw.url + "/v1/turn", json=body) as resp:
            return resp.status, await resp.json()


def freeze(host, sig):
    """SIGSTOP/SIGCONT a host's sshd and its sessions: packets go unanswered, TCP stays open."""
    for pid in [host.process.pid] + procs.children(host.process.pid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


async def wait_host(gw, name, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, report = await get(gw, "/v1/status")
        row = next(h for h in report["hosts"] if h["name"] == name)
        if predicate(row):
            return row, report
        await asyncio.sleep(0.5)
    raise AssertionError("host %s never matched; last row: %r" % (name, row))


async def test_dead_host_is_detected_by_keepalive_and_recovers_by_itself(fleet_env):
    h1, h2 = fleet_env.sshd.start(2)
    fleet_env.add_host(h1)
    fleet_env.add_host(h2, connect_timeout=3)  # keepalive_s defaults to 2: dead after 3 missed = 6 s
    fleet_env.add_agent("steady", {"hosts": [h1.name]})
    fleet_env.add_agent("flaky", {"hosts": [h2.name]})
    inventory = fleet_env.write()
    assert fleet_env.sac_json("fleet", "up", inventory)["ok"]
    gw = GatewayProcess(fleet_env.env, inventory)
    try:
        assert (await turn(gw, "flaky", "before"))[1]["text"] == "echo: before"
        freeze(h2, signal.SIGSTOP)
        frozen_at = time.monotonic()
        row, report = await wait_host(gw, h2.name, lambda r: r["state"] != "ok", timeout=30)
        detected = time.monotonic() - frozen_at
        assert detected < 12, "took %.1fs to notice" % detected  # 6 s of keepalives, plus polling
        assert row["reason"].startswith("since ") and row["agents_running"] is None
        assert any(d["agent"] == "flaky" for d in report["diff"])
        status, answer = await turn(gw, "steady", "unaffected")
        assert status == 200 and answer["text"] == "echo: unaffected"
        status, answer = await turn(gw, "flaky", "while down")
        assert status == 502 and answer["error"]["code"] == "host_unreachable"
        assert "flaky runs on host %s" % h2.name in answer["error"]["message"]

        freeze(h2, signal.SIGCONT)
        row, _ = await wait_host(gw, h2.name, lambda r: r["state"] == "ok", timeout=45)
        assert row["agents_running"] == 1
        status, answer = await turn(gw, "flaky", "after")
        assert status == 200 and answer["text"] == "echo: after"
    finally:
        freeze(h2, signal.SIGCONT)
        assert gw.stop() == 0


def _pid_in(path):
    with open(path) as fh:
        return json.load(fh)["pid"]


async def test_turns_go_straight_to_the_shim_and_survive_a_frozen_daemon(fleet_env):
    (h1,) = fleet_env.sshd.start(1)
    fleet_env.add_host(h1)
    fleet_env.add_agent("direct", {"hosts": [h1.name]})
    inventory = fleet_env.write()
    assert fleet_env.sac_json("fleet", "up", inventory)["ok"]
    daemon = _pid_in(h1.state_dir / "daemon.json")
    gw = GatewayProcess(fleet_env.env, inventory)
    try:
        assert (await turn(gw, "direct", "before"))[1]["text"] == "echo: before"
        # The gateway's turn calls reach the shim over a stream of their own: a daemon that
        # answers nothing (stopped, or busy restarting) does not hold them up.
        os.kill(daemon, signal.SIGSTOP)
        status, answer = await turn(gw, "direct", "daemon frozen", timeout_s=20)
        assert status == 200, answer
        assert answer["text"] == "echo: daemon frozen"
        os.kill(daemon, signal.SIGCONT)

        # A shim that dies is respawned by the daemon. A turn sent with a key while the head has
        # not yet seen its stream close is asked again through the daemon, and runs once.
        os.kill(_pid_in(h1.state_dir / "agents" / "direct" / "shim.json"), signal.SIGKILL)
        status, answer = await turn(gw, "direct", "after the shim died", timeout_s=30, key="k-after-kill")
        assert status == 200, answer
        assert answer["text"] == "echo: after the shim died", answer
        status, again = await turn(gw, "direct", "after the shim died", timeout_s=30, key="k-after-kill")
        assert status == 200 and again["turn_id"] == answer["turn_id"] and again["created"] is False
        status, answer = await turn(gw, "direct", "and the next one", timeout_s=30)
        assert status == 200 and answer["text"] == "echo: and the next one"
    finally:
        os.kill(daemon, signal.SIGCONT)
        assert gw.stop() == 0
