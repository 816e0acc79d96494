"""Fleet-wide operations behind sac_fleet.api.Fleet: connect, up, plan, status, down.

Each returns plain, JSON-ready data; frontends only render it. Only `up` changes
what runs (it opens its links with mode "provision" and applies the plan); plan,
status and `up --dry-run` observe over attach-only links, and `down` stops what
runs without starting anything first.
"""

import asyncio
import time

from sac_node.protocol.errors import InventoryError, SacError

from ..core.plan import ActionKind, Plan
from ..remote.host_link import HostLink, carry_since, open_link
from . import reconciler

DEFAULT_DEADLINE_S = 60.0


async def connect_all(inventory, only=None, deadline=None, accept_new=False, existing=None, on_host=None,
                      mode="attach"):
    """Links to the inventory's node hosts, opened concurrently in `mode` (see remote.host_link); reuses
    links that are still up (and, to provision, that have nothing left to provision)."""
    existing = dict(existing or {})
    hosts = [h for h in inventory.node_hosts() if only is None or h.name in only]
    deadline = deadline or DEFAULT_DEADLINE_S

    async def one(host):
        link = existing.get(host.name)
        if link is not None and _reusable(link, mode):
            return link
        if link is not None:
            await link.close()  # a dead link's connection and client are dropped before retrying
        if on_host:
            on_host(host.name, "connecting", "")
        # open_link caps the deadline at the host's own (connect_timeout + its bootstrap time)
        report = (lambda words: on_host(host.name, "uploading", words)) if on_host else None
        link = carry_since(existing.get(host.name), await open_link(inventory, host, accept_new, deadline, mode,
                                                                    report))
        if on_host:
            on_host(host.name, link.state, link.reason or ", ".join(link.actions) or _would(link) or "ready")
        return link

    links = await asyncio.gather(*(one(h) for h in hosts))
    existing.update({link.name: link for link in links})
    return existing


def _reusable(link, mode):
    """A link already open serves a read while it is up, and `up` while nothing is left to provision."""
    if mode == "attach":
        return link.ok
    return mode == "provision" and link.provisioned


async def plan_report(inventory, links, reschedule=False, prune=False, index=None):
    observed = await reconciler.observe(links, _rpc_timeout(inventory), index)
    plan, _ = reconciler.with_secrets(reconciler.make_plan(inventory, links, observed, reschedule, prune),
                                      inventory, links)
    plan = reconciler.with_node_restarts(plan, inventory, links)
    return {"plan": [a.to_dict() for a in plan.actions], "summary": plan.summary(),
            "hosts": [_host_row(inventory, links, observed, plan, h.name) for h in inventory.node_hosts()]}


async def up(inventory, links, dry_run=False, prune=False, reschedule=False, limit=None, index=None):
    """Observe, plan, apply (links opened to provision, unless dry_run). `changed` is False when nothing
    was fenced, started, stopped, written or provisioned.

    With `limit` (host names) every host is observed, so placement sees the whole fleet, but
    only the actions on those hosts are planned and carried out. `index` (control.routing) learns
    where each agent runs from what is observed."""
    observed = await reconciler.observe(links, _rpc_timeout(inventory), index)
    plan, secret_values = reconciler.with_secrets(
        reconciler.make_plan(inventory, links, observed, reschedule, prune), inventory, links)
    plan = reconciler.with_node_restarts(plan, inventory, links)
    if limit is not None:
        plan = Plan.of(a for a in plan.actions if a.host in limit)
    results = [] if dry_run else await reconciler.apply_plan(plan, inventory, links, observed, secret_values)
    if not dry_run:
        observed = await reconciler.observe(links, _rpc_timeout(inventory), index)
    bootstrapped = any(link.actions for link in links.values())
    return {
        "dry_run": dry_run, "changed": any(r["changed"] for r in results) or bootstrapped,
        "plan": [a.to_dict() for a in plan.actions], "summary": plan.summary(), "results": results,
        "fenced": [_fenced(r) for r in results if r["action"]["kind"] == ActionKind.FENCE.value],
        "outcome": _outcome(results, links),
        "hosts": [_host_row(inventory, links, observed, plan, h.name) for h in inventory.node_hosts()],
        "ok": all(r["ok"] for r in results) and all(l.ok or not l.node_running for l in links.values())
        and not plan.unplaced,
    }


_DONE = {"start": "started", "keep": "updated", "stop": "stopped", "prune": "stopped", "fence": "fenced",
         "secrets": "secrets written", "restart-node": "nodes restarted"}


