"""Methods a shim serves on <agent>/shim.sock, for the daemon (one agent each).

The daemon forwards the agent-scoped methods of its own table here unchanged,
minus the `agent` field.
"""

from ..protocol import messages as m


def handlers(shim):
    """The shim's handler table, bound to one Shim."""

    async def submit(peer, p):
        """turns.submit {text, key?, source?} -> {turn, created}"""
        turn, created = shim.submit(p["text"], p.get("key"), p.get("source", "user"))
        return {"turn": turn, "created": created}

    async def get(peer, p):
        """turns.get {id} -> turn"""
        return shim.get_turn(p["id"])

    async def wait(peer, p):
        """turns.wait {id, timeout_s} -> turn (terminal, or as it stands when the wait ends)"""
        return await shim.wait_turn(p["id"], float(p.get("timeout_s") or 600))

    async def cancel(peer, p):
        """turns.cancel {id} -> turn"""
        return await shim.cancel_turn(p["id"])

    async def list_turns(peer, p):
        """turns.list {limit?, status?} -> [turn], newest last"""
        turns = list(shim.journal.turns.values())
        if p.get("status"):
            turns = [t for t in turns if t["status"] == p["status"]]
        return turns[-int(p.get("limit") or 50):]

    async def status(peer, p):
        """agents.status {} -> status dict (see docs/architecture.md)"""
        return shim.status()

    async def stop(peer, p):
        """agents.stop {} -> {stopping: true}; the shim exits once its engine is down"""
        shim.stop()
        return {"stopping": True}

    async def subscribe(peer, p):
        """events.subscribe {sub, turn_id?, from_seq?} -> {seq}; then `event` notifications {sub, record}"""
        shim.transcript.subscribe(peer, p["sub"], p.get("turn_id"), p.get("from_seq"))
        return {"seq": shim.transcript.seq}

    async def unsubscribe(peer, p):
        """events.unsubscribe {sub} -> {}"""
        shim.transcript.unsubscribe(p["sub"])
        return {}

    async def tail(peer, p):
        """events.tail {n} -> [record]"""
        return shim.transcript.tail(int(p.get("n") or 50))

    return {
        m.TURNS_SUBMIT: submit, m.TURNS_GET: get, m.TURNS_WAIT: wait, m.TURNS_CANCEL: cancel,
        m.TURNS_LIST: list_turns, m.AGENTS_STATUS: status, m.AGENTS_STOP: stop,
        m.EVENTS_SUBSCRIBE: subscribe, m.EVENTS_UNSUBSCRIBE: unsubscribe, m.EVENTS_TAIL: tail,
    }
