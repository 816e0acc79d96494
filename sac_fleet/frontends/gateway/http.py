"""The HTTP gateway (`sac fleet serve`): /v1/turn, turn lookup, status, SSE transcripts, A2A.

    app = make_app(Gateway(fleet), Keyring(tokens_path()))      # an aiohttp Application
    await serve(fleet, "127.0.0.1", 8642, Keyring(tokens_path()), on_ready=print)

Every route but /v1/health needs `Authorization: Bearer <token>` of a named token
(tokens.py) whose scopes allow what the route does (each route asks `allow`).
SacError is caught once, in `errors`, and rendered through schema.ERROR_TABLE.
"""

import asyncio
import contextlib
import json
import logging
import signal
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

import sac_node
from sac_node.protocol.errors import SacError
from sac_node.protocol.messages import TURN_ENDED, agent_of_turn, is_sac_event

from . import a2a, openapi
from .auth import CHALLENGE, PUBLIC_PATHS, authorize, check_request
from .schema import (MAX_BODY, TERMINAL, AgentTurnRequest, BadRequest, MethodNotAllowed, RouteNotFound,
                     TurnRequest, Unauthorized, check_agent_name, check_turn_id, error_response, json_response,
                     read_model, turn_view, start_sse)
from .scopes import FOLLOW, READ, SEND
from .service import Gateway
from .tokens import Keyring, Token

log = logging.getLogger("sac.gateway")
GATEWAY = web.AppKey("gateway", Gateway)
KEYRING = web.AppKey("keyring", Keyring)
TOKEN = web.RequestKey("token", Token)


class AccessLogger(AbstractAccessLogger):
    """One line per request: client, request line, status, size, time and the token's name (never its
    value; `-` when the request named no known token). Never headers."""

    def log(self, request, response, time):
        token = request.get(TOKEN)
        self.logger.info('%s "%s %s HTTP/%d.%d" %d %d %.6fs token=%s', request.remote, request.method,
                         request.path_qs, request.version.major, request.version.minor, response.status,
                         response.body_length, time, token.name if token is not None else "-")


@web.middleware
async def errors(request, handler):
    """SacError -> its status and JSON body; aiohttp's own 404/405 in the same shape."""
    try:
        return await handler(request)
    except Unauthorized as exc:
        return error_response(exc, CHALLENGE)
    except web.HTTPNotFound:
        return error_response(RouteNotFound("no route %s %s; the routes are listed at /openapi.json"
                                            % (request.method, request.path)))
    except web.HTTPMethodNotAllowed as exc:
        return error_response(MethodNotAllowed("%s is not allowed on %s (allowed: %s)" % (
            request.method, request.path, ", ".join(sorted(exc.allowed_methods)))))
    except SacError as exc:
        response = error_response(exc)
        if response.status >= 500:
            log.warning("%s %s -> %d %s: %s", request.method, request.path, response.status, exc.code, exc.message)
        return response
    except web.HTTPException:
        raise
    except Exception:  # a bug: its traceback goes to the log, the client gets the same JSON shape
        log.exception("%s %s failed", request.method, request.path)
        return json_response({"error": {"code": "internal_error", "data": {},
                                        "message": "internal error; the gateway's log has the traceback"}}, 500)


@web.middleware
async def guard(request, handler):
    """A known token on every route but the public ones (before routing, so 404s say nothing)."""
    if request.path not in PUBLIC_PATHS:
        request[TOKEN] = check_request(request.headers, request.app[KEYRING])
    return await handler(request)


async def allow(request, action, agent=None):
    """Forbidden (HTTP 403, naming the scope needed) unless the request's token may do `action`."""
    await authorize(request[TOKEN], action, agent, request.app[GATEWAY].labels)


# -- routes ------------------------------------------------------------------------


async def health(request):
    gw = request.app[GATEWAY]
    return json_response({"ok": True, "version": sac_node.__version__, "mode": gw.mode,
                          "uptime_s": round(time.time() - gw.started_at, 1)})


async def status(request):
    await allow(request, READ)
    return json_response(await request.app[GATEWAY].status())


async def agents(request):
    await allow(request, READ)
    return json_response(await request.app[GATEWAY].agents())


async def agent(request):
    await allow(request, FOLLOW, check_agent_name(request.match_info["name"]))
    return json_response(await request.app[GATEWAY].agent(request.match_info["name"]))


async def post_turn(request):
    body = await read_model(request, TurnRequest)
    await allow(request, SEND, check_agent_name(body.agent))
    return await run_turn(request.app[GATEWAY], body.agent, body)


