"""The ``claude:`` section of an upstream v3 spec -> sac's ``spec.claude`` (upstream.py's part for it).

Flags that decide permissions become sac's fields (``--dangerously-skip-permissions`` is
``permission_mode: bypassPermissions``); flags sac sets itself are listed as warnings.
"""

from __future__ import annotations

from .spec_fields import ENGINE_OWNED_FLAGS

SESSIONS = {"new-session": "fresh", "new": "fresh", "continue": "continue", "continue-or-new": "continue"}
# The upstream stores each saved OAuth login in a directory of this name.
ACCOUNTS_DIR = "~/.scitex/agent-container/accounts"
_VALUE_FLAGS = {"--permission-mode": "permission_mode", "--model": "model",
                "--allowedTools": "allowed_tools", "--allowed-tools": "allowed_tools",
                "--disallowedTools": "disallowed_tools", "--disallowed-tools": "disallowed_tools"}
CLAUDE_DEFAULTS = {"auto_accept": (True,), "raw_options": ({}, None), "channels": ([], None),
                   "provider": ("anthropic", None, "")}


def convert_claude(conv, claude: dict, out: dict, at: tuple) -> None:
    """Put ``claude``'s fields (found at ``at`` in the upstream file) into ``out["claude"]``."""
    target = out.setdefault("claude", {})
    for key, value in claude.items():
        loc = at + (key,)
        if key == "model" and value:
            target["model"] = str(value)
        elif key == "session":
            _session(conv, loc, value, target)
        elif key == "flags" and isinstance(value, list):
            _flags(conv, loc, value, target)
        elif key == "provider" and isinstance(value, dict):
            _provider(conv, loc, value, target)
        elif key == "account" and value:
            target["accounts"] = [{"name": str(value), "config_dir": "%s/%s" % (ACCOUNTS_DIR, value)}]
            conv.warnings.append("%s:%d %s: imported as claude.accounts[0].config_dir %s/%s; check that it is a "
                                 "Claude Code config dir holding that login on each host"
                                 % (conv.doc.path, conv.doc.line_of(loc), conv.doc.field_path(loc), ACCOUNTS_DIR,
                                    value))
        elif value in CLAUDE_DEFAULTS.get(key, ()):
            continue
        else:
            conv.warn(loc, _reason(key))
    if not target:
        out.pop("claude")


def _reason(key):
    return {"channels": "sac has no push channels (send turns over `sac fleet serve` or A2A)",
            "resume_id": "sac resumes an agent's own session itself; it cannot adopt another",
            "provider": "sac takes a provider as {base_url, api_key_env}, not by a registered name",
            }.get(key, "sac has no claude.%s" % key)


def _session(conv, loc, value, target):
    if value in SESSIONS:
        if SESSIONS[value] != "fresh":  # fresh is sac's default
            target["session"] = SESSIONS[value]
    else:
        conv.warn(loc, "%r has no sac equivalent (sac's session is fresh or continue)" % (value,))


def _provider(conv, loc, value, target):
    provider = {}
    for key, item in value.items():
        if key == "base_url":
            provider["base_url"] = item
        elif key == "auth_token_env":
            provider["api_key_env"] = item  # both name the variable that holds the key
        else:
            conv.warn(loc + (key,), "sac's provider takes base_url and api_key_env")
    target["provider"] = provider


def _flags(conv, loc, flags, target):
    index = 0
    while index < len(flags):
        flag = str(flags[index])
        name, _, inline = flag.partition("=")
        here = loc + (index,)
        index += 1
        if name == "--dangerously-skip-permissions":
            target["permission_mode"] = "bypassPermissions"
        elif name in _VALUE_FLAGS:
            value = inline
            if not inline and index < len(flags):
                value, index = str(flags[index]), index + 1
            field = _VALUE_FLAGS[name]
            target[field] = value.replace(",", " ").split() if field.endswith("_tools") else value
        elif name in ENGINE_OWNED_FLAGS:
            conv.warn(here, "sac sets %s itself" % name)
        else:
            target.setdefault("flags", []).append(flag)
