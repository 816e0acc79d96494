"""YAML documents that remember where each key is, and one-line errors that use it.

Shared by the spec and the inventory parsers. Every message this module builds
reads ``FILE:LINE FIELD.PATH: what is wrong (fix)``:

    spec.yaml:12 spec.restart.policy: 'sometimes' is not one of never, on-failure, always
    spec.yaml:7 spec.claud: unknown field (did you mean 'claude'?)

Public API: ``load_document``, ``parse_document``, ``Document``, ``describe``,
``validation_error``, ``format_loc``, ``did_you_mean``.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from sac_node.protocol.errors import ConfigError, SacError

_MAX_DEPTH = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_KEY = re.compile(r"^[\w@/+-]{1,63}$")


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
        out, node = "", self.data
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


def validation_error(doc: Document, exc: ValidationError, error_cls: type[SacError] = ConfigError,
                     model: type[BaseModel] | None = None) -> SacError:
    """Turn a pydantic ``ValidationError`` on ``doc.data`` into one ``error_cls``.

    The message is the problem that comes first in the file, as
    ``FILE:LINE FIELD.PATH: what is wrong (fix)``, plus a count of the others;
    every message is in ``.data["errors"]``. ``model`` (the validated class) lets
    unknown keys get a "did you mean" among the allowed names and missing
    fields an example taken from ``json_schema_extra={"example": ...}``.
    Input values are shown only for type/range errors, shortened; secrets
    must be refused by validators that do not echo them.
    """
    found = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        line = doc.line_of(loc)
        message = "%s:%d %s: %s" % (doc.path, line, doc.field_path(loc), _describe_error(err, loc, model))
        # A missing field is often the echo of a misspelt one: show the misspelling first.
        found.append((err.get("type") == "missing", line, message))
    found.sort(key=lambda item: item[:2])
    messages = [message for _, _, message in found]
    if not messages:
        return error_cls("%s:1 document: invalid" % doc.path)
    head = messages[0]
    if len(messages) > 1:
        head += " [+%d more]" % (len(messages) - 1)
    return error_cls(head, {"errors": messages})


def format_loc(loc) -> str:
    """``('spec', 'startup_prompts', 1)`` -> ``spec.startup_prompts[1]``; ``()`` -> ``document``."""
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int) and not isinstance(part, bool):
            out += "[%d]" % part
        else:
            out += ("." if out else "") + _key_text(part)
    return out or "document"


def _key_text(key) -> str:
    """A key as written in a field path: plain when it is a simple word, quoted otherwise."""
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return key
    return describe(key)


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


# --- explaining pydantic errors ----------------------------------------------


def _describe_error(err, loc, model):
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if loc and loc[-1] == "[key]":
        return "invalid key: " + _describe_error(err, loc[:-1], None)
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1]) if model else []
        key = loc[-1] if loc else ""
        if isinstance(key, str) and ":" in key and key.split(":", 1)[0] in allowed:
            return "unknown field (put a space after the colon: '%s: %s')" % tuple(part.strip() for part in key.split(":", 1))
        return "unknown field" + did_you_mean(key, allowed) if loc else "unknown field"
    if kind == "missing":
        example = _field_example(model, loc) if model else None
        if example is not None:
            return "required field is missing (add `%s: %s`)" % (loc[-1], example)
        return "required field is missing (add it)"
    if kind == "invalid_key":
        return "keys must be strings, got %s (quote it)" % describe(value)
    if kind == "literal_error":
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return "%s is not one of %s" % (describe(value), ", ".join(expected))
    simple = _SIMPLE.get(kind)
    if simple is not None:
        text = simple.format(value=describe(value), **{k: _fmt_num(v) for k, v in ctx.items()})
        return text + _unquote_hint(kind, value)
    message = str(err.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return _lower_first(message)


_SIMPLE = {
    "string_type": "expected a string, got {value} (quote it)",
    "string_too_short": "must not be empty",
    "int_type": "expected a whole number, got {value}",
    "int_parsing": "expected a whole number, got {value}",
    "int_from_float": "expected a whole number, got {value}",
    "float_type": "expected a number, got {value}",
    "float_parsing": "expected a number, got {value}",
    "finite_number": "expected a finite number, got {value}",
    "bool_type": "expected true or false, got {value}",
    "bool_parsing": "expected true or false, got {value}",
    "list_type": "expected a list, got {value} (write [a, b] or one '- item' per line)",
    "dict_type": "expected a mapping of keys, got {value}",
    "model_type": "expected a mapping of keys, got {value}",
    "model_attributes_type": "expected a mapping of keys, got {value}",
    "greater_than": "must be greater than {gt}, got {value}",
    "greater_than_equal": "must be at least {ge}, got {value}",
    "less_than": "must be less than {lt}, got {value}",
    "less_than_equal": "must be at most {le}, got {value}",
    "too_short": "needs at least {min_length} item(s)",
    "too_long": "allows at most {max_length} item(s)",
    "recursion_loop": "refers to itself (remove the YAML alias cycle)",
}


def _unquote_hint(kind, value):
    """`` (write 600, without quotes)`` when a quoted scalar would have had the right type."""
    if not isinstance(value, str) or kind not in ("int_type", "float_type", "bool_type"):
        return ""
    try:
        unquoted = yaml.safe_load(value)
    except yaml.YAMLError:
        return ""
    wanted = {"int_type": (int,), "float_type": (int, float), "bool_type": (bool,)}[kind]
    if isinstance(unquoted, wanted) and (kind == "bool_type") == isinstance(unquoted, bool):
        return " (write %s, without quotes)" % describe(unquoted)
    return ""


def _fmt_num(value):
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _lower_first(text):
    return text[:1].lower() + text[1:] if text and not text[:2].isupper() else text


def _allowed_keys(model, loc):
    target = _model_at(model, loc)
    if target is None:
        return []
    return [info.alias or name for name, info in target.model_fields.items()]


def _field_example(model, loc):
    if not loc:
        return None
    target = _model_at(model, loc[:-1])
    if target is None:
        return None
    for name, info in target.model_fields.items():
        if (info.alias or name) == loc[-1]:
            extra = info.json_schema_extra
            return extra.get("example") if isinstance(extra, dict) else None
    return None


def _model_at(model, loc):
    """The pydantic model class that validates the mapping at ``loc``, if one does."""
    annotation = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return None
    found = _models_in(annotation)
    return found[0] if len(found) == 1 else None


def _step(annotation, part):
    for candidate in _unwrap(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            for name, info in candidate.model_fields.items():
                if (info.alias or name) == part:
                    return info.annotation
        origin = typing.get_origin(candidate)
        args = typing.get_args(candidate)
        if origin in (list, tuple) and args and isinstance(part, int):
            return args[0]
        if origin is dict and len(args) == 2:
            return args[1]
    return None


def _unwrap(annotation):
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    return [annotation]


def _models_in(annotation):
    return [c for c in _unwrap(annotation) if isinstance(c, type) and issubclass(c, BaseModel)]
