"""sac_fleet's Python API: every frontend (CLI, gateway, MCP) calls only this.

    async with Fleet() as fleet:
        await fleet.start("agents/reviewer")
        turn = await fleet.send("reviewer", "Summarise README.md")
        print(turn["reply"])

A turn is a prompt in and a reply out: `send(name, prompt)` returns the turn as a dict
`{id, status, prompt, reply, error, session_id, usage, timings, ...}`; the CLI's
`--json`, the HTTP API and MCP use the same two words.

For now a Fleet is this machine's node; hosts from an inventory come with the
fleet transport.
"""

import asyncio
import logging
import os
from pathlib import Path

from sac_node.protocol.errors import (AgentNotFound, AgentNotRunning, HostUnreachable, InventoryError, SpecError,
                                      TurnTimeout)
from sac_node.protocol.messages import TURN_ENDED, agent_of_turn, is_sac_event

from .remote.local import attach_local, connect_local

log = logging.getLogger("sac_fleet.inventory")

def _fleet_ops():
    """The fleet operations, imported on first use: asyncssh loads only for fleet work."""
    from .control import fleet_ops

    return fleet_ops


def turn_of(node_turn):
    """A node's turn dict in the API's words: the node journals the prompt as `text`."""
    turn = dict(node_turn)
    if "text" in turn:
        turn["prompt"] = turn.pop("text")
    return turn


def resolve_target(target, agents_dir):
    """A spec path, an agent directory, or a name under the agents dir -> a path, or None."""
    path = Path(target).expanduser()
    if path.exists():
        return path
    candidate = Path(agents_dir) / target
    if candidate.exists():
        return candidate
    return None


async def _records_while(node, name, from_seq, shim, check_every):
    """The records of one subscription, until the agent's shim is no longer `shim` or the connection
    closes. It reads the subscription's queue with a timeout (a cancelled `Queue.get` loses nothing)."""
    sub = await node.subscribe(name, from_seq=from_seq)
    try:
        while True:
            try:
                yield await asyncio.wait_for(sub.queue.get(), check_every)
            except asyncio.TimeoutError:
                if node.peer.closed or (await node.agent_status(name)).get("shim_pid") != shim:
                    return  # restarted, stopped or cut off: the caller subscribes again
    finally:
        await sub.close()


