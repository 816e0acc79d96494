"""The inventory's agents: each entry's spec loaded, its placement chosen and checked.

The placement in force is the inventory entry's, else the spec's; pinned hosts
and groups must exist and hosts must not be ``jump_only``; every copy name
(``name``, or ``name-0 ..`` for replicas) is used once in the whole inventory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sac_node.protocol.errors import InventoryError

from .placement import Rule, replica_names
from .spec import Placement, parse_spec
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

    def copies(self) -> list:
        """The names its copies have on hosts (``name``, or ``name-0 ..`` for replicas)."""
        return replica_names(self.name, self.placement.replicas)


def resolve_agent(doc, model, index, hosts, groups, load_specs) -> InventoryAgent:
    entry = model.agents[index]
    loc = ("agents", index)
    target = (Path(doc.path).parent / Path(entry.spec).expanduser())
    if not target.exists():
        raise doc.error(loc + ("spec",), "%s does not exist (a spec file or agent directory, relative to %s)"
                        % (target, Path(doc.path).name), InventoryError)
    spec = read_spec(target) if load_specs else None
    name = spec.name if spec is not None else (target.parent.name if target.is_file() else target.name)
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
