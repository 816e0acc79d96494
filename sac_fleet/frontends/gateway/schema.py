"""What the gateway accepts and how it fails: request bodies, the error table, turn views.

Bodies are validated strictly (unknown fields, wrong types and oversized
bodies are refused with a message naming the field); every error the gateway
returns comes from ERROR_TABLE, which maps an error class to an HTTP status
and a JSON-RPC code in one place.
"""

import json

from aiohttp import web
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from sac_node.protocol.messages import NAME_RE, TERMINAL, TURN_ID_RE, agent_of_turn
from sac_node.protocol.errors import (AgentError, AgentExists, AgentNotFound, AgentNotRunning, ConfigError,
                                      HostError, PlacementError, RpcError, SacError, SandboxUnavailable,
                                      TurnNotFound, TurnTimeout)

MAX_BODY = 1 << 20  # 1 MiB: a turn's text is a prompt, not a data set


class BadRequest(SacError):
    """The request itself is wrong (body, field, JSON); the message names what and how to fix it."""

    code = "bad_request"


class BodyTooLarge(BadRequest):
    code = "body_too_large"


class NotJson(BadRequest):
    code = "not_json"


class InvalidRpcRequest(BadRequest):
    """A JSON-RPC envelope that is not one (no method, a batch, ...)."""

    code = "invalid_request"


class RpcMethodNotFound(BadRequest):
    code = "method_not_found"


class ContentTypeNotSupported(BadRequest):
    """An A2A message part sac cannot pass to an agent (files, data): agents take text."""

    code = "content_type_not_supported"


class UnsupportedOperation(BadRequest):
    code = "unsupported_operation"


class PushNotSupported(BadRequest):
    code = "push_notifications_not_supported"


class TaskNotCancelable(SacError):
    code = "task_not_cancelable"


class Unauthorized(SacError):
    code = "unauthorized"


class Forbidden(SacError):
    code = "forbidden"


class RouteNotFound(SacError):
    code = "not_found"


class MethodNotAllowed(SacError):
    code = "method_not_allowed"


# (error class, HTTP status, JSON-RPC code). The first row whose class matches wins, so
# subclasses come before their parents. -32001..-32005 are A2A's own codes, -32010.. sac's.
ERROR_TABLE = (
    (Unauthorized, 401, -32010),
    (Forbidden, 403, -32011),
    (BodyTooLarge, 413, -32600),
    (NotJson, 400, -32700),
    (InvalidRpcRequest, 400, -32600),
    (RpcMethodNotFound, 404, -32601),
    (PushNotSupported, 400, -32003),
    (UnsupportedOperation, 400, -32004),
    (ContentTypeNotSupported, 415, -32005),
    (BadRequest, 400, -32602),
    (RouteNotFound, 404, -32601),
    (MethodNotAllowed, 405, -32601),
    (TurnNotFound, 404, -32001),
    (TaskNotCancelable, 409, -32002),
    (AgentNotFound, 404, -32012),
    (AgentNotRunning, 409, -32013),
    (AgentExists, 409, -32014),
    (TurnTimeout, 504, -32015),
    (SandboxUnavailable, 503, -32016),
    (AgentError, 400, -32017),
    (ConfigError, 400, -32602),
    (HostError, 502, -32020),
    (RpcError, 502, -32021),
    (PlacementError, 409, -32022),
    (SacError, 500, -32603),
)


def error_codes(exc):
    """(HTTP status, JSON-RPC code) of a SacError, from ERROR_TABLE."""
    for cls, status, rpc_code in ERROR_TABLE:
        if isinstance(exc, cls):
            return status, rpc_code
    return 500, -32603


def error_body(exc):
    """The JSON body of an error response: {"error": {code, message, data}}."""
    data = exc.data if isinstance(exc.data, dict) else {}
    data = {k: v for k, v in data.items() if k != "exit_code"}
    return {"error": {"code": exc.code, "message": exc.message, "data": data}}


def json_response(value, status=200, headers=None):
    return web.json_response(value, status=status, headers=headers,
                             dumps=lambda v: json.dumps(v, default=str))


def error_response(exc, headers=None):
    return json_response(error_body(exc), error_codes(exc)[0], headers)


