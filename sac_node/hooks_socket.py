"""Claude Code's hooks report to the shim: the socket, the agent's settings, the reporter script.

- `HooksServer` (the shim's): a unix socket `<agent>/hooks.sock` (0600) taking one JSON line per
  connection from hook_report.py and handing it to `Activity.hook`.
- `engine_side`: the socket bound into the sandbox at INSIDE_SOCKET (like the
  provider relay's net.sock), named to the engine by SAC_HOOKS_SOCKET; unsandboxed, its own path.
- `home_files(files)`: the agent's `~/.claude/settings.json` with sac's hooks added to the user's
  (from to_home; nothing the user set is changed or removed) and the reporter script beside it.
No network: the sandbox reaches the shim only through the bound socket.
"""

import asyncio
import json
import logging
import os
import pkgutil

from .served_socket import ServedSocket

log = logging.getLogger("sac_node.hooks_socket")

SOCKET_NAME = "hooks.sock"  # in the agent's dir, outside the sandbox
INSIDE_SOCKET = "/run/sac/hooks.sock"
SETTINGS = ".claude/settings.json"  # relative to the agent's home
SCRIPT = ".claude/sac-hook.py"
EVENTS = ("PreToolUse", "PostToolUse", "Notification", "Stop", "SubagentStop", "PreCompact", "SessionStart")
TOOL_EVENTS = ("PreToolUse", "PostToolUse")
COMMAND = 'python3 -I -S "$HOME/%s"' % SCRIPT
MAX_LINE = 64 * 1024


def socket_path(agent_dir):
    return os.path.join(agent_dir.path, SOCKET_NAME)


def engine_side(agent_dir, runtime):
    """(env, sockets) for an engine under `runtime`: the variable naming the socket as its hooks see it,
    and ((host path, path inside),) to bind into the sandbox. Nothing while the shim does not serve it
    (its path too long for AF_UNIX, say): a bind of a missing path would keep the sandbox from starting."""
    path = socket_path(agent_dir)
    if not os.path.exists(path):
        return {}, ()
    if runtime == "none":
        return {"SAC_HOOKS_SOCKET": path}, ()
    return {"SAC_HOOKS_SOCKET": INSIDE_SOCKET}, ((path, INSIDE_SOCKET),)


def home_files(files):
    """`files` (to_home: relative path -> bytes) with sac's hooks merged into the settings and the script added."""
    out = dict(files)
    user = files.get(SETTINGS)
    try:
        settings = json.loads(user.decode("utf-8")) if user else {}
    except ValueError:
        log.warning("to_home/%s is not JSON: kept as it is, without sac's status hooks", SETTINGS)
        return out
    if not isinstance(settings, dict):
        return out
    out[SETTINGS] = json.dumps(with_hooks(settings), indent=2).encode("utf-8")
    out[SCRIPT] = pkgutil.get_data(__package__, "hook_report.py")
    return out


def with_hooks(settings):
    """A copy of `settings` with one sac entry added to each event's hooks, after the user's own."""
    settings = dict(settings)
    hooks = settings.get("hooks")
    hooks = dict(hooks) if isinstance(hooks, dict) else {}
    if "hooks" in settings and not isinstance(settings["hooks"], dict):
        return settings  # the user's, however odd: not ours to change
    for event in EVENTS:
        entries = hooks.get(event)
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            continue
        ours = our_entry(event)
        if ours not in entries:
            entries = list(entries) + [ours]
        hooks[event] = entries
    settings["hooks"] = hooks
    return settings


def our_entry(event):
    """sac's entry for one event. The tool events run in step with the tool, so status and the stall
    watchdog know a tool runs before it starts; the others run in the background (`async`), so a turn
    waits for no report (a synchronous Stop hook added ~50 ms to every turn here)."""
    hook = {"type": "command", "command": COMMAND, "timeout": 5}
    if event in TOOL_EVENTS:
        return {"matcher": "*", "hooks": [hook]}
    return {"hooks": [dict(hook, **{"async": True})]}


class HooksServer:
    """The shim's end of the socket: each connection brings one hook report for `on_report(dict)`."""

    def __init__(self, agent_dir, on_report):
        self.path = socket_path(agent_dir)
        self.on_report = on_report
        self._socket = ServedSocket(self.path)

    async def serve(self):
        try:
            await self._socket.serve(self._on_client, MAX_LINE)
        except OSError as exc:  # the agent runs; its status has no activity from hooks
            log.warning("cannot serve %s (%s): status will not show the agent's activity", self.path, exc)

    def close(self):
        self._socket.close()

    async def _on_client(self, reader, writer):
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            report = json.loads(line.decode("utf-8")) if line.strip() else None
            if isinstance(report, dict):
                self.on_report(report)
        except (ValueError, asyncio.TimeoutError, OSError, asyncio.LimitOverrunError) as exc:
            log.info("a hook report was dropped: %s", exc)
        finally:
            writer.close()
