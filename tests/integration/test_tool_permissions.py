"""claude.allowed_tools / disallowed_tools hold: real Claude Code in real bwrap, tool calls scripted by the provider.

A refused call runs nothing, comes back to the model as an error, is a `tool_refused` event in the
transcript and is counted in `sac agents status`.
"""

import json

import pytest

pytestmark = pytest.mark.integration


def bash(match, command):
    return {"match": match, "tool": "Bash", "input": {"command": command, "description": match},
            "then": "Done: {tool_result}"}


SCRIPT = {"rules": [
    bash("touch it", "touch made.txt && echo made-it"),
    bash("echo it", "echo said-it"),
    bash("mkdir it", "mkdir made-dir && echo made-dir"),
    {"match": "write it", "tool": "Write", "input": {"file_path": "written.txt", "content": "by Write"},
     "then": "Done: {tool_result}"},
    # The provider offers a call only for a tool the request lists; the second call of a rule is made
    # regardless, as a model that asks for a tool it was not given.
    {"match": "sneak bash", "tools": [{"tool": "Read", "input": {"file_path": "absent.txt"}},
                                      {"tool": "Bash", "input": {"command": "touch sneaked.txt"}}],
     "then": "Done: {tool_result}"},
]}


@pytest.fixture
def agents(sac_env):
    sac_env.provider.load_script(SCRIPT)

    def start(name, **claude):
        sac_env.write_spec(name, claude=claude)
        sac_env.sac("agents", "start", sac_env.specs / name)
        return sac_env.agent_dir(name) / "work"

    return start


def send(sac_env, name, text):
    turn = sac_env.sac_json("agents", "send", name, text)
    assert turn["status"] == "completed", turn
    return turn


def refusals(sac_env, name):
    records = [json.loads(line) for line in sac_env.sac("agents", "tail", name, "-n", "500", "--json").stdout.splitlines()]
    return [r["event"] for r in records if r["event"].get("subtype") == "tool_refused"]


def test_a_tool_outside_the_allow_list_is_refused_and_counted(sac_env, agents):
    work = agents("reader", allowed_tools=["Read"])
    turn = send(sac_env, "reader", "touch it")
    assert not (work / "made.txt").exists()
    assert "Permission to use Bash has been denied" in turn["reply"]  # the model got the refusal back
    assert turn["tools_refused"] == 1
    [event] = refusals(sac_env, "reader")
    assert (event["tool"], event["reason"]) == ("Bash", "permission") and "touch made.txt" in event["input"]
    assert sac_env.sac_json("agents", "status", "reader")["tools_refused"] == 1
    assert "refused:    1 tool call\n" in sac_env.sac("agents", "status", "reader").stdout
    assert "refused    Bash" in sac_env.sac("agents", "tail", "reader").stdout

    work = agents("runner", allowed_tools=["Bash"])
    turn = send(sac_env, "runner", "touch it")
    assert turn["reply"] == "Done: made-it" and (work / "made.txt").exists()
    assert "tools_refused" not in turn and sac_env.sac_json("agents", "status", "runner")["tools_refused"] == 0


def test_a_bash_pattern_allows_its_commands_and_refuses_others(sac_env, agents):
    work = agents("patterned", allowed_tools=["Bash(echo:*)", "Bash(mkdir:*)"])
    assert send(sac_env, "patterned", "echo it")["reply"] == "Done: said-it"
    assert send(sac_env, "patterned", "mkdir it")["reply"] == "Done: made-dir" and (work / "made-dir").is_dir()
    assert send(sac_env, "patterned", "touch it")["tools_refused"] == 1
    assert not (work / "made.txt").exists()
    assert [(e["tool"], e["reason"]) for e in refusals(sac_env, "patterned")] == [("Bash", "permission")]
    assert sac_env.sac_json("agents", "status", "patterned")["tools_refused"] == 1


def test_a_denied_tool_is_refused_and_every_other_tool_runs(sac_env, agents):
    work = agents("denier", allowed_tools=[], disallowed_tools=["Bash"])  # the fixture's spec has an allow list
    # The engine does not offer Bash to the model at all: the scripted call is never made.
    assert send(sac_env, "denier", "touch it")["reply"] == "echo: touch it"
    assert "Bash" not in {t["name"] for t in sac_env.provider.requests[-1]["tools"]}
    # A model that calls it anyway gets an error, and the call is a refusal.
    turn = send(sac_env, "denier", "sneak bash")
    assert "No such tool available: Bash" in turn["reply"] and turn["tools_refused"] == 1
    assert not (work / "sneaked.txt").exists()
    assert [(e["tool"], e["reason"]) for e in refusals(sac_env, "denier")] == [("Bash", "not_available")]
    # Without an allow list the rest is not restricted (no prompt-less refusal of Write).
    assert send(sac_env, "denier", "write it")["reply"].startswith("Done: File created")
    assert (work / "written.txt").read_text() == "by Write"
    assert sac_env.sac_json("agents", "status", "denier")["tools_refused"] == 1
