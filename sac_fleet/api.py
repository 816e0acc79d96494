"""sac_fleet's Python API: every frontend (CLI, gateway, MCP) calls only this.

    async with Fleet() as fleet:
        await fleet.start("agents/reviewer")
        turn = await fleet.send("reviewer", "Summarise README.md")
        print(turn["reply"])

A turn is a prompt in and a reply out: `send(name, prompt)` returns the turn as a dict
`{id, status, prompt, reply, error, session_id, usage, timings, ...}`; the CLI's
`--json`, the HTTP API and MCP use the same two words.

`Fleet()` is this machine's node; `Fleet(inventory="inventory.yaml")` every host of an inventory.
"""

import asyncio
import logging
import os

from sac_node.protocol.errors import AgentNotFound, HostUnreachable, SpecError, TurnTimeout
from sac_node.protocol.messages import agent_of_turn

from .control import here, starts
from .control.here import LOCAL_HOST
from .control.routing import AgentIndex, locate, not_found, stale
from .control.turns import DRAIN_S, TERMINAL, follow_agent, follow_turn, health_problems, turn_of

log = logging.getLogger("sac_fleet.inventory")



def _fleet_ops():
    """The fleet operations, imported on first use: asyncssh loads only for fleet work."""
    from .control import fleet_ops

    return fleet_ops


