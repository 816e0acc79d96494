"""Every failure is told as it is: one line naming the file, field and reason, and counted in summaries."""

import json

import pytest

pytestmark = pytest.mark.integration

BAD_WORKDIR = "/dev/null/work"  # under a file: it can never be made


def test_a_workdir_that_cannot_be_made_is_one_line_at_agents_start(sac_env):
    agent = sac_env.write_spec("a1", extra={"workdir": BAD_WORKDIR})
    proc = sac_env.sac("agents", "start", agent, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    line = proc.stderr.strip()
    assert str(agent / "spec.yaml") in line and "spec.workdir %s" % BAD_WORKDIR in line and "Not a directory" in line
    assert "Traceback" not in (sac_env.home / "daemon.log").read_text()


def test_fleet_up_counts_what_started_and_what_failed(fleet_env):
    host, = fleet_env.sshd.start(1)
    fleet_env.add_host(host)
    fleet_env.add_agent("good", {"hosts": [host.name]})
    fleet_env.add_agent("bad", {"hosts": [host.name]}, extra={"workdir": BAD_WORKDIR})
    inventory = fleet_env.write()

    first = fleet_env.sac("fleet", "up", inventory, check=False)
    assert first.returncode == 1
    last = first.stdout.strip().splitlines()[-1]
    assert last == "2 to start: 1 started, 1 failed", first.stdout
    failed = [l for l in first.stderr.splitlines() if "bad" in l]
    assert len(failed) == 1 and "spec.workdir %s" % BAD_WORKDIR in failed[0] and "Not a directory" in failed[0]
    assert "spec.yaml" in failed[0] and "Traceback" not in first.stderr

    again = fleet_env.sac("fleet", "up", inventory, check=False)
    assert again.returncode == 1
    last = again.stdout.strip().splitlines()[-1]
    assert last == "1 to start, 1 kept: 1 failed", again.stdout
    report = fleet_env.sac_json("fleet", "up", inventory, check=False)
    assert report["outcome"]["failed"] == 1 and report["outcome"]["started"] == 0
    assert "Traceback" not in (host.state_dir / "daemon.log").read_text()


def _key_spec(sac_env, name, var):
    return sac_env.write_spec(name, claude={"provider": {"base_url": sac_env.provider_url, "api_key_env": var}})


def test_the_missing_key_advice_works_and_node_restart_keeps_agents(sac_env):
    sac_env.sac("agents", "start", sac_env.write_spec("kept"))
    before = sac_env.sac_json("agents", "status", "kept")
    daemon = sac_env.daemon_pid()

    # The advice names both fixes; each works as it says.
    by_env, by_file = _key_spec(sac_env, "by-env", "SAC_TEST_KEY_A"), _key_spec(sac_env, "by-file", "SAC_TEST_KEY_B")
    proc = sac_env.sac("agents", "start", by_env, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    secrets = sac_env.home / "secrets.env"
    assert "sac node restart" in proc.stderr and "SAC_TEST_KEY_A=<key> to %s" % secrets in proc.stderr, proc.stderr
    sac_env.env["SAC_TEST_KEY_A"] = "key-a"
    assert sac_env.sac("agents", "start", by_env, check=False).returncode != 0  # the running daemon can't see it
    restarted = sac_env.sac("node", "restart")
    assert "restarted the node daemon" in restarted.stdout
    assert sac_env.daemon_pid() != daemon
    sac_env.sac("agents", "start", by_env)

    secrets.write_text("SAC_TEST_KEY_B=key-b\n")
    secrets.chmod(0o644)
    proc = sac_env.sac("agents", "start", by_file, check=False)
    assert proc.returncode != 0 and "chmod 600 %s" % secrets in proc.stderr, proc.stderr
    secrets.chmod(0o600)
    sac_env.sac("agents", "start", by_file)  # read at this start: no restart needed

    after = sac_env.sac_json("agents", "status", "kept")
    assert (after["pid"], after["restarts"]) == (before["pid"], before["restarts"])
    assert sac_env.sac("agents", "send", "kept", "still here?").stdout.strip() == "echo: still here?"
    assert "key-a" not in json.dumps(sac_env.sac_json("agents", "status", "by-env"))


def test_node_restart_of_a_fleet_host_keeps_its_agents(fleet_env):
    h1, h2 = fleet_env.sshd.start(2)
    fleet_env.add_host(h1)
    fleet_env.add_host(h2)
    fleet_env.add_agent("a1", {"hosts": [h1.name]})
    fleet_env.add_agent("a2", {"hosts": [h2.name]})
    inventory = fleet_env.write()
    fleet_env.sac_json("fleet", "up", inventory)
    before = {a["name"]: a["pid"] for a in fleet_env.sac_json("fleet", "status", inventory)["agents"]}
    daemons = {h.name: json.loads((h.state_dir / "daemon.json").read_text())["pid"] for h in (h1, h2)}

    rows = fleet_env.sac_json("node", "restart", h1.name, "-i", inventory)
    assert [(r["host"], r["ok"]) for r in rows] == [(h1.name, True)]
    assert any("its agents keep running" in step for step in rows[0]["actions"]), rows
    now = {h.name: json.loads((h.state_dir / "daemon.json").read_text())["pid"] for h in (h1, h2)}
    assert now[h1.name] != daemons[h1.name] and now[h2.name] == daemons[h2.name]
    after = fleet_env.sac_json("fleet", "status", inventory)
    assert {a["name"]: a["pid"] for a in after["agents"]} == before and after["ok"]
    assert all(a["restarts"] == 0 for a in after["agents"])
    assert fleet_env.sac("fleet", "send", "a1", "after restart", "-i", inventory).stdout.strip() == \
        "echo: after restart"
