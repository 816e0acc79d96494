"""`sac mcp`: the fleet as MCP tools, driven by the mcp SDK's own client over stdio.

Real `python -m sac_fleet mcp` processes, real claude agents on the built-in provider.
"""

import json
import subprocess
import sys
from contextlib import asynccontextmanager

import pytest
import yaml
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

pytestmark = pytest.mark.integration

SERVE = [sys.executable, "-m", "sac_fleet", "mcp"]
TOOLS = {"fleet_status", "agent_list", "agent_status", "agent_send", "agent_tail", "agent_start", "agent_stop"}


@asynccontextmanager
async def mcp_session(sac_env, command=None, args=None):
    """An MCP client session with a `sac mcp` server spawned on sac_env's state dir."""
    command = command or SERVE[0]
    args = SERVE[1:] if args is None else args
    params = StdioServerParameters(command=command, args=[str(a) for a in args], env=sac_env.env,
                                   cwd=str(sac_env.root))
    with open(sac_env.root / "mcp-server.err", "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy", read_timeout_seconds=120) as client:
            yield client


async def call(client, tool, **arguments):
    """Call a tool; returns (is_error, parsed JSON or the error text)."""
    result = await client.call_tool(tool, arguments)
    text = "".join(block.text for block in result.content if block.type == "text")
    return result.is_error, (text if result.is_error else json.loads(text))


async def test_agent_round_trip_over_mcp(sac_env):
    spec_dir = sac_env.write_spec("a1")
    async with mcp_session(sac_env) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS

        failed, started = await call(client, "agent_start", target=str(spec_dir))
        assert not failed and started["started"] and started["status"]["name"] == "a1"

        failed, turn = await call(client, "agent_send", name="a1", prompt="hello over mcp")
        assert not failed, turn
        assert turn["status"] == "completed" and turn["reply"] == "echo: hello over mcp"

        failed, status = await call(client, "agent_status", name="a1")
        assert status["state"] == "idle" and status["turns"]["completed"] == 1

        failed, tail = await call(client, "agent_tail", name="a1", n=50)
        lines = "\n".join(tail["lines"])
        assert "user       hello over mcp" in lines and "assistant  echo: hello over mcp" in lines

        _, listed = await call(client, "agent_list")
        assert [a["name"] for a in listed["agents"]] == ["a1"]
        _, fleet = await call(client, "fleet_status")
        assert fleet["hosts"] == [{"name": "local", "state": "ok"}] and fleet["agents"][0]["host"] == "local"

        failed, stopped = await call(client, "agent_stop", name="a1")
        assert not failed and stopped["state"] == "stopped"
    assert sac_env.sac_json("agents", "status", "a1")["state"] == "stopped"


async def test_errors_are_one_line_tool_errors(sac_env):
    async with mcp_session(sac_env) as client:
        # exactly the SacError's one line, as `sac agents status ghost` prints it
        failed, text = await call(client, "agent_status", name="ghost")
        cli = sac_env.sac("agents", "status", "ghost", check=False).stderr.strip()
        assert failed and text.startswith("no agent named ghost") and "\n" not in text
        assert cli == "error: " + text

        failed, text = await call(client, "agent_send", name="ghost", prompt="anyone?")
        assert failed and text.startswith("no agent named ghost")

        missing = sac_env.root / "no-such-spec"
        failed, text = await call(client, "agent_start", target=str(missing))
        assert failed and text.startswith("%s: no such spec file" % missing)

        failed, text = await call(client, "agent_tail", name="ghost", n=0)  # schema: n >= 1
        assert failed and "n" in text
    assert "Traceback" not in (sac_env.root / "mcp-server.err").read_text()