class Fleet:
    """The agents sac manages, and the calls that act on them: one set of hosts, each reached over its own
    connection, all at once, and calls routed to wherever an agent runs.

    Without an inventory the hosts are this machine alone (`sac agents ...`: a one-host inventory whose host
    has `transport: local`, control.here.ThisMachine); there agents start by hand and a call that changes
    one starts the node daemon first. With one they are every host of the inventory (`sac fleet ...`).
    """

    def __init__(self, inventory=None, state_dir=None, agents_dir=None, accept_new_host_keys=False,
                 via_gateway=False, this_machine=False):
        """`this_machine` (with an inventory): reach this machine's node too, where `start` starts agents by
        hand; they stay reachable though the inventory does not list them (what `sac mcp -i` does)."""
        self.inventory_path = inventory
        # This machine needs no file; an inventory file is read on first use (load).
        self.inventory = here.ThisMachine(state_dir) if inventory is None else None
        # Where `start` starts agents outside placement: this machine, if at all.
        self._by_hand = self.inventory if inventory is None else here.ThisMachine(state_dir) if this_machine else None
        self._extra = {}  # the link to this machine when it is not one of the inventory's own hosts
        self.state_dir = state_dir
        self.agents_dir = agents_dir or os.environ.get("SAC_AGENTS_DIR") or "agents"
        self.accept_new_host_keys = accept_new_host_keys
        self.links = {}
        self.index = AgentIndex()  # agent -> host, learnt from the hosts' answers (control.routing)
        self._connecting = None
        self._courier = None  # carries agents' messages between hosts while the links are held
        # Send turns through a running `sac fleet serve` of the same inventory when there is one.
        self.via_gateway = via_gateway

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self):
        if self._courier is not None:
            await self._courier.stop()
        await asyncio.gather(*(link.close() for link in self._routes().values()))
        self.links, self._extra = {}, {}

    def _routes(self):
        """Every link a call may go to: the inventory's hosts, then this machine's (when asked for apart)."""
        return dict(self.links, **self._extra) if self._extra else self.links

    async def node(self, agent=None, provision=False):
        """The NodeClient of the host that runs `agent`.

        Reads attach to running node daemons only. On this machine a call that changes agents
        (`provision`) starts or upgrades the daemon first; with an inventory only `up` does that.
        """
        await self._open(provision)
        return self._routes()[await self._host(agent)].client

    async def _open(self, provision=False):
        """Connect when not yet connected, and again where a link to a local daemon dropped (reattaching is
        a unix socket away); on this machine, provision first when asked."""
        alone = self._by_hand is self.load()  # this machine is the whole inventory
        if stale(self.links, self.load(), provision and alone):
            await self.connect(provision=provision and alone)
        if self._by_hand is not None and not alone and stale(self._extra, self._by_hand, provision):
            self._extra = await _fleet_ops().connect_all(self._by_hand, existing=self._extra,
                                                         mode="provision" if provision else "attach")
        if provision and self._by_hand is not None:
            link = self._routes()[LOCAL_HOST]
            if not link.ok:  # the daemon did not start: say why, not that the agent is missing
                raise HostUnreachable(link.reason)

    async def _host(self, agent):
        """The name of the host that runs `agent` (control.routing)."""
        if agent is None:
            raise AgentNotFound("say which agent")
        return await locate(self._routes(), self.index, agent, 10.0, self._missing)

    def _missing(self, agent, links):
        """The error for an agent no host runs, in the words of this machine or of the inventory."""
        if self._by_hand is self.inventory:
            return self._by_hand.missing(agent, links)
        return not_found(agent, links, "any host of %s" % self.inventory.path)

    def _lock(self):
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        return self._connecting

    # -- agents -------------------------------------------------------------------

    async def start(self, target, restart=False):
        """Start an agent from a spec file, an agent directory, or the name of a known agent (this machine)."""
        self._by_hand_only("add %s to %s" % (target, self.inventory_path))
        await self._open(provision=True)
        return await starts.start_target(self._routes()[LOCAL_HOST].client, self.index, target, self.agents_dir,
                                         restart)

    async def start_instances(self, template, params, name=None, restart=False):
        """Start one agent per row of the parameter file `params` from the spec `template` (this machine).

        `name` is a pattern such as '{template}-${params.id}' (else the rows' `name` column, else the
        template's metadata.name). Every row is checked before any agent starts. Returns one result per row.
        """
        self._by_hand_only("add {template: %s, params: %s} to %s" % (template, params, self.inventory_path))
        specs = starts.instances(template, params, name, self.agents_dir)
        await self._open(provision=True)
        node = self._routes()[LOCAL_HOST].client
        return [await starts.start_spec(node, self.index, spec, restart) for spec in specs]

    def _by_hand_only(self, fix):
        if self._by_hand is None:
            raise SpecError("with an inventory, agents start where placement puts them: %s and run `sac fleet up`"
                            % fix)

    async def stop(self, name):
        return await self._on(name, lambda node: node.stop_agent(name), provision=True)

    async def restart(self, name):
        return await self._on(name, lambda node: node.restart_agent(name), provision=True)

    async def delete(self, name):
        deleted = await self._on(name, lambda node: node.delete_agent(name), provision=True)
        self.index.forget(name)
        return deleted

    async def list(self):
        """Every agent of every host that answers, each with its `host` ("local": this machine's node)."""
        await self._open()
        rows = []
        for link in self.links.values():
            if link.ok:
                statuses = await link.client.list_agents()
                self.index.learn(link.name, statuses)
                rows += [dict(status, host=link.name) for status in statuses]
        return rows

    async def status(self, name):
        return await self._on(name, lambda node: node.agent_status(name))

    async def health(self, name):
        """Status plus a verdict: ok, or the reasons it is not."""
        status = await self.status(name)
        problems = health_problems(status)
        return {"name": name, "ok": not problems, "problems": problems, "status": status}

    # -- turns --------------------------------------------------------------------

    async def submit(self, name, prompt, key=None, wait_s=None):
        """Accept a turn (journalled on its host before this returns): (turn, created).

        With `wait_s` the turn comes back ended, or as it stands when `wait_s` passes, in the same round
        trip. `key` names the turn: submitting the same key again returns it (created False)."""
        accepted = await self._on(name, lambda node: node.submit(name, prompt, key, wait_s=wait_s))
        return turn_of(accepted["turn"]), accepted["created"]

    async def wait(self, turn_id, timeout):
        """The turn once it ends, or as it stands when `timeout` passes (at once for a finished turn)."""
        return await self.get_turn(turn_id, wait=timeout)

    async def subscribe(self, name, turn_id=None, from_seq=None):
        """A subscription to an agent's transcript (of one turn): past records after `from_seq` come first.

        Iterate it for records; close it when done. Raises here (AgentNotFound, AgentNotRunning, ...)."""
        return await self._on(name, lambda node: node.subscribe(name, turn_id=turn_id, from_seq=from_seq))

    async def host_of(self, name):
        """The name of the host that runs agent `name` ("local" for this machine's node)."""
        await self._open()
        return await self._host(name)

    async def send(self, name, prompt=None, wait=True, timeout=600.0, on_record=None, key=None, text=None):
        """Submit a turn; with wait, stream its records to `on_record` and return the finished turn.

        Without `on_record` a turn is one round trip to its host (submit and wait in one call).
        Raises TurnTimeout (carrying the turn id) when `timeout` passes first; the turn keeps running.
        `text` is the old name of `prompt`, still accepted.
        """
        prompt = prompt if prompt is not None else text
        if prompt is None:
            raise TypeError("Fleet.send() needs a prompt")
        if self.via_gateway:
            gateway = here.gateway(self.inventory_path)
            if gateway is not None:
                return turn_of(await gateway.send(name, prompt, wait, timeout, on_record, key))
        if not wait:
            return (await self.submit(name, prompt, key))[0]
        if on_record is None:
            turn, _ = await self.submit(name, prompt, key, wait_s=timeout)
        else:
            turn = await self._streamed(name, prompt, key, timeout, on_record)
        if turn["status"] not in TERMINAL:
            raise TurnTimeout("turn %s on agent %s is still running after %ss; it goes on: see "
                              "`sac agents tail %s`" % (turn["id"], name, timeout, name),
                              {"turn_id": turn["id"], "exit_code": 1})
        return turn

    async def _streamed(self, name, prompt, key, timeout, on_record):
        """Submit, then follow the turn's records to `on_record` while waiting for it to end."""
        turn, _ = await self.submit(name, prompt, key)
        sub = await self.subscribe(name, turn_id=turn["id"])
        try:
            following = asyncio.ensure_future(follow_turn(sub, on_record))
            ended = await self.wait(turn["id"], timeout)
            if ended["status"] in TERMINAL:  # its last records may still be on their way
                await asyncio.wait_for(asyncio.shield(following), DRAIN_S)
            return ended
        except asyncio.TimeoutError:
            return ended
        finally:
            following.cancel()
            await sub.close()

    async def get_turn(self, turn_id, wait=None):
        """A turn by id; with `wait` (seconds), once it ends or as it stands when `wait` passes."""
        name = agent_of_turn(turn_id) or turn_id
        return turn_of(await self._on(name, lambda node: node.wait_turn(turn_id, wait) if wait
                                      else node.get_turn(turn_id)))

    async def cancel(self, turn_id):
        return turn_of(await self._on(agent_of_turn(turn_id) or turn_id, lambda node: node.cancel_turn(turn_id)))

    async def tail(self, name, n=50):
        await self.status(name)  # AgentNotFound with the fix, before an empty tail
        return await (await self.node(name)).tail(name, n)

    async def follow(self, name, from_seq=None, check_every=1.0):
        """Live transcript records of an agent, after `from_seq` (None: only new ones).

        It goes on across restarts of the agent (a new shim is subscribed to again, from the
        last record seen, so none is lost) and while it is stopped; it ends when the agent is
        deleted. While no record comes it looks at the agent every `check_every` seconds.
        """
        async for record in follow_agent(self.node, name, from_seq, check_every):
            yield record

    # -- the fleet (inventory) -------------------------------------------------------

    def load(self):
        """Load and validate the inventory (and every spec it names)."""
        if self.inventory is None:
            from .core.inventory import load_inventory, resolve_inventory_path

            self.inventory = load_inventory(resolve_inventory_path(self.inventory_path))
            for warning in self.inventory.warnings:
                log.warning("%s", warning)
        return self.inventory

    async def connect(self, hosts=None, deadline=None, on_host=None, provision=False, carry=True):
        """Connect to every node host concurrently (per-host timeouts under one deadline).

        Only to attach, changing nothing on a host, unless `provision` (what `up` does: upload
        node.pyz and start or upgrade the node daemon where needed). With `carry`, this Fleet also carries
        agents' messages between the hosts while it holds the links (plan, status, `up --dry-run`, secrets
        and down only observe or stop, so they do not).
        """
        async with self._lock():
            self.links = await _fleet_ops().connect_all(self.load(), hosts, deadline, self.accept_new_host_keys,
                                                        self.links, on_host, "provision" if provision else "attach")
        if carry:
            self._carry_messages()
        return self.links

    def _carry_messages(self):
        """While this Fleet holds links to an inventory's hosts, carry agents' messages between them
        (control.courier): a host never dials out, so its outbox waits for a head like this one."""
        if self._by_hand is self.inventory:
            return  # this machine alone: its node routes its own agents' messages
        if self._courier is None:
            from .control.courier import Courier

            self._courier = Courier(self._routes, self._host)
        self._courier.watch()

    async def up(self, dry_run=False, prune=False, reschedule=False, on_host=None, limit=None):
        """Converge: bootstrap hosts, start missing agents, leave running ones alone; returns a report.

        With dry_run, nothing on any host changes: the report says what would be done. `limit` (host
        names): change only those hosts (placement still sees every host)."""
        await self.connect(on_host=on_host, provision=not dry_run, carry=not dry_run)
        report = await _fleet_ops().up(self.load(), self.links, dry_run, prune, reschedule, self._hosts(limit),
                                       self.index)
        if self._courier is not None:
            await self._courier.refresh()  # the nodes learn of the agents just started
        return report

    async def secrets(self):
        """Per host, each secret name the inventory gives: its hash there and on the head, its state; no value."""
        from .control import secrets

        await self.connect(carry=False)
        return {"secrets": secrets.report(self.load(), self.links),
                "hosts": {name: {"state": link.state, "reason": link.reason} for name, link in self.links.items()}}

    async def plan(self, reschedule=False, prune=False):
        await self.connect(carry=False)
        return await _fleet_ops().plan_report(self.load(), self.links, reschedule, prune, self.index)

    async def fleet_status(self, host=None):
        """Desired and actual side by side, per host; hosts that did not answer say why."""
        await self.connect(hosts=[host] if host else None, carry=False)
        return await _fleet_ops().status_report(self.load(), self.links, only=host, index=self.index)

    async def down(self, agents_only=False, limit=None, agents=None):
        """Stop the inventory's agents everywhere; unless agents_only, also stop the node daemons.

        `limit` (host names) keeps to those hosts; `agents` (names) stops only those agents."""
        hosts = self._hosts(limit)
        await self.connect(hosts=hosts, carry=False)
        return await _fleet_ops().down(self.load(), self.links, agents_only, hosts, agents, self.index)

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
        if self._by_hand is self.load():
            await self.close()
            return [await here.restart_node(self.state_dir, host)]
        async with self._lock():
            self.links, rows = await _fleet_ops().restart_nodes(self.load(), self.links, host,
                                                                self.accept_new_host_keys)
        return rows

    async def _on(self, agent, call, provision=False):
        """`call(node)` on the node of `agent`. A host that answers it has no such agent is forgotten as its
        host, and the call goes once more to wherever the hosts now say it runs."""
        node = await self.node(agent, provision)
        try:
            return await call(node)
        except AgentNotFound as exc:
            self.index.forget(agent)
            if self._by_hand is self.inventory:
                raise  # this machine's node says it in its own words
            if len(self._routes()) == 1:
                raise self._missing(agent, self._routes()) from exc
            again = await self.node(agent)  # AgentNotFound, in the fleet's words, when no host runs it now
            if again is node:
                raise
        return await call(again)


def register_gateway(url, inventory, token_file):
    """Record this process as the running gateway (`sac fleet serve`) of `inventory` (None: this machine's
    agents), so `Fleet(via_gateway=True)` sends turns through it; returns what `unregister_gateway` takes."""
    return here.register_gateway(url, inventory, token_file)


def unregister_gateway(registry):
    """Remove the record `register_gateway` wrote (only if it is still this process's)."""
    here.unregister_gateway(registry)


__all__ = ["Fleet", "AgentNotFound", "register_gateway", "unregister_gateway"]
