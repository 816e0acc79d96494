"""Methods a shim serves on <agent>/shim.sock, for the daemon (one agent each).

The daemon forwards the agent-scoped methods of its own table here unchanged,
minus the `agent` field. A reply that carries a turn waits for the journal
records behind it (sac_node/commit.py): an acceptance on disk, an outcome written.
"""

import os

from .. import launch
from ..protocol import messages as m


def handlers(shim):
    """The shim's handler table, bound to one Shim."""
    served = ShimHandlers(shim)
    return {
        m.TURNS_SUBMIT: served.submit, m.TURNS_GET: served.get, m.TURNS_WAIT: served.wait,
        m.TURNS_CANCEL: served.cancel, m.TURNS_LIST: served.list_turns, m.AGENTS_STATUS: served.status,
        m.AGENTS_STOP: served.stop, m.EVENTS_SUBSCRIBE: served.subscribe, m.EVENTS_UNSUBSCRIBE: served.unsubscribe,
        m.EVENTS_TAIL: served.tail,
    }


class ShimHandlers:
    """The methods, each `async fn(peer, params)`, of one Shim."""

    def __init__(self, shim):
        self.shim, self.runner, self.commit = shim, shim.runner, shim.commit

    async def submit(self, peer, p):
        """turns.submit {text, key?, source?, wait_s?, from?, depth?} -> {turn, created}

        With wait_s the reply comes when the turn ends (or wait_s passes): one
        round trip per turn instead of submit + wait. It is journalled first either way.
        `from` and `depth`: the agent that sent it and how deep in a chain of asks (comms).
        """
        origin = {"from": p["from"], "depth": int(p.get("depth") or 1)} if p.get("from") else None
        turn, created = self.runner.submit(p["text"], p.get("key"), p.get("source", "user"), origin)
        if p.get("wait_s"):
            turn = await self.runner.wait_turn(turn["id"], float(p["wait_s"]))
        await self.commit.settled(turn)
        return {"turn": turn, "created": created}

    async def get(self, peer, p):
        """turns.get {id} -> turn"""
        turn = self.runner.get_turn(p["id"])
        await self.commit.settled(turn)
        return turn

    async def wait(self, peer, p):
        """turns.wait {id, timeout_s} -> turn (terminal, or as it stands when the wait ends)"""
        turn = await self.runner.wait_turn(p["id"], float(p.get("timeout_s") or 600))
        await self.commit.settled(turn)
        return turn

    async def cancel(self, peer, p):
        """turns.cancel {id} -> turn"""
        turn = await self.runner.cancel_turn(p["id"])
        await self.commit.settled(turn)
        return turn

    async def list_turns(self, peer, p):
        """turns.list {limit?, status?} -> [turn], newest last"""
        turns = list(self.shim.journal.turns.values())
        if p.get("status"):
            turns = [t for t in turns if t["status"] == p["status"]]
        await self.commit.durable()
        return turns[-int(p.get("limit") or 50):]

    async def status(self, peer, p):
        """agents.status {} -> status dict (see docs/architecture.md)"""
        return self.shim.status()

    async def stop(self, peer, p):
        """agents.stop {} -> {stopping: true}; the shim exits once its engine is down"""
        self.shim.stop()
        return {"stopping": True}

    async def subscribe(self, peer, p):
        """events.subscribe {sub, turn_id?, from_seq?} -> {seq}; then `event` notifications {sub, record}"""
        self.shim.transcript.subscribe(peer, p["sub"], p.get("turn_id"), p.get("from_seq"))
        return {"seq": self.shim.transcript.seq}

    async def unsubscribe(self, peer, p):
        """events.unsubscribe {sub} -> {}"""
        self.shim.transcript.unsubscribe(p["sub"])
        return {}

    async def tail(self, peer, p):
        """events.tail {n} -> [record]"""
        return self.shim.transcript.tail(int(p.get("n") or 50))


def status_of(shim):
    """agents.status: the agent as the head sees it (see docs/architecture.md)."""
    hb = None
    try:
        hb = max(0.0, shim.clock() - os.stat(shim.dir.heartbeat).st_mtime)
    except OSError:
        pass
    sup, now = shim.supervisor, shim.clock()
    pid = sup.running_pid()
    return {
        "name": shim.name, "state": sup.state, "pid": pid,
        "shim_pid": os.getpid(), "uptime_s": round(now - shim.started_at, 1),
        "engine_uptime_s": round(now - sup.engine_started_at, 1) if pid else None,
        "restarts": sup.tracker.restarts, "session_id": sup.session.id,
        "turns": shim.journal.summary(),
        "current_turn": shim.runner.current, "last_turn_at": shim.journal.last_turn_at(),
        "last_error": sup.last_error, "usage": shim.journal.usage_total(),
        "degraded": shim.provider.degraded(),
        "secrets_behind": sorted(n for n, h in sup.secret_hashes().items() if sup.secrets_used.get(n) != h),
        "tools_refused": shim.journal.refused_total(), "turns_by_caller": shim.journal.callers(),
        "description": shim.spec.comms.description,
        "isolation": sup.isolation, "heartbeat_age_s": round(hb, 1) if hb is not None else None,
        "labels": shim.spec.labels, "workdir": launch.resolve_workdir(shim.spec, shim.dir),
        "fleet": shim.spec.fleet, "generation": shim.spec.generation,
        "account": shim.accounts.current["name"] if shim.accounts.enabled else None,
        "accounts": shim.accounts.snapshot(now),
        "activity": shim.activity.snapshot(now),
    }
