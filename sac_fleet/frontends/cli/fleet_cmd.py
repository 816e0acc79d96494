"""`sac fleet ...`: up, status, plan, send, tail, down over an inventory.

Exit codes: 0 all ok, 1 some hosts or agents not ok, 2 bad input.
"""

import asyncio
import json
import sys

from typing import List

import typer

from . import render, serve_cmd, token_cmd
from .agents_cmd import (FOLLOW, LINES, NO_WAIT, PROMPT, PROMPT_FILE, RECORDS_JSON, TIMEOUT, TURN_ID, TURN_JSON,
                         TURN_WAIT, print_cancelled, print_followed_turn, print_turn, progress_printer, prompt_of,
                         tail_records, turn_id_of)
from .options import (ACCEPT_NEW, INVENTORY, LABELS, LIMIT, OLD_INVENTORY, hosts_of, inventory_of, selected_agents,
                      selector_of)

app = typer.Typer(no_args_is_help=True, help="Run agents across the hosts of an inventory.yaml.")
app.add_typer(serve_cmd.app)  # `sac fleet serve`
app.add_typer(token_cmd.app, name="token")  # `sac fleet token add|list|revoke`
out = render.LazyConsole()
err = render.LazyConsole(stderr=True)

JSON = typer.Option(False, "--json", help="Print the report as JSON.")
HOST_STYLE = {"ok": "green", "connecting": "yellow", "uploading": "yellow"}


def run(inventory, coro_fn, accept_new=False):
    from sac_fleet.api import Fleet  # not at the top: `--help` and usage errors need no node client
    from sac_fleet.core.inventory import resolve_inventory_path

    inventory = str(resolve_inventory_path(inventory))  # INVENTORY, else $SAC_INVENTORY, else ./inventory.yaml

    async def main():
        async with Fleet(inventory=inventory, accept_new_host_keys=accept_new, via_gateway=True) as fleet:
            fleet.load()
            return await coro_fn(fleet)
    return asyncio.run(main())


def emit_json(value):
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def hosts_table(rows):
    # rich is imported where it draws: every `sac` command imports this module, and JSON output needs no rich.
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", title="hosts", title_justify="left")
    for col in ("HOST", "STATE", "LATENCY", "PYTHON", "NODE", "AGENTS run/want", "REASON"):
        table.add_column(col, overflow="fold")
    for r in rows:
        running = "?" if r["agents_running"] is None else str(r["agents_running"])
        table.add_row(r["name"], Text(r["state"], style=HOST_STYLE.get(r["state"], "red")),
                      "%.1fms" % r["latency_ms"] if r["latency_ms"] is not None else "-", r["python"] or "-",
                      "not running" if r.get("node") == "not running" else r["node_version"] or "-",
                      "%s/%d" % (running, r["agents_desired"]),
                      r["reason"] or ", ".join(r.get("bootstrap") or []))
    return table


def fleet_agents_table(rows):
    from rich.table import Table

    table = Table(box=None, header_style="bold", title="agents", title_justify="left")
    slurm = any(a.get("slurm") for a in rows)  # a SLURM column only for fleets with a Slurm host
    for col in ("AGENT", "HOST", "STATE") + (("SLURM",) if slurm else ()) + (
            "TURNS ok/pend/fail", "DOING", "HEARTBEAT", "RESTARTS", "LAST ERROR"):
        table.add_column(col, overflow="fold")
    for a in rows:
        t = a["turns"]
        table.add_row(a["name"], a["host"], render.state_cell(a), *((render.slurm_cell(a),) if slurm else ()),
                      "%d/%d/%d" % (t.get("completed", 0), t.get("pending", 0), t.get("failed", 0)),
                      render.doing(a), render.age(a["heartbeat_age_s"]), str(a["restarts"]),
                      (a["last_error"] or "")[:100])
    return table


def print_fenced(report):
    for f in report.get("fenced") or []:
        if f.get("error"):
            err.print(render.styled(("could not fence", "red"), " %s on %s: %s" % (f["agent"], f["host"], f["error"])))
        else:
            out.print("  fenced      %s on %s: a newer copy (generation %s) runs on %s; this stale one stopped"
                      % (f["agent"], f["host"], f["by_generation"], f["by_host"]))


