"""`sac spec ...` commands: check specs (and templates with their parameters), start new ones, import upstream ones."""

from __future__ import annotations

from typing import List

import typer

from sac_node.protocol.errors import SpecError

from .render import LazyConsole, print_error

out = LazyConsole()
err = LazyConsole(stderr=True)
app = typer.Typer(no_args_is_help=True, help="Check, write and import agent specs (spec.yaml).")


@app.command("check")
def check(
    files: List[str] = typer.Argument(None, metavar="FILE...", help="spec.yaml files, or agent directories holding one."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors, not the resolved specs."),
    params: str = typer.Option(None, "--params", metavar="FILE", help="Check FILE as a template: render it once per "
                               "row of this .csv, .yaml or .jsonl file."),
    name: str = typer.Option(None, "--name", metavar="PATTERN", help="With --params: the agents' names, e.g. "
                             "'{template}-${params.id}'."),
):
    """Validate each spec and print it resolved (defaults filled in). Exit 2 if any is invalid."""
    # Imported here, not at the top: every `sac` command loads this module, and pydantic is slow to import.
    from rich.syntax import Syntax

    from sac_fleet.core.spec import parse_spec

    if not files:
        raise SpecError("no spec given (usage: sac spec check FILE...)")
    if params:
        return check_rows(files, params, name)
    errors = []
    for target in files:
        try:
            spec = parse_spec(target)
        except SpecError as exc:
            errors.append(exc)
            continue
        if not quiet:
            out.print(Syntax(render_resolved(spec.to_node()), "yaml", background_color="default"))
    # Every problem of every bad file, one red line each, so one run fixes a file.
    for exc in errors:
        print_error(exc, err)
    if errors:
        raise typer.Exit(2)


def render_resolved(node: dict) -> str:
    """The node-facing dict as YAML, with ``to_home`` files shown by size instead of content."""
    import yaml

    shown = dict(node)
    shown["to_home"] = {path: "%d bytes" % len(content) for path, content in sorted(node["to_home"].items())}
    return "---  # %s\n%s" % (node["source"], yaml.safe_dump(shown, sort_keys=False, allow_unicode=True, width=100))



def check_rows(templates, params, name):
    """Each row's agent name and, for a row that fails, its error: one line per row."""
    import os

    from sac_fleet.core.instances import instances

    if len(templates) != 1:
        raise SpecError("--params renders one template: give one spec (usage: sac spec check TEMPLATE --params FILE)")
    made = instances(templates[0], params, name, environ=os.environ)
    for instance in made:
        if instance.error:
            print_error(SpecError(instance.error), err)
        else:
            out.print("row %d: %s ok" % (instance.row, instance.name))
    if any(instance.error for instance in made):
        raise typer.Exit(2)


@app.command("new")
def new(
    name: str = typer.Argument(..., metavar="NAME", help="The new agent's directory (its name is the last part)."),
    pattern: str = typer.Option("local", "--from", metavar="PATTERN", help="The starter: local, remote, "
                                "provider-only or accounts."),
):
    """Write a commented starter spec NAME/spec.yaml from a built-in pattern."""
    from sac_fleet.core.starters import write_starter

    path = write_starter(name, pattern)
    out.print("wrote %s (check it with `sac spec check %s`)" % (path, path))


@app.command("import")
def import_specs(
    paths: List[str] = typer.Argument(..., metavar="PATH...", help="Upstream scitex-agent-container v3 spec.yaml "
                                      "files, or agent directories holding one."),
    out_dir: str = typer.Option(".", "--out", metavar="DIR", help="Write each agent to DIR/<name>/spec.yaml."),
):
    """Convert upstream v3 specs to sac/v1 specs; every field sac does not take is listed with its line."""
    from sac_fleet.core.upstream import import_spec

    for path in paths:
        written, warnings = import_spec(path, out_dir)
        for warning in warnings:
            err.print("warning: " + warning, style="yellow", markup=False, highlight=False)
        out.print("wrote %s (%d warning%s)" % (written, len(warnings), "" if len(warnings) == 1 else "s"))
