"""The provider's script: rules matched on the prompt, tool calls and faults.

A script is plain data (YAML or JSON); `parse_script` validates it into a
`Script`, and every error names the file and the field in one line:

    prefix: "echo: "                        # the default reply is prefix + prompt
    rules:
      - match: "make a file"                # substring of the prompt (or regex: ...)
        tool: Bash
        input: {command: "touch hello.txt", description: "Create hello.txt"}
        then: "Done. The tool said: {tool_result}"
      - regex: "^slow"
        reply: "one two three"
        fault: {chunk_delay: 0.2}
      - match: "flaky"
        fault: {status: 529}
        times: 1                            # fires once, then the next rule answers
    keys:
      key-a: {fault: {status: 429, retry_after: 1}, times: 2}
      key-b: {limit_tokens: 5000}           # 429 once 5000 tokens were charged to key-b
"""

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sac_fleet.core.documents import Document, describe, load_document, validation_error
from sac_node.protocol.errors import ConfigError

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fault(_Strict):
    """What goes wrong with a reply: an HTTP error, slow chunks, or no answer at all."""

    status: int | None = Field(None, ge=400, le=599, description="answer with this HTTP error status")
    retry_after: float | None = Field(None, ge=0, description="seconds, sent as the retry-after header")
    message: str | None = Field(None, description="the error message in the body")
    should_retry: bool | None = Field(None, description="sent as the x-should-retry header")
    chunk_delay: float | None = Field(None, ge=0, description="seconds to wait before each streamed chunk")
    hang: bool = Field(False, description="never answer, until the client disconnects")
    stall: bool = Field(False, description="start the stream, send one chunk, then never finish")

    @model_validator(mode="after")
    def _one_kind(self):
        kinds = [name for name in ("status", "hang", "stall") if getattr(self, name)]
        if len(kinds) > 1:
            raise ValueError("choose one of status, hang, stall (got %s)" % ", ".join(kinds))
        if self.retry_after is not None and self.status is None:
            raise ValueError("retry_after needs a status (e.g. status: 429)")
        if not kinds and self.chunk_delay is None:
            raise ValueError("a fault needs one of status, hang, stall, chunk_delay")
        return self

    def error_type(self):
        """The Anthropic error type for this fault's status."""
        return ERROR_TYPES.get(self.status, "api_error" if (self.status or 0) >= 500 else "invalid_request_error")


class ToolCall(_Strict):
    """One tool_use block the provider asks the client to run."""

    tool: str = Field(min_length=1)
    input: dict[str, Any] = Field(default_factory=dict)


class Rule(_Strict):
    """A reply, tool calls and/or a fault for prompts that match."""

    name: str | None = None
    match: str | None = Field(None, description="substring of the prompt")
    regex: str | None = Field(None, description="regular expression searched in the prompt")
    model: str | None = Field(None, description="substring of the requested model")
    reply: str | None = None
    tool: str | None = None
    input: dict[str, Any] | None = None
    tools: list[ToolCall] | None = None
    then: str | None = None
    fault: Fault | None = None
    times: int | None = Field(None, ge=1, description="fire at most this many times, then fall through")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value):
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError("not a valid regular expression: %s" % exc) from exc
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.match is not None and self.regex is not None:
            raise ValueError("use match or regex, not both")
        if self.tool is not None and self.tools is not None:
            raise ValueError("use tool (one call) or tools (a list), not both")
        if self.input is not None and self.tool is None:
            raise ValueError("input belongs to tool; add tool: NAME")
        if self.then is not None and not self.calls():
            raise ValueError("then is the text after a tool call; add tool: NAME")
        if self.reply is None and not self.calls() and self.fault is None:
            raise ValueError("a rule needs one of reply, tool, tools, fault")
        return self

    def calls(self):
        """The tool calls of this rule, in order."""
        if self.tool is not None:
            return [ToolCall(tool=self.tool, input=self.input or {})]
        return list(self.tools or [])

    def search(self, prompt, model):
        """The match object (or True) when this rule applies to the prompt and model, else None."""
        if self.model is not None and self.model not in (model or ""):
            return None
        if self.regex is not None:
            return re.search(self.regex, prompt)
        if self.match is not None:
            return True if self.match in prompt else None
        return True


class KeyFault(_Strict):
    """A fault for every request made with one API key, and/or a token budget for it.

    With `limit_tokens`, requests succeed until the key has been charged that many
    tokens (input + output, as reported in `usage`); after that every request gets
    HTTP 429 (`retry_after` seconds, default 60), like an account out of quota.
    """

    fault: Fault | None = None
    times: int | None = Field(None, ge=1, description="fail this many requests, then clear")
    limit_tokens: int | None = Field(None, ge=1, description="token budget of this key; 429 once spent")
    retry_after: float | None = Field(None, ge=0, description="retry-after of the limit's 429s")

    @model_validator(mode="after")
    def _something(self):
        if self.fault is None and self.limit_tokens is None:
            raise ValueError("a key entry needs a fault or limit_tokens")
        return self


class Script(_Strict):
    """A whole script; the empty script replies `prefix + prompt` to everything."""

    prefix: str = "echo: "
    rules: list[Rule] = Field(default_factory=list)
    keys: dict[str, KeyFault] = Field(default_factory=dict)

    def rule_label(self, index):
        """How the log names rule `index`: its name, else `rules[i]`."""
        rule = self.rules[index]
        return rule.name or "rules[%d]" % index


def parse_script(data, source="<script>"):
    """Validate plain data (or a Document) into a Script; raise ConfigError naming the file, line and field."""
    doc = data if isinstance(data, Document) else Document(path=Path(source), data={} if data is None else data, lines={})
    if not isinstance(doc.data, dict):
        raise ConfigError("%s:1 document: expected a mapping with prefix, rules, keys, got %s" % (doc.path, describe(doc.data)))
    try:
        return Script.model_validate(doc.data)
    except ValidationError:
        pass
    # Explain the failure on a copy whose API keys are renamed, so no key is ever printed.
    masked = _mask_keys(doc)
    try:
        Script.model_validate(masked.data)
    except ValidationError as exc:
        raise validation_error(masked, exc, ConfigError, Script) from None
    raise ConfigError("%s:1 document: invalid provider script" % doc.path)


def load_script(path):
    """Read and validate a YAML or JSON script file."""
    path = Path(path)
    if path.suffix != ".json":
        return parse_script(load_document(path, ConfigError))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("%s: cannot read the provider script: %s" % (path, getattr(exc, "strerror", None) or exc)) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError("%s:%d syntax: %s (check commas, quotes and brackets)" % (path, exc.lineno, exc.msg)) from None
    return parse_script(data, path)


def coerce_script(script):
    """A Script from a Script, a mapping, a path, or None (the default script)."""
    if script is None:
        return Script()
    if isinstance(script, Script):
        return script
    if isinstance(script, dict):
        return parse_script(script)
    return load_script(script)


def _mask_keys(doc):
    """`doc` with each entry under `keys` renamed `key-1`, `key-2`... (lines kept)."""
    keys = doc.data.get("keys")
    if not isinstance(keys, dict):
        return doc
    names = {key: "key-%d" % number for number, key in enumerate(keys, 1)}
    data = dict(doc.data, keys={names[key]: value for key, value in keys.items()})
    lines = {}
    for loc, line in doc.lines.items():
        if len(loc) > 1 and loc[0] == "keys" and loc[1] in names:
            loc = ("keys", names[loc[1]]) + tuple(loc[2:])
        lines[loc] = line
    return Document(path=doc.path, data=data, lines=lines)