def plan_lines(actions, kinds=None):
    for a in actions:
        if kinds is None or a["kind"] in kinds:
            yield "  %-11s %s" % (a["kind"], a["line"])


class HostProgress:
    """Per-host progress of `fleet up`: a live table on a terminal, plain lines elsewhere."""

    def __init__(self, quiet):
        self.rows, self.quiet, self.live = {}, quiet, None
        if not quiet and out.is_terminal:
            from rich.live import Live

            self.live = Live(self._table(), console=out.console, transient=False)

    def _table(self):
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, header_style="bold")
        table.add_column("HOST")
        table.add_column("STEP")
        for name, (state, detail) in self.rows.items():
            table.add_row(name, Text("%s %s" % (state, detail), style=HOST_STYLE.get(state, "red")))
        return table

    def __call__(self, host, state, detail):
        self.rows[host] = (state, detail)
        if self.live is not None:
            self.live.update(self._table())
        elif not self.quiet and state not in ("connecting", "uploading"):  # no live table: only where it ends
            out.print("%-12s %s %s" % (host, state, detail))


@app.command()
def up(old_inventory: str = OLD_INVENTORY, inventory: str = INVENTORY, dry_run: bool = typer.Option(False, "--dry-run", help="Plan only."),
       prune: bool = typer.Option(False, "--prune", help="Also stop agents no longer in the inventory."),
       reschedule: bool = typer.Option(False, "--reschedule", help="Restart singletons of unreachable hosts elsewhere."),
       limit: str = LIMIT, accept_new: bool = ACCEPT_NEW, as_json: bool = JSON):
    """Converge the fleet: bootstrap hosts, start missing agents, leave running ones alone."""
    inventory, hosts = inventory_of(inventory, old_inventory), hosts_of(limit)
    progress = HostProgress(as_json)

    async def go(fleet):
        if progress.live is not None:
            progress.live.start()
        try:
            return await fleet.up(dry_run=dry_run, prune=prune, reschedule=reschedule, on_host=progress, limit=hosts)
        finally:
            if progress.live is not None:
                progress.live.stop()

    report = run(inventory, go, accept_new)
    if as_json:
        emit_json(report)
    else:
        out.print(hosts_table(report["hosts"]))
        print_fenced(report)
        for line in plan_lines(report["plan"]):
            out.print(line)
        for r in report["results"]:
            if not r["ok"]:
                err.print(render.styled(("failed", "red"), " %s: %s" % (r["action"]["line"], r["error"])))
        out.print(up_summary(report))
    raise typer.Exit(0 if report["ok"] else 1)


def up_summary(report):
    """The last line of `fleet up`: the plan, then what was done and what failed, counted."""
    if report["dry_run"]:
        return "%s: dry run, nothing done" % report["summary"]
    counts = report["outcome"]
    parts = ["%d %s" % (counts[word], word) for word in ("started", "updated", "stopped", "fenced", "secrets written",
                                                                 "nodes restarted")
             if counts.get(word)]
    if counts["failed"]:
        parts.append("%d failed" % counts["failed"])
    if counts["hosts_not_reached"]:
        parts.append("%d host%s not reached" % (counts["hosts_not_reached"], "" if counts["hosts_not_reached"] == 1
                                                 else "s"))
    if parts:
        return "%s: %s" % (report["summary"], ", ".join(parts))
    return "%s: %s" % (report["summary"], "done") if report["changed"] else "%s (already converged)" % report["summary"]


def narrowed(report, names):
    """A status report about only the agents `names` (and every host, which they share)."""
    agents = [a for a in report["agents"] if a["name"] in names]
    diff = [d for d in report["diff"] if d.get("agent") in names]
    ok = all(h["state"] == "ok" for h in report["hosts"]) and not diff and all(a["state"] != "failed" for a in agents)
    return dict(report, agents=agents, diff=diff, ok=ok, selected=sorted(names))


