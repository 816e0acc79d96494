"""This machine's node, and a running gateway of this head: the ways in that need no inventory.

Fleet (sac_fleet.api) reaches them only through here, so the frontends and the API
never import `remote` themselves.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sac_node.protocol.errors import AgentNotFound, AgentNotRunning, InventoryError
from sac_node.state_dir import StateDir, default_state_dir

from ..remote import gateway_client
from ..remote.local import LOCAL_HOST, attach_local, connect_local


def resolve_target(target, agents_dir):
    """A spec path, an agent directory, or a name under the agents dir -> a path, or None."""
    path = Path(target).expanduser()
    if path.exists():
        return path
    candidate = Path(agents_dir) / target
    if candidate.exists():
        return candidate
    return None


async def restart_node(state_dir, host=None):
    """Replace this machine's daemon by a fresh one (agents keep running); the report row."""
    if host is not None:
        raise InventoryError("`sac node restart %s` needs an inventory that names host %s: give it with "
                             "-i/--inventory" % (host, host))
    before, _, _ = await attach_local(state_dir)
    if before is not None:
        await before.close()
    client = await connect_local(state_dir, restart=True)
    facts = await client.facts(timeout=10)
    await client.close()
    done = "restarted the node daemon (its agents keep running)" if before else "started the node daemon"
    return {"host": "local", "ok": True, "state": "ok", "reason": "", "pid": facts.get("pid"),
            "actions": [done]}


def gateway(inventory):
    """A client of a running `sac fleet serve` of `inventory` (None: this machine's agents), or None."""
    return gateway_client.discover(inventory)


def register_gateway(url, inventory, token_file):
    """Record this process as the gateway of `inventory`; returns what to pass to `unregister_gateway`."""
    return gateway_client.register(url, inventory, token_file)


def unregister_gateway(registry):
    gateway_client.unregister(registry)


@dataclass(frozen=True)
class LocalHost:
    """This machine as an inventory host (`transport: local`), made without reading an inventory file.

    Without a `state_dir` it shares `sac agents`' state dir ($SAC_HOME, else ~/.sac)."""

    state_dir: Optional[str] = None
    name: str = LOCAL_HOST
    transport: str = "local"
    connect_timeout: float = 10.0
    jump_only: bool = False
    python: str = "python3"
    env_preamble: str = ""

    def is_set(self, field):
        return field == "state_dir" and self.state_dir is not None


@dataclass(frozen=True)
class ThisMachine:
    """This machine as a one-host inventory with no agents of its own: what `sac agents` drives.

    Agents start here by hand (`Fleet.start`), not by placement; a call that changes one starts or
    upgrades the node daemon first, and an agent no daemon answers for is explained in this machine's words."""

    state_dir: Optional[str] = None
    path = None
    name = ""
    agents = ()
    warnings = ()

    @property
    def hosts(self):
        return {LOCAL_HOST: LocalHost(self.state_dir)}

    def host(self, name):
        return self.hosts[name]

    def node_hosts(self):
        return list(self.hosts.values())

    def missing(self, agent, links):
        """The error for an agent this machine's node does not run (or could not be asked about)."""
        link = links.get(LOCAL_HOST)
        if link is not None and link.ok:
            return AgentNotFound("no agent named %s on this host (see `sac agents list`)" % agent)
        state = StateDir(self.state_dir or default_state_dir())
        if agent is not None and state.agent(agent).exists():
            return AgentNotRunning("agent %s: no node daemon runs on this machine (%s); `sac node restart` starts "
                                   "it and re-attaches to the agents that still run" % (agent, state.root))
        return AgentNotFound("no agent named %s on this machine (no node daemon runs here: `sac agents start SPEC` "
                             "starts one)" % (agent or "?"))
