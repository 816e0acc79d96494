"""turns.* and events.* on the node daemon: forwarded to the agent's shim.

Reads (get, list, tail) fall back to the agent's dir when its shim is not running.
`relay` is the fast path of the turn methods: when the agent's shim is attached,
the request goes on at once and the shim's reply comes back undecoded.
"""

import asyncio

from ..protocol.errors import AgentNotRunning, RpcError
from ..protocol import messages as m
from .agents import _agent, offline_journal, tail_offline


def _agent_name(p):
    """The agent a turn request is for: its `agent`, else the one its turn id names ('<agent>.<hex>')."""
    name = p.get("agent")
    return m.agent_of_turn(p.get("id")) if name is None else name


def _agent_of(node, p):
    return _agent(node, _agent_name(p))


SHIM_ATTEMPTS = 3


def _forward(method):
    async def handler(node, peer, p):
        agent = _agent_of(node, p)
        params = dict(p)
        params.pop("agent", None)
        for attempt in range(1, SHIM_ATTEMPTS + 1):
            shim = await node.shim(agent.name)
            try:
                return await shim.call(method, params)
            except RpcError:
                # The shim's connection closed under the call: it died (or was dying when we
                # connected). Ask its successor when that is safe.
                if not shim.closed or not m.safe_to_repeat(method, p) or attempt == SHIM_ATTEMPTS:
                    raise
            await asyncio.sleep(0.2 * attempt)  # the dead shim's process goes; the supervisor respawns it
    handler.__doc__ = "%s {agent, ...}: forwarded to the agent's shim (see handlers/shim_side.py)" % method
    return handler


RELAYED = frozenset((m.TURNS_SUBMIT, m.TURNS_GET, m.TURNS_WAIT, m.TURNS_CANCEL))


def relay(node, peer, msgid, method, params):
    """Forward a turn request to its agent's attached shim; False leaves it to the handler (which
    checks the agent, attaches or respawns the shim, and answers for a stopped agent)."""
    if method not in RELAYED or not isinstance(params, dict):
        return False
    name = _agent_name(params)
    handle = node.shims.get(name) if isinstance(name, str) else None
    if handle is None or handle.peer.closed:
        return False
    forwarded = dict(params)
    forwarded.pop("agent", None)
    handle.peer.forward(method, forwarded, peer, msgid, original=params)
    return True


def relay_lost(client, msgid, method, params):
    """A relayed request whose shim connection closed before the reply (the shim died): served again
    through the handlers, which respawn the shim and wait for it. All but a submit without a key: the
    dead shim may have journalled that one, and it would run twice; its caller gets the error."""
    if not m.safe_to_repeat(method, params):
        return False
    client.serve(msgid, method, params)
    return True


submit = _forward(m.TURNS_SUBMIT)
wait = _forward(m.TURNS_WAIT)
cancel = _forward(m.TURNS_CANCEL)


async def get(node, peer, p):
    """turns.get {id, agent?} -> turn (the agent is also encoded in the id: '<agent>.<hex>')"""
    agent = _agent_of(node, p)
    try:
        shim = await node.shim(agent.name)
        return await shim.call(m.TURNS_GET, {"id": p["id"]})
    except AgentNotRunning:
        return offline_journal(agent).get(p["id"], agent.name)


async def list_turns(node, peer, p):
    """turns.list {agent, limit?, status?} -> [turn]"""
    agent = _agent_of(node, p)
    try:
        shim = await node.shim(agent.name)
        return await shim.call(m.TURNS_LIST, {"limit": p.get("limit"), "status": p.get("status")})
    except AgentNotRunning:
        turns = list(offline_journal(agent).turns.values())
        if p.get("status"):
            turns = [t for t in turns if t["status"] == p["status"]]
        return turns[-int(p.get("limit") or 50):]


async def subscribe(node, peer, p):
    """events.subscribe {agent, sub, turn_id?, from_seq?} -> {seq}; then `event` notifications {sub, agent, record}

    `sub` is chosen by the client (unique on its connection), so that replayed
    records, which are sent before this reply, already carry an id it knows.
    """
    agent = _agent_of(node, p)
    shim = await node.shim(agent.name)
    sub = node.add_sub(peer, agent.name, p["sub"])
    peer.context.setdefault("subs", {})[p["sub"]] = sub
    result = await shim.call(m.EVENTS_SUBSCRIBE, {"sub": sub, "turn_id": p.get("turn_id"),
                                                  "from_seq": p.get("from_seq")})
    return {"seq": result["seq"]}


async def unsubscribe(node, peer, p):
    """events.unsubscribe {sub} -> {} (the client's sub id)"""
    sub = peer.context.get("subs", {}).pop(p["sub"], None)
    entry = node.subs.pop(sub, None)
    if entry is not None:
        try:
            shim = await node.shim(entry[1])
            await shim.call(m.EVENTS_UNSUBSCRIBE, {"sub": sub})
        except AgentNotRunning:
            pass
    return {}


async def tail(node, peer, p):
    """events.tail {agent, n} -> [record]"""
    agent = _agent_of(node, p)
    try:
        shim = await node.shim(agent.name)
        return await shim.call(m.EVENTS_TAIL, {"n": p.get("n", 50)})
    except AgentNotRunning:
        return tail_offline(agent, int(p.get("n") or 50))
