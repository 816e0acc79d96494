"""`sac accounts ...`: the accounts of this machine's agents and their health."""

import json
import sys

import typer

from .agents_cmd import run
from .render import LazyConsole

app = typer.Typer(no_args_is_help=True, help="Accounts (API keys, OAuth config dirs) of agents: which is active, which rest.")
out = LazyConsole()
STYLE = {"active": "green", "ready": "", "resting": "yellow"}


def rows_of(statuses):
    return [dict(account, agent=s["name"]) for s in statuses for account in s.get("accounts") or []]


def table(rows):
    from rich.table import Table  # loaded when a table is drawn: every `sac` command imports this module
    from rich.text import Text

    t = Table(box=None, header_style="bold")
    for col in ("AGENT", "ACCOUNT", "KIND", "STATE", "TOKENS used/limit", "RESTING", "LIMITED", "REASON"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["agent"], r["name"], r["kind"], Text(r["state"], style=STYLE.get(r["state"], "")),
                  "%d/%s" % (r["used_tokens"], r["limit_tokens"] or "-"),
                  "%ds" % r["resting_s"] if r["resting_s"] else "-", str(r["limited"]), (r["reason"] or "")[:80])
    return t


def show(statuses, as_json):
    rows = rows_of(statuses)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    elif not rows:
        out.print("no agent here has claude.accounts (see docs/spec-reference.md)")
    else:
        out.print(table(rows))


@app.command("list")
def list_accounts(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Every account of every agent on this machine."""
    show(run(lambda f: f.list()), as_json)


@app.command()
def status(agent: str = typer.Argument(None, help="Only this agent."), as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Which account each agent uses now, and which rest until when."""
    statuses = [run(lambda f: f.status(agent))] if agent else run(lambda f: f.list())
    show(statuses, as_json)
