"""Placeholders in a spec: ``${params.X}``, ``${metadata.name}``, ``${host.name}``, ``${host.labels.X}``,
``${env.X}``; ``$${...}`` is a literal ``${...}``.

``render(doc, context)`` returns the document with every placeholder in a string value filled
in, keeping each key's line, so validation errors still point into the file. Pure: the head's
environment and the host come in through ``Context``. A placeholder that cannot be filled is one
``SpecError`` naming file:line, the field and the names that are known there.

A value that is exactly one placeholder takes the parameter's own type (a number from a YAML or
JSON Lines parameter file stays a number); anywhere else it is written into the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from sac_node.protocol.errors import SpecError

from .documents import Document

PLACEHOLDER_RE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
# Where a value from the head's environment is refused: fields that name or carry a credential.
SECRET_SECTIONS = (("spec", "claude", "provider"), ("spec", "claude", "accounts"))
HOST_STAND_IN = "host"


@dataclass(frozen=True)
class HostFacts:
    """The host an agent is placed on, as placeholders see it."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """What placeholders may refer to.

    ``params`` is None when no parameter set was given; ``host`` None means "not placed yet":
    host placeholders then get a stand-in so the rest can be checked (``deferred_host``).
    """

    name: str = ""
    params: Optional[Mapping[str, Any]] = None
    host: Optional[HostFacts] = None
    environ: Mapping[str, str] = field(default_factory=dict)
    row: Optional[int] = None  # the parameter row, named in errors

    def lookup(self, ref: str, in_secret: bool) -> Any:
        """The value of ``${ref}``; raises KeyError with the reason when there is none."""
        head, _, rest = ref.partition(".")
        if ref == "metadata.name":
            return self.name
        if head == "params" and rest:
            if self.params is None:
                raise KeyError("no parameter set is given (start it with --params FILE, or use a template entry "
                               "with params: in the inventory)")
            if rest not in self.params:
                raise KeyError("no parameter %r" % rest)
            return self.params[rest]
        if head == "env" and rest:
            if in_secret:
                raise KeyError("the head's environment is refused in claude.provider and claude.accounts (name "
                               "the variable in api_key_env instead; its value stays on the host)")
            if rest not in self.environ:
                raise KeyError("the head's environment has no variable %s (export it, or write $${env.%s} for "
                               "the literal text)" % (rest, rest))
            return self.environ[rest]
        if ref == "host.name":
            return self.host.name if self.host else HOST_STAND_IN
        if head == "host" and rest.startswith("labels.") and len(rest) > len("labels."):
            key = rest[len("labels."):]
            if self.host is None:
                return HOST_STAND_IN
            if key not in self.host.labels:
                raise KeyError("host %s has no label %r" % (self.host.name, key))
            return self.host.labels[key]
        raise KeyError("unknown placeholder")

    def known(self) -> str:
        """The names a placeholder may use here, for error messages."""
        names = ["${params.%s}" % k for k in sorted(self.params or {})]
        names += ["${metadata.name}", "${host.name}"]
        names += ["${host.labels.%s}" % k for k in sorted(self.host.labels)] if self.host else \
            ["${host.labels.<key>}"]
        names += ["${env.<VAR>}", "$${...} for a literal"]
        return ", ".join(names)


def render(doc: Document, context: Context) -> Document:
    """``doc`` with its placeholders filled from ``context`` (same path and lines)."""
    return Document(doc.path, _walk(doc, doc.data, (), context), doc.lines)


def uses(doc: Document, prefix: str) -> bool:
    """Whether any string value of ``doc`` has a placeholder starting with ``prefix`` (e.g. ``host.``)."""
    def walk(value):
        if isinstance(value, dict):
            return any(walk(v) for v in value.values())
        if isinstance(value, list):
            return any(walk(v) for v in value)
        return isinstance(value, str) and any((m.group(1) or "").strip().startswith(prefix)
                                              for m in PLACEHOLDER_RE.finditer(value))
    return walk(doc.data)


def fill(text: str, context: Context, where: str = "") -> str:
    """A one-line pattern (like ``--name``) with its placeholders filled; SpecError naming ``where``."""
    try:
        return str(_fill(text, context, False))
    except KeyError as exc:
        raise SpecError("%s: %s" % (where or repr(text), exc.args[0])) from None


def _walk(doc, value, loc, context):
    if isinstance(value, dict):
        return {k: _walk(doc, v, loc + (k,), context) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(doc, v, loc + (i,), context) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value
    secret = any(loc[:len(section)] == section for section in SECRET_SECTIONS)
    try:
        return _fill(value, context, secret)
    except KeyError as exc:
        row = "row %d: " % context.row if context.row is not None else ""
        raise doc.error(loc, "%s%s" % (row, exc.args[0]), SpecError) from None


def _fill(text, context, secret):
    """Fill ``text``; KeyError(reason) for the first placeholder that cannot be filled."""
    whole = PLACEHOLDER_RE.fullmatch(text)
    if whole and whole.group(1) is not None:
        return _value(whole.group(1), context, secret)

    def one(match):
        if match.group(0) == "$${":
            return "${"
        if match.group(1) is None:
            raise KeyError("'${' without a closing '}' (write $${ for the literal text)")
        return str(_value(match.group(1), context, secret))
    return PLACEHOLDER_RE.sub(one, text)


def _value(ref, context, secret):
    ref = ref.strip()
    try:
        return context.lookup(ref, secret)
    except KeyError as exc:
        reason = exc.args[0]
        if reason == "unknown placeholder" or reason.startswith("no parameter ") or \
                reason.startswith("host ") and " has no label " in reason:
            raise KeyError("${%s}: %s (known: %s)" % (ref, reason, context.known())) from None
        raise KeyError("${%s}: %s" % (ref, reason)) from None


def render_spec_document(doc: Document, default_name: Optional[str], *, name: Optional[str] = None,
                         params=None, host: Optional[HostFacts] = None, environ=None,
                         row: Optional[int] = None) -> Document:
    """A spec document with its placeholders filled. ``name`` (an instance's) replaces ``metadata.name``;
    without it the name is the spec's own ``metadata.name`` (itself filled, e.g. ``paper-${params.id}``),
    else ``default_name``."""
    data = doc.data
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else None
    base = Context(params=params, host=host, environ=environ or {}, row=row)
    if name is not None:
        data = dict(data, metadata=dict(meta or {}, name=name))
    elif meta is not None and isinstance(meta.get("name"), str):
        name = str(_walk(doc, meta["name"], ("metadata", "name"), base))
    else:
        name = default_name or ""
    return render(Document(doc.path, data, doc.lines), Context(name, params, host, environ or {}, row))
