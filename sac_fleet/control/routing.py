"""Routing: which host runs an agent, from an index the head keeps instead of asking every host per call.

`AgentIndex` is pure: it learns from each answer the head already gets (a host's
`agents.list`, an agent's status after start or restart) and forgets on the head's
own events (a delete, a host whose link dropped, a host that says it has no such
agent). `locate` asks the hosts only when the index has no live answer.
"""

from sac_node.protocol.errors import AgentNotFound, HostUnreachable

from . import reconciler


def _rank(status):
    """A live copy outranks a stopped one; among those, the newest generation (a singleton's fencing token)."""
    return (status.get("state") != "stopped", status.get("generation") or 0)


class AgentIndex:
    """{agent: host}, as last learnt; the newest live copy of a name wins."""

    def __init__(self):
        self._where = {}  # agent -> (rank, host)

    def learn(self, host, statuses):
        """A host's full list of agents (`agents.list`): what it no longer runs is forgotten."""
        self.drop_host(host)
        for status in statuses:
            self.note(host, status)

    def note(self, host, status):
        """One agent's status as `host` answered it (after a start, a restart or a status call)."""
        name = status["name"]
        rank = _rank(status)
        known = self._where.get(name)
        if known is None or known[1] == host or rank > known[0]:
            self._where[name] = (rank, host)

    def forget(self, agent, host=None):
        """The agent is gone (from `host`, or everywhere)."""
        known = self._where.get(agent)
        if known is not None and host in (None, known[1]):
            del self._where[agent]

    def drop_host(self, host):
        """Forget every agent seen on `host`."""
        for agent in [a for a, (_, h) in self._where.items() if h == host]:
            del self._where[agent]

    def host_of(self, agent):
        known = self._where.get(agent)
        return None if known is None else known[1]


async def locate(links, index, agent, timeout, missing):
    """The name of the host whose link reaches `agent`: the only host when there is one, else from the index,
    else by asking the hosts that answer (what they say is learnt).

    Raises HostUnreachable when it runs on a host that does not answer now, else `missing(agent, links)`.
    """
    if len(links) == 1:
        (host, link), = links.items()  # nothing to look up: the host answers for its agents itself
        if link.ok:
            return host
        if index.host_of(agent) != host:
            raise missing(agent, links)
    host = index.host_of(agent)
    if host is not None and host in links and links[host].ok:
        return host
    index.forget(agent)  # a copy on a host that answers now wins over one on a host that does not
    await reconciler.observe(links, timeout, index)
    host = index.host_of(agent) or host
    link = links.get(host)
    if link is not None and link.ok:
        return host
    if link is not None:
        raise HostUnreachable("agent %s runs on host %s, which does not answer now (%s: %s); its turns wait "
                              "there, see `sac fleet status`" % (agent, host, link.state, link.reason))
    raise missing(agent, links)


def not_found(agent, links, where):
    """AgentNotFound for an agent no host of `where` runs, naming the hosts that could not be asked."""
    down = [l.name for l in links.values() if not l.ok and l.node_running]
    idle = [l.name for l in links.values() if not l.node_running]
    hint = " (hosts that did not answer: %s)" % ", ".join(down) if down else ""
    hint += " (no node daemon runs on %s; `sac fleet up` starts it)" % ", ".join(idle) if idle else ""
    return AgentNotFound("no agent named %s runs on %s%s; see `sac fleet status`" % (agent, where, hint))


def stale(links, inventory, provision):
    """True when `links` want (re)connecting: none yet, one to a local daemon dropped (reattaching is a unix
    socket away; a remote host is left to its keeper), or provisioning is asked and not all are provisioned."""
    dropped = any(not link.ok and inventory.host(name).transport == "local" for name, link in links.items())
    return not links or dropped or (provision and not all(link.provisioned for link in links.values()))
