"""An msgpack-rpc peer over any asyncio-style byte stream (the local transport).

The same class serves the daemon's clients, the shim's control socket and the
head's side of an SSH channel: it needs only `reader.read(n)`, `writer.write(b)`,
`writer.drain()` and `writer.close()`. Many requests may be in flight at once;
each incoming request runs in its own task.
"""

import asyncio
import itertools
import logging

from .protocol import framing
from .protocol.errors import ProtocolError, RpcError, SacError, from_wire

log = logging.getLogger("sac_node.rpc")

READ_CHUNK = 256 * 1024


class RpcPeer:
    """One connection. `handlers` maps method -> async fn(peer, params) -> result."""

    def __init__(self, reader, writer, handlers=None, on_notification=None, name="peer"):
        self._reader = reader
        self._writer = writer
        self._handlers = handlers or {}
        self._on_notification = on_notification
        self.name = name
        self._ids = itertools.count(1)
        self._pending = {}
        self._tasks = set()
        self._closed = asyncio.Event()
        self.close_reason = None
        # Per-connection state a handler may keep (e.g. subscriptions).
        self.context = {}

    @property
    def closed(self):
        return self._closed.is_set()

    async def run(self):
        """Read frames until EOF or a protocol error; then close."""
        decoder = framing.FrameDecoder()
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    self.close_reason = "eof"
                    break
                for frame in decoder.feed(data):
                    self._dispatch(frame)
        except ProtocolError as exc:
            self.close_reason = "protocol error: %s" % exc.message
            log.warning("[peer=%s] closing connection: %s", self.name, exc.message)
        except (ConnectionError, OSError) as exc:
            self.close_reason = "connection lost: %s" % exc
        except asyncio.CancelledError:
            self.close_reason = "cancelled"
            raise
        finally:
            await self.close()

    def _dispatch(self, frame):
        kind = frame[0]
        if kind == framing.REQUEST:
            self._spawn(self._serve(frame[1], frame[2], frame[3]))
        elif kind == framing.RESPONSE:
            fut = self._pending.pop(frame[1], None)
            if fut is not None and not fut.done():
                if frame[2] is not None:
                    fut.set_exception(from_wire(frame[2]))
                else:
                    fut.set_result(frame[3])
        elif self._on_notification is not None:
            try:
                self._on_notification(frame[1], frame[2])
            except Exception:
                log.exception("[peer=%s] notification handler failed", self.name)

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _serve(self, msgid, method, params):
        handler = self._handlers.get(method)
        error, result = None, None
        if handler is None:
            error = RpcError("unknown method %r" % method).to_wire()
        else:
            try:
                result = await handler(self, params if params is not None else {})
            except SacError as exc:
                error = exc.to_wire()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("[peer=%s] handler %s failed", self.name, method)
                error = RpcError("%s failed on the node: %s: %s" % (method, type(exc).__name__, exc)).to_wire()
        self._write(framing.encode_response(msgid, error, result))

    def _write(self, data):
        if self.closed:
            return
        try:
            self._writer.write(data)
        except (ConnectionError, OSError, RuntimeError):
            self._spawn(self.close())

    def notify(self, method, params):
        """Send a notification; never blocks (drained by the next call or response)."""
        self._write(framing.encode_notification(method, params))

    async def drain(self):
        try:
            await self._writer.drain()
        except (ConnectionError, OSError):
            await self.close()

    async def call(self, method, params=None, timeout=None):
        """Send a request and wait for its result; raises the rebuilt SacError on error."""
        if self.closed:
            raise RpcError("connection to %s is closed (%s)" % (self.name, self.close_reason))
        msgid = next(self._ids)
        fut = asyncio.get_event_loop().create_future()
        self._pending[msgid] = fut
        self._write(framing.encode_request(msgid, method, params if params is not None else {}))
        await self.drain()
        try:
            if timeout is None:
                return await fut
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(msgid, None)

    async def wait_closed(self):
        await self._closed.wait()

    async def close(self):
        if self._closed.is_set():
            return
        self._closed.set()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RpcError("connection to %s closed (%s)" % (self.name, self.close_reason or "closed")))
        self._pending.clear()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        try:
            self._writer.close()
            if hasattr(self._writer, "wait_closed"):
                await asyncio.wait_for(self._writer.wait_closed(), 2)
        except Exception:
            pass


async def open_unix_peer(path, handlers=None, on_notification=None, name=None):
    """Connect to a unix socket and return a running RpcPeer."""
    reader, writer = await asyncio.open_unix_connection(path, limit=READ_CHUNK)
    peer = RpcPeer(reader, writer, handlers, on_notification, name or path)
    peer.context["runner"] = asyncio.ensure_future(peer.run())
    return peer
