"""The head's side of a turn: the API's words for a node's turn, and following a turn's or an agent's records.

Fleet (sac_fleet.api) routes each call to the agent's host; these read what comes back.
"""

import asyncio

from sac_node.protocol.errors import AgentNotFound, AgentNotRunning
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


async def follow_agent(node_of, name, from_seq, check_every):
    """An agent's records after `from_seq`, across its restarts and while it is stopped, until it is
    deleted; `node_of(name)` is the node that runs it now."""
    last = from_seq
    while True:
        try:
            node = await node_of(name)
            shim = (await node.agent_status(name)).get("shim_pid")
            if shim is None:  # stopped, or between the two halves of a restart
                await asyncio.sleep(check_every)
                continue
            async for record in records_while(node, name, last, shim, check_every):
                last = record["seq"]
                yield record
        except AgentNotFound:
            return  # deleted
        except AgentNotRunning:
            await asyncio.sleep(check_every)


def health_problems(status):
    """Why an agent with this status is not healthy ([] when it is)."""
    problems = []
    if status["state"] in ("failed", "stopped", "restarting"):
        problems.append("state is %s" % status["state"] + (
            " (%s)" % status["last_error"] if status.get("last_error") else ""))
    if status.get("degraded"):
        problems.append("degraded: " + status["degraded"])
    age = status.get("heartbeat_age_s")
    if status["state"] != "stopped" and (age is None or age > 10):
        problems.append("no heartbeat for %ss" % age if age is not None else "no heartbeat")
    return problems
