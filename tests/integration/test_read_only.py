"""Observing a fleet changes nothing on its hosts: no upload, no daemon started, nothing stopped or fenced.

Only `sac fleet up` provisions hosts and carries out the plan (fences included).
"""

import json
import os
import time

import pytest

from tests.fixtures.agents import processes_mentioning

pytestmark = pytest.mark.integration


def by_name(rows):
    return {r["name"]: r for r in rows}


def untouched(host):
    """(files in the host's state dir, pids of processes that mention it)."""
    files = sorted(str(p.relative_to(host.state_dir)) for p in host.state_dir.rglob("*"))
    return files, processes_mentioning(str(host.state_dir))


def test_plan_dry_run_and_status_on_fresh_hosts_change_nothing(fleet_env):
    h1, h2 = fleet_env.sshd.start(1) + fleet_env.sshd.start(1, allow_stream_local=False)
    fleet_env.add_host(h1)
    fleet_env.add_host(h2)
    fleet_env.add_agent("a1", {"hosts": [h1.name]})
    inventory = fleet_env.write()

    plan = fleet_env.sac_json("fleet", "plan", inventory)
    assert [(a["kind"], a["agent"], a["host"]) for a in plan["plan"]] == [("start", "a1", h1.name)]
    dry = fleet_env.sac_json("fleet", "up", inventory, "--dry-run")
    assert dry["dry_run"] and dry["results"] == [] and not dry["changed"]
    status = fleet_env.sac("fleet", "status", inventory, "--json", check=False)
    assert status.returncode == 1  # a1 is desired and does not run
    report = json.loads(status.stdout)
    for row in report["hosts"]:
        assert row["state"] == "ok" and row["node"] == "not running" and row["agents_running"] == 0, row
        assert "would upload node.pyz" in row["reason"] and "start the node daemon" in row["reason"], row
    assert [(d["kind"], d["agent"]) for d in report["diff"]] == [("start", "a1")]
    text = fleet_env.sac("fleet", "status", inventory, check=False).stdout
    assert "not running" in text and "would upload node.pyz" in text
    text = fleet_env.sac("fleet", "plan", inventory).stdout
    assert "node        %s: not running; `sac fleet up` would upload node.pyz" % h2.name in text, text
    fleet_env.sac("fleet", "up", inventory, "--dry-run")
    for host in (h1, h2):
        assert untouched(host) == ([], []), host.name

    # `up` then does what they said it would.
    up = fleet_env.sac_json("fleet", "up", inventory)
    assert up["ok"] and any("uploaded node.pyz" in s for s in by_name(up["hosts"])[h1.name]["bootstrap"])
    assert by_name(fleet_env.sac_json("fleet", "status", inventory)["hosts"])[h1.name]["node"] == "running"


def test_send_to_an_agent_after_down_starts_nothing(fleet_env):
    host, = fleet_env.sshd.start(1)
    fleet_env.add_host(host)
    fleet_env.add_agent("a1", {"hosts": [host.name]})
    inventory = fleet_env.write()
    fleet_env.sac_json("fleet", "up", inventory)
    fleet_env.sac_json("fleet", "down", inventory)
    deadline = time.time() + 10
    while processes_mentioning(str(host.state_dir)) and time.time() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(host.state_dir)) == []
    daemon_log = (host.state_dir / "daemon.log").read_text()

    for args in (("send", "ghost", "hi"), ("send", "a1", "hi"), ("tail", "a1")):
        proc = fleet_env.sac("fleet", *args, "-i", inventory, check=False)
        assert proc.returncode != 0 and "no agent named" in proc.stderr, proc.stderr
    fleet_env.sac("fleet", "status", inventory, check=False)
    assert processes_mentioning(str(host.state_dir)) == []
    assert (host.state_dir / "daemon.log").read_text() == daemon_log  # no daemon started, even briefly


