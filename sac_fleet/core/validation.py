"""pydantic's side of sac's config files: the strict model base, the custom error, and the one line.

``ConfigModel`` is the base of every spec and inventory section (unknown keys
refused, frozen, input never echoed); ``invalid(message)`` is how a validator
says what is wrong in sac's words; ``validation_error`` turns a pydantic
``ValidationError`` on a ``Document`` into one ``FILE:LINE FIELD.PATH: problem
(fix)`` line, with "did you mean" for unknown keys and an example for missing ones.
"""

from __future__ import annotations

import re
import types
import typing
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from sac_node.protocol.errors import ConfigError, SacError

from .wording import describe, did_you_mean

if TYPE_CHECKING:
    from .documents import Document


class ConfigModel(BaseModel):
    """A section of a config file: unknown keys are errors, values are frozen and never echoed."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, allow_inf_nan=False)


def null_as_empty(value: Any) -> Any:
    """A key written with nothing after it (``secrets:``) is an empty mapping (use in a ``BeforeValidator``)."""
    return {} if value is None else value


def invalid(message: str) -> PydanticCustomError:
    """The error a validator raises: ``message`` is shown as written, after ``FILE:LINE FIELD:``."""
    # The message travels as context so braces in it are never treated as a template.
    return PydanticCustomError("sac_invalid", "{reason}", {"reason": message})


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
