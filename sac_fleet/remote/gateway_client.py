"""Reaching agents through a running `sac fleet serve` instead of opening connections.

`sac fleet serve` records itself in <SAC_HOME>/gateway.json (url, pid, the
inventory it serves, its token file). When that gateway serves the same
inventory (or this machine's agents), `sac agents send` and `sac fleet send`
go through it: its SSH connections are already open, so a turn costs one
HTTP request and an event stream, not a handshake per host.

The client speaks the little HTTP/1.1 it needs over asyncio streams itself:
an HTTP library (aiohttp: ~0.4 s) would take longer to import than the turn.
"""

import asyncio
import json
import os
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from sac_node.protocol.errors import ERRORS_BY_CODE, HostUnreachable, RpcError, TurnTimeout

REQUEST_TIMEOUT_S = 300.0  # submit and lookup; the event stream is bounded by the turn's timeout instead


def registry_path(environ=None):
    environ = os.environ if environ is None else environ
    return Path(environ.get("SAC_HOME") or "~/.sac").expanduser() / "gateway.json"


def register(url, inventory, token_file, environ=None):
    """Record this process as the gateway (0600); returns the path, to remove at exit."""
    path = registry_path(environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"url": url, "pid": os.getpid(), "token_file": str(token_file),
                   "inventory": str(Path(inventory).resolve()) if inventory else None}, fh)
    return path


def unregister(path):
    try:
        if json.loads(Path(path).read_text()).get("pid") == os.getpid():
            Path(path).unlink()
    except (OSError, ValueError):
        pass


def discover(inventory=None, environ=None):
    """A GatewayClient for a live gateway serving `inventory` (None: this machine's agents), else None."""
    try:
        info = json.loads(registry_path(environ).read_text())
        os.kill(info["pid"], 0)
        token = Path(info["token_file"]).read_text().strip()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    wanted = str(Path(inventory).resolve()) if inventory else None
    if info.get("inventory") != wanted or not token:
        return None
    return GatewayClient(info["url"], token)


def _error(status, body):
    """Rebuild the SacError a gateway answered with (its body names the code)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        cls = ERRORS_BY_CODE.get(error.get("code"), RpcError)
        return cls(error.get("message") or "gateway answered HTTP %d" % status)
    return RpcError("gateway answered HTTP %d: %s" % (status, str(body)[:300]))


def node_turn(view):
    """The HTTP turn view as the node's turn dict (what Fleet.send returns)."""
    return {"id": view["turn_id"], "status": view["status"], "reply": view.get("text"), "text": view.get("input"),
            "session_id": view.get("session_id"), "usage": view.get("usage"), "timings": view.get("timings"),
            "error": view.get("error"), "accepted_at": view.get("accepted_at"), "ended_at": view.get("ended_at")}


