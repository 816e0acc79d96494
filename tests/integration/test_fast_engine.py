"""examples/engines/fast_engine.py, the benchmarks' instant engine, answers real turns inside bwrap."""

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from sac_node.protocol.errors import TurnNotFound
from sac_node.rpc import open_unix_peer
from tests.fixtures.agents import SacEnv, processes_mentioning
from tests.fixtures.tools import REPO

pytestmark = pytest.mark.integration

FAST_ENGINE = REPO / "examples" / "engines" / "fast_engine.py"


@pytest.fixture
def fast_env(tmp_path, bwrap_bin):
    env = SacEnv(tmp_path, provider_url=None, claude_bin="/nonexistent/claude")  # no claude for this engine
    doc = {"apiVersion": "sac/v1", "kind": "Agent", "metadata": {"name": "fast"},
           "spec": {"engine": {"command": ["python3", str(FAST_ENGINE)]}, "isolation": {"runtime": "bwrap"},
                    "restart": {"policy": "on-failure", "max_retries": 3,
                                "backoff": {"initial": 0.1, "max": 1, "multiplier": 2}}}}
    (env.specs / "fast").mkdir()
    (env.specs / "fast" / "spec.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    yield env
    env.cleanup()


def test_fast_engine_answers_turns_in_the_sandbox_and_after_a_restart(fast_env):
    fast_env.sac("agents", "start", fast_env.specs / "fast")
    first = fast_env.sac_json("agents", "send", "fast", "hello there")
    assert first["status"] == "completed" and first["reply"] == "echo: hello there"
    assert first["usage"]["output_tokens"] > 0 and first["session_id"]
    assert fast_env.sac("agents", "send", "fast", "second").stdout.strip() == "echo: second"
    status = fast_env.sac_json("agents", "status", "fast")
    assert status["isolation"]["runtime"] == "bwrap" and status["isolation"]["uid"] == 1000
    assert status["turns"]["completed"] == 2 and status["session_id"] == first["session_id"]

    # Killed, the shim restarts it (argv verbatim; the session comes as $SAC_RESUME_SESSION) and it answers.
    os.kill(status["pid"], signal.SIGKILL)
    fast_env.wait_for(lambda: (lambda s: s["restarts"] == 1 and s["state"] == "idle")(
        fast_env.sac_json("agents", "status", "fast")), what="the engine to restart")
    third = fast_env.sac_json("agents", "send", "fast", "after the restart")
    assert third["status"] == "completed" and third["reply"] == "echo: after the restart"
    assert third["session_id"] == first["session_id"]  # the restarted engine continued the session
    journal = [json.loads(l) for l in (fast_env.agent_dir("fast") / "journal.jsonl").read_text().splitlines()]
    assert [r["op"] for r in journal].count("completed") == 3


def test_fast_engine_accepts_resume_and_keeps_that_session():
    line = json.dumps({"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": "hi"}]}})
    done = subprocess.run([sys.executable, str(FAST_ENGINE), "--resume", "s-42"], input=line + "\n",
                          capture_output=True, text=True, timeout=30)
    events = [json.loads(l) for l in done.stdout.splitlines()]
    assert [e["type"] for e in events] == ["system", "assistant", "result"]
    assert {e["session_id"] for e in events} == {"s-42"} and events[-1]["result"] == "echo: hi"


async def test_a_reply_comes_only_once_the_journal_holds_what_it_says(fast_env):
    """Acceptance is on disk before "accepted" is heard, and an outcome is written before its reply,
    for a burst of turns too (the shim commits them in groups, the daemon relays replies undecoded)."""
    fast_env.sac("agents", "start", fast_env.specs / "fast")
    path = fast_env.agent_dir("fast") / "journal.jsonl"

    def ops(turn_id):
        return [r["op"] for r in map(json.loads, path.read_text().splitlines()) if r["id"] == turn_id]

    async def one(i):
        reply = await peer.call("turns.submit", {"agent": "fast", "text": "t%d" % i, "wait_s": 30}, timeout=60)
        turn = reply["turn"]
        assert turn["status"] == "completed" and turn["reply"] == "echo: t%d" % i
        assert ops(turn["id"]) == ["accepted", "started", "completed"]  # read as the reply arrives
        return turn["id"]

    peer = await open_unix_peer(str(fast_env.home / "node.sock"))
    try:
        queued = await peer.call("turns.submit", {"agent": "fast", "text": "queued"}, timeout=30)
        assert queued["turn"]["status"] in ("pending", "running") and ops(queued["turn"]["id"])[0] == "accepted"
        ids = await asyncio.gather(*(one(i) for i in range(24)))
        assert len(set(ids)) == 24
        done = await peer.call("turns.wait", {"id": queued["turn"]["id"], "timeout_s": 30}, timeout=60)
        assert done["status"] == "completed" and ops(done["id"]) == ["accepted", "started", "completed"]
    finally:
        await peer.close()


