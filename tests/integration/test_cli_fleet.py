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
