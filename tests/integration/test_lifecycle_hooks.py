"""spec.hooks and spec.startup_commands on real Claude Code in real bwrap, against the built-in provider."""

import json

import pytest

pytestmark = pytest.mark.integration

SCRIPT = {"rules": [{"match": "show foo", "tool": "Bash",
                     "input": {"command": "echo foo=$SAC_TEST_FOO", "description": "show foo"},
                     "then": "Done: {tool_result}"}]}


def hook_events(sac_env, name):
    records = [json.loads(line) for line in
               sac_env.sac("agents", "tail", name, "-n", "500", "--json").stdout.splitlines()]
    return [r["event"] for r in records if r["event"].get("subtype") == "hook"]


def test_a_failing_pre_start_stops_the_start_with_its_last_stderr_line(sac_env):
    hooks = {"pre_start": ["echo checking; echo 'no dataset in /data' >&2; exit 3"],
             "on_failure": ["touch on-failure-ran"]}
    sac_env.write_spec("early", extra={"hooks": hooks})
    started = sac_env.sac("agents", "start", sac_env.specs / "early", check=False)
    assert started.returncode != 0
    assert started.stderr.strip().splitlines() == [
        "error: agent early did not start: hooks.pre_start[0] failed (exit 3): no dataset in /data"]
    status = sac_env.sac_json("agents", "status", "early")
    assert status["state"] == "failed" and "no dataset in /data" in status["last_error"]
    assert status["pid"] is None  # no engine was started
    assert (sac_env.agent_dir("early") / "work" / "on-failure-ran").exists()
    [failed, on_failure] = hook_events(sac_env, "early")
    assert (failed["hook"], failed["code"], failed["stdout"]) == ("pre_start", 3, "checking\n")
    assert (on_failure["hook"], on_failure["code"]) == ("on_failure", 0)


def test_hooks_run_in_the_sandbox_with_their_variables_and_a_failing_post_stop_is_not_fatal(sac_env):
    hooks = {"post_start": ["echo $SAC_AGENT $SAC_EVENT $SAC_WORKDIR $(id -u) > post-start.txt"],
             "pre_stop": [{"run": "echo $SAC_EVENT > pre-stop.txt", "timeout_s": 5}],
             "post_stop": ["echo $SAC_EVENT > post-stop.txt; ls ~/.ssh 2>&1 | tail -1 >&2; exit 1"]}
    sac_env.write_spec("hooked", extra={"hooks": hooks})
    sac_env.sac("agents", "start", sac_env.specs / "hooked")
    work = sac_env.agent_dir("hooked") / "work"
    sac_env.wait_for(lambda: (work / "post-start.txt").exists(), what="the post_start hook's file")
    # uid 1000: the sandbox's user, as for the engine's tools
    assert (work / "post-start.txt").read_text() == "hooked post_start %s 1000\n" % work
    assert sac_env.sac_json("agents", "send", "hooked", "hello")["status"] == "completed"
    stopped = sac_env.sac("agents", "stop", "hooked")
    assert (work / "pre-stop.txt").read_text() == "pre_stop\n"
    assert (work / "post-stop.txt").read_text() == "post_stop\n"
    events = {e["hook"]: e for e in hook_events(sac_env, "hooked")}
    assert events["post_stop"]["code"] == 1 and "No such file or directory" in events["post_stop"]["error"]
    assert stopped.returncode == 0 and stopped.stdout.startswith("hooked: stopped (hooks.post_stop[0] failed (exit 1): ")
    status = sac_env.sac_json("agents", "status", "hooked")
    assert status["state"] == "stopped" and status["last_error"].startswith("hooks.post_stop[0] failed (exit 1)")
    tail = sac_env.sac("agents", "tail", "hooked", "-n", "500").stdout
    assert "hook       post_start[0] exit 0: echo $SAC_AGENT" in tail and "post_stop[0] exit 1:" in tail, tail


def test_a_startup_commands_export_is_seen_by_a_bash_tool_call(sac_env):
    sac_env.provider.load_script(SCRIPT)
    sac_env.write_spec("setup", extra={"startup_commands": ["export SAC_TEST_FOO=from-startup",
                                                            "cd /tmp && true"]})
    sac_env.sac("agents", "start", sac_env.specs / "setup")
    turn = sac_env.sac_json("agents", "send", "setup", "show foo")
    assert turn["status"] == "completed" and "foo=from-startup" in turn["reply"], turn


def test_a_failing_startup_command_keeps_the_engine_from_starting_and_says_which(sac_env):
    sac_env.write_spec("nosetup", extra={"startup_commands": ["source /nonexistent/venv/bin/activate"],
                                         "restart": {"policy": "never"}})
    sac_env.sac("agents", "start", sac_env.specs / "nosetup")
    status = sac_env.wait_for(lambda: (lambda s: s if s["state"] == "failed" else None)(
        sac_env.sac_json("agents", "status", "nosetup")), what="the agent to fail")
    assert "startup_commands[0] failed" in status["last_error"], status


def test_on_failure_runs_once_the_restart_budget_is_spent(sac_env):
    crash = {"command": ["python3", "-c", "import sys; sys.stderr.write('engine gave up\\n'); sys.exit(1)"]}
    sac_env.write_spec("crasher", extra={
        "engine": crash, "restart": {"policy": "on-failure", "max_retries": 1, "backoff": {"initial": 0.1, "max": 1}},
        "hooks": {"post_start": ["echo started >> starts.txt"],
                  "on_failure": ["echo \"failed after $SAC_EVENT\" > failed.txt"]}})
    sac_env.sac("agents", "start", sac_env.specs / "crasher")
    work = sac_env.agent_dir("crasher") / "work"
    sac_env.wait_for(lambda: (work / "failed.txt").exists(), what="the on_failure hook's file")
    assert (work / "failed.txt").read_text() == "failed after on_failure\n"
    status = sac_env.sac_json("agents", "status", "crasher")
    assert status["state"] == "failed" and "engine gave up" in status["last_error"]
    assert (work / "starts.txt").read_text() == "started\n"  # post_start: once, not at each restart
    assert [e["hook"] for e in hook_events(sac_env, "crasher")] == ["post_start", "on_failure"]
