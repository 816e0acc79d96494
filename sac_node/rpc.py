"""An msgpack-rpc peer over any asyncio-style byte stream (the local transport).

The same class serves the daemon's clients, the shim's control socket and the
head's side of an SSH channel: it needs only `reader.read(n)`, `writer.write(b)`,
`writer.drain()` and `writer.close()`. Many requests may be in flight at once;
each incoming request runs in its own task. Between head and node, frames
written in the same moment leave in one write (one system call, one SSH
packet); on a shim's socket, where one frame at a time is the rule, each
leaves at once.

The daemon relays the hot turn methods to shims without a task and without
decoding the shim's reply: `relay` takes the request, `forward` sends it on,
and the reply goes back re-addressed (see protocol/framing.py).
"""

import asyncio
import itertools
import logging

from .protocol import framing
from .protocol.errors import ProtocolError, RpcError, SacError, from_wire

log = logging.getLogger("sac_node.rpc")

READ_CHUNK = 256 * 1024
# asyncio reads up to 256 KiB per recv. glibc serves allocations that large with
# mmap, so every read would cost an mmap, an mremap and a munmap; 64 KiB stays
# on the heap.
TRANSPORT_READ_BYTES = 64 * 1024


def bounded_reads(transport):
    """Make an asyncio transport read at most TRANSPORT_READ_BYTES at a time."""
    if transport is not None and hasattr(transport, "max_size"):
        transport.max_size = TRANSPORT_READ_BYTES


class RpcPeer:
    """One connection. `handlers` maps method -> async fn(peer, params) -> result."""

    def __init__(self, reader, writer, handlers=None, on_notification=None, name="peer", relay=None,
                 prefixed=False, relay_lost=None):
        self._reader = reader
        self._writer = writer
        self._handlers = handlers or {}
        self._on_notification = on_notification
        self.name = name
        self._relay = relay  # fn(peer, msgid, method, params) -> True when it took the request
        self._prefixed = prefixed  # a shim's socket: length-prefixed frames, each written at once
        # fn(client peer, its msgid, method, params) -> True when it took over a request forwarded on
        # this connection that closed before its reply
        self._relay_lost = relay_lost
        self._ids = itertools.count(1)
        self._pending = {}
        self._relayed = {}  # our msgid -> (client peer, its msgid, method, its params), for replies passed on
        self._out = []  # frames written in this moment, sent together by _flush
        self._tasks = set()
        bounded_reads(getattr(writer, "transport", None))
        self._closed = asyncio.Event()
        self.close_reason = None
        # Per-connection state a handler may keep (e.g. subscriptions).
        self.context = {}

    @property
    def closed(self):
        return self._closed.is_set()

    async def run(self):
        """Read frames until EOF or a protocol error; then close."""
        decoder = framing.PrefixedSplitter() if self._prefixed else framing.FrameDecoder()
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    self.close_reason = "eof"
                    break
                for frame in decoder.feed(data):
                    if self._prefixed:
                        if self._relayed and self._pass_on(frame):
                            continue
                        frame = framing.decode_frame(frame)
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
            if self._relay is not None and self._relay(self, frame[1], frame[2], frame[3]):
                return
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

    def _pass_on(self, data):
        """Send a reply to a forwarded request back to its client, re-addressed; False if it is not one."""
        found = framing.response_id(data)
        target = self._relayed.pop(found[0], None) if found else None
        if target is None:
            return False
        client, client_msgid = target[:2]
        client._write(framing.readdressed(data, found[1], client_msgid))
        return True

    def forward(self, method, params, client, client_msgid, original=None):
        """Send `client`'s request on; its reply goes back to `client` without being decoded here.

        `original` is the request's params as the client sent them, for `relay_lost`."""
        if self.closed:
            client._write(framing.encode_response(client_msgid, self._closed_error().to_wire(), None))
            return
        msgid = next(self._ids)
        self._relayed[msgid] = (client, client_msgid, method, params if original is None else original)
        self._write(framing.encode_request(msgid, method, params))

    def serve(self, msgid, method, params):
        """Serve a request of this peer's through its handlers, as if it had just arrived (not relayed)."""
        self._spawn(self._serve(msgid, method, params))

    def _closed_error(self):
        return RpcError("connection to %s closed (%s)" % (self.name, self.close_reason or "closed"))

    def _write(self, data):
        if self.closed:
            return
        if self._prefixed:
            self._send(framing.prefixed(data))
            return
        self._out.append(data)
        if len(self._out) == 1:
            asyncio.get_event_loop().call_soon(self._flush)

    def _flush(self):
        if not self._out or self.closed:
            return
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out.clear()
        self._send(data)

    def _send(self, data):
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
        self._flush()
        self._closed.set()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(self._closed_error())
        self._pending.clear()
        for client, client_msgid, method, params in self._relayed.values():
            if self._relay_lost is not None and self._relay_lost(client, client_msgid, method, params):
                continue
            client._write(framing.encode_response(client_msgid, self._closed_error().to_wire(), None))
        self._relayed.clear()
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


async def open_unix_peer(path, handlers=None, on_notification=None, name=None, prefixed=False, relay_lost=None):
    """Connect to a unix socket and return a running RpcPeer (`prefixed` for a shim's socket)."""
    reader, writer = await asyncio.open_unix_connection(path, limit=READ_CHUNK)
    peer = RpcPeer(reader, writer, handlers, on_notification, name or path, prefixed=prefixed,
                   relay_lost=relay_lost)
    peer.context["runner"] = asyncio.ensure_future(peer.run())
    return peer