class Fleet:
    """The agents sac manages, and the calls that act on them.

    Without an inventory a Fleet is this machine's node (`sac agents ...`); with
    one it is every host of the inventory (`sac fleet ...`), each reached over
    its own connection, all at once, and turns are routed to wherever an agent runs.
    """

    def __init__(self, inventory=None, state_dir=None, agents_dir=None, accept_new_host_keys=False,
                 via_gateway=False):
        self.inventory_path = inventory
        self.inventory = None
        self.state_dir = state_dir
        self.agents_dir = agents_dir or os.environ.get("SAC_AGENTS_DIR") or "agents"
        self.accept_new_host_keys = accept_new_host_keys
        self._client = None
        self._provisioned = False
        self.links = {}
        self._where = {}
        self._connecting = None
        # Send turns through a running `sac fleet serve` of the same inventory when there is one.
        self.via_gateway = via_gateway

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self):
        if self._client is not None:
            await self._client.close()
            self._client = None
        await asyncio.gather(*(link.close() for link in self.links.values()))
        self.links = {}

    async def node(self, agent=None, provision=False):
        """The NodeClient for `agent` (or this machine's node when there is no inventory).

        Reads attach to a running node daemon only; calls that change agents (`provision`) start or
        upgrade this machine's daemon as needed (with an inventory, only `up` does that).
        """
        if self.inventory_path is None:
            client = await self._here(provision)
            if client is None:
                raise self._no_daemon(agent)
            return client
        return await self._route(agent)

    async def _here(self, provision):
        """This machine's daemon, attached (started or upgraded first when `provision`); None if none runs."""
        def stale():
            return self._client is None or self._client.peer.closed or (provision and not self._provisioned)

        if stale():
            async with self._lock():  # two first calls at once open one connection
                if stale():
                    if self._client is not None:
                        await self._client.close()
                    if provision:
                        self._client, self._provisioned = await connect_local(self.state_dir), True
                    else:
                        self._client, _, would = await attach_local(self.state_dir)
                        self._provisioned = not would
        return self._client

    def _no_daemon(self, agent):
        from sac_node.state_dir import StateDir, default_state_dir

        state = StateDir(self.state_dir or default_state_dir())
        if agent is not None and state.agent(agent).exists():
            return AgentNotRunning("agent %s: no node daemon runs on this machine (%s); `sac node restart` starts "
                                   "it and re-attaches to the agents that still run" % (agent, state.root))
        return AgentNotFound("no agent named %s on this machine (no node daemon runs here: `sac agents start SPEC` "
                             "starts one)" % (agent or "?"))

    def _lock(self):
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        return self._connecting

    # -- agents -------------------------------------------------------------------

    async def start(self, target, restart=False):
        """Start an agent from a spec file, an agent directory, or the name of a known agent (this machine)."""
        if self.inventory_path is not None:
            raise SpecError("with an inventory, agents start where placement puts them: add %s to %s and run "
                            "`sac fleet up`" % (target, self.inventory_path))
        node = await self.node(provision=True)
        path = resolve_target(target, self.agents_dir)
        if path is None:
            known = {a["name"] for a in await node.list_agents()}
            if target in known:
                return await node.restart_agent(target) if restart else {
                    "status": await self._start_known(node, target), "changed": False, "started": False}
            raise SpecError("%s: no such spec file or agent directory, and no agent of that name under %s/ "
                            "or on this host" % (target, self.agents_dir))
        from .core.spec import parse_spec  # pydantic is slow to import; only `start` needs it

        spec = parse_spec(path)
        return await node.start_agent(spec.to_node(), restart=restart)

    async def _start_known(self, node, name):
        status = await node.agent_status(name)
        if status["state"] in ("stopped", "failed"):
            return (await node.restart_agent(name))["status"]
        return status

    async def stop(self, name):
        return await (await self.node(name, provision=True)).stop_agent(name)

    async def restart(self, name):
        return await (await self.node(name, provision=True)).restart_agent(name)

    async def delete(self, name):
        return await (await self.node(name, provision=True)).delete_agent(name)

    async def list(self):
        """Every agent of this machine's node; with an inventory, of every host that answers (with `host`)."""
        if self.inventory_path is None:
            node = await self._here(provision=False)
            return [] if node is None else await node.list_agents()
        await self.connect()
        rows = []
        for link in self.links.values():
            if link.ok:
                rows += [dict(status, host=link.name) for status in await link.client.list_agents()]
        return rows

    async def status(self, name):
        return await (await self.node(name)).agent_status(name)

    async def health(self, name):
        """Status plus a verdict: ok, or the reasons it is not."""
        status = await self.status(name)
        problems = []
        if status["state"] in ("failed", "stopped", "restarting"):
            problems.append("state is %s" % status["state"] + (
                " (%s)" % status["last_error"] if status.get("last_error") else ""))
        if status.get("degraded"):
            problems.append("degraded: " + status["degraded"])
        age = status.get("heartbeat_age_s")
        if status["state"] != "stopped" and (age is None or age > 10):
            problems.append("no heartbeat for %ss" % age if age is not None else "no heartbeat")
        return {"name": name, "ok": not problems, "problems": problems, "status": status}

    # -- turns --------------------------------------------------------------------

    async def send(self, name, prompt=None, wait=True, timeout=600.0, on_record=None, key=None, text=None):
        """Submit a turn; with wait, stream its records to `on_record` and return the finished turn.

        Raises TurnTimeout (carrying the turn id) when `timeout` passes first; the turn keeps running.
        `text` is the old name of `prompt`, still accepted.
        """
        prompt = prompt if prompt is not None else text
        if prompt is None:
            raise TypeError("Fleet.send() needs a prompt")
        if self.via_gateway:
            from .remote.gateway_client import discover

            gateway = discover(self.inventory_path)
            if gateway is not None:
                return turn_of(await gateway.send(name, prompt, wait, timeout, on_record, key))
        node = await self.node(name)
        accepted = await node.submit(name, prompt, key)
        turn = accepted["turn"]
        if not wait:
            return turn_of(turn)
        sub = await node.subscribe(name, turn_id=turn["id"])
        try:
            await asyncio.wait_for(self._follow_turn(sub, on_record), timeout)
        except asyncio.TimeoutError:
            raise TurnTimeout("turn %s on agent %s is still running after %ss; it goes on: see "
                              "`sac agents tail %s`" % (turn["id"], name, timeout, name),
                              {"turn_id": turn["id"], "exit_code": 1}) from None
        finally:
            await sub.close()
        return turn_of(await node.get_turn(turn["id"]))

    async def _follow_turn(self, sub, on_record):
        async for record in sub:
            if on_record is not None:
                on_record(record)
            event = record.get("event") or {}
            if is_sac_event(event, TURN_ENDED):
                return

    async def get_turn(self, turn_id, wait=None):
        """A turn by id; with `wait` (seconds), once it ends or as it stands when `wait` passes."""
        node = await self.node(agent_of_turn(turn_id))
        return turn_of(await (node.wait_turn(turn_id, wait) if wait else node.get_turn(turn_id)))

    async def cancel(self, turn_id):
        return turn_of(await (await self.node(agent_of_turn(turn_id))).cancel_turn(turn_id))

    async def tail(self, name, n=50):
        node = await self.node(name)
        await node.agent_status(name)  # AgentNotFound with the fix, before an empty tail
        return await node.tail(name, n)

    async def follow(self, name, from_seq=None, check_every=1.0):
        """Live transcript records of an agent, after `from_seq` (None: only new ones).

        It goes on across restarts of the agent (a new shim is subscribed to again, from the
        last record seen, so none is lost) and while it is stopped; it ends when the agent is
        deleted. While no record comes it looks at the agent every `check_every` seconds.
        """
        last = from_seq
        while True:
            try:
                node = await self.node(name)
                shim = (await node.agent_status(name)).get("shim_pid")
                if shim is None:  # stopped, or between the two halves of a restart
                    await asyncio.sleep(check_every)
                    continue
                async for record in _records_while(node, name, last, shim, check_every):
                    last = record["seq"]
                    yield record
            except AgentNotFound:
                return  # deleted
            except AgentNotRunning:
                await asyncio.sleep(check_every)


    # -- the fleet (inventory) -------------------------------------------------------

    def load(self):
        """Load and validate the inventory (and every spec it names)."""
        if self.inventory is None:
            from .core.inventory import load_inventory, resolve_inventory_path

            self.inventory = load_inventory(resolve_inventory_path(self.inventory_path))
            for warning in self.inventory.warnings:
                log.warning("%s", warning)
        return self.inventory

    async def connect(self, hosts=None, deadline=None, on_host=None, provision=False):
        """Connect to every node host concurrently (per-host timeouts under one deadline).

        Only to attach, changing nothing on a host, unless `provision` (what `up` does: upload
        node.pyz and start or upgrade the node daemon where needed).
        """
        async with self._lock():
            self.links = await _fleet_ops().connect_all(self.load(), hosts, deadline, self.accept_new_host_keys,
                                                        self.links, on_host, "provision" if provision else "attach")
        return self.links

    async def up(self, dry_run=False, prune=False, reschedule=False, on_host=None, limit=None):
        """Converge: bootstrap hosts, start missing agents, leave running ones alone; returns a report.

        With dry_run, nothing on any host changes: the report says what would be done. `limit` (host
        names): change only those hosts (placement still sees every host)."""
        await self.connect(on_host=on_host, provision=not dry_run)
        return await _fleet_ops().up(self.load(), self.links, dry_run, prune, reschedule, self._hosts(limit))

    async def secrets(self):
        """Per host, each secret name the inventory gives: its hash there and on the head, its state; no value."""
        from .control import secrets

        await self.connect()
        return {"secrets": secrets.report(self.load(), self.links),
                "hosts": {name: {"state": link.state, "reason": link.reason} for name, link in self.links.items()}}

    async def plan(self, reschedule=False, prune=False):
        await self.connect()
        return await _fleet_ops().plan_report(self.load(), self.links, reschedule, prune)

    async def fleet_status(self, host=None):
        """Desired and actual side by side, per host; hosts that did not answer say why."""
        await self.connect(hosts=[host] if host else None)
        return await _fleet_ops().status_report(self.load(), self.links, only=host)

    async def down(self, agents_only=False, limit=None, agents=None):
        """Stop the inventory's agents everywhere; unless agents_only, also stop the node daemons.

        `limit` (host names) keeps to those hosts; `agents` (names) stops only those agents."""
        hosts = self._hosts(limit)
        await self.connect(hosts=hosts)
        return await _fleet_ops().down(self.load(), self.links, agents_only, hosts, agents)

    def _hosts(self, names):
        """Host names checked against the inventory (an unknown one: InventoryError naming it), or None."""
        if names is None:
            return None
        return [self.load().host(name).name for name in names]

    async def restart_nodes(self, host=None):
        """Restart node daemons without stopping agents (their shims outlive the daemon, and the new one
        re-attaches): this machine's without an inventory, else every host's or `host`'s. A new daemon
        reads the environment it is started with (this process's, or the host's login and env_preamble).

        Returns [{host, ok, state, reason, actions, pid}].
        """
        if self.inventory_path is None:
            if host is not None:
                raise InventoryError("`sac node restart %s` needs an inventory that names host %s: give it with "
                                     "-i/--inventory" % (host, host))
            await self.close()
            before, _, _ = await attach_local(self.state_dir)
            if before is not None:
                await before.close()
            self._client, self._provisioned = await connect_local(self.state_dir, restart=True), True
            facts = await self._client.facts(timeout=10)
            done = "restarted the node daemon (its agents keep running)" if before else "started the node daemon"
            return [{"host": "local", "ok": True, "state": "ok", "reason": "", "pid": facts.get("pid"),
                     "actions": [done]}]
        inventory = self.load()
        if host is not None and host not in {h.name for h in inventory.node_hosts()}:
            raise InventoryError("%s: no host named %s (hosts: %s)" % (
                inventory.path, host, ", ".join(h.name for h in inventory.node_hosts())))
        async with self._lock():
            self.links, rows = await _fleet_ops().restart_nodes(inventory, self.links, [host] if host else None,
                                                                self.accept_new_host_keys)
        return rows

    async def _route(self, agent):
        """The client of the host that runs `agent` (asks every host when not known yet)."""
        if not self.links:
            await self.connect()
        if agent is None:
            raise AgentNotFound("say which agent")
        host = self._where.get(agent)
        if host is None or not self.links[host].ok:
            found = await _fleet_ops().locate(self.links)
            self._where.update(found)
            host = found.get(agent, host)
        if host is not None and not self.links[host].ok:
            link = self.links[host]
            raise HostUnreachable("agent %s runs on host %s, which does not answer now (%s: %s); its turns wait "
                                  "there, see `sac fleet status`" % (agent, host, link.state, link.reason))
        if host is None:
            down = [l.name for l in self.links.values() if not l.ok and l.node_running]
            idle = [l.name for l in self.links.values() if not l.node_running]
            hint = " (hosts that did not answer: %s)" % ", ".join(down) if down else ""
            hint += " (no node daemon runs on %s; `sac fleet up` starts it)" % ", ".join(idle) if idle else ""
            raise AgentNotFound("no agent named %s runs on any host of %s%s; see `sac fleet status`"
                                % (agent, self.inventory.path, hint))
        return self.links[host].client


__all__ = ["Fleet", "AgentNotFound"]
