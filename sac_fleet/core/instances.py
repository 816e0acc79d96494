"""Many agents from one spec: a template and a parameter set -> one named, rendered spec per row.

An instance's name is its row's ``name`` column, else the ``--name`` pattern (``{template}`` is
the template's directory name, ``${params.X}`` a parameter), else the template's own
``metadata.name`` when it uses a parameter. Names must be valid and unique, and two instances
may not share a workdir. ``instances(...)`` reports every row, each with its spec or its error,
so one run shows what to fix (``sac spec check TEMPLATE --params F``); ``check_instances``
raises the first problem for callers that go on to start them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sac_node.protocol.errors import SpecError

from .documents import load_document
from .params import read_params
from .spec import NAME_RE, parse_spec, spec_file
from .templates import Context, fill


@dataclass(frozen=True)
class Instance:
    """One row's agent: its name and spec, or the error that stops it."""

    row: int
    name: str
    spec: object = None
    error: Optional[str] = None


def template_name(template) -> str:
    """What ``{template}`` stands for: the template's directory name."""
    return spec_file(template).resolve().parent.name


def instances(template, params_path, name_pattern: Optional[str] = None, environ=None) -> list:
    """One ``Instance`` per row of ``params_path``, each rendered from ``template``."""
    path = spec_file(template)
    rows = read_params(params_path)
    written = _written_name(path)
    out, used, workdirs = [], {}, {}
    for row in rows:
        where = "%s:%d: row %d" % (params_path, row.line, row.number)
        name = ""
        try:
            name = _name_of(row, name_pattern, written, path, environ, where)
            spec = parse_spec(path, name=name, params=row.values, row=row.number, environ=environ)
            name = spec.name
            if name in used:
                raise SpecError("%s: name %r is already used by row %d (names must be unique: change the name "
                                "column or put a parameter in --name)" % (where, name, used[name]))
            used[name] = row.number
            _own_workdir(spec, row.number, workdirs, where)
            out.append(Instance(row.number, name, spec))
        except SpecError as exc:
            out.append(Instance(row.number, name or "", None, exc.message))
    return out


def check_instances(template, params_path, name_pattern=None, environ=None) -> list:
    """The rendered specs of every row; SpecError (every row's problem, one per line) if any row fails."""
    made = instances(template, params_path, name_pattern, environ)
    errors = [i.error for i in made if i.error]
    if errors:
        raise SpecError(errors[0] + (" [+%d more]" % (len(errors) - 1) if len(errors) > 1 else ""),
                        {"errors": errors})
    return [i.spec for i in made]


def _written_name(path):
    data = load_document(path, SpecError).data
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) and "${" in name else None


def _name_of(row, pattern, written, path, environ, where):
    if "name" in row.values:
        name = str(row.values["name"])
    elif pattern:
        context = Context(params=row.values, environ=environ or {}, row=row.number)
        name = fill(pattern.replace("{template}", path.resolve().parent.name), context, where + " --name")
    elif written:
        return None  # the spec's own metadata.name, filled with this row (parse_spec)
    else:
        raise SpecError("%s: no name for this agent (add a name column, pass --name '{template}-${params.id}', "
                        "or put ${params.X} in the template's metadata.name)" % where)
    if not NAME_RE.fullmatch(name):
        raise SpecError("%s: %r is not a valid agent name (lowercase letters, digits and '-', starting with a "
                        "letter or digit, at most 63 characters)" % (where, name))
    return name


def _own_workdir(spec, number, workdirs, where):
    """Each instance works in its own directory: a relative workdir is under its agent's own dir."""
    workdir = spec.spec.workdir
    if not (workdir.startswith("/") or workdir.startswith("~")):
        return
    if workdir in workdirs:
        raise SpecError("%s: workdir %s is also row %d's (put ${metadata.name} or a parameter in spec.workdir, "
                        "or make it relative)" % (where, workdir, workdirs[workdir]))
    workdirs[workdir] = number
