"""The provider's HTTP side: aiohttp routes, fault delivery, the request log, and runners.

Routes: POST /v1/messages (streaming SSE or JSON; `?beta=true` is accepted),
POST /v1/messages/count_tokens, GET /v1/models, and HEAD/GET / (Claude Code probes it).
API keys and auth headers are read to pick key faults and never stored or logged.
"""

import asyncio
import itertools
import json
import threading
from dataclasses import dataclass

from aiohttp import web

from .conversation import Conversation
from .responder import Responder
from .script import coerce_script
from .sse import error_body, message_body, stream_events

MODELS = ("claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5")
SHUTDOWN_GRACE_S = 0.5


@dataclass(frozen=True)
class RequestRecord:
    """One received request, as logged: never the API key or any header value."""

    method: str
    path: str
    model: str = ""
    stream: bool = False
    rule: str = ""
    status: int = 200
    fault: str = ""  # hang, stall or slow when the reply is delivered badly
    prompt: str = ""

    def line(self):
        """The one-line log form."""
        parts = [self.method, self.path]
        if self.model:
            parts += ["model=%s" % self.model, "stream=%s" % str(self.stream).lower()]
        if self.rule:
            parts.append("rule=%s" % self.rule)
        parts.append("status=%d" % self.status)
        if self.fault:
            parts.append("fault=%s" % self.fault)
        return " ".join(parts)


