"""How a config error words what it names: a value, a field path, a close spelling.

Shared by the YAML reader (documents.py), the pydantic error explainer
(validation.py) and the spec and inventory checks, so every message writes
``spec.binds[1]``, ``'sometimes'`` and ``(did you mean 'claude'?)`` the same way.
"""

from __future__ import annotations

import difflib
import re

_PLAIN_KEY = re.compile(r"^[\w@/+-]{1,63}$")


def describe(value) -> str:
    """A short, safe rendering of a YAML value for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return repr(shown)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "a %s" % type(value).__name__


def did_you_mean(word, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or the list of choices."""
    choices = sorted(str(choice) for choice in choices)
    if not choices:
        return ""
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if not close:
        lowered = {choice.lower(): choice for choice in choices}
        close = [lowered[str(word).lower()]] if str(word).lower() in lowered else []
    if close:
        return " (did you mean '%s'?)" % close[0]
    return " (allowed: %s)" % ", ".join(choices)


def format_loc(loc, data=None) -> str:
    """``('spec', 'startup_prompts', 1)`` -> ``spec.startup_prompts[1]``; ``()`` -> ``document``.

    With ``data`` (the document the path points into), a whole-number key of a
    mapping is written as a key (``spec.env.1``), not as a list index.
    """
    out, node = "", data
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int) and not isinstance(part, bool) and not isinstance(node, dict):
            out += "[%d]" % part
        else:
            out += ("." if out else "") + _key_text(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return out or "document"


def _key_text(key) -> str:
    """A key as written in a field path: plain when it is a simple word, quoted otherwise."""
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return key
    return describe(key)
