"""Host settings that change take effect: a changed env_preamble restarts that host's node on the next `up`."""

import json

import pytest

pytestmark = pytest.mark.integration


def _daemon_pid(host):
    return json.loads((host.state_dir / "daemon.json").read_text())["pid"]


def test_a_changed_env_preamble_restarts_the_node_and_its_agents_keep_running(fleet_env):
    h1, h2 = fleet_env.sshd.start(2)
    fleet_env.add_host(h1)
    fleet_env.add_host(h2)
    fleet_env.add_agent("one", {"hosts": [h1.name]})
    inventory = fleet_env.write()
    assert fleet_env.sac_json("fleet", "up", inventory)["ok"]
    agent_pid = fleet_env.sac_json("fleet", "status", inventory)["agents"][0]["pid"]
    daemons = {h.name: _daemon_pid(h) for h in (h1, h2)}

    fleet_env.doc["hosts"][h1.name]["env_preamble"] += "\nexport SAC_TEST_SETTING=2"
    inventory = fleet_env.write()
    plan = fleet_env.sac_json("fleet", "plan", inventory)
    assert [a["line"] for a in plan["plan"] if a["kind"] == "restart-node"] == \
        ["restart node on %s: env_preamble changed" % h1.name]

    report = fleet_env.sac_json("fleet", "up", inventory)
    assert report["ok"] and report["outcome"]["nodes restarted"] == 1, report
    assert _daemon_pid(h1) != daemons[h1.name] and _daemon_pid(h2) == daemons[h2.name]
    status = fleet_env.sac_json("fleet", "status", inventory)
    assert [(a["name"], a["pid"]) for a in status["agents"]] == [("one", agent_pid)]
    assert fleet_env.sac("fleet", "send", "one", "still there", "-i", inventory).stdout.strip() == "echo: still there"

    again = fleet_env.sac_json("fleet", "up", inventory)
    assert not [a for a in again["plan"] if a["kind"] == "restart-node"] and not again["changed"], again


def test_an_engine_change_restarts_the_node_and_then_its_claude_agents(fleet_env):
    (h1,) = fleet_env.sshd.start(1)
    fleet_env.add_host(h1)
    fleet_env.add_agent("one", {"hosts": [h1.name]})
    inventory = fleet_env.write()
    assert fleet_env.sac_json("fleet", "up", inventory)["ok"]
    agent_pid = fleet_env.sac_json("fleet", "status", inventory)["agents"][0]["pid"]

    fleet_env.doc["hosts"][h1.name]["engine"] = {"bin": fleet_env.claude_bin}
    inventory = fleet_env.write()
    report = fleet_env.sac_json("fleet", "up", inventory)
    (restart,) = [r for r in report["results"] if r["action"]["kind"] == "restart-node"]
    assert restart["action"]["line"] == "restart node on %s: engine changed" % h1.name
    assert restart["agents_restarted"] == ["one"], restart
    status = fleet_env.sac_json("fleet", "status", inventory)
    assert status["agents"][0]["pid"] != agent_pid
    assert fleet_env.sac("fleet", "send", "one", "new engine", "-i", inventory).stdout.strip() == "echo: new engine"
