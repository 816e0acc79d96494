"""Agents talk to agents on one host: real Claude Code in real bwrap, its `mcp__sac__*` calls scripted by the
provider, served by the shim's `sac` MCP server and routed by the node daemon (docs/agents-talk.md)."""

import json

import pytest

pytestmark = pytest.mark.integration


def ask(match, to, text):
    return {"match": match, "tool": "mcp__sac__ask", "input": {"to": to, "text": text},
            "then": "got: {tool_result}"}


SCRIPT = {"rules": [
    ask("ask the worker", "w1", "what is 2+2"),
    ask("ask the boss", "boss", "may I?"),
    ask("start a chain", "w1", "relay this"),
    ask("relay this", "w2", "too deep"),
    ask("ask slowly", "w1", "slow question"),
    {"match": "slow question", "tool": "Bash", "input": {"command": "sleep 4; echo slow-done"},
     "then": "{tool_result}"},
    {"match": "who is there", "tool": "mcp__sac__agents", "input": {}, "then": "{tool_result}"},
]}


@pytest.fixture
def team(sac_env):
    sac_env.provider.load_script(SCRIPT)

    def start(name, comms, labels=None, **extra):
        sac_env.write_spec(name, extra=dict(extra, comms=comms))
        if labels:
            path = sac_env.specs / name / "spec.yaml"
            path.write_text(path.read_text().replace("  name: %s\n" % name, "  name: %s\n  labels: %s\n"
                                                     % (name, json.dumps(labels))))
        sac_env.sac("agents", "start", sac_env.specs / name)

    return start


def transcript(sac_env, name):
    lines = sac_env.sac("agents", "tail", name, "-n", "500", "--json").stdout.splitlines()
    return [json.loads(line)["event"] for line in lines]


def turns(sac_env, name):
    return sac_env.sac_json("agents", "status", name)["turns"]


def test_a_lead_asks_a_worker_and_reads_its_reply(sac_env, team):
    team("w1", {"accept_from": ["role=lead"], "description": "does sums"}, labels={"role": "worker"})
    team("lead", {"ask": ["role=worker"]}, labels={"role": "lead"})
    turn = sac_env.sac_json("agents", "send", "lead", "ask the worker")
    assert turn["status"] == "completed" and turn["reply"] == "got: echo: what is 2+2"
    status = sac_env.sac_json("agents", "status", "w1")
    assert status["turns_by_caller"] == {"lead": 1} and status["turns"]["completed"] == 1
    assert "asked by:   lead 1\n" in sac_env.sac("agents", "status", "w1").stdout
    assert "from lead  what is 2+2" in sac_env.sac("agents", "tail", "w1").stdout
    listed = json.loads(sac_env.sac_json("agents", "send", "lead", "who is there")["reply"])
    assert listed == [{"name": "w1", "labels": {"role": "worker"}, "state": "idle", "description": "does sums"}]


def test_an_agent_outside_the_ask_list_is_refused_and_reached_by_nothing(sac_env, team):
    team("boss", {"accept_from": ["*"]})
    team("lead", {"ask": ["w1"]})
    turn = sac_env.sac_json("agents", "send", "lead", "ask the boss")
    assert turn["reply"] == "got: agent lead may not ask boss: its spec's comms.ask lists w1"
    assert turns(sac_env, "boss")["completed"] == 0
    [refused] = [e for e in transcript(sac_env, "lead") if e.get("subtype") == "comms_refused"]
    assert (refused["tool"], refused["to"]) == ("ask", "boss")
    assert "refused    ask to boss" in sac_env.sac("agents", "tail", "lead").stdout


def test_a_chain_deeper_than_max_depth_is_refused(sac_env, team):
    team("w2", {"accept_from": ["*"]})
    team("w1", {"ask": ["w2"], "accept_from": ["lead"], "max_depth": 1})
    team("lead", {"ask": ["w1"]})
    turn = sac_env.sac_json("agents", "send", "lead", "start a chain")
    assert turn["reply"] == ("got: got: a chain of asks 2 deep is refused: agent w1's comms.max_depth is 1 (an agent "
                             "asked by an agent asked by ...; break the loop or raise max_depth)")
    assert turns(sac_env, "w2")["completed"] == 0 and turns(sac_env, "w1")["completed"] == 1


def test_an_agent_without_comms_has_no_sac_server(sac_env, team):
    sac_env.write_spec("plain")
    sac_env.sac("agents", "start", sac_env.specs / "plain")
    sac_env.sac_json("agents", "send", "plain", "hello")
    [init] = [e for e in transcript(sac_env, "plain") if e.get("type") == "system" and e.get("subtype") == "init"]
    assert init["mcp_servers"] == [] and not any(t.startswith("mcp__sac") for t in init["tools"])
    assert not (sac_env.agent_dir("plain") / "mcp.sock").exists()


def test_a_users_mcp_json_is_kept_and_a_server_of_theirs_named_sac_is_refused(sac_env, team):
    agent = sac_env.write_spec("w9", extra={"workdir": str(sac_env.root / "w9-work"), "comms": {"tell": ["x"]}})
    work = sac_env.root / "w9-work"
    work.mkdir()
    (work / ".mcp.json").write_text(json.dumps({"mcpServers": {"sac": {"command": "true"}}}))
    failed = sac_env.sac("agents", "start", agent, check=False)
    assert failed.returncode != 0 and "defines an MCP server named sac" in failed.stderr
    assert "Traceback" not in failed.stderr
    (work / ".mcp.json").write_text(json.dumps({"mcpServers": {"mine": {"command": "true"}}}))
    sac_env.sac("agents", "start", agent)
    sac_env.sac_json("agents", "send", "w9", "hello")
    [init] = [e for e in transcript(sac_env, "w9") if e.get("type") == "system" and e.get("subtype") == "init"]
    assert {s["name"] for s in init["mcp_servers"]} == {"mine", "sac"}


def test_a_turn_waiting_for_a_reply_is_not_a_stalled_engine(sac_env, team):
    team("w1", {"accept_from": ["lead"]})
    team("lead", {"ask": ["w1"]}, health={"stall_timeout_s": 2})
    sac_env.sac_json("agents", "send", "lead", "hello")  # the engine has spoken: no start-up grace any more
    turn = sac_env.sac_json("agents", "send", "lead", "ask slowly")
    assert (turn["status"], turn["reply"]) == ("completed", "got: slow-done")
