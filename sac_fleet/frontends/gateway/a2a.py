"""A2A over the gateway: an agent card and a JSON-RPC endpoint per agent, a turn per task.

    GET  /a2a/{name}/.well-known/agent-card.json   the card (A2A 1.0, lists 1.0 and 0.3 interfaces)
    GET  /a2a/{name}/.well-known/agent.json        the same card in the 0.3 spelling
    POST /a2a/{name}                               JSON-RPC 2.0: message/send, message/stream, tasks/get,
                                                   tasks/cancel, tasks/resubscribe and their 1.0 names

The method name picks the dialect (see a2a_wire). JSON-RPC errors come back
with HTTP 200 and a code from schema.ERROR_TABLE; only token failures are HTTP
errors: a missing or unknown token (401, before this module runs) and a token
whose scopes do not cover the method (403).
"""

import contextlib
import json

from sac_node.protocol.errors import SacError, TurnNotFound
from sac_node.protocol.messages import TURN_ENDED, TURN_STARTED, agent_of_turn, is_sac_event

from .a2a_wire import (V03, V10, artifact_update, card, history_length, key_origin, message_key, parse_send,
                       render, status_update, task_id_param, task_of)
from .schema import (TERMINAL, Forbidden, InvalidRpcRequest, RpcMethodNotFound, TaskNotCancelable, check_agent_name,
                     check_turn_id, error_codes, json_response, read_json, start_sse)

from .scopes import FOLLOW, SEND

SEND_WAIT_S = 600.0  # a blocking message/send answers with the task as it stands after this long


class Call:
    """One JSON-RPC call to one agent's endpoint."""

    def __init__(self, request, gateway, agent, rpc_id, params, dialect):
        self.request, self.gw, self.agent = request, gateway, agent
        self.rpc_id, self.params, self.dialect = rpc_id, params, dialect

    def result(self, value):
        return json_response({"jsonrpc": "2.0", "id": self.rpc_id, "result": value})

    async def own_turn(self):
        """The turn named by params.id, if it belongs to this agent."""
        task_id = check_turn_id(task_id_param(self.params, self.agent))
        if agent_of_turn(task_id) != self.agent:
            raise TurnNotFound("task %s is not a task of agent %s" % (task_id, self.agent))
        return await self.gw.turn(task_id)

    async def submit(self):
        incoming = parse_send(self.params, self.dialect, self.agent)
        turn, _ = await self.gw.submit(self.agent, incoming.text,
                                       message_key(incoming.context_id, incoming.message_id))
        return incoming, turn


async def send(call):
    """message/send, SendMessage: a task, finished unless the client asked not to wait."""
    incoming, turn = await call.submit()
    if incoming.blocking and turn["status"] not in TERMINAL:
        turn = await call.gw.wait(turn["id"], SEND_WAIT_S)
    return call.result(render(task_of(turn, call.agent, incoming.history_length), call.dialect, wrap=True))


async def get(call):
    """tasks/get, GetTask."""
    turn = await call.own_turn()
    return call.result(render(task_of(turn, call.agent, history_length(call.params, call.dialect)), call.dialect))


async def cancel(call):
    """tasks/cancel, CancelTask: a finished task cannot be cancelled (A2A's TaskNotCancelable)."""
    turn = await call.own_turn()
    if turn["status"] in TERMINAL:
        raise TaskNotCancelable("task %s is already %s" % (turn["id"], turn["status"]))
    turn = await call.gw.cancel(turn["id"])
    return call.result(render(task_of(turn, call.agent), call.dialect))


async def stream(call):
    """message/stream, SendStreamingMessage: SSE of the task, its progress and its end."""
    incoming, turn = await call.submit()
    sub = None if turn["status"] in TERMINAL else await call.gw.subscribe(call.agent, turn_id=turn["id"])
    return await pipe(call, turn, sub, incoming.history_length)


async def resubscribe(call):
    """tasks/resubscribe, SubscribeToTask: the same stream for a task already sent."""
    turn = await call.own_turn()
    sub = None if turn["status"] in TERMINAL else await call.gw.subscribe(call.agent, turn_id=turn["id"])
    return await pipe(call, turn, sub, history_length(call.params, call.dialect))