class Provider:
    """The provider as an aiohttp application plus its log.

    `requests` holds each received JSON body (bodies carry no keys), `records` the
    matching RequestRecord; `on_request(record)` is called for each one (the CLI prints).
    """

    def __init__(self, script=None, on_request=None):
        self.responder = Responder(script)
        self.requests = []
        self.records = []
        self._on_request = on_request
        self._numbers = itertools.count(1)
        self.closing = False

    def load_script(self, script):
        """Replace the script and reset its `times` counters."""
        self.responder.load(script)

    def app(self):
        """A fresh aiohttp Application serving this provider."""
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/", self._root)
        return app

    def _record(self, request, body=None, rule="", status=200, prompt="", fault=""):
        body = body if isinstance(body, dict) else {}
        record = RequestRecord(
            method=request.method,
            path=request.path_qs,
            model=str(body.get("model") or ""),
            stream=bool(body.get("stream")),
            rule=rule,
            status=status,
            fault=fault,
            prompt=prompt,
        )
        self.records.append(record)
        if self._on_request is not None:
            self._on_request(record)

    async def _messages(self, request):
        body = await _json_body(request)
        if body is None:
            self._record(request, status=400)
            return _error(400, "invalid_request_error", "the request body is not a JSON object")
        self.requests.append(body)
        reply = self.responder.respond(body, api_key=_api_key(request))
        fault = reply.fault
        status = fault.status if fault is not None and fault.status else 200
        self._record(request, body, reply.label, status, reply.prompt, _fault_name(fault))
        if status != 200:
            return _fault_response(fault)
        if fault is not None and (fault.hang or (fault.stall and not body.get("stream"))):
            await self._until_gone(request)
            return web.Response(status=503)
        model = str(body.get("model") or MODELS[0])
        number = next(self._numbers)
        delay = (fault.chunk_delay or 0) if fault is not None else 0
        if not body.get("stream"):
            await asyncio.sleep(delay * len(stream_events(reply, model, number)))
            return web.json_response(message_body(reply, model, number), headers=_ids(number))
        return await self._stream(request, reply, model, number, fault)

    async def _stream(self, request, reply, model, number, fault):
        response = web.StreamResponse(headers=dict(_ids(number), **{"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}))
        await response.prepare(request)
        events = stream_events(reply, model, number)
        delay = (fault.chunk_delay or 0) if fault is not None else 0
        try:
            for index, chunk in enumerate(events):
                if index and delay:
                    await asyncio.sleep(delay)
                await response.write(chunk)
                if fault is not None and fault.stall and index == min(2, len(events) - 1):
                    await self._until_gone(request)
                    return response
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away mid-stream; nothing to tell it
        return response

    async def _until_gone(self, request):
        """Wait until the client disconnects or the provider shuts down (the hang fault)."""
        while not self.closing:
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            await asyncio.sleep(0.05)

    async def _count_tokens(self, request):
        body = await _json_body(request)
        if body is None:
            self._record(request, status=400)
            return _error(400, "invalid_request_error", "the request body is not a JSON object")
        self._record(request, body, rule="count_tokens")
        return web.json_response({"input_tokens": Conversation.from_body(body).input_words})

    async def _models(self, request):
        self._record(request)
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in MODELS]
        return web.json_response({"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]})

    async def _root(self, request):
        return web.Response(text="sac provider\n")


async def start_site(provider, host="127.0.0.1", port=0):
    """Serve `provider` on host:port (0 = a free port); return (runner, url)."""
    runner = web.AppRunner(provider.app(), access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    shown = "[%s]" % bound_host if ":" in bound_host else bound_host
    return runner, "http://%s:%d" % (shown, bound_port)


async def stop_site(provider, runner):
    """Stop serving; hanging requests end at once."""
    provider.closing = True
    await runner.cleanup()


class ProviderServer:
    """A provider on a real loopback socket, run by a background thread with its own loop.

    For tests and benchmarks that drive real clients: `start()` returns once it listens;
    `url`, `requests`, `records` and `load_script()` are usable from any thread.
    """

    def __init__(self, script=None, host="127.0.0.1", port=0, on_request=None):
        self.provider = Provider(script, on_request=on_request)
        self._host, self._port = host, port
        self._loop = None
        self._runner = None
        self._thread = None
        self.url = None

    @property
    def requests(self):
        """The JSON bodies received on /v1/messages, in order."""
        return self.provider.requests

    @property
    def records(self):
        """A RequestRecord per received request, in order."""
        return self.provider.records

    def load_script(self, script):
        """Replace the script (Script, mapping, YAML/JSON path, or None) and reset counters."""
        parsed = coerce_script(script)  # a bad script raises here, in the caller's thread
        if self._thread is None:
            self.provider.load_script(parsed)
            return
        done = threading.Event()

        def swap():
            self.provider.load_script(parsed)
            done.set()

        self._loop.call_soon_threadsafe(swap)
        done.wait(timeout=10)

    def client_env(self, api_key="sac-test-key"):
        """Environment for a Claude Code client of this provider (merge into os.environ)."""
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": api_key,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
        }

    def start(self):
        """Start listening; raises what binding raised."""
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure = []

        def run():
            asyncio.set_event_loop(self._loop)
            try:
                self._runner, self.url = self._loop.run_until_complete(start_site(self.provider, self._host, self._port))
            except BaseException as exc:  # handed to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="sac-provider", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._loop.close()
            raise failure[0]
        return self

    def stop(self):
        """Stop listening and join the thread."""
        if self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(stop_site(self.provider, self._runner), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


async def _json_body(request):
    try:
        body = await request.json(loads=json.loads)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _api_key(request):
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def _fault_name(fault):
    if fault is None or fault.status:
        return ""
    return "hang" if fault.hang else "stall" if fault.stall else "slow"


def _ids(number):
    return {"request-id": "req_sac%08d" % number}


def _error(status, error_type, message, headers=None):
    return web.json_response(error_body(error_type, message), status=status, headers=headers)


def _fault_response(fault):
    headers = {}
    if fault.retry_after is not None:
        value = fault.retry_after
        headers["retry-after"] = str(int(value)) if float(value).is_integer() else str(value)
    if fault.should_retry is not None:
        headers["x-should-retry"] = "true" if fault.should_retry else "false"
    message = fault.message or "sac provider: scripted %d fault" % fault.status
    return _error(fault.status, fault.error_type(), message, headers)
