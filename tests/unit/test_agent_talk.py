"""The `sac` MCP server's wiring (sac_node/agent_talk.py): the engine's argv and permissions, and the MCP
methods answered without a node (the tools themselves are tested for real in tests/integration)."""

import asyncio
import json
import os

import pytest

from sac_node import agent_talk, engine
from sac_node.node_spec import NodeSpec
from sac_node.protocol.errors import SpecError
from sac_node.state_dir import StateDir


def spec(**fields):
    return NodeSpec.from_wire(dict({"name": "lead", "comms": {"ask": ["w1"]}}, **fields))


def argv_of(node_spec, tmp_path, sandboxed):
    agent = StateDir(str(tmp_path)).agent(node_spec.name)
    os.makedirs(agent.path)
    open(agent_talk.socket_path(agent), "w").close()  # the shim serves it before the engine starts
    sockets, mcp = agent_talk.engine_side(node_spec, agent, str(tmp_path), sandboxed)
    return sockets, engine.build_argv(node_spec, "/opt/claude", sandboxed=sandboxed, mcp=mcp)


@pytest.mark.parametrize("claude, sandboxed, allowed, mode", [
    ({}, True, "mcp__sac", "bypassPermissions"),
    ({"allowed_tools": ["Read"]}, True, "Read,mcp__sac", "dontAsk"),
    ({}, False, "mcp__sac", None),
])
def test_a_talking_agent_gets_the_server_and_its_tools_in_every_mode(tmp_path, claude, sandboxed, allowed, mode):
    sockets, argv = argv_of(spec(claude=claude), tmp_path, sandboxed)
    assert argv[argv.index("--allowedTools") + 1] == allowed
    assert (argv[argv.index("--permission-mode") + 1] if "--permission-mode" in argv else None) == mode
    server = json.loads(argv[argv.index("--mcp-config") + 1])["mcpServers"]["sac"]
    assert server["command"] == "python3" and server["args"][:3] == ["-I", "-S", "-c"]
    socket = server["args"][-1]
    assert socket == (agent_talk.INSIDE_SOCKET if sandboxed else str(tmp_path / "agents/lead/mcp.sock"))
    bound = ((str(tmp_path / "agents/lead/mcp.sock"), agent_talk.INSIDE_SOCKET),)
    assert sockets == (bound if sandboxed else ())


def test_an_agent_without_ask_or_tell_gets_no_server(tmp_path):
    quiet = NodeSpec.from_wire({"name": "w1", "comms": {"accept_from": ["lead"]}})
    _, argv = argv_of(quiet, tmp_path, True)
    assert "--mcp-config" not in argv and "mcp__sac" not in " ".join(argv)


def test_a_users_server_named_sac_is_refused_not_overridden(tmp_path):
    (tmp_path / ".mcp.json").write_text(json.dumps({"mcpServers": {"sac": {"command": "x"}}}))
    with pytest.raises(SpecError, match="defines an MCP server named sac"):
        argv_of(spec(), tmp_path, True)


def test_mcp_methods(tmp_path):
    server = agent_talk.TalkServer("lead", StateDir(str(tmp_path)).agent("lead"), str(tmp_path / "none.sock"),
                                   spec().comms, (lambda: 0, lambda *a, **k: None, lambda: None), lambda: 0.0)

    async def scenario():
        init = await server.handle("initialize", {"protocolVersion": "2025-11-25"})
        assert init["protocolVersion"] == "2025-11-25" and init["serverInfo"]["name"] == "sac"
        tools = await server.handle("tools/list", {})
        assert [t["name"] for t in tools["tools"]] == ["agents", "ask", "turn", "tell"]
        with pytest.raises(KeyError):
            await server.handle("resources/list", {})
        refused = await server.call("ask", {"to": "w1"})
        assert refused["isError"] and "needs `to`" in refused["content"][0]["text"]
        down = await server.call("ask", {"to": "w1", "text": "hi"})  # no node daemon at that socket
        assert down["isError"] and "node daemon does not answer" in down["content"][0]["text"]

    asyncio.run(scenario())


def test_the_mcp_bridge_reaches_a_socket_whose_path_is_too_long_for_af_unix(tmp_path):
    """An unsandboxed agent's bridge connects to <agent>/mcp.sock itself; under a deep state dir that path
    is longer than AF_UNIX takes, and the shim still serves it and the bridge still reaches it."""
    import subprocess
    import sys

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    agent = StateDir(str(deep)).create().agent("lead")
    os.makedirs(agent.path)
    server = agent_talk.TalkServer("lead", agent, str(tmp_path / "none.sock"), spec().comms,
                                   (lambda: 0, lambda *a, **k: None, lambda: None), lambda: 0.0)
    assert len(server.path) > 120

    async def scenario():
        await server.serve()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", "-c", agent_talk.bridge_source(), server.path,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
            out, err = await asyncio.wait_for(proc.communicate(json.dumps(request).encode() + b"\n"), 20)
            return json.loads(out.decode().splitlines()[0]), err
        finally:
            await server.close()

    reply, err = asyncio.run(scenario())
    assert [t["name"] for t in reply["result"]["tools"]] == ["agents", "ask", "turn", "tell"], err
    assert os.stat(server.path).st_mode & 0o777 == 0o600
