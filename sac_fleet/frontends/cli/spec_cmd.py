"""`sac spec ...` commands: check specs and show them resolved."""

from __future__ import annotations

from typing import List

import typer

from sac_node.protocol.errors import SpecError

app = typer.Typer(no_args_is_help=True, help="Check agent specs (spec.yaml).")


@app.command("check")
def check(
    files: List[str] = typer.Argument(None, metavar="FILE...", help="spec.yaml files, or agent directories holding one."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors, not the resolved specs."),
):
    """Validate each spec and print it resolved (defaults filled in). Exit 2 if any is invalid."""
    # Imported here, not at the top: every `sac` command loads this module, and pydantic is slow to import.
    from rich.console import Console
    from rich.markup import escape
    from rich.syntax import Syntax

    from sac_fleet.core.spec import parse_spec

    if not files:
        raise SpecError("no spec given (usage: sac spec check FILE...)")
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    errors = []
    for target in files:
        try:
            spec = parse_spec(target)
        except SpecError as exc:
            errors.append(exc)
            continue
        if not quiet:
            out.print(Syntax(render_resolved(spec.to_node()), "yaml", background_color="default"))
    # One red line per bad file; the last is raised so the root prints it and exits 2.
    for exc in errors[:-1]:
        err.print("[red]error:[/red] " + escape(exc.message))
    if errors:
        raise SpecError(errors[-1].message, {"exit_code": 2})


def render_resolved(node: dict) -> str:
    """The node-facing dict as YAML, with ``to_home`` files shown by size instead of content."""
    import yaml

    shown = dict(node)
    shown["to_home"] = {path: "%d bytes" % len(content) for path, content in sorted(node["to_home"].items())}
    return "---  # %s\n%s" % (node["source"], yaml.safe_dump(shown, sort_keys=False, allow_unicode=True, width=100))
