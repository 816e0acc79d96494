"""Activity (what Claude Code's hooks report) and the settings sac merges into the agent's home."""

import json

from sac_node.activity import Activity
from sac_node.hook_report import trimmed
from sac_node.hooks_socket import COMMAND, EVENTS, SCRIPT, SETTINGS, home_files, with_hooks


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_tool_runs_from_its_pre_to_its_post_tool_use_and_joins_the_last_five():
    clock = Clock()
    act = Activity(clock)
    for i in range(6):
        act.hook({"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_use_id": "t%d" % i, "summary": "n%d" % i})
        assert act.busy()
        clock.now += 2
        act.hook({"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_use_id": "t%d" % i})
        assert not act.busy()
    act.hook({"hook_event_name": "PreToolUse", "tool_name": "Read", "summary": "/etc/hostname"})
    clock.now += 7
    snap = act.snapshot(clock.now)
    assert snap["tool"] == {"name": "Read", "summary": "/etc/hostname", "since": 112.0, "running_s": 7.0}
    assert [t["summary"] for t in snap["recent_tools"]] == ["n5", "n4", "n3", "n2", "n1"]
    assert snap["recent_tools"][0]["duration_s"] == 2.0
    assert snap["last_activity_at"] == 112.0


def test_a_tool_of_an_engine_that_ended_is_not_running_any_more():
    act = Activity(Clock())
    act.hook({"hook_event_name": "PreToolUse", "tool_name": "Bash", "summary": "sleep 999"})
    act.engine_started()
    assert not act.busy() and act.snapshot(100.0)["recent_tools"][0]["summary"] == "sleep 999"


def test_notifications_wait_until_the_next_turn_and_compactions_count():
    act = Activity(Clock())
    act.hook({"hook_event_name": "Notification", "message": "Claude needs your permission to use Bash"})
    act.hook({"hook_event_name": "PreCompact", "trigger": "auto"})
    snap = act.snapshot(100.0)
    assert [n["message"] for n in snap["waiting"]] == ["Claude needs your permission to use Bash"]
    assert snap["compactions"] == 1
    act.turn_started()
    assert act.snapshot(100.0)["waiting"] == []


def test_context_is_the_last_calls_tokens_against_the_models_window():
    act = Activity(Clock())
    act.engine_event({"type": "assistant", "message": {"usage": {
        "input_tokens": 1000, "cache_read_input_tokens": 3000, "cache_creation_input_tokens": 500, "output_tokens": 500}}})
    assert act.snapshot(0)["context"] == {"tokens": 5000, "window": None, "percent": None}
    act.engine_event({"type": "result", "modelUsage": {"m[1m]": {"contextWindow": 1000000}, "h": {"contextWindow": 200000}}})
    assert act.snapshot(0)["context"] == {"tokens": 5000, "window": 1000000, "percent": 0.5}


def test_the_reporter_sends_a_short_summary_not_the_tools_whole_input():
    report = trimmed({"hook_event_name": "PreToolUse", "tool_name": "Write", "transcript_path": "/x",
                      "tool_input": {"file_path": "/w/a.txt", "content": "x" * 100000}})
    assert report == {"hook_event_name": "PreToolUse", "tool_name": "Write", "summary": "/w/a.txt"}


def test_sacs_hooks_are_added_after_the_users_and_nothing_the_user_set_changes():
    user = {"model": "sonnet", "disableAllHooks": False,
            "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
                      "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "audit"}]}]}}
    merged = with_hooks(user)
    assert merged["model"] == "sonnet" and merged["disableAllHooks"] is False
    assert set(merged["hooks"]) == set(EVENTS)
    assert merged["hooks"]["Stop"][0] == user["hooks"]["Stop"][0]
    assert merged["hooks"]["PreToolUse"][0] == user["hooks"]["PreToolUse"][0]
    assert merged["hooks"]["PreToolUse"][1] == {"matcher": "*", "hooks": [
        {"type": "command", "command": COMMAND, "timeout": 5}]}  # in step with the tool
    assert merged["hooks"]["Stop"][1] == {"hooks": [{"type": "command", "command": COMMAND, "timeout": 5,
                                                     "async": True}]}  # no turn waits for it
    assert len(with_hooks(merged)["hooks"]["Stop"]) == 2  # merging again adds nothing
    assert user["hooks"]["Stop"] == [{"hooks": [{"type": "command", "command": "notify-send done"}]}]  # not mutated


def test_home_files_add_the_script_and_leave_settings_that_are_not_json_alone():
    files = home_files({"CLAUDE.md": b"hi"})
    assert set(json.loads(files[SETTINGS])["hooks"]) == set(EVENTS)
    assert b"SAC_HOOKS_SOCKET" in files[SCRIPT] and files["CLAUDE.md"] == b"hi"
    assert home_files({SETTINGS: b"{not json"}) == {SETTINGS: b"{not json"}


def test_the_engine_is_given_the_socket_only_while_the_shim_serves_it(tmp_path):
    # Regression: a state dir path too long for AF_UNIX left no socket, and binding the missing path
    # kept bwrap from starting the engine at all.
    from sac_node.hooks_socket import INSIDE_SOCKET, engine_side
    from sac_node.state_dir import StateDir

    agent = StateDir(str(tmp_path)).create().agent("a1")
    assert engine_side(agent, "bwrap") == ({}, ())
    (tmp_path / "agents" / "a1").mkdir()
    (tmp_path / "agents" / "a1" / "hooks.sock").write_text("")
    path = str(tmp_path / "agents" / "a1" / "hooks.sock")
    assert engine_side(agent, "bwrap") == ({"SAC_HOOKS_SOCKET": INSIDE_SOCKET}, ((path, INSIDE_SOCKET),))
    assert engine_side(agent, "none") == ({"SAC_HOOKS_SOCKET": path}, ())


def test_a_socket_path_too_long_for_af_unix_is_served_and_reached(tmp_path):
    import asyncio
    import os
    import subprocess
    import sys

    from sac_node import hook_report
    from sac_node.hooks_socket import HooksServer
    from sac_node.state_dir import StateDir

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    agent = StateDir(str(deep)).create().agent("a1")
    os.makedirs(agent.path)
    assert len(os.path.join(agent.path, "hooks.sock")) > 120
    got = []

    async def run():
        server = HooksServer(agent, got.append)
        await server.serve()
        env = dict(os.environ, SAC_HOOKS_SOCKET=server.path)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-I", "-S", hook_report.__file__,
                                                    stdin=subprocess.PIPE, env=env)
        await proc.communicate(b'{"hook_event_name": "Stop"}')
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.02)
        server.close()
        return os.stat(server.path).st_mode & 0o777

    assert asyncio.run(run()) == 0o600
    assert got == [{"hook_event_name": "Stop", "summary": ""}]
