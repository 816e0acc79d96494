"""YAML documents that remember where each key is, and one-line errors that use it.

Shared by the spec and the inventory parsers. Every message this module builds
reads ``FILE:LINE FIELD.PATH: what is wrong (fix)``:

    spec.yaml:12 spec.restart.policy: 'sometimes' is not one of never, on-failure, always
    spec.yaml:7 spec.claud: unknown field (did you mean 'claude'?)

Public API: ``load_document``, ``parse_document``, ``Document``; the wording
(``describe``, ``format_loc``, ``did_you_mean``: wording.py) and ``validation_error``
(pydantic's errors: validation.py) are importable from here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from sac_node.protocol.errors import ConfigError, SacError

from .validation import validation_error
from .wording import describe, did_you_mean, format_loc

__all__ = ["Document", "load_document", "parse_document", "describe", "did_you_mean", "format_loc",
           "validation_error"]

_MAX_DEPTH = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Document:
    """A parsed YAML mapping plus the 1-based line of every key path in it.

    ``lines`` maps a key path (a tuple of keys and list indices, like a
    pydantic ``loc``) to the line where that key or list item starts.
    """

    path: Path
    data: Any = field(repr=False)
    lines: Mapping[tuple, int] = field(default_factory=dict, repr=False)

    def line_of(self, loc) -> int:
        """Line of ``loc``, or of its deepest ancestor present in the file (1 if none)."""
        loc = tuple(part for part in loc if part != "[key]")
        while loc:
            line = self.lines.get(loc)
            if line is not None:
                return line
            loc = loc[:-1]
        return 1

    def error(self, loc, message: str, error_cls: type[SacError] = ConfigError) -> SacError:
        """An error ``FILE:LINE FIELD.PATH: message`` for the field at ``loc``."""
        return error_cls("%s:%d %s: %s" % (self.path, self.line_of(loc), self.field_path(loc), message))

    def field_path(self, loc) -> str:
        """``loc`` written as in the file: ``spec.env.1`` for a key, ``spec.binds[1]`` for a list item."""
        return format_loc(loc, self.data)


def load_document(path, error_cls: type[SacError] = ConfigError, example: str | None = None) -> Document:
    """Read and parse the YAML file at ``path``; its top level must be a mapping.

    Every problem (missing file, directory, unreadable, not UTF-8, empty, YAML
    syntax, duplicate key, not a mapping) raises ``error_cls`` with one line
    naming the file and, where there is one, the line. ``example`` (e.g.
    ``"docs/spec-reference.md"``) is where the message for an empty file sends the user.
    """
    path = Path(path)
    if path.is_dir():
        raise error_cls("%s: is a directory, not a YAML file" % path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error_cls("%s: no such file (check the path)" % path) from None
    except OSError as exc:
        raise error_cls("%s: cannot read: %s" % (path, exc.strerror or exc)) from None
    return parse_document(raw, path, error_cls, example)


def parse_document(raw, path, error_cls: type[SacError] = ConfigError, example: str | None = None) -> Document:
    """Parse YAML ``raw`` (bytes or str) as if read from ``path``; see ``load_document``."""
    path = Path(path)
    text = _decode(raw, path, error_cls)
    empty = "%s:1 document: the file is empty (%s)" % (path, "see %s for an example" % example if example else "write its content")
    if not text.strip() or all(_is_comment(line) for line in text.splitlines()):
        raise error_cls(empty)
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        lines = {}
        if node is not None:
            _record_lines(loader, node, (), lines, set(), path, error_cls)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, path, error_cls) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise error_cls("%s:%d syntax: character %r is not allowed in YAML (remove it)" % (path, line, _char(exc.character))) from None
    except yaml.YAMLError as exc:
        raise error_cls("%s:1 syntax: %s" % (path, _one_line(str(exc)))) from None
    except RecursionError:
        raise error_cls("%s:1 document: nested too deeply (simplify the document)" % path) from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        raise error_cls(empty)
    if not isinstance(data, dict):
        raise error_cls("%s:1 document: expected a mapping of keys at the top level, got %s" % (path, describe(data)))
    return Document(path=path, data=data, lines=lines)


# --- reading -----------------------------------------------------------------


def _decode(raw, path, error_cls):
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error_cls("%s:%d document: not UTF-8 text (byte 0x%02x; save the file as UTF-8)" % (path, line, raw[exc.start])) from None


def _char(character):
    return chr(character) if isinstance(character, int) else character


def _is_comment(line):
    stripped = line.strip()
    return not stripped or stripped.startswith("#") or stripped in ("---", "...")


def _syntax_error(exc, path, error_cls):
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 1
    column = " at column %d" % (mark.column + 1) if mark else ""
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.context and problem.startswith("but "):
        problem = exc.context + " " + problem
    problem = _one_line(problem)
    return error_cls("%s:%d syntax: %s%s (check indentation, colons and quotes)" % (path, line, problem, column))


def _one_line(text):
    return re.sub(r"\s+", " ", str(text)).strip()


def _record_lines(loader, node, loc, lines, seen_nodes, path, error_cls):
    """Walk the node tree before construction, noting each key's line; refuse duplicate keys."""
    # Each node is walked once: an alias (even a cycle or an alias bomb) costs nothing more,
    # and a path through it points at the anchor, where the content is written.
    if id(node) in seen_nodes or len(loc) > _MAX_DEPTH:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise error_cls("%s:%d %s: duplicate key (first at line %d; keep one)" % (path, line, format_loc(loc + (key,)), seen[key]))
            seen[key] = line
            lines[loc + (key,)] = line
            _record_lines(loader, value_node, loc + (key,), lines, seen_nodes, path, error_cls)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[loc + (index,)] = item.start_mark.line + 1
            _record_lines(loader, item, loc + (index,), lines, seen_nodes, path, error_cls)