def _outcome(results, links):
    """What `up` did, counted: {started, updated, stopped, fenced, secrets written, nodes restarted, failed,
    hosts_not_reached}."""
    counts = dict.fromkeys(("started", "updated", "stopped", "fenced", "secrets written", "nodes restarted", "failed"),
                           0)
    for r in results:
        if not r["ok"]:
            counts["failed"] += 1
        elif r["changed"]:
            counts[_DONE[r["action"]["kind"]]] += 1
    counts["hosts_not_reached"] = sum(1 for l in links.values() if not l.ok and l.node_running)
    return counts


def _fenced(result):
    """A fence's result as `up` reports it: {agent, host, by_host, by_generation} or {agent, host, error}."""
    action = result["action"]
    row = {"agent": action["agent"], "host": action["host"]}
    if not result["ok"]:
        return dict(row, error=result["error"])
    return dict(row, by_host=action["by_host"], by_generation=action["by_generation"])


async def status_report(inventory, links, only=None, index=None):
    observed = await reconciler.observe(links, _rpc_timeout(inventory), index)
    plan = reconciler.with_node_restarts(reconciler.make_plan(inventory, links, observed), inventory, links)
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
            "at": time.time()}


async def down(inventory, links, agents_only=False, limit=None, agents=None, index=None):
    """Stop every inventory agent copy on every host that answers; then the daemons.

    `limit` (host names) keeps to those hosts, `agents` (copy names) to those agents."""
    if limit is not None:
        links = {name: link for name, link in links.items() if name in limit}
    observed = await reconciler.observe(links, _rpc_timeout(inventory), index)
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


async def restart_nodes(inventory, links, host=None, accept_new=False):
    """Replace the node daemon of every host (or of `host`) by a fresh one; agents keep running.

    Returns (links, [{host, ok, state, reason, actions, pid}]): `links` with the new daemons' links.
    """
    names = [h.name for h in inventory.node_hosts()]
    if host is not None and host not in names:
        raise InventoryError("%s: no host named %s (hosts: %s)" % (inventory.path, host, ", ".join(names)))
    only = [host] if host else None
    await asyncio.gather(*(link.close() for name, link in links.items() if only is None or name in only))
    fresh = await connect_all(inventory, only, accept_new=accept_new, mode="restart")
    return dict(links, **fresh), [{"host": l.name, "ok": l.ok, "state": l.state, "reason": l.reason,
                                   "actions": l.actions, "pid": l.facts.get("pid")} for l in fresh.values()]


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
        "reason": _since(link) + (link.reason or _would(link)), "since": link.since, "latency_ms": link.latency_ms,
        "transport": inventory.hosts[name].transport, "channel": link.channel,
        "python": link.facts.get("python"), "node_version": link.facts.get("version"),
        "node_sha": (link.facts.get("sha") or "")[:12], "agents_running": running, "agents_desired": desired,
        "engine": (link.facts.get("engine") or {}).get("bin"),
        "bootstrap": link.actions, "node": _node_word(link), "up_would": link.would,
    }


def _node_word(link):
    """"running", "not running" (the host answered, no node daemon runs there) or None (host not reached)."""
    if link.state != "ok":
        return None
    return "running" if link.node_running else "not running"


def _would(link):
    """What `sac fleet up` would do on the host before it can place agents there, in words (or "")."""
    if not link.would:
        return ""
    return "%s`sac fleet up` would %s" % ("" if link.node_running else "node not running: ", ", ".join(link.would))


def _since(link):
    if link.state == "ok" or link.since is None:
        return ""
    return "since %s: " % time.strftime("%H:%M:%S", time.localtime(link.since))


def _agent_row(status):
    turns = status.get("turns") or {}
    return {"name": status["name"], "state": status["state"], "turns": turns,
            "turns_by_caller": status.get("turns_by_caller") or {},
            "heartbeat_age_s": status.get("heartbeat_age_s"), "last_error": status.get("last_error"),
            "secrets_behind": status.get("secrets_behind") or [],
            "degraded": status.get("degraded"),
            "restarts": status.get("restarts", 0), "pid": status.get("pid"),
            "sandbox": (status.get("isolation") or {}).get("runtime"), "generation": status.get("generation"),
            "activity": status.get("activity"),
            "slurm": status.get("slurm")}  # {job_id, state, reason, node, time_left} on a Slurm host
