"""Tool calls the engine refused, found in its stream-json events (pure: events in, records out).

Claude Code refuses a call in one of two ways, and says so in the structure of its events:

- its permission system denies it (a tool outside `--allowedTools` in dontAsk mode, a rule of
  `--disallowedTools`): the turn's `result` event lists it in `permission_denials`
  (`tool_name`, `tool_use_id`, `tool_input`);
- the tool is not there at all (a bare name in `--disallowedTools` removes it): the call gets a
  `tool_result` with `is_error`, and the tool is missing from the `tools` of the `system` `init` event.

Either way the model gets the refusal back as an error and the turn goes on.
"""

import json

from .protocol import messages as m

INPUT_CHARS = 200  # of a refused call's input kept in its event; the transcript has it whole


class RefusalWatch:
    """Reads one engine's events; `feed` returns a `tool_refused` event per refused call."""

    def __init__(self):
        self.available = None  # tool names of the latest init event; None until one is seen
        self.calls = {}  # tool_use_id -> (name, input) of this turn's calls
        self.reported = set()
        self.turn_count = 0

    def new_turn(self):
        self.calls.clear()
        self.reported.clear()
        self.turn_count = 0

    def feed(self, event):
        kind = event.get("type")
        if kind == "system" and event.get("subtype") == "init" and isinstance(event.get("tools"), list):
            self.available = set(event["tools"])
        elif kind == "assistant":
            for block in _blocks(event):
                if block.get("type") == "tool_use" and block.get("id"):
                    self.calls[block["id"]] = (block.get("name"), block.get("input"))
        elif kind == "user":
            return [self._refused(b["tool_use_id"], "not_available") for b in _blocks(event)
                    if b.get("type") == "tool_result" and b.get("is_error") and self._unavailable(b.get("tool_use_id"))]
        elif kind == "result":
            found = []
            for denial in event.get("permission_denials") or []:
                if isinstance(denial, dict) and denial.get("tool_use_id") not in self.reported:
                    self.calls.setdefault(denial.get("tool_use_id"), (denial.get("tool_name"), denial.get("tool_input")))
                    found.append(self._refused(denial.get("tool_use_id"), "permission"))
            return found
        return []

    def _unavailable(self, tool_use_id):
        call = self.calls.get(tool_use_id)
        return (call is not None and self.available is not None and call[0] not in self.available
                and tool_use_id not in self.reported)

    def _refused(self, tool_use_id, reason):
        self.reported.add(tool_use_id)
        self.turn_count += 1
        name, tool_input = self.calls.get(tool_use_id) or (None, None)
        text = json.dumps(tool_input, ensure_ascii=False, sort_keys=True)
        return m.sac_event(m.TOOL_REFUSED, tool=name, reason=reason, tool_use_id=tool_use_id,
                           input=text if len(text) <= INPUT_CHARS else text[:INPUT_CHARS - 1] + "…")


def _blocks(event):
    content = (event.get("message") or {}).get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
