"""The head's side of a turn: the API's words for a node's turn, and following a turn's or an agent's records.

Fleet (sac_fleet.api) routes each call to the agent's host; these read what comes back.
"""

import asyncio

from sac_node.protocol.messages import TERMINAL, TURN_ENDED, is_sac_event

DRAIN_S = 10.0  # how long a streamed turn that ended waits for its last records


def turn_of(node_turn):
    """A node's turn dict in the API's words: the node journals the prompt as `text`."""
    turn = dict(node_turn)
    if "text" in turn:
        turn["prompt"] = turn.pop("text")
    return turn


async def records_while(node, name, from_seq, shim, check_every):
    """The records of one subscription, until the agent's shim is no longer `shim` or the connection
    closes. It reads the subscription's queue with a timeout (a cancelled `Queue.get` loses nothing)."""
    sub = await node.subscribe(name, from_seq=from_seq)
    try:
        while True:
            try:
                yield await asyncio.wait_for(sub.queue.get(), check_every)
            except asyncio.TimeoutError:
                if node.peer.closed or (await node.agent_status(name)).get("shim_pid") != shim:
                    return  # restarted, stopped or cut off: the caller subscribes again
    finally:
        await sub.close()


async def follow_turn(sub, on_record):
    """Pass a turn's records to `on_record` until its `turn_ended` record."""
    async for record in sub:
        on_record(record)
        event = record.get("event") or {}
        if is_sac_event(event, TURN_ENDED):
            return