class Response:
    """One HTTP/1.1 response on a connection of its own (the request said `Connection: close`)."""

    def __init__(self, url, status, headers, reader, writer):
        self.url, self.status, self.headers = url, status, headers
        self._reader, self._writer = reader, writer

    async def chunks(self):
        """The body's bytes as they arrive: chunked, sized by Content-Length, or up to the close."""
        try:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size = int((await self._reader.readline()).split(b";", 1)[0], 16)  # EOF: b"" -> ValueError
                    if size == 0:
                        return
                    yield await self._reader.readexactly(size)
                    await self._reader.readexactly(2)  # the CRLF after each chunk
            elif "content-length" in self.headers:
                yield await self._reader.readexactly(int(self.headers["content-length"]))
            else:
                yield await self._reader.read()
        except (OSError, EOFError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
            raise RpcError("the gateway at %s broke off its answer (%s)" % (self.url, reason)) from exc

    async def lines(self):
        """The body cut at each b"\n" (left out), line by line as they complete."""
        pending = b""
        async for chunk in self.chunks():
            *complete, pending = (pending + chunk).split(b"\n")
            for line in complete:
                yield line
        if pending:
            yield pending

    async def json(self):
        """The whole body as JSON: None when it is empty, its text when it is not JSON."""
        body = b"".join([chunk async for chunk in self.chunks()])
        try:
            return json.loads(body) if body.strip() else None
        except ValueError:
            return body.decode("utf-8", "replace")

    def close(self):
        self._writer.close()


class GatewayClient:
    """The few calls the CLI makes, over HTTP to a running gateway (plain http://, as it registers itself)."""

    def __init__(self, url, token):
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        self._address = (parts.hostname, parts.port or 80)
        self._netloc, self._prefix = parts.netloc, parts.path
        self._token = token

    async def _request(self, method, path, body=None):
        """Send one request on a new connection; its Response once the status line and headers are in."""
        try:
            reader, writer = await asyncio.open_connection(*self._address)
        except OSError as exc:
            raise HostUnreachable("the gateway at %s (listed in %s) does not answer: %s; start `sac fleet serve` "
                                  "again, or remove that file to reach the agents directly"
                                  % (self.url, registry_path(), exc.strerror or exc)) from exc
        try:
            data = b"" if body is None else json.dumps(body).encode()
            head = ["%s %s%s HTTP/1.1" % (method, self._prefix, path), "Host: " + self._netloc,
                    "Authorization: Bearer " + self._token, "Connection: close", "Content-Length: %d" % len(data)]
            if body is not None:
                head.append("Content-Type: application/json")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
            status_line = await reader.readline()  # b"HTTP/1.1 200 OK\r\n"
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            return Response(self.url, int(status_line.split()[1]), headers, reader, writer)
        except (OSError, ValueError, IndexError) as exc:
            writer.close()
            raise RpcError("the gateway at %s broke off or sent no HTTP answer (%s)"
                           % (self.url, str(exc) or type(exc).__name__)) from exc
        except BaseException:
            writer.close()
            raise

    async def _json(self, method, path, body=None):
        """One request's JSON answer; a SacError when the gateway answered one, or no answer came in time."""
        async def exchange():
            resp = await self._request(method, path, body)
            try:
                return resp.status, await resp.json()
            finally:
                resp.close()

        try:
            status, payload = await asyncio.wait_for(exchange(), REQUEST_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise HostUnreachable("the gateway at %s did not answer %s %s within %ds"
                                  % (self.url, method, path, REQUEST_TIMEOUT_S)) from None
        if status >= 400 or not isinstance(payload, dict):
            raise _error(status, payload)
        return payload

    async def send(self, name, text, wait=True, timeout=600.0, on_record=None, key=None):
        """Like Fleet.send: submit, stream the turn's records to `on_record`, return the finished turn."""
        key = key or "cli-" + uuid.uuid4().hex  # a retried POST never runs the turn twice
        accepted = await self._json("POST", "/v1/turn", {"agent": name, "text": text, "wait": False,
                                                         "idempotency_key": key})
        turn_id = accepted["turn_id"]
        if not wait:
            return {"id": turn_id, "status": "pending", "text": text}
        try:
            await asyncio.wait_for(self._follow(name, turn_id, on_record), timeout)
        except asyncio.TimeoutError:
            raise TurnTimeout("turn %s on agent %s is still running after %ss; it goes on: see "
                              "`sac agents tail %s`" % (turn_id, name, timeout, name),
                              {"turn_id": turn_id, "exit_code": 1}) from None
        return node_turn(await self._json("GET", "/v1/turns/%s" % quote(turn_id)))

    async def _follow(self, name, turn_id, on_record):
        """Pass the turn's records (the gateway's SSE `data:` lines) to `on_record` until the turn ends."""
        resp = await self._request("GET", "/v1/agents/%s/events?%s" % (quote(name), urlencode({"turn": turn_id})))
        try:
            if resp.status >= 400:
                raise _error(resp.status, await resp.json())
            async for raw in resp.lines():
                line = raw.decode("utf-8", "replace").rstrip("\r")
                if line.startswith("data: ") and on_record is not None:
                    on_record(json.loads(line[len("data: "):]))
        finally:
            resp.close()
