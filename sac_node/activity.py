"""What an agent is doing, from Claude Code's own hooks and its stream-json: `Activity`.

Claude Code runs hooks_socket.py's reporter on PreToolUse, PostToolUse, Notification, Stop,
SubagentStop, PreCompact and SessionStart; the shim feeds each report to `hook(payload)`.
The engine's output gives the context in use (`engine_event`: the last model call's tokens
against the model's window from the turn's `result`). `snapshot(now)` is what status shows;
`busy()` tells the stall watchdog that a tool is running. Pure: no I/O, the clock is given.
"""

import collections

RECENT_TOOLS = 5


class Activity:
    """One agent's live activity."""

    def __init__(self, clock):
        self.clock = clock
        self.tool = None  # the running tool: {name, summary, since, id}
        self.recent = collections.deque(maxlen=RECENT_TOOLS)  # ended tools, newest last
        self.context_tokens = None
        self.context_window = None
        self.compactions = 0
        self.waiting = []  # notifications for a human not yet followed by activity: {message, at}
        self.last_at = None  # the time of the last hook report or engine output
        self.hooks_seen = 0

    def busy(self):
        """A tool is running (PreToolUse came, its PostToolUse not yet): silence is not a stall."""
        return self.tool is not None

    def hook(self, payload):
        """One report of a Claude Code hook (hooks_socket.py's reporter trims its input)."""
        if not isinstance(payload, dict):
            return
        now = self.clock()
        self.last_at, self.hooks_seen = now, self.hooks_seen + 1
        event = payload.get("hook_event_name")
        if event == "PreToolUse":
            self.waiting = []
            self._end_tool(now, None)
            self.tool = {"name": str(payload.get("tool_name") or "?"), "summary": payload.get("summary") or "",
                         "since": now, "id": payload.get("tool_use_id")}
        elif event == "PostToolUse":
            self._end_tool(now, payload.get("tool_use_id"), payload.get("tool_name"))
        elif event == "Notification":
            self.waiting = (self.waiting + [{"message": str(payload.get("message") or ""), "at": now}])[-5:]
        elif event == "PreCompact":
            self.compactions += 1
        # Stop and SessionStart only mark activity: they come in the background (hooks_socket.our_entry),
        # maybe after the next turn's PreToolUse, so they must not end a tool.

    def _end_tool(self, now, tool_use_id, name=None):
        tool = self.tool
        if tool is None and name:  # a PostToolUse whose PreToolUse was not seen
            tool = {"name": str(name), "summary": "", "since": now, "id": tool_use_id}
        if tool is None:
            return
        self.tool = None
        self.recent.append({"name": tool["name"], "summary": tool["summary"], "started_at": tool["since"],
                            "duration_s": round(now - tool["since"], 3)})

    def engine_started(self):
        """A new engine: a tool the last one ran (killed by a timeout, say) runs no more."""
        self._end_tool(self.clock(), None)

    def turn_started(self):
        """A new turn from a human or a program: earlier notifications are answered."""
        self.waiting = []

    def engine_event(self, event):
        """A stream-json event of the engine: the context its last model call used, and the model's window."""
        kind = event.get("type")
        self.last_at = self.clock()
        if kind == "assistant":
            usage = (event.get("message") or {}).get("usage")
            if isinstance(usage, dict):
                self.context_tokens = sum(int(usage.get(k) or 0) for k in (
                    "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"))
        elif kind == "result":
            windows = [m.get("contextWindow") for m in (event.get("modelUsage") or {}).values()
                       if isinstance(m, dict) and isinstance(m.get("contextWindow"), int)]
            if windows:
                self.context_window = max(windows)

    def snapshot(self, now):
        """The `activity` of agents.status (docs/http-api.md)."""
        tool = None
        if self.tool is not None:
            tool = {"name": self.tool["name"], "summary": self.tool["summary"], "since": self.tool["since"],
                    "running_s": round(now - self.tool["since"], 1)}
        percent = None
        if self.context_tokens is not None and self.context_window:
            percent = round(100.0 * self.context_tokens / self.context_window, 2)
        return {"tool": tool, "recent_tools": list(reversed(self.recent)),
                "context": {"tokens": self.context_tokens, "window": self.context_window, "percent": percent},
                "compactions": self.compactions, "waiting": list(self.waiting), "last_activity_at": self.last_at,
                "hooks_seen": self.hooks_seen}
