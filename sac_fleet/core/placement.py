"""Placement: which agent copy runs on which host, as a pure function.

``place(desired, observed, hosts)`` reads an immutable snapshot -- the agents
the inventory wants (``DesiredAgent``), the hosts with their labels, groups and
capacity (``HostSlot``), and what each host reported (``HostState``) -- and
returns a ``Plan`` whose every action carries a one-line reason. It does no
I/O; ``sac_fleet.control`` observes the hosts and applies the plan. The input
values live in placement_inputs.py, the words of the reasons in
placement_reasons.py; the input values are importable from here.

The rules, in the order they are applied (docs/inventory.md has examples):

1. A copy is placed only on a host that matches every condition of its rule
   (``hosts``, ``group``, ``labels``), is not ``jump_only``, answered, and has a
   free slot (``capacity`` counts every agent on the host and is never exceeded).
2. Copies that run where they no longer may run are stopped; extra copies of
   one name are stopped (the one on the first host by name stays); agents no
   longer desired are ``prune`` candidates (stopped only with ``prune=True``).
3. ``per_host`` agents get one copy on each matching host.
4. A sticky agent (the default) that runs on a matching host stays there.
   A ``singleton`` is never started while it runs, or may run, on a host that
   did not answer, unless ``reschedule=True``.
5. Missing copies go to the matching host with the fewest copies of the same
   agent, then the fewest agents, then the first name. Sticky agents are
   placed before non-sticky ones, which are re-placed on every run (and so
   move when a better host appears, or stop when sticky agents took the
   last slot). That order makes planning idempotent:
   applying a plan and planning again yields no starts and no stops.

Copies are named ``name`` when ``replicas`` is 1 and ``name-0 .. name-(N-1)``
otherwise; ``per_host`` copies keep ``name`` on each host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from sac_fleet.core.plan import Action, ActionKind, Plan
from sac_node.protocol.errors import PlacementError

from .placement_inputs import DesiredAgent, HostSlot, HostState, Rule, replica_names
from .placement_reasons import kept, listed, no_longer, slots, unreachable_phrase, why_unplaced

__all__ = ["DesiredAgent", "HostSlot", "HostState", "Rule", "replica_names", "place"]


def place(desired: Sequence[DesiredAgent], observed: Sequence[HostState], hosts: Sequence[HostSlot],
          *, reschedule: bool = False, prune: bool = False) -> Plan:
    """Decide where every desired agent copy runs; see the module docstring for the rules.

    ``observed`` may omit hosts: those count as unreachable with nothing known.
    ``reschedule`` lets a singleton start elsewhere while its host is
    unreachable; ``prune`` turns prune candidates into stops. The result
    depends only on the inputs' contents, not on their order.
    """
    return _Planner(desired, observed, hosts, reschedule, prune).run()


@dataclass
class _Pending:
    """A copy still to be placed, with where it runs now (non-sticky) and a note for its reason."""

    name: str
    agent: DesiredAgent
    current: Optional[str] = None
    note: str = ""


class _Planner:
    """One placement run; mutable only inside ``place``."""

    def __init__(self, desired, observed, hosts, reschedule, prune):
        self.reschedule = reschedule
        self.prune = prune
        self.hosts = _unique(hosts, "host")
        self.desired = _unique(desired, "agent")
        reported = {state.name: state for state in observed}
        self.states = {name: reported.get(name) or HostState(name, False, None, "not observed")
                       for name in self.hosts}
        self.running = {name: set(state.agents or ()) for name, state in self.states.items() if state.reachable}
        self.load = {name: len(agents) for name, agents in self.running.items()}
        self.copies: Dict[Tuple[str, str], int] = {}
        self.actions: List[Action] = []

    # -- the run -----------------------------------------------------------

    def run(self) -> Plan:
        names = self._copy_names()
        for host, agents in self.running.items():
            for name in agents:
                if name in names:
                    key = (names[name].name, host)
                    self.copies[key] = self.copies.get(key, 0) + 1
        self._settle_unwanted(names)
        per_host, sticky, loose = [], [], []
        for agent in self.desired.values():
            if agent.rule.per_host:
                per_host.extend(self._settle_per_host(agent))
                continue
            for name in replica_names(agent.name, agent.rule.replicas):
                pending = self._settle_copy(name, agent)
                if pending is not None:
                    (sticky if agent.rule.sticky else loose).append(pending)
        for agent, host in per_host:
            self._start_per_host(agent, host)
        for pending in sticky + loose:
            self._place(pending)
        return Plan.of(self.actions)

    def _copy_names(self) -> Dict[str, DesiredAgent]:
        owner: Dict[str, DesiredAgent] = {}
        for agent in self.desired.values():
            for name in replica_names(agent.name, agent.rule.replicas):
                if name in owner:
                    raise PlacementError("agent %s: copy name %s is also used by agent %s (rename one)"
                                         % (agent.name, name, owner[name].name))
                owner[name] = agent
        return owner

    # -- what runs now -------------------------------------------------------

    def _settle_unwanted(self, names):
        for host in sorted(self.running):
            for name in sorted(self.running[host]):
                if name in names:
                    continue
                if self.prune:
                    self._release(name, host, None)
                    self._act(ActionKind.STOP, name, host, "no longer in the inventory (pruned)")
                else:
                    self._act(ActionKind.PRUNE, name, host, "no longer in the inventory; stopped only with --prune")

    def _settle_per_host(self, agent):
        """Keep, stop or report the per-host copies; return the hosts still lacking one."""
        missing = []
        for host_name, host in self.hosts.items():
            eligible = _eligible(agent.rule, host)
            state = self.states[host_name]
            if not state.reachable:
                if eligible:
                    self._act(ActionKind.UNREACHABLE, agent.name, host_name,
                              "per_host copy; %s" % unreachable_phrase(state), agent)
            elif agent.name in self.running[host_name]:
                if eligible:
                    self._act(ActionKind.KEEP, agent.name, host_name,
                              "per_host copy; already runs here, %s still matches" % agent.rule.describe(), agent)
                else:
                    self._release(agent.name, host_name, agent)
                    self._act(ActionKind.STOP, agent.name, host_name, no_longer(agent.rule, host), agent)
            elif eligible:
                missing.append((agent, host_name))
        return missing

    def _settle_copy(self, name, agent) -> Optional[_Pending]:
        """Keep, stop or hold one copy; return it as pending when it still needs a host."""
        rule = agent.rule
        running_on = [host for host in sorted(self.running) if name in self.running[host]]
        good = [host for host in running_on if _eligible(rule, self.hosts[host])]
        for host in running_on:
            if host not in good:
                self._release(name, host, agent)
                self._act(ActionKind.STOP, name, host, no_longer(rule, self.hosts[host]), agent)
        for host in good[1:]:
            self._release(name, host, agent)
            self._act(ActionKind.STOP, name, host, "extra copy; %s keeps the one that stays" % good[0], agent)
        if good and rule.sticky:
            self._act(ActionKind.KEEP, name, good[0], kept(rule), agent)
            return None
        if good:
            self._release(name, good[0], agent)
            return _Pending(name, agent, current=good[0])
        # A copy live on a host that answered cannot also be live on one that did not.
        seen, maybe = self._unreachable_homes(name, rule) if not running_on else ([], [])
        if rule.singleton and (seen or maybe) and not self.reschedule:
            self._hold_singleton(name, agent, seen, maybe)
            return None
        note = ""
        if seen:
            note = "moved from unreachable %s" % seen[0]
            if rule.singleton:
                note += " (--reschedule)"
        elif maybe and rule.singleton:
            note = "may also run on unreachable %s (--reschedule)" % listed(maybe)
        elif running_on:
            note = "moved from %s" % running_on[0]
        return _Pending(name, agent, note=note)

    def _unreachable_homes(self, name, rule):
        """Unreachable hosts where ``name`` was last seen, and matching ones whose agents are unknown."""
        seen, maybe = [], []
        for host, state in sorted(self.states.items()):
            if state.reachable:
                continue
            if state.agents is not None and name in state.agents:
                seen.append(host)
            elif state.agents is None and _eligible(rule, self.hosts[host]):
                maybe.append(host)
        return seen, maybe

    def _hold_singleton(self, name, agent, seen, maybe):
        host = (seen or maybe)[0]
        where = "last seen here" if seen else "may still run here"
        others = (seen + maybe)[1:]
        extra = " (also %s)" % listed(others) if others else ""
        self._act(ActionKind.UNREACHABLE, name, host,
                  "singleton %s; %s%s; not started elsewhere (pass --reschedule to move it)"
                  % (where, unreachable_phrase(self.states[host]), extra), agent)

    # -- starting copies -----------------------------------------------------

    def _start_per_host(self, agent, host):
        if self._has_room(host):
            self._take(agent.name, host, agent)
            self._act(ActionKind.START, agent.name, host,
                      "per_host (%s), %s" % (agent.rule.describe(), self._slots(host)), agent)
        else:
            self._act(ActionKind.UNPLACED, agent.name, None,
                      "per_host copy for %s: host is full (%s)" % (host, self._slots(host)), agent)

    def _place(self, pending: _Pending):
        name, agent, rule = pending.name, pending.agent, pending.agent.rule
        candidates = [host for host, slot in self.hosts.items()
                      if _eligible(rule, slot) and host in self.running and self._has_room(host)]
        if not candidates:
            if pending.current is not None:
                self._act(ActionKind.STOP, name, pending.current,
                          "no slot left for it (not sticky: sticky and per_host agents are placed first)", agent)
            reason = why_unplaced(rule, self.hosts.values(), self.states, self.load)
            self._act(ActionKind.UNPLACED, name, None, reason, agent)
            return
        host = min(candidates, key=lambda h: (self.copies.get((agent.name, h), 0), self.load[h], h))
        self._take(name, host, agent)
        if host == pending.current:
            self._act(ActionKind.KEEP, name, host, "not sticky, but this is still the best host (%s)"
                      % self._slots(host), agent)
            return
        if pending.current is not None:
            self._act(ActionKind.STOP, name, pending.current,
                      "moving to %s (not sticky: it follows the least-loaded matching host)" % host, agent)
            pending.note = "moved from %s (not sticky)" % pending.current
        parts = [rule.describe()]
        if len(candidates) > 1:
            how = "spread over" if rule.replicas > 1 else "least loaded of"
            parts.append("%s %d matching hosts" % (how, len(candidates)))
        parts.append(self._slots(host))
        if pending.note:
            parts.append(pending.note)
        self._act(ActionKind.START, name, host, ", ".join(parts), agent)

    # -- bookkeeping -----------------------------------------------------------

    def _has_room(self, host) -> bool:
        capacity = self.hosts[host].capacity
        return capacity is None or self.load[host] < capacity

    def _take(self, name, host, agent):
        self.running[host].add(name)
        self.load[host] += 1
        key = (agent.name, host)
        self.copies[key] = self.copies.get(key, 0) + 1

    def _release(self, name, host, agent):
        self.running[host].discard(name)
        self.load[host] -= 1
        if agent is not None:
            self.copies[(agent.name, host)] -= 1

    def _slots(self, host) -> str:
        return slots(self.load[host], self.hosts[host].capacity)

    def _act(self, kind, name, host, reason, agent=None):
        self.actions.append(Action(kind, name, host, reason, agent.name if agent is not None else name))


def _unique(items, what):
    out = {}
    for item in sorted(items, key=lambda item: item.name):
        if item.name in out:
            raise PlacementError("%s %s is listed twice (keep one)" % (what, item.name))
        out[item.name] = item
    return out


def _eligible(rule: Rule, host: HostSlot) -> bool:
    return not host.jump_only and rule.matches(host)

