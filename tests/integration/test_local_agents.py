"""One spec.yaml becomes one long-lived Claude Code agent: real claude, real bwrap, the built-in provider."""

import json
import os
import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

SLOW = {"rules": [{"match": "slow", "reply": "slowly done", "fault": {"chunk_delay": 1.5}}]}


def test_turns_share_one_long_lived_session(sac_env):
    sac_env.write_spec("a1")
    started = sac_env.sac("agents", "start", sac_env.specs / "a1")
    assert "a1: started" in started.stdout
    replies = [sac_env.sac("agents", "send", "a1", "hello %d" % i).stdout.strip() for i in range(3)]
    assert replies == ["echo: hello 0", "echo: hello 1", "echo: hello 2"]
    status = sac_env.sac_json("agents", "status", "a1")
    assert status["state"] == "idle"
    assert status["turns"] == {"completed": 3, "pending": 0, "failed": 0, "cancelled": 0}
    assert status["isolation"]["runtime"] == "bwrap"
    turns = [json.loads(line) for line in (sac_env.agent_dir("a1") / "journal.jsonl").read_text().splitlines()]
    sessions = {t["session_id"] for t in turns if t["op"] == "completed"}
    assert len(sessions) == 1 and status["session_id"] in sessions
    # one engine process served all three turns
    assert status["restarts"] == 0 and status["pid"]
    again = sac_env.sac("agents", "start", sac_env.specs / "a1")
    assert "already running, unchanged" in again.stdout


def test_send_json_reports_usage_and_timings(sac_env):
    sac_env.write_spec("a1")
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    turn = sac_env.sac_json("agents", "send", "a1", "measure me")
    assert turn["status"] == "completed" and turn["reply"] == "echo: measure me"
    assert turn["usage"]["output_tokens"] > 0
    assert turn["timings"]["run_s"] >= 0 and turn["session_id"]


def test_scripted_tool_call_creates_file_in_workdir(sac_env):
    sac_env.provider.load_script({"rules": [{
        "match": "make the file", "tool": "Bash",
        "input": {"command": "echo made-inside > made.txt && id -u", "description": "make a file"},
        "then": "Done: {tool_result}"}]})
    sac_env.write_spec("a1")
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    reply = sac_env.sac("agents", "send", "a1", "please make the file").stdout
    made = sac_env.agent_dir("a1") / "work" / "made.txt"
    assert made.read_text().strip() == "made-inside"
    assert "Done: 1000" in reply  # the tool ran as uid 1000 inside the sandbox
    tail = sac_env.sac("agents", "tail", "a1", "-n", "50").stdout
    assert "tool call  Bash" in tail and "please make the file" in tail


def test_engine_kill_is_recovered_and_pending_turn_answered(sac_env):
    sac_env.provider.load_script(SLOW)
    sac_env.write_spec("a1")
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    sac_env.sac("agents", "send", "a1", "warm up")
    engine = sac_env.sac_json("agents", "status", "a1")["pid"]
    running = sac_env.sac("agents", "send", "a1", "slow one", "--no-wait").stdout.split()[-1]
    pending = sac_env.sac("agents", "send", "a1", "after the crash", "--no-wait").stdout.split()[-1]
    sac_env.wait_for(lambda: sac_env.sac_json("agents", "status", "a1")["state"] == "working", what="working")
    os.kill(engine, signal.SIGKILL)
    status = sac_env.wait_for(lambda: (lambda s: s if s["turns"]["completed"] == 2 else None)(
        sac_env.sac_json("agents", "status", "a1")), timeout=60, what="the pending turn to complete")
    assert status["restarts"] == 1 and status["pid"] != engine
    assert "signal 9" in status["last_error"]
    journal = (sac_env.agent_dir("a1") / "journal.jsonl").read_text()
    ends = [json.loads(l) for l in journal.splitlines() if json.loads(l)["op"] not in ("accepted", "started")]
    by_id = {e["id"]: e for e in ends}
    assert by_id[running]["op"] == "interrupted"
    assert by_id[pending]["op"] == "completed" and by_id[pending]["reply"] == "echo: after the crash"
    assert len(ends) == len(by_id) == 3  # each turn ended exactly once
    # the restarted engine resumed the same session
    assert by_id[pending]["session_id"] == status["session_id"]


def test_daemon_kill_leaves_agents_running_and_reattaches(sac_env):
    sac_env.write_spec("a1")
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    before = sac_env.sac_json("agents", "status", "a1")
    old_daemon = sac_env.daemon_pid()
    os.kill(old_daemon, signal.SIGKILL)
    # the engine and its shim are untouched
    os.kill(before["pid"], 0)
    os.kill(before["shim_pid"], 0)
    assert sac_env.sac("agents", "send", "a1", "still here?").stdout.strip() == "echo: still here?"
    after = sac_env.sac_json("agents", "status", "a1")
    assert sac_env.daemon_pid() != old_daemon
    assert (after["pid"], after["shim_pid"], after["restarts"]) == (before["pid"], before["shim_pid"], 0)


