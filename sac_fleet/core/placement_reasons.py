"""The words of a plan: the one-line reason each placement action carries.

Kept apart from the algorithm (placement.py) so the reader of either sees one thing;
``Rule.describe`` (placement_inputs.py) words a rule's conditions.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional

from .placement_inputs import HostSlot, HostState, Rule

_MAX_LISTED = 3


def kept(rule: Rule) -> str:
    """Why a copy stays where it runs."""
    if not rule.hosts and rule.group is None and not rule.labels:
        return "already runs here"
    return "already runs here and %s still matches" % rule.describe()



def no_longer(rule: Rule, host: HostSlot) -> str:
    """Why a copy is stopped on a host it may no longer run on."""
    if host.jump_only:
        return "host is jump_only and never runs agents"
    return "host no longer matches %s" % rule.describe()



def listed(names) -> str:
    """Names joined by commas, the first few only (``a, b, c and 2 more``)."""
    names = list(names)
    shown = ", ".join(names[:_MAX_LISTED])
    if len(names) > _MAX_LISTED:
        shown += " and %d more" % (len(names) - _MAX_LISTED)
    return shown



def unreachable_phrase(state: HostState) -> str:
    return "host unreachable (%s)" % state.reason if state.reason else "host unreachable"



def down_phrase(down, states) -> str:
    if len(down) == 1 and states[down[0]].reason:
        return "%s unreachable: %s" % (down[0], states[down[0]].reason)
    return "%s unreachable" % listed(down)


def fill(load: int, capacity: Optional[int]) -> str:
    """How full a host is: ``2/4``, or ``2`` without a capacity."""
    return "%d/%d" % (load, capacity) if capacity is not None else "%d" % load


def slots(load: int, capacity: Optional[int]) -> str:
    """How full a host is, in words: ``2/4 slots used`` or ``2 agents, no capacity limit``."""
    if capacity is None:
        return "%d agent%s, no capacity limit" % (load, "" if load == 1 else "s")
    return "%s slots used" % fill(load, capacity)


def why_unplaced(rule: Rule, hosts: Iterable[HostSlot], states: Mapping[str, HostState],
                 load: Mapping[str, int]) -> str:
    """Why no host takes a copy of ``rule``; ``load`` holds the agents of every reachable host."""
    matching = [slot for slot in hosts if rule.matches(slot)]
    if not matching:
        return "no host in the inventory matches %s" % rule.describe()
    usable = [slot for slot in matching if not slot.jump_only]
    if not usable:
        return "only jump_only hosts match %s (%s)" % (rule.describe(), listed([s.name for s in matching]))
    down = [slot.name for slot in usable if slot.name not in load]
    full = ["%s %s" % (slot.name, fill(load[slot.name], slot.capacity)) for slot in usable if slot.name in load]
    if not full:
        return "no reachable host matches %s (%s)" % (rule.describe(), down_phrase(down, states))
    text = "every reachable host matching %s is full (%s)" % (rule.describe(), listed(full))
    if down:
        text += "; %s" % down_phrase(down, states)
    return text
