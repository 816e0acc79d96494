"""The `sac fleet` CLI over real sshd hosts: the options every command shares, selectors, follow-ups."""

import json

import pytest

pytestmark = pytest.mark.integration


def test_status_and_plan_take_the_host_key_option_their_hint_names(fleet_env):
    host, = fleet_env.sshd.start(1)
    known = fleet_env.root / "empty_known_hosts"
    known.write_text("")
    fleet_env.add_host(host, known_hosts=str(known))
    fleet_env.add_agent("a1", {"hosts": [host.name]})
    inventory = fleet_env.write()
    refused = fleet_env.sac("fleet", "plan", "-i", inventory, "--json", check=False)
    assert "--accept-new-host-keys" in json.loads(refused.stdout)["hosts"][0]["reason"]
    status = fleet_env.sac("fleet", "status", "-i", inventory, "--accept-new-host-keys", "--json", check=False)
    row = json.loads(status.stdout)["hosts"][0]
    assert row["state"] not in ("host_key_unknown", "host_key_changed"), row
    assert host.address in known.read_text()
    plan = fleet_env.sac("fleet", "plan", "-i", inventory, "--accept-new-host-keys", "--json", check=False)
    assert json.loads(plan.stdout)["hosts"][0]["state"] != "host_key_unknown"


def test_a_fleet_turn_is_followed_up_and_cancelled_by_id_and_prompts_come_from_stdin(fleet_env):
    fleet_env.provider.load_script({"rules": [{"match": "slow", "reply": "slowly done",
                                               "fault": {"chunk_delay": 1.5}}]})
    host, = fleet_env.sshd.start(1)
    fleet_env.add_host(host)
    fleet_env.add_agent("a1", {"hosts": [host.name]})
    inventory = fleet_env.write()
    assert fleet_env.sac_json("fleet", "up", "-i", inventory)["ok"]
    slow = fleet_env.sac("fleet", "send", "a1", "go slow", "--no-wait", "-i", inventory).stdout.split()[-1]
    queued = fleet_env.sac("fleet", "send", "a1", "-", "--no-wait", "-i", inventory, input="queued").stdout.split()[-1]
    assert fleet_env.sac("fleet", "cancel", queued, "-i", inventory).stdout.strip() == "turn %s cancelled" % queued
    assert fleet_env.sac("fleet", "turn", slow, "--wait", "60", "-i", inventory).stdout.strip() == "slowly done"
    turn = fleet_env.sac_json("fleet", "turn", queued, "-i", inventory, check=False)
    assert turn["status"] == "cancelled"


def names(rows):
    return sorted(r["name"] for r in rows)


def test_label_selectors_and_host_limits_choose_what_a_command_touches(fleet_env):
    h1, h2 = fleet_env.sshd.start(2)
    fleet_env.add_host(h1)
    fleet_env.add_host(h2)
    fleet_env.add_agent("docs1", {"hosts": [h1.name]}, labels={"team": "docs"})
    fleet_env.add_agent("docs2", {"hosts": [h2.name]}, labels={"team": "docs"})
    fleet_env.add_agent("ops", {"hosts": [h1.name]}, labels={"team": "ops"})
    inventory = fleet_env.write()

    limited = fleet_env.sac_json("fleet", "up", "-i", inventory, "--limit", h1.name)
    assert sorted(r["action"]["agent"] for r in limited["results"]) == ["docs1", "ops"]
    assert names(fleet_env.sac_json("fleet", "status", "-i", inventory, check=False)["agents"]) == ["docs1", "ops"]
    assert fleet_env.sac_json("fleet", "up", "-i", inventory)["ok"]

    docs = fleet_env.sac_json("fleet", "status", "-i", inventory, "-l", "team=docs")
    assert names(docs["agents"]) == ["docs1", "docs2"] and docs["ok"]
    sent = fleet_env.sac("fleet", "send", "-l", "team=docs", "hello docs", "-i", inventory)
    assert sent.stdout.splitlines() == ["docs1: echo: hello docs", "docs2: echo: hello docs"]
    nobody = fleet_env.sac("fleet", "send", "-l", "team=nobody", "hi", "-i", inventory, check=False)
    assert nobody.returncode == 2 and "team=nobody" in nobody.stderr

    down = fleet_env.sac_json("fleet", "down", "-i", inventory, "-l", "team=ops")
    assert [r["agent"] for r in down["stopped"]] == ["ops"] and not down["daemons_stopped"]
    down = fleet_env.sac_json("fleet", "down", "-i", inventory, "--limit", h2.name)
    assert [r["agent"] for r in down["stopped"]] == ["docs2"]
    running = fleet_env.sac_json("fleet", "status", "-i", inventory, check=False)["agents"]
    assert {a["name"]: a["state"] for a in running if a["state"] != "stopped"} == {"docs1": "idle"}


def test_a_copied_inventory_is_the_same_fleet(fleet_env):
    import shutil

    host, = fleet_env.sshd.start(1)
    fleet_env.add_host(host)
    fleet_env.add_agent("a1", {"hosts": [host.name]})
    fleet_env.doc["name"] = "lab"
    fleet_env.doc["agents"][0]["spec"] = str(fleet_env.root / "agents" / "a1")  # the copy names the same spec
    inventory = fleet_env.write()
    assert fleet_env.sac_json("fleet", "up", "-i", inventory)["ok"]
    before = fleet_env.sac_json("fleet", "status", "-i", inventory)["agents"]
    copy = fleet_env.root / "another-checkout"
    copy.mkdir()
    shutil.copy(inventory, copy / "inventory.yaml")
    again = fleet_env.sac_json("fleet", "up", "-i", copy / "inventory.yaml")
    assert again["ok"] and not any(r["changed"] for r in again["results"]), again["results"]
    after = fleet_env.sac_json("fleet", "status", "-i", copy / "inventory.yaml")
    assert after["diff"] == [] and [a["pid"] for a in after["agents"]] == [a["pid"] for a in before]
