"""Node-side RPC handlers, one module per method group.

Each handler is `async fn(node, peer, params)` and documents its wire schema in its docstring.
"""

import functools

from ..protocol import messages as m
from . import agents, comms, host, turns

HANDLERS = {
    m.HOST_FACTS: host.facts,
    m.HOST_SHUTDOWN: host.shutdown,
    m.HOST_SECRETS: host.put_secrets,
    m.AGENTS_START: agents.start,
    m.AGENTS_STOP: agents.stop,
    m.AGENTS_RESTART: agents.restart,
    m.AGENTS_DELETE: agents.delete,
    m.AGENTS_FENCE: agents.fence,
    m.AGENTS_LIST: agents.list_agents,
    m.AGENTS_STATUS: agents.status,
    m.TURNS_SUBMIT: turns.submit,
    m.TURNS_GET: turns.get,
    m.TURNS_WAIT: turns.wait,
    m.TURNS_CANCEL: turns.cancel,
    m.TURNS_LIST: turns.list_turns,
    m.EVENTS_SUBSCRIBE: turns.subscribe,
    m.EVENTS_UNSUBSCRIBE: turns.unsubscribe,
    m.EVENTS_TAIL: turns.tail,
    m.COMMS_AGENTS: comms.agents,
    m.COMMS_SEND: comms.send,
    m.COMMS_TURN: comms.turn,
    m.COMMS_DRAIN: comms.drain,
    m.COMMS_DELIVER: comms.deliver,
    m.COMMS_DONE: comms.done,
}


def table(node):
    """The daemon's handler table bound to one Node: method -> async fn(peer, params)."""
    return {method: functools.partial(fn, node) for method, fn in HANDLERS.items()}
