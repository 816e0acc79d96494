"""Who may talk to whom: the spec's `comms`, and the checks of an agent-to-agent message (pure).

An entry of `comms.ask`, `comms.tell` or `comms.accept_from` is a selector: an agent's
name, `*` (every agent), or `key=value` (agents whose label `key` is `value`). Both sides
must agree: the caller's `ask` (or `tell`) names the callee, and the callee's
`accept_from` names the caller. A chain of asks (A asks B asks C ...) carries its depth
with each turn; one deeper than the caller's `max_depth` is refused. `RateLimit` counts
one agent's messages in a sliding minute. Each refusal says why, in words the calling
agent (and its user) can act on.
"""

import collections
import re

from .protocol.errors import CommsRefused

ASK, TELL = "ask", "tell"
KINDS = (ASK, TELL)
MAX_DEPTH = 3
RATE_PER_MIN = 30
SELECTOR_RE = re.compile(r"\*|[a-z0-9][a-z0-9-]{0,62}|[A-Za-z0-9][A-Za-z0-9._/-]{0,62}=[^=\s][^\s]*")


class Comms(collections.namedtuple("Comms", "ask tell accept_from max_depth rate_per_min description",
                                   defaults=((), (), (), MAX_DEPTH, RATE_PER_MIN, ""))):
    """`comms`: whom an agent may ask or tell, whom it accepts messages from, and its limits."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, comms):
        comms = comms if isinstance(comms, dict) else {}
        return cls(tuple(comms.get("ask") or ()), tuple(comms.get("tell") or ()),
                   tuple(comms.get("accept_from") or ()), int(comms.get("max_depth") or MAX_DEPTH),
                   int(comms.get("rate_per_min") or RATE_PER_MIN), str(comms.get("description") or ""))

    @property
    def talks(self):
        """True when the agent may send messages: it then gets the `sac` MCP server."""
        return bool(self.ask or self.tell)


def matches(selector, name, labels):
    """Does `selector` (a name, `*` or `key=value`) pick the agent `name` with `labels`?"""
    if selector == "*":
        return True
    if "=" in selector:
        key, value = selector.split("=", 1)
        return (labels or {}).get(key) == value
    return selector == name


def any_matches(selectors, name, labels):
    return any(matches(s, name, labels) for s in selectors)


def may_reach(comms, kind):
    """The selectors a `kind` message (ask | tell) may go to: a tell may also go where an ask may."""
    return comms.ask if kind == ASK else comms.tell + comms.ask


def check_send(caller, comms, kind, callee, callee_labels, depth):
    """Raise CommsRefused unless `caller` (with `comms`) may send a `kind` message to `callee` at `depth`."""
    if kind not in KINDS:
        raise CommsRefused("unknown kind of message %r (ask or tell)" % (kind,))
    if callee == caller:
        raise CommsRefused("agent %s may not %s itself" % (caller, kind))
    if not any_matches(may_reach(comms, kind), callee, callee_labels):
        listed = ", ".join(may_reach(comms, kind)) or "nobody"
        raise CommsRefused("agent %s may not %s %s: its spec's comms.%s lists %s" % (caller, kind, callee, kind, listed))
    if depth > comms.max_depth:
        raise CommsRefused("a chain of asks %d deep is refused: agent %s's comms.max_depth is %d (an agent asked by "
                           "an agent asked by ...; break the loop or raise max_depth)" % (depth, caller, comms.max_depth))


def check_accept(callee, comms, caller, caller_labels):
    """Raise CommsRefused unless `callee` (with `comms`) accepts messages from `caller`."""
    if not any_matches(comms.accept_from, caller, caller_labels):
        raise CommsRefused("agent %s does not accept messages from %s: its spec's comms.accept_from lists %s"
                           % (callee, caller, ", ".join(comms.accept_from) or "nobody"))


def visible(comms, agents):
    """The entries of `agents` ({name, labels, ...}) that an agent with `comms` may ask or tell."""
    return [a for a in agents if any_matches(comms.ask + comms.tell, a["name"], a.get("labels"))]


class RateLimit:
    """At most `per_min` messages in any 60 s; `take()` raises CommsRefused beyond that."""

    def __init__(self, per_min, clock):
        self.per_min, self.clock = per_min, clock
        self._sent = collections.deque()

    def take(self, agent):
        now = self.clock()
        while self._sent and self._sent[0] <= now - 60:
            self._sent.popleft()
        if len(self._sent) >= self.per_min:
            wait = 60 - (now - self._sent[0])
            raise CommsRefused("agent %s sent %d messages in the last minute (comms.rate_per_min is %d); wait %.0f s"
                               % (agent, len(self._sent), self.per_min, max(1, wait)))
        self._sent.append(now)
