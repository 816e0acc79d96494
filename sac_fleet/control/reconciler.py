"""Convergence: observe every host, ask core.placement for a plan, apply it.

Observation and application talk to hosts concurrently; the plan itself is a
pure function of what was observed (sac_fleet.core.placement.place).
"""

import asyncio
import time

from sac_node.protocol.errors import SacError

from ..core.placement import HostState, place
from ..core.plan import Action, ActionKind, Plan
from . import node_restarts, secrets

LIVE_STATES = ("starting", "idle", "working", "restarting", "failed", "pending")


async def observe(links, timeout, index=None):
    """{host: [agent status]} for hosts that answered (none on a host without a node daemon); a host that
    fails here is marked down. `index` (a routing.AgentIndex), when given, learns each host's list."""
    async def one(link):
        try:
            return link.name, await asyncio.wait_for(link.client.list_agents(), timeout)
        except asyncio.TimeoutError:
            link.mark("timed_out", "agents.list did not answer within %ss" % timeout)
        except SacError as exc:
            link.down(exc)
        return link.name, None

    results = await asyncio.gather(*(one(link) for link in links.values() if link.ok))
    observed = {name: agents for name, agents in results if agents is not None}
    observed.update({link.name: [] for link in links.values() if not link.node_running})  # answers, runs nothing
    for name, agents in observed.items() if index is not None else ():
        index.learn(name, agents)
    return observed


def fleet_id(inventory):
    """The mark a fleet puts on the agents it starts: the inventory's name, so a copy of the file
    (another checkout, another directory) is the same fleet."""
    return inventory.name


def managed(inventory, status):
    """True for an agent this inventory started (not one a user started with `sac agents start`).
    Agents started before fleets had names carry the inventory's absolute path: still this fleet's."""
    return status.get("fleet") in (fleet_id(inventory), str(inventory.path.resolve()))


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
    """Placement's plan over what was observed, with a fence for each stale copy of a singleton."""
    fenced, survivors = fences(inventory, observed)
    plan = place(inventory.desired(), host_states(inventory, links, survivors), inventory.slots(),
                 reschedule=reschedule, prune=prune)
    return Plan.of(plan.actions + tuple(fenced))


def with_node_restarts(plan, inventory, links):
    """The plan with a `restart-node` action for each host whose node runs with other settings."""
    return Plan.of(plan.actions + tuple(node_restarts.actions(inventory, links)))


def with_secrets(plan, inventory, links):
    """The plan with a `secrets` action for each host that lacks a value its agents use; and those values."""
    values = secrets.wanted(inventory, plan)
    return Plan.of(plan.actions + tuple(secrets.actions(values, links))), values


def node_spec(inventory, copy_name, generation=None, host=None):
    """The resolved spec a node receives for one agent copy (replicas get their copy's name) on `host`
    (its `${host.*}` placeholders filled there).

    A singleton carries its generation: the fencing token that lets a newer copy
    stop an older one (see fences).
    """
    agent = inventory.agent(copy_name)
    spec = (agent.spec_on(inventory.hosts[host]) if host is not None else agent.spec).to_node()
    spec["name"] = copy_name
    spec["fleet"] = fleet_id(inventory)
    if generation is not None:
        spec["generation"] = generation
    return spec


def _copies(inventory, observed, name):
    """[(generation, host)] of the live copies of `name` this fleet manages, on hosts that answered."""
    return [(a.get("generation") or 0, host) for host, agents in observed.items() for a in agents
            if a["name"] == name and a["state"] in LIVE_STATES and managed(inventory, a)]


def fences(inventory, observed):
    """Where a singleton runs twice (a host came back after --reschedule): a FENCE for every copy but
    the newest, and `observed` as placement should see it (without the fenced copies). Pure."""
    actions, survivors = [], {host: list(agents) for host, agents in observed.items()}
    for agent in inventory.agents:
        if not agent.placement.singleton:
            continue
        copies = _copies(inventory, observed, agent.name)
        if len(copies) < 2:
            continue
        winner = max(copies, key=lambda c: (c[0], [-ord(ch) for ch in c[1]]))
        for generation, host in copies:
            if (generation, host) == winner:
                continue
            reason = ("singleton running twice: a newer copy (generation %s) runs on %s; this stale one "
                      "(generation %s) is stopped" % (winner[0], winner[1], generation))
            actions.append(Action(ActionKind.FENCE, agent.name, host, reason, agent.name,
                                  by_host=winner[1], by_generation=winner[0]))
            survivors[host] = [a for a in survivors[host] if a["name"] != agent.name]
    return actions, survivors


def _generation(inventory, observed, action):
    """A new singleton copy outranks every copy seen; a kept one keeps its own."""
    if not inventory.agent(action.agent).placement.singleton:
        return None
    copies = _copies(inventory, observed, action.agent)
    if action.kind is ActionKind.KEEP:
        return next((g for g, h in copies if h == action.host), None)
    return max([int(time.time() * 1000)] + [g + 1 for g, _ in copies])


async def apply_plan(plan, inventory, links, observed=None, secret_values=None):
    """Fences and stops first, then each host's secrets, then starts (the plan's order); keeps are re-sent so
    a changed spec rolls out. `secret_values` {host: {NAME: value}} is what the `secrets` actions write.

    Returns one result per action: {action, ok, changed, error}.
    """
    results = []
    observed = observed or {}

    async def run(action):
        link = links[action.host]
        try:
            if action.kind is ActionKind.SECRETS:
                changed = await secrets.apply(action, secret_values, link)
                return {"action": action.to_dict(), "ok": True, "changed": bool(changed)}
            if action.kind is ActionKind.RESTART_NODE:
                restarted = await node_restarts.apply(action, inventory, links, observed)
                return {"action": action.to_dict(), "ok": True, "changed": True, "agents_restarted": restarted}
            if action.kind is ActionKind.FENCE:
                await link.client.fence_agent(action.agent, action.by_generation, by=action.by_host)
                return {"action": action.to_dict(), "ok": True, "changed": True}
            if action.kind in (ActionKind.STOP, ActionKind.PRUNE):
                await link.client.stop_agent(action.agent)
                return {"action": action.to_dict(), "ok": True, "changed": True}
            spec = node_spec(inventory, action.agent, _generation(inventory, observed, action), action.host)
            if inventory.hosts[action.host].slurm is not None:  # the login node submits it to Slurm
                spec["slurm"] = inventory.hosts[action.host].slurm.to_node()
            reply = await link.client.start_agent(spec)
            return {"action": action.to_dict(), "ok": True, "changed": reply["changed"],
                    "status": reply["status"]}
        except SacError as exc:
            return {"action": action.to_dict(), "ok": False, "changed": False, "error": exc.message}

    stops = [a for a in plan.actions if a.kind in (ActionKind.FENCE, ActionKind.STOP)]
    starts = [a for a in plan.actions if a.kind in (ActionKind.START, ActionKind.KEEP)]
    results += await asyncio.gather(*(run(a) for a in stops))
    results += await asyncio.gather(*(run(a) for a in plan.secrets))
    results += await asyncio.gather(*(run(a) for a in plan.node_restarts))
    results += await asyncio.gather(*(run(a) for a in starts))
    return results