async def test_with_an_inventory_the_tools_reach_the_fleet(sac_env):
    sac_env.write_spec("a2")
    inventory = sac_env.root / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": {"here": {"transport": "local"}},
                                         "agents": [{"spec": "specs/a2"}]}))
    async with mcp_session(sac_env, args=SERVE[1:] + ["--inventory", inventory]) as client:
        failed, fleet = await call(client, "fleet_status")
        assert not failed, fleet
        assert fleet["inventory"] == str(inventory) and [h["name"] for h in fleet["hosts"]] == ["here"]
        assert [(d["agent"], d["kind"]) for d in fleet["diff"]] == [("a2", "start")]

        sac_env.sac("fleet", "up", inventory)
        _, fleet = await call(client, "fleet_status")
        assert fleet["diff"] == [] and fleet["ok"]
        _, listed = await call(client, "agent_list")
        assert [(a["name"], a["host"]) for a in listed["agents"]] == [("a2", "here")]
        assert listed["unreachable_hosts"] == []
        failed, turn = await call(client, "agent_send", name="a2", prompt="routed")
        assert not failed and turn["reply"] == "echo: routed"

        # agent_start starts on this machine, and the tools reach that agent too
        await call(client, "agent_start", target=str(sac_env.write_spec("a1")))
        failed, turn = await call(client, "agent_send", name="a1", prompt="by hand")
        assert not failed and turn["reply"] == "echo: by hand"
        await call(client, "agent_stop", name="a1")


def test_bad_inventory_stops_sac_mcp_before_it_serves(sac_env):
    bad = sac_env.root / "inventory.yaml"
    bad.write_text("hosts: {here: {transport: lokal}}\n")
    proc = subprocess.run(SERVE + ["--inventory", str(bad)], env=sac_env.env, capture_output=True, text=True,
                          timeout=60, input="")
    assert proc.returncode == 2 and proc.stdout == ""
    assert str(bad) in proc.stderr and "transport" in proc.stderr and "Traceback" not in proc.stderr


async def test_install_writes_an_entry_that_serves(sac_env):
    mcp_json = sac_env.root / ".mcp.json"
    mcp_json.write_text(json.dumps({"mcpServers": {"other": {"command": "other-server"}}}))
    proc = subprocess.run(SERVE + ["install", "--write"], env=sac_env.env, cwd=sac_env.root,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    servers = json.loads(mcp_json.read_text())["mcpServers"]
    assert servers["other"] == {"command": "other-server"}
    entry = servers["sac"]
    assert entry["args"][-1] == "mcp" and entry["command"].startswith("/") and entry["alwaysLoad"] is True

    printed = subprocess.run(SERVE + ["install"], env=sac_env.env, capture_output=True, text=True, timeout=60)
    assert json.loads(printed.stdout) == {"mcpServers": {"sac": entry}}

    async with mcp_session(sac_env, command=entry["command"], args=entry["args"]) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS


def test_claude_code_drives_an_agent_through_sac_mcp(sac_env, claude_bin):
    """One Claude Code (the boss) sends a turn to sac agent a1 through the MCP tools."""
    sac_env.provider.load_script({"rules": [{"match": "ask a1", "tool": "mcp__sac__agent_send",
                                             "input": {"name": "a1", "prompt": "hi from boss"},
                                             "then": "Boss got: {tool_result}"}]})
    sac_env.sac("agents", "start", sac_env.write_spec("a1"))
    config = sac_env.root / "boss-mcp.json"
    # alwaysLoad + MCP_CONNECT_TIMEOUT_MS: claude -p waits for the server before its first request
    config.write_text(json.dumps({"mcpServers": {"sac": {"command": SERVE[0], "args": SERVE[1:],
                                                         "alwaysLoad": True}}}))
    boss_home = sac_env.root / "boss-home"
    boss_home.mkdir()
    env = dict(sac_env.env, HOME=str(boss_home), MCP_CONNECT_TIMEOUT_MS="60000",
               **sac_env.provider.client_env())
    proc = subprocess.run([claude_bin, "-p", "ask a1", "--mcp-config", str(config), "--output-format", "json",
                           "--allowedTools", "mcp__sac__agent_send"], env=env, cwd=sac_env.root,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)["result"]
    assert result.startswith("Boss got: ") and '"reply": "echo: hi from boss"' in result
    assert sac_env.sac_json("agents", "status", "a1")["turns"]["completed"] == 1
