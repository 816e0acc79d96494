"""The Plan: what placement decided, as plain values, each with a one-line reason.

A plan is a sorted tuple of ``Action`` values. Its order is canonical (kind,
then agent, then host) so the same decisions always print the same way, and it
is also the order to apply them in: every ``fence`` and ``stop`` comes before
every ``start``, which frees capacity and keeps a moved singleton from ever
running twice; a host's ``secrets`` are written, and a node whose settings changed restarted
(``restart node on h2: env_preamble changed``), before the agents that read them start.

    reviewer -> login1: pinned (hosts: [login1]), 3/8 slots used
    lead: not placed: no reachable host matches labels {site: hpc} (login1 unreachable)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple


class ActionKind(str, enum.Enum):
    """What to do with one agent copy; the value is the word shown to the user."""

    FENCE = "fence"              # a stale copy of a singleton that runs twice: stop it, the newest copy stays
    STOP = "stop"                # stop this copy on this host
    SECRETS = "secrets"          # write the host's secrets.env (``agent`` is ""): before any start
    RESTART_NODE = "restart-node"  # a host's settings changed: a fresh node daemon (``agent`` is ""); agents run on
    START = "start"              # start this copy on this host
    KEEP = "keep"                # it runs here and stays: nothing to do
    PRUNE = "prune"              # runs here but is no longer desired; stopped only on request
    UNPLACED = "unplaced"        # desired, but no host can take it now
    UNREACHABLE = "unreachable"  # it is (or may be) on a host that did not answer; left alone


_ORDER = {kind: index for index, kind in enumerate(ActionKind)}


@dataclass(frozen=True)
class Action:
    """One decision about one agent copy.

    ``agent`` is the name the copy has on its host (``reviewer``, or
    ``reviewer-1`` for a replica); ``base`` is the agent's name in the inventory.
    ``host`` is None only for ``unplaced``. ``reason`` is one line in words.
    A ``fence`` names the copy it yields to: ``by_host`` and ``by_generation``
    (the fencing token the host checks before it stops this copy).
    """

    kind: ActionKind
    agent: str
    host: Optional[str]
    reason: str
    base: str = ""
    by_host: Optional[str] = None
    by_generation: Optional[int] = None

    def sort_key(self):
        return (_ORDER[self.kind], self.agent, self.host or "")

    @property
    def changes(self) -> bool:
        """True for the actions that change a host (fence, stop, secrets and start)."""
        return self.kind in (ActionKind.FENCE, ActionKind.START, ActionKind.STOP, ActionKind.SECRETS,
                             ActionKind.RESTART_NODE)

    def describe(self) -> str:
        """The decision as one line, e.g. ``reviewer -> login1: pinned (hosts: [login1]), 3/8 slots used``."""
        if self.kind is ActionKind.START:
            return "%s -> %s: %s" % (self.agent, self.host, self.reason)
        if self.kind is ActionKind.UNPLACED:
            return "%s: not placed: %s" % (self.agent, self.reason)
        if self.kind is ActionKind.SECRETS:
            return "secrets.env on %s: %s" % (self.host, self.reason)
        if self.kind is ActionKind.RESTART_NODE:
            return "restart node on %s: %s" % (self.host, self.reason)
        return "%s on %s: %s: %s" % (self.agent, self.host, self.kind.value, self.reason)

    def to_dict(self) -> dict:
        """A JSON-ready form for ``--json`` output."""
        data = {"kind": self.kind.value, "agent": self.agent, "base": self.base or self.agent,
                "host": self.host, "reason": self.reason, "line": self.describe()}
        if self.kind is ActionKind.FENCE:
            data.update(by_host=self.by_host, by_generation=self.by_generation)
        return data


@dataclass(frozen=True)
class Plan:
    """The decisions of one placement run, in canonical order (see the module docstring)."""

    actions: Tuple[Action, ...] = ()

    @classmethod
    def of(cls, actions: Iterable[Action]) -> "Plan":
        """A plan holding ``actions`` in canonical order."""
        return cls(tuple(sorted(actions, key=Action.sort_key)))

    def of_kind(self, kind: ActionKind) -> Tuple[Action, ...]:
        """The actions of one kind, in plan order."""
        return tuple(action for action in self.actions if action.kind is kind)

    @property
    def starts(self) -> Tuple[Action, ...]:
        return self.of_kind(ActionKind.START)

    @property
    def fences(self) -> Tuple[Action, ...]:
        return self.of_kind(ActionKind.FENCE)

    @property
    def stops(self) -> Tuple[Action, ...]:
        return self.of_kind(ActionKind.STOP)

    @property
    def keeps(self) -> Tuple[Action, ...]:
        return self.of_kind(ActionKind.KEEP)

    @property
    def prunes(self) -> Tuple[Action, ...]:
        return self.of_kind(ActionKind.PRUNE)

    @property
    def unplaced(self) -> Tuple[Action, ...]:
        return self.of_kind(ActionKind.UNPLACED)

    @property
    def unreachable(self) -> Tuple[Action, ...]:
        return self.of_kind(ActionKind.UNREACHABLE)

    @property
    def secrets(self) -> Tuple[Action, ...]:
        return self.of_kind(ActionKind.SECRETS)

    @property
    def node_restarts(self) -> Tuple[Action, ...]:
        return self.of_kind(ActionKind.RESTART_NODE)

    @property
    def changes(self) -> Tuple[Action, ...]:
        """The fences, the stops, the secrets, the node restarts, then the starts: what applying this plan
        does to hosts."""
        return tuple(action for action in self.actions if action.changes)

    @property
    def is_noop(self) -> bool:
        """True when applying the plan would start and stop nothing."""
        return not self.changes

    @property
    def complete(self) -> bool:
        """True when every desired copy is placed and every host answered for its copies."""
        return not self.unplaced and not self.unreachable

    def for_host(self, host: str) -> Tuple[Action, ...]:
        """The actions concerning one host, in plan order."""
        return tuple(action for action in self.actions if action.host == host)

    def lines(self) -> list:
        """One line per action, in plan order (what ``sac fleet plan`` prints)."""
        return [action.describe() for action in self.actions]

    def summary(self) -> str:
        """E.g. ``2 to start, 1 to stop, 1 to fence, 4 kept, 1 not placed``, or ``nothing to change, 4 kept``."""
        parts = []
        for kind, word in ((ActionKind.START, "to start"), (ActionKind.STOP, "to stop"), (ActionKind.FENCE, "to fence"),
                           (ActionKind.SECRETS, "secrets.env to write"), (ActionKind.RESTART_NODE, "nodes to restart"),
                           (ActionKind.KEEP, "kept"), (ActionKind.PRUNE, "to prune (with --prune)"),
                           (ActionKind.UNPLACED, "not placed"), (ActionKind.UNREACHABLE, "on unreachable hosts")):
            count = len(self.of_kind(kind))
            if count:
                parts.append("%d %s" % (count, word))
        if self.is_noop:
            parts.insert(0, "nothing to change")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        """A JSON-ready form for ``--json`` output."""
        return {"summary": self.summary(), "noop": self.is_noop,
                "actions": [action.to_dict() for action in self.actions]}