async def post_agent_turn(request):
    body = await read_model(request, AgentTurnRequest)
    await allow(request, SEND, check_agent_name(request.match_info["name"]))
    return await run_turn(request.app[GATEWAY], request.match_info["name"], body)


async def run_turn(gw, agent_name, body):
    """202 once accepted (wait=false); 200 when the turn ended; 504 when the wait ended first."""
    turn, created = await gw.submit(agent_name, body.prompt, body.idempotency_key,
                                    wait_s=body.timeout_s if body.wait else None)
    if not body.wait:
        return json_response({"turn_id": turn["id"], "status": "accepted", "created": created}, 202)
    if turn["status"] in TERMINAL:
        return json_response(dict(turn_view(turn), created=created))
    return json_response({"turn_id": turn["id"], "status": turn["status"], "created": created,
                          "message": "the turn is still %s after %ss and goes on; poll GET /v1/turns/%s"
                          % (turn["status"], body.timeout_s, turn["id"])}, 504)


async def get_turn(request):
    await allow(request, FOLLOW, agent_of_turn(check_turn_id(request.match_info["turn_id"])))
    return json_response(turn_view(await request.app[GATEWAY].turn(request.match_info["turn_id"])))


async def cancel_turn(request):
    await allow(request, SEND, agent_of_turn(check_turn_id(request.match_info["turn_id"])))
    return json_response(turn_view(await request.app[GATEWAY].cancel(request.match_info["turn_id"])))


def _from_seq(request):
    raw = request.headers.get("Last-Event-ID") or request.query.get("from_seq")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest("Last-Event-ID / from_seq must be a record's seq (an integer), not %r" % raw) from None
    if value < 0:
        raise BadRequest("Last-Event-ID / from_seq must be >= 0, not %d" % value)
    return value


async def events(request):
    """SSE: the agent's transcript records (`id:` = seq); resumes after Last-Event-ID."""
    gw = request.app[GATEWAY]
    name = check_agent_name(request.match_info["name"])
    await allow(request, FOLLOW, name)
    turn_id = request.query.get("turn")
    sub = await gw.subscribe(name, turn_id=turn_id, from_seq=_from_seq(request))
    response = await start_sse(request)
    try:
        async with contextlib.aclosing(gw.records(sub)) as records:
            async for record in records:
                if record is None:
                    await response.write(b": keepalive\n\n")
                    continue
                await response.write(b"id: %d\ndata: %s\n\n" % (record["seq"], json.dumps(record).encode()))
                event = record.get("event") or {}
                if turn_id and is_sac_event(event, TURN_ENDED):
                    break
    except ConnectionResetError:
        pass  # the client went away
    return response


async def openapi_json(request):
    return json_response(openapi.document())


def make_app(gateway, keyring):
    """The aiohttp Application of a gateway over `gateway` (a Gateway), guarded by `keyring`'s tokens."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[errors, guard])
    app[GATEWAY] = gateway
    app[KEYRING] = keyring
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/agents", agents)
    app.router.add_get("/v1/agents/{name}", agent)
    app.router.add_get("/v1/agents/{name}/events", events)
    app.router.add_post("/v1/turn", post_turn)
    app.router.add_post("/agents/{name}/turn", post_agent_turn)
    app.router.add_post("/v1/agents/{name}/turn", post_agent_turn)
    app.router.add_get("/v1/turns/{turn_id}", get_turn)
    app.router.add_post("/v1/turns/{turn_id}/cancel", cancel_turn)
    app.router.add_get("/openapi.json", openapi_json)
    a2a.add_routes(app, GATEWAY, allow)
    return app


async def serve(fleet, host, port, keyring, on_ready=None, on_host=None, access_log=True):
    """Serve until SIGINT/SIGTERM, holding `fleet` (and so its host connections) open."""
    gateway = Gateway(fleet)
    try:
        await gateway.open(on_host)
        # A short shutdown timeout: open SSE streams never end on their own.
        runner = web.AppRunner(make_app(gateway, keyring), handler_cancellation=True, shutdown_timeout=2.0,
                               access_log=logging.getLogger("sac.gateway.access") if access_log else None,
                               access_log_class=AccessLogger)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = runner.addresses[0]
            if on_ready is not None:
                on_ready("http://%s:%d" % ("[%s]" % bound[0] if ":" in bound[0] else bound[0], bound[1]))
            await _until_stopped()
        finally:
            await runner.cleanup()
    finally:
        await gateway.close()


async def _until_stopped():
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