@app.command()
def status(old_inventory: str = OLD_INVENTORY, inventory: str = INVENTORY,
           host: str = typer.Option(None, "--host", help="Only this host."), labels: List[str] = LABELS,
           accept_new: bool = ACCEPT_NEW, as_json: bool = JSON):
    """Hosts and agents, desired next to actual; hosts that did not answer say why."""
    selector = selector_of(labels)

    async def go(fleet):
        report = await fleet.fleet_status(host)
        return narrowed(report, selected_agents(fleet.inventory, selector)) if selector else report

    report = run(inventory_of(inventory, old_inventory), go, accept_new)
    if as_json:
        emit_json(report)
    else:
        out.print(hosts_table(report["hosts"]))
        out.print(fleet_agents_table(report["agents"]))
        print_fenced(report)
        if report["diff"]:
            out.print(render.styled(("desired vs actual", "bold")))
            for line in plan_lines(report["diff"]):
                out.print(line)
        else:
            out.print("desired = actual")
    raise typer.Exit(0 if report["ok"] else 1)


@app.command()
def plan(old_inventory: str = OLD_INVENTORY, inventory: str = INVENTORY,
         reschedule: bool = typer.Option(False, "--reschedule", help="Plan singletons of unreachable hosts elsewhere."),
         prune: bool = typer.Option(False, "--prune", help="Also plan to stop agents no longer in the inventory."),
         accept_new: bool = ACCEPT_NEW, as_json: bool = JSON):
    """Show where every agent would run and why, without changing anything."""
    report = run(inventory_of(inventory, old_inventory), lambda f: f.plan(reschedule=reschedule, prune=prune),
                 accept_new)
    if as_json:
        return emit_json(report)
    for r in report["hosts"]:
        if r.get("up_would"):
            out.print("  %-11s %s: %s`sac fleet up` would %s" % ("node", r["name"], "not running; " if r["node"] ==
                      "not running" else "", ", ".join(r["up_would"])), markup=False)
    for line in plan_lines(report["plan"]):
        out.print(line)
    out.print(report["summary"])


@app.command()
def secrets(inventory: str = INVENTORY, accept_new: bool = ACCEPT_NEW, as_json: bool = JSON):
    """Which host has which secret names, with a short hash of each value (never the value)."""
    from rich.table import Table

    report = run(inventory, lambda f: f.secrets(), accept_new)
    if as_json:
        emit_json(report)
    else:
        table = Table(box=None, header_style="bold")
        for col in ("HOST", "NAME", "STATE", "HASH ON HOST", "HASH ON HEAD", "SOURCE", "USED BY"):
            table.add_column(col, overflow="fold")
        for r in report["secrets"]:
            table.add_row(r["host"], r["name"], r["state"], r["host_hash"] or "-", r["head_hash"] or "-", r["source"],
                          ", ".join(r["used_by"]) or "-")
        out.print(table)
    raise typer.Exit(0 if all(r["state"] == "ok" for r in report["secrets"]) else 1)


@app.command()
def send(agent: str = typer.Argument(None, metavar="AGENT", help="The agent's name (not with -l)."),
         text: str = PROMPT, file: str = PROMPT_FILE, labels: List[str] = LABELS, inventory: str = INVENTORY,
         no_wait: bool = NO_WAIT, timeout: float = TIMEOUT, accept_new: bool = ACCEPT_NEW,
         as_json: bool = TURN_JSON):
    """Send a turn to an agent wherever it runs (same output as `sac agents send`); with -l, one turn to
    every agent of the inventory with those labels, each reply labelled by its agent."""
    selector = selector_of(labels)
    if selector is not None:
        if text is not None and agent is not None:
            raise typer.BadParameter("with -l, give only the prompt (the labels choose the agents)")
        return send_selected(inventory, selector, prompt_of(agent if text is None else text, file), no_wait,
                             timeout, accept_new, as_json)
    if agent is None:
        raise typer.BadParameter("say which agent (or choose agents with -l KEY=VALUE)")
    text = prompt_of(text, file)
    turn = run(inventory, lambda f: f.send(agent, text, wait=not no_wait, timeout=timeout,
                                           on_record=progress_printer(as_json)), accept_new)
    print_turn(turn, no_wait, as_json)