async def pipe(call, turn, sub, hist):
    """Write the stream: the task, `working` with each piece of assistant text, the reply, the final status."""
    response = await start_sse(call.request)
    context_id = key_origin(turn, call.agent)[0]

    async def emit(obj):
        payload = {"jsonrpc": "2.0", "id": call.rpc_id, "result": render(obj, call.dialect, wrap=True)}
        await response.write(b"data: " + json.dumps(payload).encode() + b"\n\n")

    try:
        await emit(task_of(turn, call.agent, hist))
        if sub is None:
            return response
        running = dict(turn, status="running")
        async with contextlib.aclosing(call.gw.records(sub)) as records:
            async for record in records:
                if record is None:
                    await response.write(b": keepalive\n\n")
                    continue
                event = record.get("event") or {}
                if is_sac_event(event, TURN_STARTED):
                    running["started_at"] = record.get("ts")
                    await emit(status_update(running, context_id))
                elif event.get("type") == "assistant":
                    text = "".join(b.get("text", "") for b in (event.get("message") or {}).get("content") or []
                                   if isinstance(b, dict) and b.get("type") == "text")
                    if text:
                        await emit(status_update(running, context_id, text=text, seq=record["seq"]))
                elif is_sac_event(event, TURN_ENDED):
                    break
        turn = await call.gw.turn(turn["id"])
        if turn["status"] == "completed":
            await emit(artifact_update(turn, context_id))
        await emit(status_update(turn, context_id, final=turn["status"] in TERMINAL))
    except ConnectionResetError:
        pass  # the client went away; the turn goes on
    return response


METHODS = {
    "message/send": (send, V03), "SendMessage": (send, V10),
    "message/stream": (stream, V03), "SendStreamingMessage": (stream, V10),
    "tasks/get": (get, V03), "GetTask": (get, V10),
    "tasks/cancel": (cancel, V03), "CancelTask": (cancel, V10),
    "tasks/resubscribe": (resubscribe, V03), "SubscribeToTask": (resubscribe, V10),
}


def rpc_error(rpc_id, exc):
    return {"jsonrpc": "2.0", "id": rpc_id,
            "error": {"code": error_codes(exc)[1], "message": exc.message, "data": {"sac_code": exc.code}}}


def envelope(body):
    """(id, method, params) of a JSON-RPC request, or InvalidRpcRequest / RpcMethodNotFound."""
    if isinstance(body, list):
        raise InvalidRpcRequest("JSON-RPC batches are not supported; send one request per POST")
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or not isinstance(body.get("method"), str):
        raise InvalidRpcRequest('a JSON-RPC 2.0 request needs "jsonrpc": "2.0" and a "method"')
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise InvalidRpcRequest("params must be an object")
    if body["method"] not in METHODS:
        raise RpcMethodNotFound("unknown method %s; this endpoint serves %s" % (body["method"], ", ".join(METHODS)))
    return body.get("id"), body["method"], params


# What each method does, for the token's scopes: sending or cancelling acts on the agent; the rest reads.
ACTIONS = {send: SEND, stream: SEND, cancel: SEND, get: FOLLOW, resubscribe: FOLLOW}


def add_routes(app, gateway_key, allow):
    """The A2A routes, on an app that holds its Gateway under `gateway_key`; `allow(request, action, agent)`
    raises Forbidden when the request's token may not."""

    async def rpc(request):
        rpc_id = None
        try:
            agent = check_agent_name(request.match_info["name"])
            body = await read_json(request, any_json=True)
            rpc_id = body.get("id") if isinstance(body, dict) else None
            rpc_id, method, params = envelope(body)
            handler, dialect = METHODS[method]
            await allow(request, ACTIONS[handler], agent)
            return await handler(Call(request, request.app[gateway_key], agent, rpc_id, params, dialect))
        except Forbidden:
            raise  # a token failure: HTTP 403, not a JSON-RPC error
        except SacError as exc:
            return json_response(rpc_error(rpc_id, exc))

    def card_route(dialect):
        async def agent_card(request):
            await allow(request, FOLLOW, check_agent_name(request.match_info["name"]))
            status = await request.app[gateway_key].agent(request.match_info["name"])
            url = request.url.with_path("/a2a/%s" % status["name"]).with_query(None)
            return json_response(card(status, str(url), dialect))
        return agent_card

    app.router.add_get("/a2a/{name}/.well-known/agent-card.json", card_route(V10))
    app.router.add_get("/a2a/{name}/.well-known/agent.json", card_route(V03))
    app.router.add_post("/a2a/{name}", rpc)