async def start_sse(request):
    """Begin a Server-Sent Events response."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    return response


# -- request bodies ------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AgentTurnRequest(_Strict):
    """POST /agents/{name}/turn: a turn for the agent named in the path."""

    prompt: str = Field(min_length=1, description="the prompt (`text` and `input` are accepted too)",
                        validation_alias=AliasChoices("prompt", "text", "input"))
    wait: bool = Field(True, description="wait for the turn to end (else answer 202 at once)")
    timeout_s: float = Field(600.0, gt=0, le=86400, description="how long to wait before answering 504")
    idempotency_key: str | None = Field(None, min_length=1, max_length=256,
                                        description="the same key never runs a turn twice")


class TurnRequest(AgentTurnRequest):
    """POST /v1/turn: a turn for any agent of the fleet, wherever it runs."""

    agent: str = Field(min_length=1, description="the agent's name")


HINTS = {"message": "prompt", "timeout": "timeout_s",
         "key": "idempotency_key", "name": "agent"}


def describe_errors(model, exc):
    """One line naming every bad field of a ValidationError, with the fix where we know it."""
    allowed = ", ".join(model.model_fields)
    errors = exc.errors()
    unknown = [".".join(map(str, e["loc"])) for e in errors if e["type"] == "extra_forbidden"]
    hinted = {HINTS.get(field) for field in unknown}
    parts = []
    for field in unknown:
        hint = HINTS.get(field)
        parts.append("unknown field `%s`: %s" % (field, "use `%s`" % hint if hint in model.model_fields
                                                  else "allowed fields are %s" % allowed))
    for err in errors:
        field = ".".join(str(x) for x in err["loc"]) or "body"
        if err["type"] == "missing" and field not in hinted:
            parts.append("missing field `%s`" % field)
        elif err["type"] not in ("missing", "extra_forbidden"):
            parts.append("field `%s`: %s" % (field, err["msg"][0].lower() + err["msg"][1:]))
    return "; ".join(parts)


async def read_json(request, any_json=False):
    """The request body as a JSON object (any JSON value with any_json), or BadRequest / BodyTooLarge."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BodyTooLarge("request body is %d bytes; the limit is %d" % (request.content_length, MAX_BODY))
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge("request body is larger than the limit of %d bytes" % MAX_BODY) from None
    if len(raw) > MAX_BODY:
        raise BodyTooLarge("request body is %d bytes; the limit is %d" % (len(raw), MAX_BODY))
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise NotJson("request body is not JSON (%s); send a JSON object" % exc) from None
    if not isinstance(body, dict) and not any_json:
        raise BadRequest("request body must be a JSON object, not %s" % type(body).__name__)
    return body


async def read_model(request, model):
    """Read and validate the body into `model`."""
    body = await read_json(request)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(describe_errors(model, exc)) from None


def check_agent_name(name):
    if not NAME_RE.fullmatch(name or ""):
        raise AgentNotFound("no agent named %r: names are lowercase letters, digits and '-'" % name)
    return name


def check_turn_id(turn_id):
    if not TURN_ID_RE.fullmatch(turn_id or ""):
        raise TurnNotFound("no turn %r: turn ids look like <agent>.<16 hex digits>" % turn_id)
    return turn_id


# -- responses -----------------------------------------------------------------------


def _prompt(turn):
    """The prompt of a turn in the API's words (`prompt`) or the node's (`text`)."""
    return turn["prompt"] if "prompt" in turn else turn.get("text")


def turn_view(turn, agent=None):
    """A node's turn dict as the HTTP API shows it: `prompt` and `reply`, as everywhere (the node journals
    the prompt as `text`). `text` (the reply) and `input` (the prompt) are their deprecated old names."""
    return {
        "turn_id": turn["id"],
        "agent": agent or agent_of_turn(turn["id"]),
        "status": turn["status"],
        "prompt": _prompt(turn),
        "reply": turn.get("reply"),
        "session_id": turn.get("session_id"),
        "usage": turn.get("usage"),
        "timings": turn.get("timings"),
        "error": turn.get("error"),
        "notice": turn.get("notice"),
        "tools_refused": turn.get("tools_refused") or 0,
        "text": turn.get("reply"),
        "input": _prompt(turn),
        "accepted_at": turn.get("accepted_at"),
        "started_at": turn.get("started_at"),
        "ended_at": turn.get("ended_at"),
    }
