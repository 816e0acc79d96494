"""`sac spec ...` commands: check specs and show them resolved."""

from __future__ import annotations

from typing import List

import typer

from sac_node.protocol.errors import SpecError

from .render import LazyConsole, print_error

out = LazyConsole()
err = LazyConsole(stderr=True)
app = typer.Typer(no_args_is_help=True, help="Check agent specs (spec.yaml).")


@app.command("check")
def check(
    files: List[str] = typer.Argument(None, metavar="FILE...", help="spec.yaml files, or agent directories holding one."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors, not the resolved specs."),
):
    """Validate each spec and print it resolved (defaults filled in). Exit 2 if any is invalid."""
    # Imported here, not at the top: every `sac` command loads this module, and pydantic is slow to import.
    from rich.syntax import Syntax

    from sac_fleet.core.spec import parse_spec

    if not files:
        raise SpecError("no spec given (usage: sac spec check FILE...)")
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

