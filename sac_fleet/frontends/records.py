"""A transcript record as lines a person reads: what `sac agents tail` prints and MCP's agent_tail returns."""

import json
import time

from sac_node.protocol import messages as m


def record_text(record):
    """One transcript record as one or more readable lines, or None to skip it."""
    event = record.get("event") or {}
    kind = event.get("type")
    stamp = time.strftime("%H:%M:%S", time.localtime(record.get("ts") or 0))
    if kind == "sac":
        return _supervisor_text(stamp, event)
    if kind == "assistant":
        lines = []
        for block in (event.get("message") or {}).get("content") or []:
            if block.get("type") == "text" and block.get("text", "").strip():
                lines.append("%s assistant  %s" % (stamp, block["text"].strip()))
            elif block.get("type") == "tool_use":
                lines.append("%s tool call  %s %s" % (stamp, block.get("name"), _short(block.get("input"))))
        return "\n".join(lines) or None
    if kind == "user":
        content = (event.get("message") or {}).get("content")
        lines = []
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                mark = "tool error " if block.get("is_error") else "tool result"
                lines.append("%s %s %s" % (stamp, mark, _short(_result_text(block.get("content")))))
        return "\n".join(lines) or None
    if kind == "result":
        verdict = "error" if event.get("is_error") else "done"
        return "%s result     %s in %sms" % (stamp, verdict, event.get("duration_ms", "?"))
    if kind == "system" and event.get("subtype") == "init":
        return "%s session    %s (model %s)" % (stamp, event.get("session_id"), event.get("model"))
    return None


def _supervisor_text(stamp, event):
    sub = event.get("subtype")
    if sub == m.TURN_STARTED:
        who = ("from " + event["from"]).ljust(10) if event.get("from") else "user      "
        return "%s %s %s" % (stamp, who, event.get("text", ""))
    if sub == m.TURN_ENDED:
        extra = (": " + event["error"]) if event.get("error") else ""
        return "%s turn       %s%s" % (stamp, event.get("status"), extra)
    if sub == m.TURN_ACCEPTED:
        return None
    if sub == m.COMMS_REFUSED:
        return "%s refused    %s to %s (%s)" % (stamp, event.get("tool"), event.get("to"), event.get("reason"))
    if sub == m.HOOK:
        outcome = "timed out" if event.get("code") is None else "exit %s" % event.get("code")
        said = event.get("error") or _short(event.get("stdout") or "", 120)
        return "%s hook       %s[%s] %s: %s%s" % (stamp, event.get("hook"), event.get("index"), outcome,
                                                _short(event.get("run") or "", 120), (" -> " + said) if said else "")
    if sub == m.TOOL_REFUSED:
        return "%s refused    %s %s (%s)" % (stamp, event.get("tool"), event.get("input") or "", event.get("reason"))
    fields = ", ".join("%s=%s" % (k, v) for k, v in event.items() if k not in ("type", "subtype") and v is not None)
    return "%s sac        %s %s" % (stamp, sub, fields)


def _result_text(content):
    if isinstance(content, list):
        return " ".join(c.get("text", "") for c in content if isinstance(c, dict))
    return str(content or "")


def _short(value, limit=200):
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
