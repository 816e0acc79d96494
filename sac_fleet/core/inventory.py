"""The inventory: ``inventory.yaml`` -> hosts, groups and agents, validated (docs/inventory.md).

``load_inventory(path)`` is the way in. It reads the file (and each agent's
spec), validates it with pydantic (unknown keys refused with "did you mean"),
then cross-checks names: group members, jump hosts and pinned hosts must
exist, agent names must be unique. Every mistake is one ``InventoryError``
line ``FILE:LINE FIELD: problem (fix)``.

The parts live beside it: the file's shape (inventory_document.py), hosts
(inventory_hosts.py), agents (inventory_agents.py), secrets (secret_sources.py);
every public name of those is importable from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from pydantic import ValidationError

from sac_node.protocol.errors import InventoryError

from .documents import Document, did_you_mean, load_document, validation_error
from .inventory_agents import InventoryAgent, check_agent_names, read_spec, resolve_agents
from .inventory_document import (HOST_NAME_RE, SAC_DEFAULTS, AgentEntry, Defaults, GroupEntry, HostEntry, HostName,
                                 InventoryDocument, hosts_from_list)
from .inventory_hosts import Host, JumpHop, check_groups, check_hosts, jump_chain, resolve_host
from .placement import DesiredAgent
from .secret_sources import SecretName, Secrets, SecretSource

__all__ = [
    "DEFAULT_PATH", "ENV_VAR", "HOST_NAME_RE", "SAC_DEFAULTS", "HostName", "SecretName", "Secrets", "SecretSource",
    "AgentEntry", "Defaults", "GroupEntry", "HostEntry", "InventoryDocument",
    "Host", "JumpHop", "InventoryAgent", "Inventory", "read_spec",
    "resolve_inventory_path", "load_inventory", "parse_inventory",
]

DEFAULT_PATH = "inventory.yaml"
ENV_VAR = "SAC_INVENTORY"


@dataclass(frozen=True)
class Inventory:
    """A validated inventory. ``hosts`` and ``agents`` keep the file's order. ``name`` (the file's
    ``name:``, else its stem) is who owns the agents the fleet starts, wherever the file lives."""

    path: Path
    hosts: Mapping[str, Host]
    groups: Mapping[str, tuple]
    agents: tuple
    name: str = ""
    warnings: tuple = ()  # what sac did not take from an Ansible inventory (hosts_from), one line each

    def host(self, name: str) -> Host:
        """The host called ``name``; InventoryError with "did you mean" when there is none."""
        if name not in self.hosts:
            raise InventoryError("%s: no host %r%s" % (self.path, name, did_you_mean(name, self.hosts)))
        return self.hosts[name]

    def agent(self, name: str) -> InventoryAgent:
        """The agent called ``name`` (or owning the copy ``name``)."""
        for agent in self.agents:
            if name == agent.name or name in agent.copies():
                return agent
        raise InventoryError("%s: no agent %r%s" % (self.path, name, did_you_mean(name, [a.name for a in self.agents])))

    def node_hosts(self) -> list:
        """Hosts that run a node (all but the ``jump_only`` ones), in file order."""
        return [host for host in self.hosts.values() if not host.jump_only]

    def slots(self) -> list:
        """Every host as placement sees it."""
        return [host.slot() for host in self.hosts.values()]

    def desired(self) -> list:
        """Every agent as placement sees it."""
        return [DesiredAgent(agent.name, agent.rule()) for agent in self.agents]

    def jump_chain(self, name: str) -> tuple:
        """The hops to go through, in order, to reach host ``name`` (jump hosts' own jumps first)."""
        return jump_chain(self.hosts, name, ())


def resolve_inventory_path(given=None, environ: Optional[Mapping[str, str]] = None) -> Path:
    """INVENTORY argument, else ``$SAC_INVENTORY``, else ``./inventory.yaml``."""
    environ = os.environ if environ is None else environ
    if given:
        return Path(given)
    if environ.get(ENV_VAR):
        return Path(environ[ENV_VAR])
    path = Path(DEFAULT_PATH)
    if not path.exists():
        raise InventoryError("no inventory given and ./%s does not exist (pass INVENTORY, set %s, or start "
                             "from inventory.example.yaml)" % (DEFAULT_PATH, ENV_VAR))
    return path


def load_inventory(path, *, load_specs: bool = True) -> Inventory:
    """Read and validate the inventory at ``path``, loading every agent's spec.

    With ``load_specs=False`` agents are named after their spec directory and
    use only the inventory's placement (for tools that must not read specs).
    """
    doc = load_document(path, InventoryError)
    return parse_inventory(doc, load_specs=load_specs)


def parse_inventory(doc: Document, *, load_specs: bool = True) -> Inventory:
    """Validate an already loaded document; see ``load_inventory``."""
    doc, warnings = _with_ansible_hosts(doc)
    try:
        model = InventoryDocument.model_validate(doc.data)
    except ValidationError as exc:
        raise validation_error(doc, exc, InventoryError, model=InventoryDocument) from exc
    groups = check_groups(doc, model)
    hosts = {name: resolve_host(doc, model, name, groups) for name in model.hosts}
    check_hosts(doc, hosts)
    agents = tuple(agent for index in range(len(model.agents))
                   for agent in resolve_agents(doc, model, index, hosts, groups, load_specs))
    check_agent_names(doc, agents)
    return Inventory(Path(doc.path), hosts, groups, agents, model.name or Path(doc.path).stem, warnings)


def _with_ansible_hosts(doc):
    """The document with the hosts and groups of its ``hosts_from`` files merged in, and their warnings.

    The file's own entries win field by field, so an imported host can get labels or a capacity.
    """
    data = doc.data if isinstance(doc.data, dict) else {}
    sources = data.get("hosts_from") or []
    if not sources:
        return doc, ()
    from .ansible_hosts import read_ansible

    hosts, groups, warnings = {}, {}, []
    for index, source in enumerate(hosts_from_list(sources)):
        if not isinstance(source, str) or not source:
            raise doc.error(("hosts_from", index), "expected the path of an Ansible inventory (INI or YAML)",
                            InventoryError)
        imported = read_ansible(Path(doc.path).parent / Path(source).expanduser())
        hosts.update(imported.hosts)
        groups.update(imported.groups)
        warnings += imported.warnings
    own_hosts = data.get("hosts") or {}
    if isinstance(own_hosts, dict):
        for name, entry in own_hosts.items():
            hosts[name] = dict(hosts.get(name) or {}, **(entry or {})) if isinstance(entry, (dict, type(None))) \
                else entry
    own_groups = data.get("groups") or {}
    if isinstance(own_groups, dict):
        groups.update(own_groups)
    merged = dict(data, hosts=hosts, groups=groups)
    return Document(doc.path, merged, doc.lines), tuple(warnings)
