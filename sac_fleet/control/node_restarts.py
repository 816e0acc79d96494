"""Host settings that change take effect: a `restart-node` plan action for each node started otherwise.

A node daemon records what it was started with (host.facts `settings`, remote/node_settings.py).
When a host's `env_preamble`, `python` or engine differs from it, the plan says so
(`restart node on h2: env_preamble changed`) and `up` replaces the daemon; agents keep running
(their shims outlive it). When the engine changed, the Claude Code agents running there are then
restarted one at a time, so that each takes the new engine and the others keep answering.
"""

from sac_node.protocol.errors import HostError, InventoryError

from ..core.plan import Action, ActionKind
from ..remote.host_link import open_link
from ..remote.host_settings import HostSettings
from ..remote.node_settings import changed

UNKNOWN = "started without a record of its settings (by an older sac)"


def actions(inventory, links):
    """A RESTART_NODE action for each SSH host whose running daemon was started with other settings."""
    out = []
    for host in inventory.node_hosts():
        link = links.get(host.name)
        if host.transport == "local" or link is None or not link.ok:
            continue
        fields = changed(HostSettings.of(inventory, host), link.facts)
        if fields:
            reason = UNKNOWN if not (link.facts or {}).get("settings") else "%s changed" % ", ".join(fields)
            out.append(Action(ActionKind.RESTART_NODE, "", host.name, reason))
    return out


async def apply(action, inventory, links, observed, accept_new=False):
    """Replace the host's daemon (links[host] becomes the new link); then, for an engine change, restart its
    running Claude Code agents one by one. Returns the names of the agents restarted."""
    old = links[action.host]
    await old.close()
    links[action.host] = link = await open_link(inventory, inventory.hosts[action.host], accept_new, mode="restart")
    if not link.ok:
        raise HostError("host %s: the node did not come back after its restart: %s" % (link.name, link.reason),
                        {"host": link.name})
    if "engine" not in action.reason:  # (a node of an older sac keeps its agents: their engine still runs)
        return []
    restarted = []
    for status in observed.get(action.host, []):
        if status.get("state") in ("idle", "working", "starting") and _runs_claude(inventory, status["name"]):
            await link.client.restart_agent(status["name"])
            restarted.append(status["name"])
    return restarted


def _runs_claude(inventory, copy_name):
    try:
        spec = inventory.agent(copy_name).spec
    except InventoryError:  # not this inventory's agent: leave it alone
        return False
    return spec is not None and spec.spec.engine.kind == "claude"
