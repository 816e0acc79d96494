"""The `sac` MCP server an agent with `comms` gets: the shim serves it on <agent>/mcp.sock.

Claude Code runs the stdio bridge (mcp_bridge.py) inside the sandbox as the server's
command; the bridge connects to this socket, bound in at INSIDE_SOCKET. Messages are MCP
(newline-delimited JSON-RPC 2.0): `initialize`, `tools/list`, `tools/call`, `ping`.
The tools, all answered by the node daemon (handlers/comms.py) over <state>/node.sock:

    agents                  the agents this one may ask or tell: name, labels, state, description
    ask   {to, text, wait_s}  a turn for another agent; its reply, or a turn id to poll
    turn  {id, wait_s, cancel}  that turn as it stands (waiting up to wait_s), or cancelled
    tell  {to, text}          fire and forget

A refusal (comms, depth, rate, no head connected) comes back to the model as a tool
error and is a `comms_refused` event in this agent's transcript. The depth of an ask is
the depth of the turn that runs it plus one.
"""

import asyncio
import json
import logging
import os

from . import comms as policy
from .protocol import messages as m
from .protocol.errors import AgentError, CommsRefused, SacError, SpecError
from .rpc import open_unix_peer
from .served_socket import ServedSocket

log = logging.getLogger("sac_node.agent_talk")

SOCKET_NAME = "mcp.sock"  # in the agent's dir
INSIDE_SOCKET = "/run/sac/mcp.sock"  # where it appears in a sandbox
SERVER = "sac"  # the MCP server's name: its tools are mcp__sac__<tool>
ALLOW_RULE = "mcp__" + SERVER
PROTOCOL = "2025-06-18"
DEFAULT_WAIT_S, MAX_WAIT_S = 120.0, 600.0
LINE_LIMIT = 4 * 1024 * 1024
ALIVE_EVERY_S = 1.0  # below any stall_timeout_s worth setting

_TEXT = {"type": "string"}
_WAIT = {"type": "number", "description": "seconds to wait for the reply (default 120, at most 600)"}
TOOLS = [
    {"name": "agents", "description": "The agents of the fleet you may ask or tell: names, labels, state and "
                                      "what they do.", "inputSchema": {"type": "object", "properties": {}}},
    {"name": "ask", "description": "Ask another agent: a turn for it. Returns its reply, or a turn id to poll "
                                   "with `turn` when the wait ends first.",
     "inputSchema": {"type": "object", "properties": {"to": _TEXT, "text": _TEXT, "wait_s": _WAIT},
                     "required": ["to", "text"]}},
    {"name": "turn", "description": "A turn you asked for, by id: its reply once it has one (waiting up to wait_s), "
                                    "or cancel it.",
     "inputSchema": {"type": "object", "properties": {"id": _TEXT, "wait_s": _WAIT, "cancel": {"type": "boolean"}},
                     "required": ["id"]}},
    {"name": "tell", "description": "Tell another agent something (fire and forget): a turn for it whose reply "
                                    "you do not wait for.",
     "inputSchema": {"type": "object", "properties": {"to": _TEXT, "text": _TEXT}, "required": ["to", "text"]}},
]


def socket_path(agent_dir):
    return os.path.join(agent_dir.path, SOCKET_NAME)


def mcp_config(socket, source, python="python3"):
    """The --mcp-config JSON of the `sac` server: the bridge, run with `python`, to `socket`."""
    return json.dumps({"mcpServers": {SERVER: {"command": python, "args": ["-I", "-S", "-c", source, socket]}}})


def engine_side(spec, agent_dir, workdir, sandboxed):
    """(sockets, mcp) of an engine start: ((host path, path inside),) to bind into the sandbox when
    sandboxed (sandbox.build_launch's `sockets`), and build_argv's `mcp` (the --mcp-config JSON, the allow
    rule); ((), None) for an agent that does not talk (no `comms.ask` or `comms.tell`) or is not Claude Code.

    Claude Code still reads the workdir's own .mcp.json; a server there named `sac` would be hidden by
    this one, so it is refused rather than overridden."""
    if not (spec.comms.talks and spec.engine.is_claude):
        return (), None
    _check_users_servers(spec, os.path.join(workdir, ".mcp.json"))
    socket, sockets = socket_path(agent_dir), ()
    # The shim serves the socket before it starts the engine; the daemon's check before it spawns the
    # shim finds none yet, and a bind of a missing source would fail that check.
    if sandboxed and os.path.exists(socket):
        socket, sockets = INSIDE_SOCKET, ((socket, INSIDE_SOCKET),)
    return sockets, (mcp_config(socket, bridge_source()), ALLOW_RULE)


def _check_users_servers(spec, path):
    try:
        with open(path) as fh:
            servers = json.load(fh).get("mcpServers") or {}
    except (OSError, ValueError, AttributeError):
        return
    if SERVER in servers:
        raise SpecError("%s: %s defines an MCP server named %s, the name of sac's own server for comms; rename "
                        "yours (sac never overrides it)" % (spec.source, path, SERVER))


def bridge_source():
    import pkgutil  # from node.pyz as well as from a checkout

    return pkgutil.get_data(__package__, "mcp_bridge.py").decode("utf-8")


