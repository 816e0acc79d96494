"""This machine's node, and a running gateway of this head: the ways in that need no inventory.

Fleet (sac_fleet.api) reaches them only through here, so the frontends and the API
never import `remote` themselves.
"""

from ..remote import gateway_client
from ..remote.local import attach_local, connect_local


async def open_node(state_dir, provision):
    """(NodeClient or None, provisioned): this machine's daemon, attached; with `provision` started or
    upgraded first. None when no daemon runs and `provision` is not asked for."""
    if provision:
        return await connect_local(state_dir), True
    client, _, would = await attach_local(state_dir)
    return client, not would


async def restart_node(state_dir):
    """Replace this machine's daemon by a fresh one (agents keep running): (NodeClient, the report row)."""
    before, _, _ = await attach_local(state_dir)
    if before is not None:
        await before.close()
    client = await connect_local(state_dir, restart=True)
    facts = await client.facts(timeout=10)
    done = "restarted the node daemon (its agents keep running)" if before else "started the node daemon"
    return client, {"host": "local", "ok": True, "state": "ok", "reason": "", "pid": facts.get("pid"),
                    "actions": [done]}


def gateway(inventory):
    """A client of a running `sac fleet serve` of `inventory` (None: this machine's agents), or None."""
    return gateway_client.discover(inventory)


def register_gateway(url, inventory, token_file):
    """Record this process as the gateway of `inventory`; returns what to pass to `unregister_gateway`."""
    return gateway_client.register(url, inventory, token_file)


def unregister_gateway(registry):
    gateway_client.unregister(registry)