def send_selected(inventory, selector, text, no_wait, timeout, accept_new, as_json):
    """One turn to each selected agent, all at once; `agent: reply` lines (a failure on stderr), exit 1
    unless every turn completed (or, with --no-wait, was accepted)."""
    from sac_node.protocol.errors import AgentNotFound, SacError

    async def one(fleet, name):
        try:
            return await fleet.send(name, text, wait=not no_wait, timeout=timeout)
        except SacError as exc:
            return {"agent": name, "status": "failed", "error": exc.message}

    async def go(fleet):
        names = selected_agents(fleet.inventory, selector)
        if not names:
            raise AgentNotFound("no agent of %s has the labels %s" % (fleet.inventory.path, ", ".join(
                "%s=%s" % pair for pair in selector.items())))
        return dict(zip(names, await asyncio.gather(*(one(fleet, name) for name in names))))

    turns = run(inventory, go, accept_new)
    if as_json:
        emit_json(turns)
    for name, turn in turns.items():
        if as_json:
            break
        if turn["status"] == "completed" or (no_wait and turn["status"] != "failed"):
            out.print("%s: %s" % (name, "accepted %s" % turn["id"] if no_wait else turn.get("reply") or ""))
        else:
            err.print(render.styled(("%s: turn %s" % (name, turn["status"]), "red"), ": " + (turn.get("error") or "")))
    ok = all(t["status"] == "completed" or (no_wait and t["status"] != "failed") for t in turns.values())
    raise typer.Exit(0 if ok else 1)


@app.command()
def tail(agent: str = typer.Argument(..., help="The agent's name."), inventory: str = INVENTORY,
         follow: bool = FOLLOW, lines: int = LINES, accept_new: bool = ACCEPT_NEW, as_json: bool = RECORDS_JSON):
    """Show an agent's transcript, wherever it runs."""
    try:
        run(inventory, lambda f: tail_records(f, agent, lines, follow, as_json), accept_new)
    except KeyboardInterrupt:
        pass


@app.command()
def turn(turn_id: str = TURN_ID, inventory: str = INVENTORY, wait: float = TURN_WAIT,
         accept_new: bool = ACCEPT_NEW, as_json: bool = TURN_JSON):
    """A turn by id, wherever its agent runs: its reply once completed, else its status."""
    print_followed_turn(run(inventory, lambda f: f.get_turn(turn_id_of(turn_id), wait), accept_new), as_json)


@app.command()
def cancel(turn_id: str = TURN_ID, inventory: str = INVENTORY, accept_new: bool = ACCEPT_NEW,
           as_json: bool = TURN_JSON):
    """Cancel a turn, wherever its agent runs."""
    print_cancelled(run(inventory, lambda f: f.cancel(turn_id_of(turn_id)), accept_new), as_json)


@app.command()
def down(old_inventory: str = OLD_INVENTORY, inventory: str = INVENTORY,
         agents_only: bool = typer.Option(False, "--agents-only", help="Leave the node daemons running."),
         labels: List[str] = LABELS, limit: str = LIMIT, accept_new: bool = ACCEPT_NEW, as_json: bool = JSON):
    """Stop the inventory's agents on every host (and the node daemons unless --agents-only or -l)."""
    selector, hosts = selector_of(labels), hosts_of(limit)

    async def go(fleet):
        if selector is None:
            return await fleet.down(agents_only, hosts)
        # Other agents may share the hosts: their daemons stay.
        return await fleet.down(True, hosts, selected_agents(fleet.load(), selector))

    report = run(inventory_of(inventory, old_inventory), go, accept_new)
    if as_json:
        emit_json(report)
    else:
        for r in report["stopped"]:
            out.print("%s on %s: %s" % (r["agent"], r["host"], "stopped" if r["ok"] else r["error"]))
        for r in report["unreachable"]:
            err.print(render.styled((r["host"], "red"), " %s: %s" % (r["state"], r["reason"])))
        out.print("%d agents stopped%s" % (sum(r["ok"] for r in report["stopped"]),
                                          ", node daemons stopped" if report["daemons_stopped"] else ""))
    ok = all(r["ok"] for r in report["stopped"]) and not report["unreachable"]
    raise typer.Exit(0 if ok else 1)