class TalkServer:
    """The shim's half: one listener, any number of bridge connections, a link to the node daemon.

    The shim gives it: `depth_of_current()` (the running turn's depth in a chain of asks), `record(subtype,
    **fields)` (an event in the transcript) and `alive()`, called while a tool call waits, so that a turn
    waiting for another agent's reply does not count as a silent, stalled engine."""

    def __init__(self, name, agent_dir, node_socket, comms, shim_side, clock):
        self.name, self.path, self.node_socket, self.comms = name, socket_path(agent_dir), node_socket, comms
        self.depth_of_current, self.record, self.alive = shim_side
        self.rate = policy.RateLimit(comms.rate_per_min, clock)
        self._socket, self._node, self._tasks = ServedSocket(self.path), None, set()

    async def serve(self):
        try:
            await self._socket.serve(self._on_client, LINE_LIMIT)
        except OSError as exc:
            raise AgentError("cannot serve the sac MCP server on %s (%s); comms needs it" % (self.path, exc)) from exc

    async def close(self):
        self._socket.close()
        for task in list(self._tasks):
            task.cancel()
        if self._node is not None:
            await self._node.close()

    async def _on_client(self, reader, writer):
        while True:
            try:
                line = await reader.readline()
            except (ValueError, ConnectionError):
                break
            if not line:
                break
            task = asyncio.ensure_future(self._answer(line, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        writer.close()

    async def _answer(self, line, writer):
        try:
            message = json.loads(line)
        except ValueError:
            return
        if not isinstance(message, dict) or "id" not in message:
            return  # a notification (initialized, cancelled): nothing to answer
        try:
            result = await self.handle(message.get("method"), message.get("params") or {})
            reply = {"jsonrpc": "2.0", "id": message["id"], "result": result}
        except KeyError as exc:
            reply = {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": str(exc)}}
        try:
            writer.write((json.dumps(reply) + "\n").encode("utf-8"))
            await writer.drain()
        except (ConnectionError, RuntimeError):
            pass

    async def handle(self, method, params):
        """One MCP request's result; KeyError for a method this server does not have."""
        if method == "initialize":
            return {"protocolVersion": params.get("protocolVersion") or PROTOCOL, "capabilities": {"tools": {}},
                    "serverInfo": {"name": SERVER, "version": "1"}}
        if method == "ping":
            return {}
        if method == "tools/list":
            return {"tools": TOOLS}
        if method == "tools/call":
            return await self.call(params.get("name"), params.get("arguments") or {})
        raise KeyError("method not found: %s" % method)

    async def call(self, tool, args):
        """A tools/call result: text content, `isError` for a refusal or a failed call."""
        beat = asyncio.ensure_future(self._keep_alive())
        try:
            text = await self._tool(tool, args)
            return {"content": [{"type": "text", "text": text}], "isError": False}
        except CommsRefused as exc:
            self.record(m.COMMS_REFUSED, tool=tool, to=args.get("to") or args.get("id"), reason=exc.message)
            return _error(exc.message)
        except SacError as exc:
            return _error(exc.message)
        finally:
            beat.cancel()

    async def _keep_alive(self):
        while True:
            self.alive()
            await asyncio.sleep(ALIVE_EVERY_S)

    async def _tool(self, tool, args):
        if tool == "agents":
            return json.dumps(await self._node_call(m.COMMS_AGENTS, {"from": self.name}), indent=1)
        if tool in (policy.ASK, policy.TELL):
            return await self._send(tool, args)
        if tool == "turn":
            turn = await self._node_call(m.COMMS_TURN, {"from": self.name, "id": str(args.get("id") or ""),
                                                        "wait_s": _wait(args), "cancel": bool(args.get("cancel"))})
            return _describe(turn)
        raise CommsRefused("the sac MCP server has no tool %r (agents, ask, turn, tell)" % (tool,))

    async def _send(self, kind, args):
        to, text = str(args.get("to") or ""), str(args.get("text") or "")
        if not to or not text:
            raise CommsRefused("%s needs `to` (an agent's name) and `text`" % kind)
        depth = self.depth_of_current() + 1
        self.rate.take(self.name)
        sent = await self._node_call(m.COMMS_SEND, {"from": self.name, "to": to, "kind": kind, "text": text,
                                                    "depth": depth, "wait_s": _wait(args) if kind == policy.ASK else 0,
                                                    "key": "msg-" + os.urandom(8).hex()})
        if kind == policy.ASK:
            return _describe(sent["turn"])
        if sent["turn"].get("status") == "queued":
            return "queued for %s (message %s): a head carries it to %s's host when one connects" % (
                to, sent["turn"]["id"], to)
        return "told %s (turn %s)" % (to, sent["turn"]["id"])

    async def _node_call(self, method, params):
        if self._node is None or self._node.closed:
            try:
                self._node = await open_unix_peer(self.node_socket, name="node")
            except OSError as exc:
                raise CommsRefused("the node daemon does not answer on this host (%s); try again shortly" % exc)
        return await self._node.call(method, params)


def _wait(args):
    try:
        wait = float(args.get("wait_s") or DEFAULT_WAIT_S)
    except (TypeError, ValueError):
        wait = DEFAULT_WAIT_S
    return max(0.0, min(wait, MAX_WAIT_S))


def _describe(turn):
    """What the model reads of a turn: the reply of a completed one, else where it stands."""
    status = turn.get("status")
    if status == m.COMPLETED:
        return turn.get("reply") or ""
    if status in m.TERMINAL:
        raise SacError("turn %s %s: %s" % (turn.get("id"), status, turn.get("error") or "no reply"))
    return "turn %s is still %s; ask for it again with the `turn` tool (id %s)" % (turn.get("id"), status,
                                                                                   turn.get("id"))


def _error(text):
    return {"content": [{"type": "text", "text": text}], "isError": True}
