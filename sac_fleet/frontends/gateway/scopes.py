"""What a gateway token may do: its scopes, parsed and matched. Pure: no I/O, no aiohttp.

    read              every agent's status, the lists, transcripts and turns (nothing that acts)
    send:<selector>   send turns to the agents the selector picks, and follow them: their status,
                      transcripts, turns and A2A cards, and cancelling their turns
    admin             everything

A selector is an agent's name, `*` (every agent), or labels `key=value[,key=value...]`
that must all hold, as an inventory's placement labels. A token holds any number of
scopes; it may do what any one of them allows.

Actions a route asks for: READ (fleet-wide reading: status, lists), FOLLOW (reading one
agent's things), SEND (acting on one agent: a turn, a cancel) and ADMIN.
"""

import re
from dataclasses import dataclass
from typing import Tuple

from sac_node.protocol.errors import ConfigError
from sac_node.protocol.messages import NAME_RE

READ, FOLLOW, SEND, ADMIN = "read", "follow", "send", "admin"
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62})$")
FORMS = "read, admin, or send:<agent name | key=value[,key=value] | *>"


class ScopeError(ConfigError):
    """A scope that is not one of FORMS."""

    code = "scope_error"


@dataclass(frozen=True)
class Selector:
    """The agents a `send:` scope picks: one name, every agent (`*`), or all of some labels."""

    name: str = ""
    labels: Tuple[Tuple[str, str], ...] = ()

    def matches(self, agent, labels):
        if self.name:
            return self.name in ("*", agent)
        return all(labels.get(key) == value for key, value in self.labels)

    def __str__(self):
        return self.name or ",".join("%s=%s" % pair for pair in self.labels)


def parse_selector(text, scope):
    """`lead`, `*` or `role=worker,site=hpc` -> Selector; ScopeError naming `scope` otherwise."""
    if text == "*" or NAME_RE.match(text):
        return Selector(name=text)
    pairs = []
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq or not LABEL_KEY_RE.match(key) or not value or "=" in value:
            raise ScopeError("scope %r: %r is neither an agent name nor key=value labels; use %s"
                             % (scope, text, FORMS))
        pairs.append((key, value))
    return Selector(labels=tuple(sorted(pairs)))


@dataclass(frozen=True)
class Grant:
    """The scopes of one token, parsed: `Grant.parse(["read", "send:role=worker"])`."""

    admin: bool = False
    read: bool = False
    send: Tuple[Selector, ...] = ()

    @classmethod
    def parse(cls, scopes):
        admin, read, send = False, False, []
        for scope in scopes:
            kind, colon, rest = str(scope).partition(":")
            if scope == ADMIN:
                admin = True
            elif scope == READ:
                read = True
            elif kind == SEND and colon and rest:
                send.append(parse_selector(rest, scope))
            else:
                raise ScopeError("unknown scope %r; a scope is %s" % (scope, FORMS))
        return cls(admin, read, tuple(send))

    def allows(self, action, agent=None, labels=None):
        """Whether this grant allows `action` (on `agent`, whose labels are `labels` when known)."""
        if self.admin:
            return True
        if action == READ:
            return self.read
        if action == FOLLOW and self.read:
            return True
        if action in (FOLLOW, SEND):
            return any(s.matches(agent, labels or {}) for s in self.send)
        return False

    def wants_labels(self, action):
        """Whether the agent's labels could change the answer of `allows` (so they are worth fetching)."""
        return action in (FOLLOW, SEND) and any(s.labels for s in self.send)


def needed(action, agent=None):
    """The scope a refused request needed, in words for its error message."""
    if action == SEND:
        return "send:%s (or a send: selector matching its labels)" % agent
    if action == FOLLOW:
        return "read (or send:%s)" % agent
    return action
