"""The spec's field types: names, env, flags, tool rules, binds, durations, each a pydantic type
whose validator says what is wrong in one phrase (spec.py puts file, line and field in front).

Also the constants they check against (the name pattern, the flags sac owns, the permission
modes); spec.py re-exports them all.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from sac_node.protocol.messages import NAME_RE  # the one agent-name pattern, shared with the node

from .validation import invalid
from .wording import describe

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
SECRET_VALUE_RE = re.compile(r"sk-ant-|sk-[A-Za-z0-9]{20,}")
CREDENTIAL_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
ENGINE_OWNED_FLAGS = ("-p", "--print", "--input-format", "--output-format", "--resume", "-r", "--continue", "-c")
# Flags that decide which tools run: sac builds them from the spec's fields (sac_node/engine.py).
PERMISSION_FLAGS = {"--allowedTools": "allowed_tools", "--allowed-tools": "allowed_tools",
                    "--disallowedTools": "disallowed_tools", "--disallowed-tools": "disallowed_tools",
                    "--permission-mode": "permission_mode", "--dangerously-skip-permissions": "permission_mode"}
PERMISSION_MODES = ("default", "acceptEdits", "dontAsk", "plan", "bypassPermissions")
# A tool name (Bash, mcp__server__tool), optionally with a rule in parentheses: Bash(git:*), Read(./src/**).
TOOL_RULE_RE = re.compile(r"^[A-Za-z0-9_-]+(\(.+\))?$", re.S)
_SECRETS_HINT = "put the key in <state_dir>/secrets.env on the host as KEY=VALUE and name KEY in claude.provider.api_key_env"


def _text(value: Any) -> str:
    """A string; a whole number is accepted and written out (8080 -> "8080")."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise invalid("expected a string, got %s (quote it, e.g. \"...\")" % describe(value))


def _agent_name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise invalid("%s is not a valid agent name (lowercase letters, digits and '-', starting with a letter or "
                      "digit, at most 63 characters, no dots)" % describe(value))
    return value


def _env_name(value: str) -> str:
    if not ENV_NAME_RE.fullmatch(value):
        raise invalid("not a valid environment variable name (letters, digits and '_', not starting with a digit)")
    if value in CREDENTIAL_ENV:
        raise invalid("a credential does not belong in a spec (%s)" % _SECRETS_HINT)
    return value


def _not_secret(value: str) -> str:
    # Never echo the value: it looks like a key.
    if SECRET_VALUE_RE.search(value):
        raise invalid("looks like an API key; a credential does not belong in a spec (%s)" % _SECRETS_HINT)
    return value


def _flag(value: str) -> str:
    name = value.split("=", 1)[0]
    if name in ENGINE_OWNED_FLAGS:
        raise invalid("%s is set by sac itself (remove it)" % describe(value))
    if name in PERMISSION_FLAGS:
        raise invalid("%s is set by sac from claude.%s (write it there and remove the flag)"
                      % (describe(value), PERMISSION_FLAGS[name]))
    return value


def _tool_rule(value: str) -> str:
    if not TOOL_RULE_RE.fullmatch(value):
        raise invalid("%s is not a tool rule (write a tool name like Bash, a pattern like \"Bash(git:*)\", or an "
                      "MCP tool like mcp__server__tool; one per list item)" % describe(value))
    return value


def _label_key(value: str) -> str:
    if not LABEL_KEY_RE.fullmatch(value):
        raise invalid("not a valid label key (letters, digits, '.', '_', '/', '-', at most 63 characters)")
    return value


def _bind(value: str) -> str:
    parts = value.split(":")
    fix = "write SRC:DST or SRC:DST:ro, e.g. /data/shared:/data:ro"
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise invalid("%s is not a bind (%s)" % (describe(value), fix))
    src, dst = parts[0], parts[1]
    if not (src.startswith("/") or src == "~" or src.startswith("~/")):
        raise invalid("source %s must be an absolute path or start with ~/ (%s)" % (describe(src), fix))
    if not dst.startswith("/"):
        raise invalid("destination %s must be an absolute path (%s)" % (describe(dst), fix))
    if len(parts) == 3 and parts[2] not in ("ro", "rw"):
        raise invalid("mode %s is not one of ro, rw (%s)" % (describe(parts[2]), fix))
    return value


def _workdir(value: str) -> str:
    if value.startswith("/") or value == "~" or value.startswith("~/"):
        return value.rstrip("/") or "/"
    return str(PurePosixPath(*[p for p in value.split("/") if p not in ("", ".")]) if value.strip("./") else ".")


NonEmpty = Annotated[str, StringConstraints(min_length=1)]
Text = Annotated[str, BeforeValidator(_text)]
EnvValue = Annotated[str, BeforeValidator(_text), AfterValidator(_not_secret)]
Flag = Annotated[str, StringConstraints(min_length=1), AfterValidator(_not_secret), AfterValidator(_flag)]
ToolRule = Annotated[str, AfterValidator(_tool_rule)]
AgentName = Annotated[str, AfterValidator(_agent_name)]
EnvName = Annotated[str, AfterValidator(_env_name)]
LabelKey = Annotated[str, AfterValidator(_label_key)]
Bind = Annotated[str, AfterValidator(_bind)]
Workdir = Annotated[str, StringConstraints(min_length=1), AfterValidator(_workdir)]
Seconds = Annotated[float, Field(strict=True, gt=0)]
Count = Annotated[int, Field(strict=True, ge=0)]


def _looks_like_key(value: str) -> bool:
    """A variable name is short or has words; a key is long mixed letters and digits."""
    return len(value) >= 24 and "_" not in value and any(c.isdigit() for c in value) and any(c.islower() for c in value)


def _key_variable(value: Any) -> Any:
    # Never echo the value: it may be the key itself.
    if value is None:
        return None
    if not isinstance(value, str) or not ENV_NAME_RE.fullmatch(value) or _looks_like_key(value):
        raise invalid("must be the NAME of an environment variable, like SAC_PROVIDER_KEY, not the key "
                      "itself (%s)" % _SECRETS_HINT)
    return value


# The NAME of the variable that holds a key (claude.provider.api_key_env, accounts[].api_key_env).
KeyVariable = Annotated[str | None, BeforeValidator(_key_variable)]
