"""`sac agents ...`: start, stop, restart, delete, list, status, send, tail, health."""

import asyncio
import json
import sys

import typer

from . import render

app = typer.Typer(no_args_is_help=True, help="Run agents on this machine: start, send turns, watch them.")
out = render.LazyConsole()
NAME = typer.Argument(..., help="The agent's name.")
err = render.LazyConsole(stderr=True)


def run(coro_fn):
    """Run `coro_fn(fleet)` with a Fleet that is closed afterwards."""
    from sac_fleet.api import Fleet  # not at the top: `--help` and usage errors need no node client

    async def main():
        async with Fleet(via_gateway=True) as fleet:
            return await coro_fn(fleet)
    return asyncio.run(main())


def emit_json(value):
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


@app.command()
def start(target: str = typer.Argument(..., help="A spec.yaml, an agent directory, or an agent name.")):
    """Start an agent (a no-op if it already runs with the same spec)."""
    result = run(lambda f: f.start(target))
    s = result["status"]
    verb = "started" if result["started"] else "already running, unchanged"
    out.print("%s: %s (state %s, sandbox %s)" % (s["name"], verb, s["state"], render.isolation_label(s.get("isolation"))))


@app.command()
def stop(name: str = NAME):
    """Stop an agent; turns not yet started wait in its journal for the next start."""
    s = run(lambda f: f.stop(name))
    out.print("%s: %s" % (s["name"], s["state"]))


@app.command()
def restart(name: str = NAME):
    """Restart an agent with the spec it has."""
    s = run(lambda f: f.restart(name))["status"]
    out.print("%s: restarted (state %s)" % (s["name"], s["state"]))


@app.command()
def delete(name: str = NAME, yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask.")):
    """Stop an agent and delete its directory (journal, transcript, home)."""
    if not yes and not typer.confirm("Delete agent %s and its journal, transcript and home?" % name):
        raise typer.Exit(1)
    run(lambda f: f.delete(name))
    out.print("%s: deleted" % name)


@app.command("list")
def list_agents(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List this machine's agents."""
    statuses = run(lambda f: f.list())
    if as_json:
        return emit_json(statuses)
    if not statuses:
        out.print("no agents (start one with `sac agents start DIR`)")
        return
    out.print(render.agents_table(statuses))


@app.command()
def status(name: str = typer.Argument(None, help="The agent's name (default: all agents)."), as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Status of one agent (or all)."""
    result = run(lambda f: f.status(name) if name else f.list())
    if as_json:
        return emit_json(result)
    if name:
        out.print(render.status_lines(result))
    else:
        out.print(render.agents_table(result))


def progress_printer(as_json):
    """Print a turn's assistant text and tool activity to stderr as it arrives."""
    def progress(record):
        if as_json:
            return
        event = record.get("event") or {}
        if event.get("type") in ("assistant", "user") or (event.get("type") == "sac" and
                                                          event.get("subtype", "").startswith("engine")):
            line = render.record_text(record)
            if line:
                err.print(line, style="dim")
    return progress


def print_turn(turn, no_wait, as_json):
    """The final reply on stdout; a turn that did not complete exits 1."""
    if as_json:
        emit_json(turn)
    elif no_wait:
        out.print("accepted %s" % turn["id"])
    elif turn["status"] == "completed":
        out.print(turn.get("reply") or "")
    if not no_wait and turn["status"] != "completed":
        if not as_json:
            err.print(render.styled(("turn %s %s" % (turn["id"], turn["status"]), "red"), ": " + (turn.get("error") or "")))
        raise typer.Exit(1)


@app.command()
def send(name: str = NAME, text: str = typer.Argument(..., help="The prompt."),
         no_wait: bool = typer.Option(False, "--no-wait", help="Return once the turn is accepted."),
         timeout: float = typer.Option(600.0, "--timeout", help="Seconds to wait for the reply."),
         as_json: bool = typer.Option(False, "--json", help="Print the finished turn as JSON.")):
    """Send a turn: the assistant's progress streams to stderr, the final reply to stdout."""
    turn = run(lambda f: f.send(name, text, wait=not no_wait, timeout=timeout, on_record=progress_printer(as_json)))
    print_turn(turn, no_wait, as_json)


async def tail_records(fleet, name, lines, follow, as_json):
    """Print past records, then (with follow) live ones."""
    def show(record):
        if as_json:
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
            return
        text = render.record_text(record)
        if text:
            out.print(text)

    if lines:
        records = await fleet.tail(name, lines)
    else:  # -n 0: no past record, only new ones (with -f)
        await fleet.status(name)  # AgentNotFound with the fix
        records = []
    for record in records:
        show(record)
    if follow:
        last = records[-1]["seq"] if records else (0 if lines else None)
        async for record in fleet.follow(name, from_seq=last):
            show(record)


FOLLOW = typer.Option(False, "-f", "--follow", help="Keep following: across restarts, until the agent is deleted.")
LINES = typer.Option(20, "-n", min=0, help="How many past records (0: none, only new ones with -f).")
RECORDS_JSON = typer.Option(False, "--json", help="Raw records, one JSON per line.")


@app.command()
def tail(name: str = NAME, follow: bool = FOLLOW, lines: int = LINES,
         as_json: bool = RECORDS_JSON):
    """Show an agent's transcript; -f keeps following it."""
    try:
        run(lambda f: tail_records(f, name, lines, follow, as_json))
    except KeyboardInterrupt:
        pass


@app.command()
def health(name: str = NAME, as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Exit 0 when the agent is healthy, 1 with the reasons when it is not."""
    result = run(lambda f: f.health(name))
    if as_json:
        emit_json(result)
    elif result["ok"]:
        out.print("%s: healthy (%s)" % (name, result["status"]["state"]))
    else:
        out.print("%s: unhealthy: %s" % (name, "; ".join(result["problems"])))
    if not result["ok"]:
        raise typer.Exit(1)
