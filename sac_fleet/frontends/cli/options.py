"""The options several `sac` commands share, each defined once: where the inventory is, host keys.

One rule for the inventory on every command that reads one: `-i/--inventory FILE`, else
$SAC_INVENTORY, else ./inventory.yaml. `up/plan/status/down/serve` still take it as a
positional argument (hidden, deprecated) so scripts written before the rule keep working.
"""

import os

import typer

from .render import LazyConsole, styled

INVENTORY = typer.Option(None, "--inventory", "-i", metavar="FILE",
                         help="The inventory.yaml (default: $SAC_INVENTORY, else ./inventory.yaml).")
OLD_INVENTORY = typer.Argument(None, hidden=True, metavar="INVENTORY",
                               help="Deprecated: the inventory as an argument; use -i FILE.")
ACCEPT_NEW = typer.Option(False, "--accept-new-host-keys",
                          help="Trust and record the key of a host met for the first time (a changed key is "
                               "still refused).")

err = LazyConsole(stderr=True)


def inventory_of(option, positional):
    """The inventory a command was given: -i, or (deprecated) the positional argument, or None."""
    if positional is not None and option is not None and positional != option:
        raise typer.BadParameter("give the inventory once, with -i (not also as an argument)")
    if positional is not None:
        err.print(styled(("note:", "yellow"), " the inventory as an argument is deprecated; use -i %s" % positional))
    return option if option is not None else positional


def optional_inventory(given):
    """For commands that also work without an inventory (serve, mcp): -i, $SAC_INVENTORY, ./inventory.yaml
    when it exists, else None (this machine's agents)."""
    from sac_fleet.core.inventory import DEFAULT_PATH, ENV_VAR

    if given:
        return str(given)
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    return DEFAULT_PATH if os.path.exists(DEFAULT_PATH) else None


LABELS = typer.Option(None, "--label", "-l", metavar="KEY=VALUE",
                      help="Only agents whose spec has this label (repeat it: every one must match).")
LIMIT = typer.Option(None, "--limit", metavar="HOST,...",
                     help="Only these hosts of the inventory (comma-separated); the others are left alone.")


def selector_of(values):
    """`-l key=value` options -> {key: value}, or None when none was given."""
    if not values:
        return None
    selector = {}
    for value in values:
        key, sep, wanted = value.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter("-l %s: a label selector is KEY=VALUE, e.g. -l team=docs" % value)
        selector[key.strip()] = wanted.strip()
    return selector


def selects(selector, labels):
    """Whether an agent with `labels` is one the selector asks for (every pair matches)."""
    labels = labels or {}
    return all(labels.get(key) == value for key, value in selector.items())


def selected_agents(inventory, selector):
    """The names (replica copies included) of the inventory's agents whose spec labels match."""
    return [copy for agent in inventory.agents if selects(selector, agent.spec.metadata.labels)
            for copy in agent.copies()]


def hosts_of(limit):
    """`--limit h1,h2` -> ["h1", "h2"], or None."""
    if limit is None:
        return None
    hosts = [name.strip() for name in limit.split(",") if name.strip()]
    if not hosts:
        raise typer.BadParameter("--limit: give host names, e.g. --limit h1,h2")
    return hosts
