"""Byte streams to a node over SSH: a stream-local channel or an exec'd bridge's stdio.

`NodeStream` has the `read` / `write` / `drain` / `close` shape `sac_node.rpc.RpcPeer`
needs; a lost channel surfaces as ConnectionResetError. `scan_ready` skips
login-banner noise up to the node's READY line.
"""

from dataclasses import dataclass, field

import asyncssh

from sac_node.protocol.errors import BootstrapFailed
from sac_node.protocol.messages import READY_MARKER

MAX_BANNER_BYTES = 64 * 1024
STDERR_TAIL_BYTES = 4096


@dataclass
class NodeStream:
    """A binary byte stream to a node: `reader.read(n)`, `writer.write(b)`, `await writer.drain()`,
    `writer.close()`. `kind` is "stream-local" or "exec"; `ready` holds the fields of the
    READY line (exec only, e.g. {"proto": "1", "version": ..., "sha": ...})."""

    reader: "ChannelReader"
    writer: "ChannelWriter"
    kind: str
    ready: dict = field(default_factory=dict)


class ChannelReader:
    """Wraps an asyncssh reader; connection failures surface as ConnectionResetError."""

    def __init__(self, reader):
        self._reader = reader

    async def read(self, n=-1):
        try:
            return await self._reader.read(n)
        except (asyncssh.Error, asyncssh.BreakReceived, asyncssh.SignalReceived) as exc:
            raise ConnectionResetError("SSH channel lost: %s" % exc) from None

    async def readline(self):
        try:
            return await self._reader.readline()
        except (asyncssh.Error, asyncssh.BreakReceived, asyncssh.SignalReceived) as exc:
            raise ConnectionResetError("SSH channel lost: %s" % exc) from None


class ChannelWriter:
    """Wraps an asyncssh writer; `close()` also stops helper tasks of the channel."""

    def __init__(self, writer, tasks=()):
        self._writer = writer
        self._tasks = list(tasks)

    def write(self, data):
        try:
            self._writer.write(data)
        except asyncssh.Error as exc:
            raise ConnectionResetError("SSH channel lost: %s" % exc) from None

    async def drain(self):
        try:
            await self._writer.drain()
        except asyncssh.Error as exc:
            raise ConnectionResetError("SSH channel lost: %s" % exc) from None

    def write_eof(self):
        self._writer.write_eof()

    def is_closing(self):
        return self._writer.is_closing()

    def close(self):
        for task in self._tasks:
            task.cancel()
        self._writer.close()


async def drain_stderr(stream, tail):
    """Keep reading stderr (an unread stream would stall the channel); remember its tail."""
    try:
        while True:
            chunk = await stream.read(4096)
            if not chunk:
                return
            tail.extend(chunk)
            del tail[:-STDERR_TAIL_BYTES]
    except (asyncssh.Error, OSError):
        return


async def scan_ready(reader):
    """Read lines until one starts with READY_MARKER; return its `key=value` fields."""
    marker = READY_MARKER.encode()
    seen = 0
    while True:
        line = await reader.readline()
        if not line:
            raise BootstrapFailed("exited before it printed %s" % READY_MARKER)
        if line.startswith(marker):
            fields = line[len(marker):].decode(errors="replace").split()
            return dict(item.split("=", 1) for item in fields if "=" in item)
        seen += len(line)
        if seen > MAX_BANNER_BYTES:
            raise BootstrapFailed("printed over %d bytes without %s" % (MAX_BANNER_BYTES, READY_MARKER))
