"""What placement reads: each agent's ``Rule``, the inventory's ``HostSlot``s, what each host
reported (``HostState``), and the agents wanted (``DesiredAgent``); all frozen values that
compare by content. ``replica_names`` names an agent's copies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import FrozenSet, List, Mapping, Optional, Tuple

from sac_node.protocol.errors import PlacementError


def _pairs(mapping) -> Tuple[Tuple[str, str], ...]:
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    return tuple(sorted((str(key), str(value)) for key, value in items))


@dataclass(frozen=True)
class Rule:
    """Where an agent may run and how many copies it has.

    ``hosts``, ``group`` and ``labels`` are conditions that must all hold (none
    given: any host). ``labels`` may be given as a mapping; it is stored as
    sorted pairs so rules compare and hash by value.
    """

    hosts: Tuple[str, ...] = ()
    group: Optional[str] = None
    labels: Tuple[Tuple[str, str], ...] = ()
    replicas: int = 1
    per_host: bool = False
    singleton: bool = False
    sticky: bool = True

    def __post_init__(self):
        object.__setattr__(self, "hosts", tuple(sorted(set(self.hosts))))
        object.__setattr__(self, "labels", _pairs(self.labels))
        if self.replicas < 1:
            raise PlacementError("placement.replicas must be at least 1, got %r" % (self.replicas,))
        if self.per_host and (self.replicas != 1 or self.singleton):
            raise PlacementError("placement.per_host runs one copy on each matching host; "
                                 "it cannot be combined with replicas or singleton")

    def matches(self, host: "HostSlot") -> bool:
        """True when ``host`` meets every condition (``jump_only`` is checked separately)."""
        if self.hosts and host.name not in self.hosts:
            return False
        if self.group is not None and self.group not in host.groups:
            return False
        labels = dict(host.labels)
        return all(labels.get(key) == value for key, value in self.labels)

    def describe(self) -> str:
        """The conditions in words: ``pinned (hosts: [login1]), labels {site: hpc}`` or ``any host``."""
        parts = []
        if self.hosts:
            parts.append("pinned (hosts: [%s])" % ", ".join(self.hosts))
        if self.group is not None:
            parts.append("group %s" % self.group)
        if self.labels:
            parts.append("labels {%s}" % ", ".join("%s: %s" % pair for pair in self.labels))
        return ", ".join(parts) or "any host"


@dataclass(frozen=True)
class HostSlot:
    """What the inventory says about a host, as placement needs it."""

    name: str
    labels: Tuple[Tuple[str, str], ...] = ()
    capacity: Optional[int] = None
    groups: FrozenSet[str] = frozenset()
    jump_only: bool = False

    def __post_init__(self):
        object.__setattr__(self, "labels", _pairs(self.labels))
        object.__setattr__(self, "groups", frozenset(self.groups))


@dataclass(frozen=True)
class HostState:
    """What a host reported. ``agents`` are the names of the agent copies live there.

    For a host that did not answer, ``agents`` is what was last seen there, or
    None when nothing is known; it is never read as "no agents".
    """

    name: str
    reachable: bool
    agents: Optional[Tuple[str, ...]] = ()
    reason: str = ""

    def __post_init__(self):
        if self.agents is not None:
            object.__setattr__(self, "agents", tuple(sorted(set(self.agents))))


@dataclass(frozen=True)
class DesiredAgent:
    """An agent the inventory wants, by name, with its placement rule."""

    name: str
    rule: Rule = field(default_factory=Rule)


def replica_names(name: str, replicas: int) -> List[str]:
    """The copy names of an agent: ``[name]`` for one replica, else ``name-0 .. name-(N-1)``."""
    if replicas == 1:
        return [name]
    return ["%s-%d" % (name, index) for index in range(replicas)]