def test_shim_kill_keeps_pending_turns(sac_env):
    sac_env.provider.load_script(SLOW)
    sac_env.write_spec("a1")
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    shim = sac_env.sac_json("agents", "status", "a1")["shim_pid"]
    running = sac_env.sac("agents", "send", "a1", "slow one", "--no-wait").stdout.split()[-1]
    pending = sac_env.sac("agents", "send", "a1", "queued", "--no-wait").stdout.split()[-1]
    sac_env.wait_for(lambda: sac_env.sac_json("agents", "status", "a1")["state"] == "working", what="working")
    os.kill(shim, signal.SIGKILL)
    done = sac_env.sac_json("agents", "send", "a1", "after", timeout=90)
    assert done["reply"] == "echo: after"
    journal = [json.loads(l) for l in (sac_env.agent_dir("a1") / "journal.jsonl").read_text().splitlines()]
    final = {r["id"]: r["op"] for r in journal if r["op"] not in ("accepted", "started")}
    assert final[running] == "interrupted" and final[pending] == "completed"
    assert sac_env.sac_json("agents", "status", "a1")["shim_pid"] != shim


def test_stop_start_and_delete(sac_env):
    sac_env.write_spec("a1")
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    engine = sac_env.sac_json("agents", "status", "a1")["pid"]
    assert "a1: stopped" in sac_env.sac("agents", "stop", "a1").stdout
    with pytest.raises(ProcessLookupError):
        os.kill(engine, 0)
    # The shim left cleanly: its last heartbeat says so, and its log has no traceback.
    assert json.loads((sac_env.agent_dir("a1") / "heartbeat").read_text())["state"] == "stopped"
    assert "Traceback" not in (sac_env.agent_dir("a1") / "shim.log").read_text()
    refused = sac_env.sac("agents", "send", "a1", "hi", check=False)
    assert refused.returncode != 0 and "not running" in refused.stderr and "Traceback" not in refused.stderr
    listed = sac_env.sac_json("agents", "list")
    assert [(a["name"], a["state"]) for a in listed] == [("a1", "stopped")]
    sac_env.sac("agents", "start", "a1")  # by name, with the spec it has
    assert sac_env.sac("agents", "send", "a1", "back").stdout.strip() == "echo: back"
    sac_env.sac("agents", "delete", "a1", "-y")
    assert not sac_env.agent_dir("a1").exists()
    assert sac_env.sac_json("agents", "list") == []


def test_send_to_unknown_agent_is_one_clear_line(sac_env):
    proc = sac_env.sac("agents", "send", "nobody", "hello", check=False)
    assert proc.returncode == 2
    assert "no agent named nobody" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_spec_is_refused_with_file_line_and_field(sac_env):
    agent = sac_env.write_spec("a1", extra={"restart": {"policy": "sometimes"}})
    proc = sac_env.sac("agents", "start", agent, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "spec.yaml:" in proc.stderr and "spec.restart.policy" in proc.stderr and "sometimes" in proc.stderr
    assert sac_env.sac_json("agents", "list") == []


def test_missing_claude_is_an_error_at_start(sac_env):
    sac_env.write_spec("a1")
    sac_env.env["SAC_CLAUDE_BIN"] = str(sac_env.root / "no-such-claude")
    proc = sac_env.sac("agents", "start", sac_env.specs / "a1", check=False)
    assert proc.returncode != 0 and "SAC_CLAUDE_BIN" in proc.stderr and "Traceback" not in proc.stderr


def test_to_home_files_reach_the_agent_home(sac_env):
    sac_env.write_spec("a1", to_home={"CLAUDE.md": "Be brief.\n", ".claude/settings.json": "{}\n"})
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    home = sac_env.agent_dir("a1") / "home"
    assert (home / "CLAUDE.md").read_text() == "Be brief.\n"
    # the user's (empty) settings, with sac's status hooks added (docs/isolation.md)
    assert set(json.loads((home / ".claude" / "settings.json").read_text())) == {"hooks"}


def test_startup_prompts_run_first(sac_env):
    sac_env.write_spec("a1", extra={"startup_prompts": ["Read README.md and wait."]})
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    assert sac_env.sac("agents", "send", "a1", "next").stdout.strip() == "echo: next"
    journal = [json.loads(l) for l in (sac_env.agent_dir("a1") / "journal.jsonl").read_text().splitlines()]
    accepted = [r["text"] for r in journal if r["op"] == "accepted"]
    assert accepted == ["Read README.md and wait.", "next"]


def test_a_second_shim_for_the_same_agent_refuses_to_run(sac_env):
    sac_env.write_spec("a1")
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    status = sac_env.sac_json("agents", "status", "a1")
    second = subprocess.run([sys.executable, "-m", "sac_node", "shim", str(sac_env.agent_dir("a1"))],
                            capture_output=True, text=True, timeout=30, env=sac_env.env)
    assert second.returncode == 3 and "another shim already runs agent a1" in second.stderr
    after = sac_env.sac_json("agents", "status", "a1")
    assert (after["shim_pid"], after["pid"]) == (status["shim_pid"], status["pid"])
    assert sac_env.sac("agents", "send", "a1", "still one").stdout.strip() == "echo: still one"
