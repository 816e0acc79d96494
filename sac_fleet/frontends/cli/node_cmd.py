"""`sac node ...`: the node daemons themselves (this machine's, or an inventory's hosts').

Exit codes: 0 all ok, 1 some hosts not ok, 2 bad input.
"""

import asyncio
import json
import sys

import typer

from . import render

app = typer.Typer(no_args_is_help=True, help="Manage node daemons (agents keep running).")
out = render.LazyConsole(highlight=False, soft_wrap=True)
err = render.LazyConsole(stderr=True, highlight=False, soft_wrap=True)


@app.command()
def restart(host: str = typer.Argument(None, help="Only this host of the inventory (default: every host)."),
            inventory: str = typer.Option(None, "-i", "--inventory",
                                          help="The inventory whose hosts' daemons to restart (default with HOST: "
                                               "$SAC_INVENTORY or ./inventory.yaml; without HOST or inventory: "
                                               "this machine's daemon)."),
            accept_new: bool = typer.Option(False, "--accept-new-host-keys", help="Record unknown host keys."),
            as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")):
    """Restart node daemons without stopping agents; a new daemon reads the environment it starts with."""
    from sac_fleet.api import Fleet  # not at the top: `--help` and usage errors need no node client

    if inventory is not None or host is not None:
        from sac_fleet.core.inventory import resolve_inventory_path

        inventory = str(resolve_inventory_path(inventory))

    async def main():
        async with Fleet(inventory=inventory, accept_new_host_keys=accept_new) as fleet:
            return await fleet.restart_nodes(host)

    rows = asyncio.run(main())
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        for r in rows:
            if r["ok"]:
                out.print("%s: %s (pid %s)" % (r["host"], ", ".join(r["actions"]) or "ready", r["pid"]), markup=False)
            else:
                err.print("%s: %s: %s" % (r["host"], r["state"], r["reason"]), markup=False)
    raise typer.Exit(0 if all(r["ok"] for r in rows) else 1)
