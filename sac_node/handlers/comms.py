"""comms.* on the node daemon: messages between agents (docs/agents-talk.md).

An agent's shim (agent_talk.py) asks here: `comms.agents`, `comms.send`, `comms.turn`.
A message for an agent of this host goes straight to its shim, as a turn journalled with
`from` and `depth`; one for an agent elsewhere waits in the outbox (outbox.py) for a head.
A head calls `comms.drain` (the queued messages, and the fleet's agents it knows, which
this node keeps as its directory), `comms.deliver` on the callee's node, and
`comms.done` back here. Both sides are checked where their spec is: the caller's `ask` or
`tell` on the caller's node, the callee's `accept_from` on the callee's.
"""

from .. import comms as policy
from ..node_spec import NodeSpec
from ..outbox import Outbox
from ..protocol import messages as m
from ..protocol.errors import CommsRefused, TurnNotFound
from . import turns
from .agents import _agent, _load_spec, _status

DRAIN_WAIT_S = 20.0


class Post:
    """The node's part in messages between agents: its outbox and the fleet's agents a head told it of."""

    def __init__(self, node):
        self.outbox = Outbox(node.state.root, node.clock)
        self.directory = {}  # name -> {name, labels, state, description}, of agents on other hosts


def post_of(node):
    if node.post is None:
        node.post = Post(node)
    return node.post


def _spec(node, name):
    return NodeSpec.from_wire(_load_spec(_agent(node, name)))


async def agents(node, peer, p):
    """comms.agents {from} -> [{name, labels, state, description}]: whom `from` may ask or tell (never hosts)"""
    caller = _spec(node, p["from"])
    known = dict(post_of(node).directory)
    for name in node.state.agent_names():
        status = await _status(node, name)
        known[name] = {"name": name, "labels": status.get("labels") or {}, "state": status.get("state"),
                       "description": status.get("description") or _spec(node, name).comms.description}
    known.pop(caller.name, None)
    return policy.visible(caller.comms, sorted(known.values(), key=lambda a: a["name"]))


async def send(node, peer, p):
    """comms.send {from, to, kind, text, depth, wait_s, key} -> {turn}

    kind ask: the callee's turn once it ends, or as it stands after wait_s; kind tell: once accepted
    (or queued in the outbox: then {turn: {id: <key>, status: queued}})."""
    caller, to, kind, depth = _spec(node, p["from"]), p["to"], p["kind"], int(p.get("depth") or 1)
    if m.NAME_RE.fullmatch(to) and node.state.agent(to).exists():
        callee = _spec(node, to)
        policy.check_send(caller.name, caller.comms, kind, to, callee.labels, depth)
        return await deliver(node, peer, dict(p, from_labels=caller.labels, depth=depth))
    entry = post_of(node).directory.get(to)
    if entry is None:
        alone = "" if post_of(node).outbox.head_attached() else (
            " that a head told this host of (none is connected now: `sac fleet serve`, or `sac fleet send` while it runs)")
        raise CommsRefused("agent %s may not %s %s: no agent of that name in the fleet%s (see the `agents` tool)"
                           % (caller.name, kind, to, alone))
    policy.check_send(caller.name, caller.comms, kind, to, entry.get("labels"), depth)
    return await _post(node, caller, p, depth)


async def _post(node, caller, p, depth):
    """A message for another host: into the outbox; an ask waits for its outcome there."""
    outbox = post_of(node).outbox
    if p["kind"] == policy.ASK and not outbox.head_attached():
        raise CommsRefused("agent %s runs on another host and no head is connected to this one, so the ask cannot "
                           "reach it now (a head carries messages between hosts: `sac fleet serve`, or `sac fleet send` "
                           "while it runs); a tell would wait for it" % p["to"])
    message = {k: p.get(k) for k in ("from", "to", "kind", "text", "key")}
    mid = outbox.put(dict(message, depth=depth, from_labels=caller.labels))
    outcome = await outbox.outcome(mid, float(p.get("wait_s") or 0)) if p["kind"] == policy.ASK else None
    return {"turn": _outcome_turn(mid, outcome)}


def _outcome_turn(mid, outcome):
    if outcome is None:
        return {"id": mid, "status": "queued"}
    if outcome.get("error"):
        raise CommsRefused(outcome["error"])
    return outcome["turn"]


async def deliver(node, peer, p):
    """comms.deliver {from, from_labels, to, kind, text, depth, key, wait_s?} -> {turn}: a turn for agent `to`
    of this host, if its `accept_from` names the sender; the key makes a second delivery the same turn"""
    callee = _spec(node, p["to"])
    policy.check_accept(callee.name, callee.comms, p["from"], p.get("from_labels") or {})
    # Through the turn handler: a shim that dies under the call is respawned and asked again (the key
    # makes that the same turn).
    accepted = await turns.submit(node, peer, {"agent": callee.name, "text": p["text"], "key": p["key"],
                                               "source": "agent", "from": p["from"], "depth": p.get("depth") or 1,
                                               "wait_s": p.get("wait_s") if p["kind"] == policy.ASK else None})
    return {"turn": accepted["turn"]}


async def turn(node, peer, p):
    """comms.turn {from, id, wait_s?, cancel?} -> turn: a turn `from` asked for (a turn id, or a queued message's)"""
    tid = p["id"]
    post = post_of(node)
    if tid in post.outbox.queued or tid in post.outbox.done:
        return _outcome_turn(tid, await post.outbox.outcome(tid, float(p.get("wait_s") or 0)))
    owner = m.agent_of_turn(tid)
    if not owner or not node.state.agent(owner).exists():
        raise TurnNotFound("no turn %s that agent %s asked for on this host" % (tid, p["from"]))
    shim = await node.shim(owner)
    found = await shim.call(m.TURNS_GET, {"id": tid})
    if found.get("from") != p["from"]:
        raise CommsRefused("turn %s was not asked for by agent %s" % (tid, p["from"]))
    if p.get("cancel"):
        return await shim.call(m.TURNS_CANCEL, {"id": tid})
    if not p.get("wait_s"):
        return found
    return await shim.call(m.TURNS_WAIT, {"id": tid, "timeout_s": float(p["wait_s"])})


async def drain(node, peer, p):
    """comms.drain {wait_s?, directory?: [{name, labels, state, description}]} -> [message]: the outbox's queued
    messages, waiting up to wait_s for one. The caller is a head; `directory` lists the agents it knows."""
    post = post_of(node)
    if p.get("directory") is not None:
        local = set(node.state.agent_names())
        post.directory = {a["name"]: a for a in p["directory"] if a.get("name") not in local}
    return await post.outbox.drain(peer, float(p.get("wait_s") if p.get("wait_s") is not None else DRAIN_WAIT_S))


async def done(node, peer, p):
    """comms.done {id, turn?, error?} -> {done: bool}: a head's word on a queued message"""
    return {"done": post_of(node).outbox.finish(p["id"], p.get("turn"), p.get("error"))}

