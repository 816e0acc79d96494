"""`sac agents ...`: start, stop, restart, delete, list, status, send, tail, health."""

import asyncio
import json
import sys

import typer

from typing import List

from . import render
from .options import LABELS, selector_of, selects

app = typer.Typer(no_args_is_help=True, help="Run agents on this machine: start, send turns, watch them.")
out = render.LazyConsole()
NAME = typer.Argument(..., metavar="NAME", help="The agent's name.")
err = render.LazyConsole(stderr=True)


def run(coro_fn):
    """Run `coro_fn(fleet)` with a Fleet that is closed afterwards."""
    from sac_fleet.api import Fleet  # not at the top: `--help` and usage errors need no node client

    async def main():
        async with Fleet(via_gateway=True) as fleet:
            return await coro_fn(fleet)
    return asyncio.run(main())


async def listed(fleet):
    """This machine's agents as `sac agents` shows them: every one is this machine's, so no `host`."""
    return [{k: v for k, v in status.items() if k != "host"} for status in await fleet.list()]


def emit_json(value):
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


PARAMS = typer.Option(None, "--params", metavar="FILE", help="Start one agent per row of this .csv, .yaml or .jsonl "
                      "file, from the spec TARGET as a template.")
INSTANCE_NAME = typer.Option(None, "--name", metavar="PATTERN", help="With --params: each agent's name, e.g. "
                             "'{template}-${params.id}' (default: the rows' name column).")


@app.command()
def start(target: str = typer.Argument(..., help="A spec.yaml, an agent directory, or an agent name."),
          params: str = PARAMS, name: str = INSTANCE_NAME):
    """Start an agent (a no-op if it already runs with the same spec); with --params, one per row."""
    if name and not params:
        raise typer.BadParameter("--name names the agents of a parameter set: give --params FILE too")
    results = run(lambda f: f.start_instances(target, params, name)) if params else [run(lambda f: f.start(target))]
    for result in results:
        s = result["status"]
        verb = "started" if result["started"] else "already running, unchanged"
        out.print("%s: %s (state %s, sandbox %s)" % (s["name"], verb, s["state"],
                                                     render.isolation_label(s.get("isolation"))))


@app.command()
def stop(name: str = NAME):
    """Stop an agent; turns not yet started wait in its journal for the next start."""
    s = run(lambda f: f.stop(name))
    # a stopped agent's last_error is a pre_stop or post_stop hook that failed (not fatal, but said)
    out.print("%s: %s%s" % (s["name"], s["state"], " (%s)" % s["last_error"] if s.get("last_error") else ""))


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
def list_agents(labels: List[str] = LABELS,
                as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List this machine's agents."""
    selector = selector_of(labels)
    statuses = [s for s in run(listed) if selector is None or selects(selector, s.get("labels"))]
    if as_json:
        return emit_json(statuses)
    if not statuses:
        out.print("no agents with those labels" if selector else "no agents (start one with `sac agents start DIR`)")
        return
    out.print(render.agents_table(statuses))


@app.command()
def status(name: str = typer.Argument(None, help="The agent's name (default: all agents)."), as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Status of one agent (or all)."""
    result = run(lambda f: f.status(name) if name else listed(f))
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
    if turn.get("notice") and not as_json:
        err.print("note: " + turn["notice"], style="yellow")
    if not no_wait and turn["status"] != "completed":
        if not as_json:
            err.print(render.styled(("turn %s %s" % (turn["id"], turn["status"]), "red"), ": " + (turn.get("error") or "")))
        raise typer.Exit(1)


PROMPT = typer.Argument(None, metavar="PROMPT", help="The prompt; `-` reads it from stdin.")
PROMPT_FILE = typer.Option(None, "--file", "-F", metavar="FILE", help="Read the prompt from this file.")
NO_WAIT = typer.Option(False, "--no-wait", help="Return once the turn is accepted (follow it up with `turn ID`).")
TIMEOUT = typer.Option(600.0, "--timeout", help="Seconds to wait for the reply.")
TURN_JSON = typer.Option(False, "--json", help="Print the turn as JSON.")
TURN_ID = typer.Argument(..., metavar="TURN_ID", help="The turn's id, as `send --no-wait` printed it (<agent>.<hex>).")
TURN_WAIT = typer.Option(0.0, "--wait", min=0, help="Seconds to wait for the turn to end (0: answer at once).")


def prompt_of(text, file):
    """The prompt from the argument, stdin (`-`) or --file: exactly one of them, not empty."""
    if (text is None) == (file is None):
        raise typer.BadParameter("give the prompt as an argument, `-` for stdin, or --file FILE (one of them)")
    if file is not None:
        try:
            text = open(file, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter("--file %s: %s" % (file, getattr(exc, "strerror", None) or exc)) from None
    elif text == "-":
        text = sys.stdin.read()
    if not text.strip():
        raise typer.BadParameter("the prompt is empty")
    return text


@app.command()
def send(name: str = NAME, text: str = PROMPT, file: str = PROMPT_FILE, no_wait: bool = NO_WAIT,
         timeout: float = TIMEOUT, as_json: bool = TURN_JSON):
    """Send a turn: the assistant's progress streams to stderr, the final reply to stdout."""
    text = prompt_of(text, file)
    turn = run(lambda f: f.send(name, text, wait=not no_wait, timeout=timeout, on_record=progress_printer(as_json)))
    print_turn(turn, no_wait, as_json)


def turn_id_of(turn_id):
    if "." not in turn_id:
        raise typer.BadParameter("turn ids look like <agent>.<hex>, as `send --no-wait` prints them")
    return turn_id


def print_followed_turn(turn, as_json):
    """A turn looked up by id: its reply once completed (exit 0), else its status (exit 1)."""
    if as_json:
        emit_json(turn)
    elif turn["status"] == "completed":
        out.print(turn.get("reply") or "")
    elif turn["status"] in ("pending", "running"):
        err.print("turn %s %s (not ended yet; --wait SECONDS waits for it)" % (turn["id"], turn["status"]))
    else:
        err.print(render.styled(("turn %s %s" % (turn["id"], turn["status"]), "red"), ": " + (turn.get("error") or "")))
    if turn["status"] != "completed":
        raise typer.Exit(1)


@app.command()
def turn(turn_id: str = TURN_ID, wait: float = TURN_WAIT, as_json: bool = TURN_JSON):
    """A turn by id (one sent with --no-wait, say): its reply once completed, else its status."""
    print_followed_turn(run(lambda f: f.get_turn(turn_id_of(turn_id), wait)), as_json)


@app.command()
def cancel(turn_id: str = TURN_ID, as_json: bool = TURN_JSON):
    """Cancel a turn: a pending one never runs, a running one is stopped (its engine restarts)."""
    print_cancelled(run(lambda f: f.cancel(turn_id_of(turn_id))), as_json)


def print_cancelled(turn, as_json):
    if as_json:
        return emit_json(turn)
    out.print("turn %s %s" % (turn["id"], turn["status"]))
    if turn["status"] != "cancelled":
        raise typer.Exit(1)  # it had ended already


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
