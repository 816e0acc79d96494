"""The inventory's agents: each entry's spec loaded (a template entry gives one agent per parameter row,
core/instances.py), its placement chosen and checked.

The placement in force is the inventory entry's, else the spec's; pinned hosts
and groups must exist and hosts must not be ``jump_only``; every copy name
(``name``, or ``name-0 ..`` for replicas) is used once in the whole inventory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sac_node.protocol.errors import InventoryError

from .instances import check_instances
from .placement import Rule, replica_names
from .spec import Placement, parse_spec
from .templates import HostFacts
from .wording import did_you_mean


@dataclass(frozen=True)
class InventoryAgent:
    """An agent of the inventory: its loaded spec and the placement in force."""

    name: str
    spec_path: Path
    spec: Any
    placement: Placement
    placement_from: str  # "inventory" or "spec"
    line: int

    def rule(self) -> Rule:
        """The placement as a ``placement.Rule``."""
        p = self.placement
        return Rule(hosts=tuple(p.hosts), group=p.group, labels=p.labels, replicas=p.replicas,
                    per_host=p.per_host, singleton=p.singleton, sticky=p.sticky)

    def spec_on(self, host) -> Any:
        """The spec as it runs on ``host`` (an inventory Host): ``${host.name}``, ``${host.labels.X}`` filled."""
        return self.spec.on_host(HostFacts(host.name, dict(host.labels or {})))

    def copies(self) -> list:
        """The names its copies have on hosts (``name``, or ``name-0 ..`` for replicas)."""
        return replica_names(self.name, self.placement.replicas)


def resolve_agents(doc, model, index, hosts, groups, load_specs) -> list:
    """The agents of one inventory entry: its spec's one, or one per row of a template's parameters."""
    entry = model.agents[index]
    loc = ("agents", index)
    field = "spec" if entry.spec is not None else "template"
    target = _existing(doc, loc + (field,), entry.spec or entry.template, "a spec file or agent directory")
    if entry.template is None:
        spec = read_spec(target) if load_specs else None
        name = spec.name if spec is not None else (target.parent.name if target.is_file() else target.name)
        return [_agent(doc, loc, entry, target, name, spec, hosts, groups)]
    params = _existing(doc, loc + ("params",), entry.params, "a .csv, .yaml or .jsonl parameter file")
    # Rendered even without load_specs: the rows' names may come from the template.
    return [_agent(doc, loc, entry, target, spec.name, spec, hosts, groups)
            for spec in check_instances(target, params, entry.name, environ=os.environ)]


def _existing(doc, loc, given, what):
    path = Path(doc.path).parent / Path(given).expanduser()
    if not path.exists():
        raise doc.error(loc, "%s does not exist (%s, relative to %s)" % (path, what, Path(doc.path).name),
                        InventoryError)
    return path


def _agent(doc, loc, entry, target, name, spec, hosts, groups):
    if entry.placement is not None:
        placement, source = entry.placement, "inventory"
    else:
        placement = spec.spec.placement if spec is not None else Placement()
        source = "spec"
    _check_placement(doc, loc, placement, source, hosts, groups)
    return InventoryAgent(name=name, spec_path=target.resolve(), spec=spec, placement=placement,
                          placement_from=source, line=doc.line_of(loc))


def read_spec(target):
    """Load one agent spec (the only place the inventory reads specs)."""
    return parse_spec(target)


def _check_placement(doc, loc, placement, source, hosts, groups):
    where = loc + ("placement",) if source == "inventory" else loc + ("spec",)
    origin = "" if source == "inventory" else " (the spec's placement)"
    for index, name in enumerate(placement.hosts):
        field = where + ("hosts", index) if source == "inventory" else where
        if name not in hosts:
            raise doc.error(field, "no host %r in hosts%s%s" % (name, did_you_mean(name, hosts), origin),
                            InventoryError)
        if hosts[name].jump_only:
            raise doc.error(field, "%s is jump_only and never runs agents%s (pin another host)" % (name, origin),
                            InventoryError)
    if placement.group is not None and placement.group not in groups:
        field = where + ("group",) if source == "inventory" else where
        raise doc.error(field, "no group %r in groups%s%s" % (placement.group, did_you_mean(placement.group, groups),
                                                               origin), InventoryError)



def check_agent_names(doc, agents):
    owner = {}
    for index, agent in enumerate(agents):
        for copy in agent.copies():
            if copy in owner:
                first = owner[copy]
                what = "agent name %r" % copy if copy == agent.name and copy == agents[first].name \
                    else "copy name %r (of %s)" % (copy, agent.name)
                raise doc.error(("agents", index, "spec"), "%s is already used by agents[%d] (line %d) (give one "
                                "spec another metadata.name)" % (what, first, agents[first].line), InventoryError)
            owner[copy] = index
