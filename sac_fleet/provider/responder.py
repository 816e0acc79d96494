"""Choosing the reply to one request: key faults, then rules in order, then the echo default.

The Responder holds the only mutable state of the provider: how many times each
rule and each key fault has fired (`times`). It does no I/O.
"""

import dataclasses
import itertools
import re
from dataclasses import dataclass, field

from .conversation import Conversation, count_words
from .script import Fault, coerce_script

PLACEHOLDER = re.compile(r"\{(prompt|tool_result|model|\d+)\}")


@dataclass(frozen=True)
class Reply:
    """One assistant message to send, or a fault instead of it."""

    label: str  # which rule answered: its name, rules[i], key fault #n, or echo
    blocks: list = field(default_factory=list)  # Messages API content blocks
    stop_reason: str = "end_turn"
    fault: Fault | None = None
    input_tokens: int = 0
    prompt: str = ""  # the prompt this reply answers, for the log

    @property
    def output_tokens(self):
        """Deterministic: words of text plus words of tool input values."""
        return count_words(self.blocks) or 1


class Responder:
    """Turns a request body into a Reply according to a Script."""

    def __init__(self, script=None):
        self._ids = itertools.count(1)
        self.load(script)

    def load(self, script):
        """Replace the script (a Script, mapping, path or None) and reset every `times` counter."""
        self.script = coerce_script(script)
        self._rule_fired = [0] * len(self.script.rules)
        self._key_fired = {key: 0 for key in self.script.keys}
        self.key_usage = {}

    def respond(self, body, api_key=None):
        """The Reply for one /v1/messages request body sent with `api_key`."""
        convo = Conversation.from_body(body)
        reply = dataclasses.replace(self._choose(convo, api_key), prompt=convo.prompt)
        if api_key is not None and (reply.fault is None or reply.fault.status is None):
            self.key_usage[api_key] = self.key_usage.get(api_key, 0) + reply.input_tokens + reply.output_tokens
        return reply

    def _choose(self, convo, api_key):
        key_reply = self._key_fault(api_key, convo)
        if key_reply is not None:
            return key_reply
        if convo.rule_in_progress is not None and convo.rule_in_progress < len(self.script.rules):
            return self._continue(convo.rule_in_progress, convo)
        for index, rule in enumerate(self.script.rules):
            found = rule.search(convo.prompt, convo.model)
            if found is None or not self._may_fire(index, rule, convo):
                continue
            self._rule_fired[index] += 1
            return self._start(index, rule, convo, found)
        return self._echo(convo)

    def _key_fault(self, api_key, convo):
        entry = self.script.keys.get(api_key) if api_key is not None else None
        if entry is None:
            return None
        position = list(self.script.keys).index(api_key) + 1
        if entry.limit_tokens is not None and self.key_usage.get(api_key, 0) >= entry.limit_tokens:
            retry = entry.retry_after if entry.retry_after is not None else 60.0
            return Reply("key limit #%d" % position, fault=Fault(
                status=429, retry_after=retry, should_retry=False,
                message="rate_limit_error: this key used its %d-token budget" % entry.limit_tokens),
                input_tokens=convo.input_words)
        if entry.fault is None:
            return None
        if entry.times is not None and self._key_fired[api_key] >= entry.times:
            return None
        self._key_fired[api_key] += 1
        if entry.fault.status is None:  # slow / hang / stall: the echo, delivered badly
            echo = self._echo(convo)
            return Reply("key fault #%d" % position, echo.blocks, fault=entry.fault, input_tokens=convo.input_words)
        return Reply("key fault #%d" % position, fault=entry.fault, input_tokens=convo.input_words)

    def _may_fire(self, index, rule, convo):
        if rule.times is not None and self._rule_fired[index] >= rule.times:
            return False
        # A tool call only makes sense where the client offers that tool (side calls offer none).
        return all(call.tool in convo.tools for call in rule.calls()[:1])

    def _start(self, index, rule, convo, found):
        label = self.script.rule_label(index)
        groups = found.groups() if isinstance(found, re.Match) else ()
        if rule.fault is not None and rule.fault.status is not None:
            return Reply(label, fault=rule.fault, input_tokens=convo.input_words)
        blocks = []
        text = rule.reply if rule.reply is not None else (None if rule.calls() else self.script.prefix + "{prompt}")
        if text is not None:
            blocks.append(_text(fill(text, convo, groups)))
        calls = rule.calls()
        if calls:
            blocks.append(self._tool_use(index, 0, calls[0], convo, groups))
            return Reply(label, blocks, "tool_use", rule.fault, convo.input_words)
        return Reply(label, blocks, "end_turn", rule.fault, convo.input_words)

    def _continue(self, index, convo):
        """The request after a tool_result: the next tool call, or the rule's final text."""
        rule = self.script.rules[index]
        label = self.script.rule_label(index)
        found = rule.search(convo.prompt, convo.model)
        groups = found.groups() if isinstance(found, re.Match) else ()
        calls = rule.calls()
        slow = rule.fault if rule.fault is not None and rule.fault.status is None else None
        if convo.calls_done < len(calls):
            block = self._tool_use(index, convo.calls_done, calls[convo.calls_done], convo, groups)
            return Reply(label, [block], "tool_use", slow, convo.input_words)
        final = rule.then if rule.then is not None else "{tool_result}"
        return Reply(label, [_text(fill(final, convo, groups))], "end_turn", slow, convo.input_words)

    def _echo(self, convo):
        return Reply("echo", [_text(self.script.prefix + convo.prompt)], input_tokens=convo.input_words)

    def _tool_use(self, index, step, call, convo, groups):
        tool_id = "toolu_sac%ds%dn%06d" % (index, step, next(self._ids))
        return {"type": "tool_use", "id": tool_id, "name": call.tool, "input": _fill_all(call.input, convo, groups)}


def fill(template, convo, groups=()):
    """Replace {prompt}, {tool_result}, {model} and regex groups {1}, {2}...; other braces stay."""

    def one(match):
        name = match.group(1)
        if name.isdigit():
            number = int(name)
            return (groups[number - 1] or "") if 0 < number <= len(groups) else match.group(0)
        return {"prompt": convo.prompt, "tool_result": convo.tool_result, "model": convo.model}[name]

    return PLACEHOLDER.sub(one, template)


def _fill_all(value, convo, groups):
    if isinstance(value, str):
        return fill(value, convo, groups)
    if isinstance(value, dict):
        return {k: _fill_all(v, convo, groups) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_all(v, convo, groups) for v in value]
    return value


def _text(text):
    return {"type": "text", "text": text}

