"""/openapi.json: the gateway's routes as an OpenAPI 3.1 document (request bodies from the pydantic models)."""

import functools

import sac_node
from sac_node.protocol.messages import TURN_STATES

from .schema import AgentTurnRequest, ERROR_TABLE, TurnRequest


def _ref(name):
    return {"$ref": "#/components/schemas/%s" % name}


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _nullable(kind):
    return {"type": [kind, "null"]}


TURN = {"type": "object", "required": ["turn_id", "agent", "status"], "properties": {
    "turn_id": {"type": "string", "description": "<agent>.<16 hex digits>"},
    "agent": {"type": "string"},
    "status": {"enum": list(TURN_STATES)},
    "prompt": dict(_nullable("string"), description="the prompt"),
    "reply": dict(_nullable("string"), description="the reply, once completed"),
    "session_id": _nullable("string"),
    "usage": _nullable("object"),
    "timings": _nullable("object"),
    "error": _nullable("string"),
    "notice": dict(_nullable("string"), description="set when the agent's conversation was started again"),
    "tools_refused": {"type": "integer", "description": "tool calls the agent's permissions refused"},
    "text": dict(_nullable("string"), description="deprecated: the reply (use `reply`)", deprecated=True),
    "input": dict(_nullable("string"), description="deprecated: the prompt (use `prompt`)", deprecated=True),
    "accepted_at": _nullable("number"), "started_at": _nullable("number"), "ended_at": _nullable("number"),
    "created": {"type": "boolean", "description": "false when an idempotency key named an existing turn"},
}}
ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "code": {"enum": sorted({cls.code for cls, _, _ in ERROR_TABLE})},
    "message": {"type": "string"}, "data": {"type": "object"}}}}}
ACCEPTED = {"type": "object", "properties": {"turn_id": {"type": "string"}, "status": {"const": "accepted"},
                                             "created": {"type": "boolean"}}}
RUNNING = {"type": "object", "properties": {"turn_id": {"type": "string"},
                                            "status": {"enum": ["pending", "running"]},
                                            "message": {"type": "string"}}}
JSONRPC = {"type": "object", "required": ["jsonrpc", "method"], "properties": {
    "jsonrpc": {"const": "2.0"}, "id": {"type": ["string", "integer", "null"]},
    "method": {"enum": ["message/send", "message/stream", "tasks/get", "tasks/cancel", "tasks/resubscribe",
                        "SendMessage", "SendStreamingMessage", "GetTask", "CancelTask", "SubscribeToTask"]},
    "params": {"type": "object"}}}

ERRORS = {"400": _json(_ref("Error"), "bad body (the message names the field)"),
          "401": _json(_ref("Error"), "no bearer token, or an unknown one"),
          "403": _json(_ref("Error"), "the token's scopes do not allow this (the message names the scope needed)"),
          "404": _json(_ref("Error"), "no such agent or turn"),
          "409": _json(_ref("Error"), "the agent is not running"),
          "502": _json(_ref("Error"), "the agent's host did not answer")}
NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
TURN_ID = {"name": "turn_id", "in": "path", "required": True, "schema": {"type": "string"}}
SSE = {"description": "Server-Sent Events", "content": {"text/event-stream": {"schema": {"type": "string"}}}}


def _turn_post(body_schema, summary, params=()):
    return {"post": {"summary": summary, "parameters": list(params),
                     "requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}},
                     "responses": dict(ERRORS, **{
                         "200": _json(_ref("Turn"), "the turn ended (completed, failed, interrupted, cancelled)"),
                         "202": _json(_ref("Accepted"), "accepted (wait: false)"),
                         "413": _json(_ref("Error"), "body larger than 1 MiB"),
                         "504": _json(_ref("Running"), "the wait ended first; the turn goes on: poll it")})}}


def _get(summary, schema, params=(), public=False):
    op = {"summary": summary, "parameters": list(params), "responses": dict(ERRORS, **{"200": _json(schema, "ok")})}
    if public:
        op["security"] = []
    return {"get": op}


@functools.lru_cache(maxsize=1)
def document():
    """The OpenAPI document (built once)."""
    schemas = {"Turn": TURN, "Error": ERROR, "Accepted": ACCEPTED, "Running": RUNNING, "JsonRpcRequest": JSONRPC}
    for model in (TurnRequest, AgentTurnRequest):
        schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    any_json = {"type": ["object", "array"]}
    paths = {
        "/v1/health": _get("Liveness; the only route without a token", {"type": "object"}, public=True),
        "/v1/status": _get("Hosts and agents, desired next to actual (`sac fleet status --json`); without an "
                           "inventory, this machine's agents (`sac agents list --json`)", any_json),
        "/v1/agents": _get("Every agent, with its host", {"type": "array"}),
        "/v1/agents/{name}": _get("One agent's status", {"type": "object"}, [NAME]),
        "/v1/agents/{name}/events": {"get": {
            "summary": "The agent's transcript as SSE (`id:` = seq); resume with Last-Event-ID or ?from_seq=N; "
                       "?turn=ID for one turn (the stream ends with it)",
            "parameters": [NAME, {"name": "from_seq", "in": "query", "schema": {"type": "integer"}},
                           {"name": "turn", "in": "query", "schema": {"type": "string"}},
                           {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}],
            "responses": dict(ERRORS, **{"200": SSE})}},
        "/v1/turn": _turn_post(_ref("TurnRequest"), "Send a turn to any agent, wherever it runs"),
        "/agents/{name}/turn": _turn_post(_ref("AgentTurnRequest"), "Send a turn to the agent in the path", [NAME]),
        "/v1/agents/{name}/turn": _turn_post(_ref("AgentTurnRequest"), "Same as /agents/{name}/turn", [NAME]),
        "/v1/turns/{turn_id}": _get("A turn, as it stands", _ref("Turn"), [TURN_ID]),
        "/v1/turns/{turn_id}/cancel": {"post": {"summary": "Cancel a turn (a finished one is returned unchanged)",
                                                "parameters": [TURN_ID],
                                                "responses": dict(ERRORS, **{"200": _json(_ref("Turn"), "ok")})}},
        "/a2a/{name}/.well-known/agent-card.json": _get("A2A agent card (1.0)", {"type": "object"}, [NAME]),
        "/a2a/{name}/.well-known/agent.json": _get("A2A agent card (0.3 spelling)", {"type": "object"}, [NAME]),
        "/a2a/{name}": {"post": {
            "summary": "A2A JSON-RPC: a turn is a task; message/stream and SendStreamingMessage answer with SSE",
            "parameters": [NAME],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("JsonRpcRequest")}}},
            "responses": {"200": {"description": "a JSON-RPC response (errors too), or SSE for streams",
                                  "content": {"application/json": {"schema": {"type": "object"}},
                                              "text/event-stream": {"schema": {"type": "string"}}}},
                          "401": ERRORS["401"], "403": ERRORS["403"]}}},
        "/openapi.json": _get("This document", {"type": "object"}),
    }
    return {"openapi": "3.1.0",
            "info": {"title": "sac gateway", "version": sac_node.__version__,
                     "description": "Turns, status, transcripts and A2A for the agents of a sac fleet."},
            "components": {"schemas": schemas,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
            "paths": paths}
