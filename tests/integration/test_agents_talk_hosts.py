"""Agents talk across hosts: real sshd hosts, real Claude Code in bwrap, the built-in provider scripting the
`mcp__sac__*` calls. A message for another host waits in its node's outbox until a head (a `sac fleet` command
or `sac fleet serve`) carries it over the connection it already holds (docs/agents-talk.md)."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sac_node.rpc import open_unix_peer
from tests.fixtures.agents import processes_mentioning
from tests.fixtures.gateway import GatewayProcess

pytestmark = pytest.mark.integration

SCRIPT = {"rules": [
    {"match": "ask the worker", "tool": "mcp__sac__ask", "input": {"to": "w1", "text": "what is 2+2"},
     "then": "got: {tool_result}"},
    {"match": "ask both", "tools": [{"tool": "mcp__sac__ask", "input": {"to": "w1", "text": "what is 2+2"}},
                                    {"tool": "mcp__sac__ask", "input": {"to": "w2", "text": "what is 3+3"}}],
     "then": "got: {tool_result}"},
    {"match": "ask slowly", "tool": "mcp__sac__ask", "input": {"to": "w1", "text": "slow question"},
     "then": "got: {tool_result}"},
    {"match": "slow question", "tool": "Bash", "input": {"command": "sleep 4; echo slow-done"},
     "then": "{tool_result}"},
    {"match": "ask when alone", "tools": [{"tool": "Bash", "input": {"command": "sleep 3"}},
                                          {"tool": "mcp__sac__ask", "input": {"to": "w1", "text": "anyone?"}}],
     "then": "got: {tool_result}"},
    {"match": "tell when alone", "tools": [{"tool": "Bash", "input": {"command": "sleep 1"}},
                                           {"tool": "mcp__sac__tell", "input": {"to": "w1", "text": "note this"}}],
     "then": "{tool_result}"},
]}


@pytest.fixture
def two_hosts(fleet_env):
    h1, h2 = fleet_env.sshd.start(2)
    fleet_env.add_host(h1)
    fleet_env.add_host(h2)
    fleet_env.add_agent("lead", {"hosts": [h1.name]}, labels={"role": "lead"},
                        extra={"comms": {"ask": ["role=worker"], "tell": ["w1"]}})
    fleet_env.add_agent("w1", {"hosts": [h2.name]}, labels={"role": "worker"},
                        extra={"comms": {"accept_from": ["role=lead"]}})
    fleet_env.doc["hosts"]["here"] = {"transport": "local"}  # the head's own machine
    fleet_env.add_agent("w2", {"hosts": ["here"]}, labels={"role": "worker"},
                        extra={"comms": {"accept_from": ["lead"]}})
    fleet_env.provider.load_script(SCRIPT)
    inventory = fleet_env.write()
    assert fleet_env.sac_json("fleet", "up", inventory)["ok"]
    yield fleet_env, inventory, h1, h2
    for pid in processes_mentioning(str(fleet_env.root / "head-home")):  # the head's own node and agent
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def journal(host, agent):
    """The agent's turns read from its host's state dir (a path, or an sshd host's), without attaching a head."""
    turns = {}
    path = getattr(host, "state_dir", host) / "agents" / agent / "journal.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        rec = json.loads(line)
        if rec.get("op") == "accepted":
            turns[rec["id"]] = dict(rec, status="pending")
        elif rec.get("id") in turns and rec.get("op") != "started":
            turns[rec["id"]].update(rec, status=rec["op"])
    return list(turns.values())


def submit_without_a_head(host, agent, text):
    """A turn given straight to the host's node daemon, by a client that is no head (it never drains)."""
    async def submit():
        peer = await open_unix_peer(str(host.state_dir / "node.sock"))
        try:
            return await peer.call("turns.submit", {"agent": agent, "text": text})
        finally:
            await peer.close()

    return asyncio.run(submit())


def wait_for(predicate, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def tool_results(fleet_env, inventory, agent):
    lines = fleet_env.sac("fleet", "tail", agent, "-i", inventory, "-n", "500", "--json").stdout.splitlines()
    events = [json.loads(line)["event"] for line in lines]
    return [b for e in events if e.get("type") == "user" for b in (e.get("message") or {}).get("content") or []
            if isinstance(b, dict) and b.get("type") == "tool_result"]


def test_a_lead_asks_workers_on_other_hosts_and_a_killed_shim_still_answers_once(two_hosts):
    fleet_env, inventory, h1, h2 = two_hosts
    turn = fleet_env.sac_json("fleet", "send", "lead", "ask the worker", "-i", inventory)
    assert turn["status"] == "completed" and turn["reply"] == "got: echo: what is 2+2"
    [asked] = journal(h2, "w1")
    assert (asked["from"], asked["depth"], asked["status"], asked["reply"]) == ("lead", 1, "completed",
                                                                                 "echo: what is 2+2")
    turn = fleet_env.sac_json("fleet", "send", "lead", "ask both", "-i", inventory)
    assert turn["reply"] == "got: echo: what is 3+3"  # from the worker on the head's own machine
    [mine] = journal(fleet_env.root / "head-home", "w2")
    assert (mine["from"], mine["reply"]) == ("lead", "echo: what is 3+3")
    rows = {a["name"]: a for a in fleet_env.sac_json("fleet", "status", inventory)["agents"]}
    assert rows["w1"]["turns_by_caller"] == {"lead": 2} and rows["w2"]["turns_by_caller"] == {"lead": 1}

    sender = subprocess.Popen([sys.executable, "-m", "sac_fleet", "fleet", "send", "lead", "ask slowly", "-i",
                               str(inventory), "--json"], env=fleet_env.env, stdout=subprocess.PIPE, text=True)
    wait_for(lambda: [t for t in journal(h2, "w1") if t["text"] == "slow question" and t.get("status") == "pending"
                      and (h2.state_dir / "agents/w1/transcript.jsonl").read_text().count("sleep 4")],
             "the worker to run the slow question")
    shim = json.loads((h2.state_dir / "agents/w1/shim.json").read_text())["pid"]
    os.kill(shim, signal.SIGKILL)
    out, _ = sender.communicate(timeout=120)
    turn = json.loads(out)
    assert turn["status"] == "completed" and turn["reply"].startswith("got: turn w1.")
    assert "interrupted" in turn["reply"], turn["reply"]
    slow = [t for t in journal(h2, "w1") if t["text"] == "slow question"]
    assert len(slow) == 1 and slow[0]["status"] == "interrupted"  # one turn, one outcome, carried back once
    answers = [r for r in tool_results(fleet_env, inventory, "lead") if "interrupted" in json.dumps(r)]
    assert len(answers) == 1


def test_with_no_head_an_ask_fails_fast_and_a_queued_tell_is_delivered_once(two_hosts):
    fleet_env, inventory, h1, h2 = two_hosts
    for prompt in ("ask when alone", "tell when alone"):
        submit_without_a_head(h1, "lead", prompt)
    ended = wait_for(lambda: [t for t in journal(h1, "lead") if t["status"] == "completed"][1:] and
                     [t for t in journal(h1, "lead") if t["status"] == "completed"], "the lead's two turns")
    ask, tell = sorted(ended, key=lambda t: t["ts"])
    assert ask["reply"].startswith("got: agent w1 runs on another host and no head is connected to this one")
    assert tell["reply"].startswith("queued for w1 (message msg-")
    assert journal(h2, "w1") == []
    transcript = [json.loads(line) for line in (h1.state_dir / "agents/lead/transcript.jsonl").read_text()
                  .splitlines()]
    called = next(r["ts"] for r in transcript if r["event"].get("type") == "assistant"
                  and '"name": "mcp__sac__ask"' in json.dumps(r["event"]))
    answered = next(r["ts"] for r in transcript if r["event"].get("type") == "user"
                    and "no head is connected" in json.dumps(r["event"]))
    assert answered - called < 2.0  # at once, not after a wait

    gateway = GatewayProcess(fleet_env.env, "-i", inventory)
    try:
        [told] = wait_for(lambda: journal(h2, "w1"), "the tell to reach w1")
        assert (told["text"], told["from"]) == ("note this", "lead")
        wait_for(lambda: "queued" not in (h1.state_dir / "outbox.jsonl").read_text()
                 or '"done"' in (h1.state_dir / "outbox.jsonl").read_text(), "the outbox to be told it is done")
    finally:
        gateway.stop()
    fleet_env.sac("fleet", "tail", "w1", "-i", inventory)  # another head attaches: nothing is carried again
    time.sleep(1)
    assert len(journal(h2, "w1")) == 1
