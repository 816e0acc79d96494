"""Status from Claude Code's own hooks: real Claude Code in real bwrap reports to its shim over a bound socket."""

import json
import threading

import pytest
import yaml

pytestmark = pytest.mark.integration

SCRIPT = {"rules": [{"match": "slow tool", "tool": "Bash",
                     "input": {"command": "sleep 12; echo slept", "description": "sleep a while"},
                     "then": "Done: {tool_result}"}]}
USER_SETTINGS = {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "echo user-hook >> user-hook.txt"}]}]},
                 "env": {"FROM_USER_SETTINGS": "1"}}


def activity(sac_env, name):
    return sac_env.sac_json("agents", "status", name)["activity"]


def test_status_shows_the_running_tool_and_a_long_tool_is_not_a_stall(sac_env):
    sac_env.provider.load_script(SCRIPT)
    # stall_timeout_s 2 < the tool's 12 s of silence: only the hooks' word keeps the turn alive
    sac_env.write_spec("busy", extra={"health": {"stall_timeout_s": 2}})
    inventory = sac_env.root / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": {"here": {"transport": "local"}},
                                         "agents": [{"spec": "specs/busy"}]}))
    sac_env.sac("fleet", "up", inventory)
    assert sac_env.sac_json("agents", "send", "busy", "hello")["status"] == "completed"
    done = {}
    sender = threading.Thread(target=lambda: done.update(json.loads(sac_env.sac(
        "agents", "send", "busy", "slow tool", "--json", check=False).stdout)))
    sender.start()
    running = sac_env.wait_for(lambda: activity(sac_env, "busy")["tool"], timeout=30, what="a running tool")
    assert running["name"] == "Bash" and running["summary"] == "sleep 12; echo slept"
    text = sac_env.sac("agents", "status", "busy").stdout
    assert "now:        Bash: sleep 12; echo slept (for " in text, text
    fleet = json.loads(sac_env.sac("fleet", "status", inventory, "--json", check=False).stdout)
    [row] = [a for a in fleet["agents"] if a["name"] == "busy"]
    assert row["activity"]["tool"]["name"] == "Bash", row
    assert "Bash" in sac_env.sac("fleet", "status", inventory, check=False).stdout  # the DOING column
    sender.join(60)
    assert done["status"] == "completed" and "slept" in done["reply"], done
    after = activity(sac_env, "busy")
    assert after["tool"] is None
    assert after["recent_tools"][0]["name"] == "Bash" and after["recent_tools"][0]["duration_s"] >= 12
    assert after["last_activity_at"] >= running["since"]


def test_context_use_moves_after_turns(sac_env):
    sac_env.write_spec("talker")
    sac_env.sac("agents", "start", sac_env.specs / "talker")
    sac_env.sac_json("agents", "send", "talker", "hello")
    first = activity(sac_env, "talker")["context"]
    assert first["tokens"] > 0 and first["window"] > 0 and first["percent"] > 0, first
    sac_env.sac_json("agents", "send", "talker", "tell me more " * 200)
    second = activity(sac_env, "talker")["context"]
    assert second["tokens"] > first["tokens"] and second["percent"] > first["percent"], (first, second)


def test_the_users_own_settings_and_hooks_are_kept(sac_env):
    sac_env.write_spec("mine", to_home={".claude/settings.json": json.dumps(USER_SETTINGS)})
    sac_env.sac("agents", "start", sac_env.specs / "mine")
    sac_env.sac_json("agents", "send", "mine", "hello")
    work = sac_env.agent_dir("mine") / "work"
    sac_env.wait_for(lambda: (work / "user-hook.txt").exists(), what="the user's Stop hook")
    settings = json.loads((sac_env.agent_dir("mine") / "home" / ".claude" / "settings.json").read_text())
    assert settings["env"] == {"FROM_USER_SETTINGS": "1"}
    assert settings["hooks"]["Stop"][0] == USER_SETTINGS["hooks"]["Stop"][0]  # the user's first, unchanged
    assert activity(sac_env, "mine")["hooks_seen"] > 0  # and sac's too
