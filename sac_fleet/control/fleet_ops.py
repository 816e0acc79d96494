"""Fleet-wide operations behind sac_fleet.api.Fleet: connect, up, plan, status, down.

Each returns plain, JSON-ready data; frontends only render it.
"""

import asyncio
import time

from sac_node.protocol.errors import SacError

from ..core.plan import ActionKind, Plan
from ..remote.host_link import HostLink, carry_since, open_link
from . import reconciler

DEFAULT_DEADLINE_S = 60.0


async def connect_all(inventory, only=None, deadline=None, accept_new=False, existing=None, on_host=None):
    """Links to the inventory's node hosts, opened concurrently; reuses links that are still up."""
    existing = dict(existing or {})
    hosts = [h for h in inventory.node_hosts() if only is None or h.name in only]
    deadline = deadline or DEFAULT_DEADLINE_S

    async def one(host):
        link = existing.get(host.name)
        if link is not None and link.ok:
            return link
        if link is not None:
            await link.close()  # a dead link's connection and client are dropped before retrying
        if on_host:
            on_host(host.name, "connecting", "")
        timeout = min(deadline, host.connect_timeout + 20)
        link = carry_since(existing.get(host.name), await open_link(inventory, host, accept_new, timeout))
        if on_host:
            on_host(host.name, link.state, link.reason or ", ".join(link.actions) or "ready")
        return link

    links = await asyncio.gather(*(one(h) for h in hosts))
    existing.update({link.name: link for link in links})
    return existing


async def _observe(inventory, links):
    """Observe every host, then fence duplicate singletons; returns (observed, fenced)."""
    observed = await reconciler.observe(links, _rpc_timeout(inventory))
    fenced = await reconciler.fence_singletons(inventory, links, observed)
    return observed, fenced


async def plan_report(inventory, links, reschedule=False, prune=False):
    observed, _ = await _observe(inventory, links)
    plan = reconciler.make_plan(inventory, links, observed, reschedule, prune)
    return {"plan": [a.to_dict() for a in plan.actions], "summary": plan.summary(),
            "hosts": [_host_row(inventory, links, observed, plan, h.name) for h in inventory.node_hosts()]}


async def up(inventory, links, dry_run=False, prune=False, reschedule=False, limit=None):
    """Observe, plan, apply. `changed` is False when nothing started or stopped.

    With `limit` (host names) every host is observed, so placement sees the whole fleet, but
    only the actions on those hosts are planned and carried out."""
    observed, fenced = await _observe(inventory, links)
    plan = reconciler.make_plan(inventory, links, observed, reschedule, prune)
    if limit is not None:
        plan = Plan.of(a for a in plan.actions if a.host in limit)
    results = [] if dry_run else await reconciler.apply_plan(plan, inventory, links, observed)
    if not dry_run:
        observed = await reconciler.observe(links, _rpc_timeout(inventory))
    changed = any(r["changed"] for r in results) or bool(fenced)
    bootstrapped = any(link.actions for link in links.values())
    return {
        "dry_run": dry_run, "changed": changed or bootstrapped,
        "plan": [a.to_dict() for a in plan.actions], "summary": plan.summary(), "results": results,
        "fenced": fenced,
        "hosts": [_host_row(inventory, links, observed, plan, h.name) for h in inventory.node_hosts()],
        "ok": all(r["ok"] for r in results) and all(l.ok for l in links.values()) and not plan.unplaced,
    }


