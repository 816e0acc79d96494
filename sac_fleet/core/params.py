"""Parameter sets: one row per agent made from a template, from ``.csv``, ``.yaml``/``.yml`` or ``.jsonl``.

``read_params(path)`` -> ``[ParamRow(number, line, values)]``. A CSV file's first line names
the columns; a YAML file is a list of mappings; a JSON Lines file has one object per line.
Values are scalars (text, numbers, true/false). Every mistake is one ``SpecError`` line
naming the file, the line and the row.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from sac_node.protocol.errors import SpecError

from .wording import describe

PARAM_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
FORMATS = (".csv", ".yaml", ".yml", ".jsonl")


@dataclass(frozen=True)
class ParamRow:
    """One row of a parameter set: its 1-based number, its line in the file, its values."""

    number: int
    line: int
    values: Mapping[str, Any]


def read_params(path) -> list:
    """The rows of the parameter file at ``path`` (at least one)."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise SpecError("%s: a parameter file is .csv, .yaml or .jsonl (rename it or convert it)" % path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError("%s: no such parameter file (check the path)" % path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError("%s: cannot read: %s" % (path, getattr(exc, "strerror", None) or exc)) from None
    reader = {".csv": _csv_rows, ".jsonl": _jsonl_rows}.get(path.suffix.lower(), _yaml_rows)
    rows = reader(text, path)
    if not rows:
        raise SpecError("%s: no rows (add one row per agent)" % path)
    for row in rows:
        _check_row(row, path)
    return rows


def _csv_rows(text, path):
    records = list(csv.reader(io.StringIO(text)))
    lines = _csv_record_lines(text)
    header_at = next((i for i, r in enumerate(records) if any(cell.strip() for cell in r)), None)
    if header_at is None:
        return []
    header = [cell.strip() for cell in records[header_at]]
    for index, name in enumerate(header):
        if header.index(name) != index:
            raise SpecError("%s:%d: column %r appears twice (keep one)" % (path, lines[header_at], name))
    rows = []
    for at in range(header_at + 1, len(records)):
        record = records[at]
        if not any(cell.strip() for cell in record):
            continue
        number = len(rows) + 1
        if len(record) != len(header):
            raise SpecError("%s:%d: row %d has %d values for %d columns (%s)"
                            % (path, lines[at], number, len(record), len(header), ", ".join(header)))
        rows.append(ParamRow(number, lines[at], dict(zip(header, record))))
    return rows


def _csv_record_lines(text):
    """The line each CSV record starts on (a quoted value may span lines)."""
    reader = csv.reader(io.StringIO(text))
    starts, line = [], 1
    for _ in reader:
        starts.append(line)
        line = reader.line_num + 1
    return starts


def _jsonl_rows(text, path):
    rows = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
        except ValueError as exc:
            raise SpecError("%s:%d: not JSON: %s (one object per line)" % (path, line_no, exc)) from None
        if not isinstance(values, dict):
            raise SpecError("%s:%d: expected an object {...}, got %s" % (path, line_no, describe(values)))
        rows.append(ParamRow(len(rows) + 1, line_no, values))
    return rows


def _yaml_rows(text, path):
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SpecError("%s:%d: not YAML: %s" % (path, mark.line + 1 if mark else 1,
                                                 getattr(exc, "problem", None) or exc)) from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise SpecError("%s:1: expected a list of rows (- {id: a, ...}), got %s" % (path, describe(data)))
    rows = []
    for index, values in enumerate(data):
        line = node.value[index].start_mark.line + 1
        if not isinstance(values, dict):
            raise SpecError("%s:%d: row %d: expected a mapping of names to values, got %s"
                            % (path, line, index + 1, describe(values)))
        rows.append(ParamRow(index + 1, line, values))
    return rows


def _check_row(row, path):
    for name, value in row.values.items():
        if not isinstance(name, str) or not PARAM_NAME_RE.fullmatch(name):
            raise SpecError("%s:%d: row %d: %s is not a parameter name (letters, digits, '_' and '-', starting "
                            "with a letter or '_')" % (path, row.line, row.number, describe(name)))
        if value is None or isinstance(value, (dict, list)) or isinstance(value, float) and value != value:
            raise SpecError("%s:%d: row %d: %s is %s; a parameter is text, a number or true/false"
                            % (path, row.line, row.number, name, describe(value)))
