"""A unix socket the shim serves into its agent's sandbox (hooks.sock, mcp.sock): bound 0600 in the
agent's dir, also when that path is too long for AF_UNIX (~107 bytes; a deep state dir).

A long path is bound through /proc/self/fd/<the agent dir>, which Linux resolves; inside the sandbox the
engine sees it at a short path under /run/sac, and a client outside it (an unsandboxed agent) connects
from the socket's own dir (hook_report.py and mcp_bridge.py do).
"""

import asyncio
import os

SHORT_ENOUGH = 100  # bytes of a path that AF_UNIX takes as it is


class ServedSocket:
    def __init__(self, path):
        self.path = path
        self.server = None
        self._dir_fd = None

    async def serve(self, on_client, limit):
        """Listen at `path` (replacing a socket left by a shim before); OSError when it cannot."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.server = await asyncio.start_unix_server(on_client, path=self._bind_path(), limit=limit)
        os.chmod(self.path, 0o600)

    def _bind_path(self):
        if len(self.path.encode()) < SHORT_ENOUGH or not os.path.isdir("/proc/self/fd"):
            return self.path
        self._dir_fd = os.open(os.path.dirname(self.path), os.O_RDONLY)
        return "/proc/self/fd/%d/%s" % (self._dir_fd, os.path.basename(self.path))

    def close(self):
        if self.server is not None:
            self.server.close()
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

