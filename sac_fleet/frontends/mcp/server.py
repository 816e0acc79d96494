"""`sac mcp`: the fleet as MCP tools over stdio, for Claude Code and other MCP clients.

Tools: fleet_status, agent_list, agent_status, agent_send, agent_tail,
agent_start, agent_stop. Each is a few lines over `sac_fleet.api.Fleet`; a
SacError comes back as an MCP tool error whose text is its one-line message,
never a traceback (an unexpected exception is logged to stderr with its
traceback and reported to the client only as "Error executing tool X").
"""

import asyncio
import functools
from typing import Annotated

from pydantic import Field

from sac_fleet.api import Fleet
from sac_node.protocol.errors import SacError

from ..records import record_text

INSTRUCTIONS = (
    "These tools drive sac agents: long-lived, sandboxed Claude Code agents on this machine or, when the "
    "server was started with an inventory, on every host of that fleet. Use agent_list to see them, "
    "agent_send to give one a turn (it waits for the reply), agent_tail to read what it did.")

AgentName = Annotated[str, Field(description="The agent's name, as agent_list shows it.")]


class FleetTools:
    """The tools' bodies: each calls one Fleet and returns JSON-ready data, or raises SacError.

    Without an inventory that Fleet is this machine's node. With one, agents are found on
    whichever host of the inventory runs them; `agent_start` still starts on this machine
    (the Fleet reaches it too), and the agents it started stay reachable.
    """

    def __init__(self, inventory=None, state_dir=None, accept_new_host_keys=False):
        self.fleet = Fleet(inventory=inventory, state_dir=state_dir, accept_new_host_keys=accept_new_host_keys,
                           this_machine=True)
        self.fleet.load()  # a bad inventory stops `sac mcp` before it serves, with the file and field
        self.alone = inventory is None  # this machine's node is the whole fleet: its reports say so
        self._warm = asyncio.Lock()

    async def close(self):
        await self.fleet.close()

    async def _ready(self):
        """Make the first connection once, so concurrent first calls do not each open one."""
        async with self._warm:
            if not self.fleet.links:
                await self.fleet.connect()  # attaches to running node daemons; starts none
        return self.fleet

    async def fleet_status(self):
        if self.alone:
            agents = await (await self._ready()).list()
            return {"inventory": None, "hosts": [{"name": "local", "state": "ok"}], "agents": agents,
                    "ok": all(a["state"] != "failed" for a in agents)}
        return await (await self._ready()).fleet_status()

    async def agent_list(self):
        if self.alone:
            return {"agents": await (await self._ready()).list()}
        report = await self.fleet_status()
        unreachable = [{"host": h["name"], "state": h["state"], "reason": h["reason"]}
                       for h in report["hosts"] if h["state"] != "ok"]
        return {"agents": report["agents"], "unreachable_hosts": unreachable}

    async def agent_status(self, name):
        return await (await self._ready()).status(name)

    async def agent_send(self, name, prompt, timeout_s=600.0, wait=True):
        return await (await self._ready()).send(name, prompt, wait=wait, timeout=timeout_s)

    async def agent_tail(self, name, n=20, raw=False):
        records = await (await self._ready()).tail(name, n)
        if raw:
            return {"agent": name, "records": records}
        lines = [text for text in (record_text(r) for r in records) if text]
        return {"agent": name, "lines": lines, "last_seq": records[-1]["seq"] if records else None}

    async def agent_start(self, target, restart=False):
        return await (await self._ready()).start(target, restart=restart)

    async def agent_stop(self, name):
        return await (await self._ready()).stop(name)


def _tool_errors(fn):
    """SacError -> an MCP tool error whose text is exactly the one-line message.

    (Raising the SDK's ToolError would prefix "Error executing tool X: ".)
    """
    from mcp.types import CallToolResult, TextContent

    @functools.wraps(fn)
    async def call(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except SacError as exc:
            return CallToolResult(content=[TextContent(type="text", text=exc.message)], is_error=True)

    return call


def build_server(tools):
    """An MCPServer whose tools call `tools` (a FleetTools)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    import sac_node

    server = MCPServer("sac", instructions=INSTRUCTIONS, version=sac_node.__version__, log_level="WARNING")
    reads = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    acts = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
    for fn in _read_tools(tools):
        server.add_tool(_tool_errors(fn), annotations=reads)
    for fn in _acting_tools(tools):
        server.add_tool(_tool_errors(fn), annotations=acts)
    return server


def _read_tools(tools):
    """The tools that only look: their signatures and docstrings are what the MCP client sees."""

    async def fleet_status() -> dict:
        """Hosts and agents side by side: with an inventory, each host's state (unreachable ones say why),
        the agents that run there and what differs from the inventory; otherwise this machine's agents."""
        return await tools.fleet_status()

    async def agent_list() -> dict:
        """The agents and their state (idle, working, starting, restarting, stopped, failed) and turn counts."""
        return await tools.agent_list()

    async def agent_status(name: AgentName) -> dict:
        """One agent's full status: state, pid, uptime, restarts, session, turns, tokens, sandbox, last error,
        and its activity (the tool running now, the last tools, context used, notifications waiting)."""
        return await tools.agent_status(name)

    async def agent_tail(
        name: AgentName,
        n: Annotated[int, Field(description="How many past transcript records.", ge=1, le=1000)] = 20,
        raw: Annotated[bool, Field(description="true: the records as JSON instead of readable lines.")] = False,
    ) -> dict:
        """The end of an agent's transcript: prompts, assistant text, tool calls and results, turn outcomes."""
        return await tools.agent_tail(name, n, raw)

    return fleet_status, agent_list, agent_status, agent_tail


def _acting_tools(tools):
    """The tools that change something (a turn, an agent started or stopped)."""

    async def agent_send(
        name: AgentName,
        prompt: Annotated[str, Field(description="The prompt for the agent (one user turn).")],
        timeout_s: Annotated[float, Field(description="Seconds to wait for the reply; the turn goes on after.", gt=0)] = 600.0,
        wait: Annotated[bool, Field(description="false: return once the turn is accepted (poll agent_tail).")] = True,
    ) -> dict:
        """Send a turn to an agent and wait for it to finish. Returns the turn: id, status (completed, failed,
        interrupted, cancelled), prompt, reply, error, session_id, usage, timings."""
        return await tools.agent_send(name, prompt, timeout_s, wait)

    async def agent_start(
        target: Annotated[str, Field(description="A spec.yaml path, an agent directory holding one, or the "
                                                 "name of an agent that exists here.")],
        restart: Annotated[bool, Field(description="Restart it if it already runs.")] = False,
    ) -> dict:
        """Start an agent on the machine this server runs on (a no-op when it already runs the same spec)."""
        return await tools.agent_start(target, restart)

    async def agent_stop(name: AgentName) -> dict:
        """Stop an agent; turns not yet started wait in its journal for the next start."""
        return await tools.agent_stop(name)

    return agent_send, agent_start, agent_stop


async def serve(inventory=None, state_dir=None, accept_new_host_keys=False):
    """Serve the MCP tools over this process's stdin/stdout until the client hangs up."""
    tools = FleetTools(inventory, state_dir, accept_new_host_keys)
    try:
        await build_server(tools).run_stdio_async()
    finally:
        await tools.close()


def run(inventory=None, state_dir=None, accept_new_host_keys=False):
    """Blocking entry point of `sac mcp`."""
    asyncio.run(serve(inventory, state_dir, accept_new_host_keys))