def _wait_gone(pid, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_a_duplicated_singleton_is_fenced_only_by_up(fleet_env):
    h1, h2 = fleet_env.sshd.start(2)
    fleet_env.add_host(h1, connect_timeout=3)
    fleet_env.add_host(h2, connect_timeout=3)
    fleet_env.doc["groups"] = {"pair": [h1.name, h2.name]}
    fleet_env.add_agent("solo", {"group": "pair", "singleton": True})
    inventory = fleet_env.write()
    first = fleet_env.sac_json("fleet", "up", inventory)
    home = [r["action"]["host"] for r in first["results"]][0]
    home_host, away = (h1, h2) if home == h1.name else (h2, h1)
    old = by_name(fleet_env.sac_json("fleet", "status", inventory)["agents"])["solo"]
    home_host.stop()  # partition: the copy keeps running there, unseen
    fleet_env.sac_json("fleet", "up", inventory, "--reschedule", check=False)
    home_host.start()

    status = fleet_env.sac_json("fleet", "status", inventory, check=False)
    live = sorted((a["host"], a["pid"]) for a in status["agents"] if a["name"] == "solo" and a["state"] != "stopped")
    assert [h for h, _ in live] == sorted([home, away.name]), status["agents"]
    new_pid = [p for h, p in live if h == away.name][0]
    assert not status["ok"]
    fence = [d for d in status["diff"] if d["kind"] == "fence"]
    assert [(f["agent"], f["host"], f["by_host"]) for f in fence] == [("solo", home, away.name)]
    plan = fleet_env.sac_json("fleet", "plan", inventory)
    fence = [a for a in plan["plan"] if a["kind"] == "fence"]
    assert [(f["agent"], f["host"]) for f in fence] == [("solo", home)]
    assert "singleton running twice" in fence[0]["reason"] and "1 to fence" in plan["summary"]
    text = fleet_env.sac("fleet", "plan", inventory).stdout
    assert "fence" in text and "solo on %s" % home in text
    for pid in (old["pid"], new_pid):
        os.kill(pid, 0)  # status and plan left both copies running

    up = fleet_env.sac_json("fleet", "up", inventory)
    assert [(f["agent"], f["host"], f["by_host"]) for f in up["fenced"]] == [("solo", home, away.name)]
    assert _wait_gone(old["pid"]), "the fenced copy's engine is still running"
    os.kill(new_pid, 0)
    after = fleet_env.sac_json("fleet", "status", inventory)
    assert after["ok"] and [(a["host"]) for a in after["agents"] if a["state"] != "stopped"] == [away.name]
    assert fleet_env.sac("fleet", "send", "solo", "who answers?", "-i", inventory).stdout.strip() == \
        "echo: who answers?"


def test_a_daemon_that_died_comes_back_and_one_that_was_stopped_does_not(fleet_env):
    host, = fleet_env.sshd.start(1)
    fleet_env.add_host(host)
    fleet_env.add_agent("a1", {"hosts": [host.name]})
    inventory = fleet_env.write()
    fleet_env.sac_json("fleet", "up", inventory)
    engine = fleet_env.sac_json("fleet", "status", inventory)["agents"][0]["pid"]
    daemon = json.loads((host.state_dir / "daemon.json").read_text())["pid"]
    os.kill(daemon, 9)  # its agents run on; nothing else would bring it back
    assert _wait_gone(daemon)
    status = fleet_env.sac_json("fleet", "status", inventory)
    row = status["hosts"][0]
    assert row["node"] == "running" and any("had died" in step for step in row["bootstrap"]), row
    assert [a["pid"] for a in status["agents"]] == [engine]
    assert fleet_env.sac("fleet", "send", "a1", "back?", "-i", inventory).stdout.strip() == "echo: back?"

    fleet_env.sac_json("fleet", "down", inventory, "--agents-only")
    daemon = json.loads((host.state_dir / "daemon.json").read_text())["pid"]
    os.kill(daemon, 15)  # a daemon stopped on purpose
    assert _wait_gone(daemon)
    status = fleet_env.sac("fleet", "status", inventory, "--json", check=False)
    assert json.loads(status.stdout)["hosts"][0]["node"] == "not running"
    assert processes_mentioning(str(host.state_dir)) == []


def test_reading_this_machines_agents_starts_no_daemon(sac_env):
    assert sac_env.sac_json("agents", "list") == []
    for args in (("status", "a1"), ("send", "a1", "hi"), ("tail", "a1"), ("health", "a1")):
        proc = sac_env.sac("agents", *args, check=False)
        assert proc.returncode == 2 and "no agent named a1" in proc.stderr and "Traceback" not in proc.stderr
    assert not (sac_env.home / "daemon.json").exists() and processes_mentioning(str(sac_env.home)) == []

    sac_env.sac("agents", "start", sac_env.write_spec("a1"))  # a change starts the daemon
    pid = sac_env.daemon_pid()
    os.kill(pid, 15)  # stopped on purpose: the agent's shim and engine run on
    assert _wait_gone(pid)
    proc = sac_env.sac("agents", "status", "a1", check=False)
    assert proc.returncode != 0 and "sac node restart" in proc.stderr, proc.stderr
    assert not processes_mentioning("daemon --state-dir %s" % sac_env.home)
    sac_env.sac("node", "restart")
    assert sac_env.sac_json("agents", "status", "a1")["state"] == "idle"