async def test_a_relayed_call_when_its_shim_dies(fast_env):
    fast_env.sac("agents", "start", fast_env.specs / "fast")
    status = fast_env.sac_json("agents", "status", "fast")
    peer, engines = await open_unix_peer(str(fast_env.home / "node.sock")), []
    try:
        await peer.call("turns.submit", {"agent": "fast", "text": "attach", "wait_s": 30}, timeout=60)
        engines = processes_mentioning(str(FAST_ENGINE))  # bwrap and the engine inside it
        for pid in engines:
            os.kill(pid, signal.SIGSTOP)  # the engine hangs: the next turn stays running
        waiting = asyncio.ensure_future(
            peer.call("turns.submit", {"agent": "fast", "text": "never answered", "wait_s": 30}, timeout=60))
        keyed = asyncio.ensure_future(peer.call(
            "turns.submit", {"agent": "fast", "text": "queued, keyed", "key": "k-queued", "wait_s": 30}, timeout=60))
        await asyncio.sleep(0.5)
        assert not waiting.done() and not keyed.done()
        os.kill(status["shim_pid"], signal.SIGKILL)
        with pytest.raises(Exception, match="closed"):  # no key: it may have been journalled, so no retry
            await asyncio.wait_for(waiting, 10)
        # With a key the daemon asks the respawned shim again: the same turn, run once, answered.
        answered = await asyncio.wait_for(keyed, 30)
        assert answered["turn"]["status"] == "completed" and answered["turn"]["reply"] == "echo: queued, keyed"
        # The daemon respawns the shim; the turn that was running ends interrupted, and turns go on.
        again = await peer.call("turns.submit", {"agent": "fast", "text": "after", "wait_s": 30}, timeout=60)
        assert again["turn"]["status"] == "completed" and again["turn"]["reply"] == "echo: after"
        records = [json.loads(l) for l in (fast_env.agent_dir("fast") / "journal.jsonl").read_text().splitlines()]
        hung = next(r["id"] for r in records if r.get("text") == "never answered")
        assert [r["op"] for r in records if r["id"] == hung] == ["accepted", "started", "interrupted"]
        assert [r["op"] for r in records if r["id"] == answered["turn"]["id"]] == ["accepted", "started",
                                                                                 "completed"]
        assert sum(1 for r in records if r.get("key") == "k-queued") == 1
    finally:
        await peer.close()
        for pid in engines:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


async def test_a_small_journal_keep_bounds_the_file_and_survives_a_shim_kill(fast_env):
    """journal.keep_turns: 10. The shim compacts its journal as turns go on; a new shim, after kill -9,
    replays the compacted file: status still counts every turn, a kept key still names its turn, and a
    dropped turn is not found with a message naming the setting."""
    spec = fast_env.specs / "fast" / "spec.yaml"
    doc = yaml.safe_load(spec.read_text())
    doc["spec"]["journal"] = {"keep_turns": 10}
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    fast_env.sac("agents", "start", fast_env.specs / "fast")
    path = fast_env.agent_dir("fast") / "journal.jsonl"

    def ops():
        return [json.loads(line)["op"] for line in path.read_text().splitlines()]

    async def until(predicate, what, timeout=30):
        for _ in range(int(timeout / 0.1)):
            found = await predicate()
            if found:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError("timed out waiting for " + what)

    peer = await open_unix_peer(str(fast_env.home / "node.sock"))
    try:
        ids = []
        for i in range(60):
            params = {"agent": "fast", "text": "t%d" % i, "wait_s": 30}
            if i >= 5:
                params["key"] = "k%d" % i  # the first five have no key: once dropped, nothing names them
            reply = await peer.call("turns.submit", params, timeout=60)
            assert reply["created"] and reply["turn"]["status"] == "completed"
            ids.append(reply["turn"]["id"])

        async def compacted():
            return "snapshot" in ops()
        await until(compacted, "the heartbeat to compact the journal")
        assert len(ops()) < 3 * 60  # accepted, started, completed per turn, uncompacted
        before = await peer.call("agents.status", {"name": "fast"}, timeout=30)
        assert before["turns"] == {"completed": 60, "pending": 0, "failed": 0, "cancelled": 0}

        os.kill(before["shim_pid"], signal.SIGKILL)

        async def respawned():
            try:
                status = await peer.call("agents.status", {"name": "fast"}, timeout=30)
            except Exception:
                return None
            return status if status["shim_pid"] != before["shim_pid"] and status["state"] == "idle" else None
        after = await until(respawned, "the daemon to respawn the shim")
        assert after["turns"] == before["turns"] and after["usage"] == before["usage"]
        assert after["last_turn_at"] == before["last_turn_at"]

        listed = await peer.call("turns.list", {"agent": "fast", "limit": 100}, timeout=30)
        assert [t["id"] for t in listed] == ids[-10:]
        retry = await peer.call("turns.submit", {"agent": "fast", "text": "t5 again", "key": "k5", "wait_s": 30},
                                timeout=60)
        assert not retry["created"] and retry["turn"]["id"] == ids[5] and retry["turn"]["status"] == "completed"
        with pytest.raises(TurnNotFound, match=r"older than the 10 ended turns agent fast keeps \(journal.keep_turns\)"):
            await peer.call("turns.get", {"id": ids[0]}, timeout=30)
    finally:
        await peer.close()
