"""Reaching agents through a running `sac fleet serve` instead of opening connections.

`sac fleet serve` records itself in <SAC_HOME>/gateway.json (url, pid, the
inventory it serves, its token file). When that gateway serves the same
inventory (or this machine's agents), `sac agents send` and `sac fleet send`
go through it: its SSH connections are already open, so a turn costs one
HTTP request and an event stream, not a handshake per host.
"""

import asyncio
import json
import os
import uuid
from pathlib import Path

import aiohttp

from sac_node.protocol.errors import ERRORS_BY_CODE, RpcError, TurnTimeout


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


class GatewayClient:
    """The few calls the CLI makes, over HTTP to a running gateway."""

    def __init__(self, url, token):
        self.url = url.rstrip("/")
        self._headers = {"Authorization": "Bearer " + token}

    async def _json(self, session, method, path, body=None):
        async with session.request(method, self.url + path, json=body) as resp:
            payload = await resp.json(content_type=None)
            if resp.status >= 400:
                raise _error(resp.status, payload)
            return payload

    async def send(self, name, text, wait=True, timeout=600.0, on_record=None, key=None):
        """Like Fleet.send: submit, stream the turn's records to `on_record`, return the finished turn."""
        key = key or "cli-" + uuid.uuid4().hex  # a retried POST never runs the turn twice
        async with aiohttp.ClientSession(headers=self._headers) as session:
            accepted = await self._json(session, "POST", "/v1/turn", {"agent": name, "text": text, "wait": False,
                                                                     "idempotency_key": key})
            turn_id = accepted["turn_id"]
            if not wait:
                return {"id": turn_id, "status": "pending", "text": text}
            try:
                await asyncio.wait_for(self._follow(session, name, turn_id, on_record), timeout)
            except asyncio.TimeoutError:
                raise TurnTimeout("turn %s on agent %s is still running after %ss; it goes on: see "
                                  "`sac agents tail %s`" % (turn_id, name, timeout, name),
                                  {"turn_id": turn_id, "exit_code": 1}) from None
            return node_turn(await self._json(session, "GET", "/v1/turns/%s" % turn_id))

    async def _follow(self, session, name, turn_id, on_record):
        async with session.get(self.url + "/v1/agents/%s/events" % name, params={"turn": turn_id},
                               timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
            if resp.status >= 400:
                raise _error(resp.status, await resp.json(content_type=None))
            async for raw in resp.content:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if line.startswith("data: ") and on_record is not None:
                    on_record(json.loads(line[len("data: "):]))
