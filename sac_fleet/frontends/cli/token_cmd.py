"""`sac fleet token add|list|revoke`: the gateway's named tokens (<SAC_HOME>/gateway.tokens).

A running `sac fleet serve` sees each change at its next request; no restart.
"""

import json
import sys
from typing import List

import typer

from .render import LazyConsole

app = typer.Typer(no_args_is_help=True, help="Named tokens of the HTTP gateway (`sac fleet serve`), with scopes.")
out = LazyConsole()
SCOPE_HELP = ("read (status, lists, transcripts, turns), send:<agent | key=value,... | *> (turns to those agents, "
              "and following them), admin (everything); repeat for several.")


@app.command()
def add(name: str = typer.Argument(..., help="The token's name, as the gateway's log shows it."),
        scope: List[str] = typer.Option(..., "--scope", "-s", help=SCOPE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print {name, scopes, token} as JSON.")):
    """Make a token and print its value: this once only (the file keeps its hash)."""
    from sac_fleet.frontends.gateway.tokens import add_token, canonical_scopes, ensure_default, token_path, tokens_path

    canonical_scopes(scope)  # a bad scope changes nothing
    ensure_default(tokens_path(), token_path())  # the first token file keeps the token of before, as `default`
    value = add_token(tokens_path(), name, scope)
    if as_json:
        sys.stdout.write(json.dumps({"name": name, "scopes": list(canonical_scopes(scope)), "token": value}) + "\n")
        return
    sys.stdout.write(value + "\n")
    sys.stderr.write("token %s (%s) added to %s; its value is shown only now, so keep it\n"
                     % (name, " ".join(canonical_scopes(scope)), tokens_path()))


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print the tokens as JSON.")):
    """The tokens: name, scopes, when made (never a value: only hashes are kept)."""
    from sac_fleet.frontends.gateway.tokens import read_tokens, tokens_path

    path = tokens_path()
    rows = [t.row() for t in read_tokens(path)] if path.exists() else []
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not rows:
        out.print("no gateway tokens yet: `sac fleet serve` makes the `default` one, `sac fleet token add` others")
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        out.print("%-*s  %-20s  %s" % (width, r["name"], r["created"], " ".join(r["scopes"])), markup=False)


@app.command()
def revoke(name: str = typer.Argument(..., help="The token's name.")):
    """Remove a token; a running gateway refuses it (401) from its next request."""
    from sac_fleet.frontends.gateway.tokens import DEFAULT, revoke_token, token_path, tokens_path

    revoke_token(tokens_path(), name, legacy=token_path())
    extra = " (and %s, so the CLI here reaches agents directly)" % token_path() if name == DEFAULT else ""
    out.print("revoked token %s%s" % (name, extra), markup=False)
