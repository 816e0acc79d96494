"""Convergence: observe every host, ask core.placement for a plan, apply it.

Observation and application talk to hosts concurrently; the plan itself is a
pure function of what was observed (sac_fleet.core.placement.place).
"""

import asyncio

from sac_node.protocol.errors import SacError

from ..core.placement import HostState, place
from ..core.plan import ActionKind

LIVE_STATES = ("starting", "idle", "working", "restarting", "failed")


async def observe(links, timeout):
    """{host: [agent status]} for hosts that answered; a host that fails here is marked down."""
    async def one(link):
        try:
            return link.name, await asyncio.wait_for(link.client.list_agents(), timeout)
        except asyncio.TimeoutError:
            link.state, link.reason = "timed_out", "agents.list did not answer within %ss" % timeout
        except SacError as exc:
            link.down(exc)
        return link.name, None

    results = await asyncio.gather(*(one(link) for link in links.values() if link.ok))
    return {name: agents for name, agents in results if agents is not None}


def fleet_id(inventory):
    """The mark a fleet puts on the agents it starts (the inventory's absolute path)."""
    return str(inventory.path.resolve())


def managed(inventory, status):
    """True for an agent this inventory started (not one a user started with `sac agents start`)."""
    return status.get("fleet") == fleet_id(inventory)


def host_states(inventory, links, observed):
    """What placement needs: per host, reachable or not and the live copies this fleet manages.

    Agents started otherwise on the same node are neither counted nor pruned.
    """
    states = []
    for host in inventory.node_hosts():
        link = links.get(host.name)
        if link is not None and host.name in observed:
            live = tuple(a["name"] for a in observed[host.name]
                         if a["state"] in LIVE_STATES and managed(inventory, a))
            states.append(HostState(host.name, True, live))
        else:
            states.append(HostState(host.name, False, None, link.reason if link else "not connected"))
    return states


def make_plan(inventory, links, observed, reschedule=False, prune=False):
    return place(inventory.desired(), host_states(inventory, links, observed), inventory.slots(),
                 reschedule=reschedule, prune=prune)


def node_spec(inventory, copy_name):
    """The resolved spec a node receives for one agent copy (replicas get their copy's name)."""
    spec = inventory.agent(copy_name).spec.to_node()
    spec["name"] = copy_name
    spec["fleet"] = fleet_id(inventory)
    return spec


async def apply_plan(plan, inventory, links):
    """Stops first, then starts (the plan's order); keeps are re-sent so a changed spec rolls out.

    Returns one result per action: {action, ok, changed, error}.
    """
    results = []

    async def run(action):
        link = links[action.host]
        try:
            if action.kind in (ActionKind.STOP, ActionKind.PRUNE):
                await link.client.stop_agent(action.agent)
                return {"action": action.to_dict(), "ok": True, "changed": True}
            reply = await link.client.start_agent(node_spec(inventory, action.agent))
            return {"action": action.to_dict(), "ok": True, "changed": reply["changed"],
                    "status": reply["status"]}
        except SacError as exc:
            return {"action": action.to_dict(), "ok": False, "changed": False, "error": exc.message}

    stops = [a for a in plan.actions if a.kind is ActionKind.STOP]
    starts = [a for a in plan.actions if a.kind in (ActionKind.START, ActionKind.KEEP)]
    results += await asyncio.gather(*(run(a) for a in stops))
    results += await asyncio.gather(*(run(a) for a in starts))
    return results
