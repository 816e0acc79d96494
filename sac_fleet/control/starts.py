"""Starting agents on this machine by hand (`sac agents start`): from a spec file, an agent
directory, a known agent's name, or a template and its parameter rows.

With an inventory agents start where placement puts them (`sac fleet up`), not here.
"""

import os

from sac_node.protocol.errors import SpecError

from .here import LOCAL_HOST, resolve_target


async def start_target(node, index, target, agents_dir, restart=False):
    """Start `target` on this machine's `node`; a known agent's name starts it again if it is stopped."""
    path = resolve_target(target, agents_dir)
    if path is None:
        known = {a["name"] for a in await node.list_agents()}
        if target in known:
            return await node.restart_agent(target) if restart else {
                "status": await _start_known(node, target), "changed": False, "started": False}
        raise SpecError("%s: no such spec file or agent directory, and no agent of that name under %s/ "
                        "or on this host" % (target, agents_dir))
    from ..core.spec import parse_spec  # pydantic is slow to import; only a start needs it

    return await start_spec(node, index, parse_spec(path), restart)


def instances(template, params, name, agents_dir):
    """The specs of `template`, one per row of the parameter file `params`, every row checked."""
    from ..core.instances import check_instances

    path = resolve_target(template, agents_dir)
    if path is None:
        raise SpecError("%s: no such spec file or template directory" % template)
    return check_instances(path, params, name, environ=os.environ)


async def start_spec(node, index, spec, restart=False):
    """Start a parsed spec on this machine, its `${host.*}` placeholders filled for this machine."""
    from ..core.templates import HostFacts

    started = await node.start_agent(spec.on_host(HostFacts(LOCAL_HOST)).to_node(), restart=restart)
    index.note(LOCAL_HOST, started["status"])
    return started


async def _start_known(node, name):
    status = await node.agent_status(name)
    if status["state"] in ("stopped", "failed"):
        return (await node.restart_agent(name))["status"]
    return status
