"""The engine's process as the shim sees it: lines out, lines in, an exit code.

Output lines reach the shim's callbacks from the pipe's own callback, every
complete line of a read at once: no task, no stream reader and no wake-up per
line (asyncio's StreamReader costs a future and a task switch for each). A
line longer than LINE_LIMIT is handed on in pieces of about that size (their
JSON fails to parse, so the shim records them as noise) instead of growing
without bound.
"""

import asyncio
import logging

from .rpc import bounded_reads

log = logging.getLogger("sac_node.engine_proc")

LINE_LIMIT = 64 * 1024 * 1024


class EngineProcess(asyncio.SubprocessProtocol):
    """One engine process; `start` it, then `write` turns and `await wait()` its exit code."""

    def __init__(self, on_stdout, on_stderr):
        loop = asyncio.get_event_loop()
        self._on_line = {1: on_stdout, 2: on_stderr}
        self._partial = {1: [], 2: []}  # the chunks of a line not yet ended, per pipe
        self._partial_size = {1: 0, 2: 0}
        self._open = {1, 2}
        self._paused = None  # a future while the stdin pipe is over its high-water mark
        self.exited = loop.create_future()  # the exit code
        self.output_closed = loop.create_future()  # stdout and stderr both at EOF
        self.transport = None
        self.pid = None

    @classmethod
    async def start(cls, argv, on_stdout, on_stderr, **popen_kwargs):
        loop = asyncio.get_event_loop()
        pipe = asyncio.subprocess.PIPE
        _, proc = await loop.subprocess_exec(lambda: cls(on_stdout, on_stderr), *argv, stdin=pipe, stdout=pipe,
                                             stderr=pipe, **popen_kwargs)
        return proc

    @property
    def returncode(self):
        return self.transport.get_returncode() if self.transport is not None else None

    async def wait(self):
        """The exit code, once the process has exited (cancelling this wait leaves the process alone)."""
        return await asyncio.shield(self.exited)

    def write(self, data):
        self.transport.get_pipe_transport(0).write(data)

    async def drain(self):
        """Return once stdin's buffer is below its high-water mark; BrokenPipeError if the engine closed it."""
        if self._paused is not None:
            await self._paused

    def close_stdin(self):
        pipe = self.transport.get_pipe_transport(0)
        if pipe is not None:
            pipe.close()

    # -- asyncio.SubprocessProtocol ------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self.pid = transport.get_pid()
        for fd in (1, 2):
            bounded_reads(transport.get_pipe_transport(fd))

    def _emit(self, fd, line):
        try:
            self._on_line[fd](line)
        except Exception:  # one line's trouble (a full disk, say) must not cost the lines after it
            log.exception("handling a line of the engine's %s failed", "stdout" if fd == 1 else "stderr")

    def pipe_data_received(self, fd, data):
        partial = self._partial[fd]
        start = 0
        end = data.find(b"\n")
        while end >= 0:
            line = data[start:end + 1]
            if partial:
                partial.append(line)
                line = b"".join(partial)
                partial.clear()
                self._partial_size[fd] = 0
            self._emit(fd, line)
            start = end + 1
            end = data.find(b"\n", start)
        if start < len(data):
            partial.append(data[start:] if start else data)
            self._partial_size[fd] += len(data) - start
            if self._partial_size[fd] > LINE_LIMIT:
                line = b"".join(partial)
                partial.clear()
                self._partial_size[fd] = 0
                self._emit(fd, line)

    def pipe_connection_lost(self, fd, exc):
        if fd == 0:
            self._resume(BrokenPipeError("the engine closed its stdin"))
            return
        if self._partial[fd]:  # the last line, without its newline
            line = b"".join(self._partial[fd])
            self._partial[fd].clear()
            self._emit(fd, line)
        self._open.discard(fd)
        if not self._open and not self.output_closed.done():
            self.output_closed.set_result(None)
            self._close_when_done()

    def process_exited(self):
        if not self.exited.done():
            self.exited.set_result(self.transport.get_returncode())
        self._close_when_done()

    def pause_writing(self):
        if self._paused is None:
            self._paused = asyncio.get_event_loop().create_future()

    def resume_writing(self):
        self._resume(None)

    def _resume(self, exc):
        paused, self._paused = self._paused, None
        if paused is not None and not paused.done():
            if exc is None:
                paused.set_result(None)
            else:
                paused.set_exception(exc)

    def _close_when_done(self):
        if self.exited.done() and self.output_closed.done():
            self.transport.close()
