"""Reading a Messages API request body: the user's prompt, the tool round trip, word counts.

Claude Code wraps context in `<system-reminder>` text blocks inside user messages and
sends tool results as `tool_result` blocks; neither is the user's prompt. The prompt is
the last user text that is left once those are removed.
"""

import re
from dataclasses import dataclass, field

REMINDER = re.compile(r"<system-reminder>.*?(</system-reminder>|\Z)", re.S)
OUR_TOOL_ID = re.compile(r"^toolu_sac(\d+)s(\d+)n\d+$")


@dataclass(frozen=True)
class Conversation:
    """What a reply depends on, read from one request body."""

    model: str = ""
    prompt: str = ""
    tools: frozenset = frozenset()
    rule_in_progress: int | None = None  # the rule whose tool calls follow the prompt
    calls_done: int = 0  # how many of that rule's tool calls were answered
    tool_result: str = ""  # text of the last tool_result after the prompt
    input_words: int = 0
    messages: list = field(default_factory=list, repr=False)

    @classmethod
    def from_body(cls, body):
        """Parse a request body (a dict); unknown shapes give an empty prompt, never an error."""
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        start, prompt = _last_prompt(messages)
        rule, done, result = _tool_round(messages[start + 1 :] if start >= 0 else messages)
        tools = frozenset(t.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict))
        return cls(
            model=str(body.get("model") or ""),
            prompt=prompt,
            tools=tools,
            rule_in_progress=rule,
            calls_done=done,
            tool_result=result,
            input_words=count_words(body.get("system")) + count_words(messages),
            messages=messages,
        )


def count_words(value):
    """Deterministic token stand-in: the number of whitespace-separated words in all text."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(count_words(item) for item in value)
    if isinstance(value, dict):
        total = 0
        for key in ("text", "content", "input"):
            inner = value.get(key)
            total += count_words(list(inner.values()) if isinstance(inner, dict) else inner)
        return total
    return 0


def user_text(content):
    """The user's newest text in one message's content: its last text block once reminders are removed."""
    if isinstance(content, str):
        pieces = [content]
    elif isinstance(content, list):
        pieces = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
    else:
        pieces = []
    kept = [REMINDER.sub("", p).strip() for p in pieces]
    kept = [p for p in kept if p]
    # After a failed turn Claude Code merges the next prompt into the same message; the last block is the newest.
    return kept[-1] if kept else ""


def tool_result_text(block):
    """The text of a tool_result block (its content is a string or a list of text blocks)."""
    content = block.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text")
    return ""


def _last_prompt(messages):
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "user":
            text = user_text(message.get("content"))
            if text:
                return index, text
    return -1, ""


def _tool_round(after_prompt):
    """(rule index, tool calls answered, last tool result text) for our calls after the prompt."""
    rule, calls, result = None, 0, ""
    for message in after_prompt:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                ours = OUR_TOOL_ID.fullmatch(str(block.get("id", "")))
                if ours:
                    rule, calls = int(ours.group(1)), calls + 1
            elif block.get("type") == "tool_result":
                result = tool_result_text(block)
    return rule, calls, result