async def status_report(inventory, links, only=None):
    observed, fenced = await _observe(inventory, links)
    plan = reconciler.make_plan(inventory, links, observed)
    hosts = [h.name for h in inventory.node_hosts() if only is None or h.name == only]
    agents = []
    for name in hosts:
        for status in observed.get(name, []):
            if reconciler.managed(inventory, status):
                agents.append(dict(_agent_row(status), host=name))
    diff = [a.to_dict() for a in plan.actions if a.kind is not ActionKind.KEEP
            and (only is None or a.host in (only, None))]
    host_rows = [_host_row(inventory, links, observed, plan, name) for name in hosts]
    ok = all(r["state"] == "ok" for r in host_rows) and not diff and all(
        a["state"] not in ("failed",) for a in agents)
    return {"inventory": str(inventory.path), "hosts": host_rows, "agents": agents, "diff": diff, "ok": ok,
            "fenced": fenced, "at": time.time()}


async def down(inventory, links, agents_only=False, limit=None, agents=None):
    """Stop every inventory agent copy on every host that answers; then the daemons.

    `limit` (host names) keeps to those hosts, `agents` (copy names) to those agents."""
    if limit is not None:
        links = {name: link for name, link in links.items() if name in limit}
    observed = await reconciler.observe(links, _rpc_timeout(inventory))
    wanted = {copy for agent in inventory.agents for copy in agent.copies()}
    if agents is not None:
        wanted &= set(agents)

    async def stop(link, name):
        try:
            await link.client.stop_agent(name)
            return {"host": link.name, "agent": name, "ok": True}
        except SacError as exc:
            return {"host": link.name, "agent": name, "ok": False, "error": exc.message}

    jobs = [stop(links[h], a["name"]) for h, agents in observed.items() for a in agents
            if a["name"] in wanted and a["state"] != "stopped" and reconciler.managed(inventory, a)]
    results = list(await asyncio.gather(*jobs))
    if not agents_only:
        for link in links.values():
            if link.ok:
                try:
                    await link.client.shutdown()
                except SacError:
                    pass
    return {"stopped": results, "daemons_stopped": not agents_only,
            "unreachable": [{"host": l.name, "state": l.state, "reason": l.reason} for l in links.values()
                            if not l.ok and l.name not in observed]}


async def locate(links, timeout=10.0):
    """{agent: host} for every agent on every reachable host (the newest live copy of a name wins)."""
    where, best = {}, {}
    for host, agents in (await reconciler.observe(links, timeout)).items():
        for agent in agents:
            rank = (agent["state"] != "stopped", agent.get("generation") or 0)
            if agent["name"] not in best or rank > best[agent["name"]]:
                best[agent["name"]], where[agent["name"]] = rank, host
    return where


def _rpc_timeout(inventory):
    return max([h.connect_timeout for h in inventory.node_hosts()] or [10])


def _host_row(inventory, links, observed, plan, name):
    link = links.get(name) or HostLink(name, "unreachable", "not connected")
    desired = sum(1 for a in plan.for_host(name) if a.kind in (ActionKind.KEEP, ActionKind.START))
    reachable = name in observed
    running = sum(1 for a in observed.get(name, []) if a["state"] in reconciler.LIVE_STATES
                  and reconciler.managed(inventory, a)) if reachable else None
    return {
        "name": name, "state": link.state if not reachable or link.state != "ok" else "ok",
        "reason": _since(link) + link.reason, "since": link.since, "latency_ms": link.latency_ms,
        "transport": inventory.hosts[name].transport, "channel": link.channel,
        "python": link.facts.get("python"), "node_version": link.facts.get("version"),
        "node_sha": (link.facts.get("sha") or "")[:12], "agents_running": running, "agents_desired": desired,
        "bootstrap": link.actions,
    }


def _since(link):
    if link.state == "ok" or link.since is None:
        return ""
    return "since %s: " % time.strftime("%H:%M:%S", time.localtime(link.since))


def _agent_row(status):
    turns = status.get("turns") or {}
    return {"name": status["name"], "state": status["state"], "turns": turns,
            "heartbeat_age_s": status.get("heartbeat_age_s"), "last_error": status.get("last_error"),
            "restarts": status.get("restarts", 0), "pid": status.get("pid"),
            "sandbox": (status.get("isolation") or {}).get("runtime"), "generation": status.get("generation")}
