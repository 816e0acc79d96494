"""`sac fleet` over real OpenSSH sshd hosts on loopback, with real Claude Code agents."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.fixtures.gateway import GatewayProcess

pytestmark = pytest.mark.integration


def by_name(rows):
    return {r["name"]: r for r in rows}


def test_four_hosts_placed_answering_and_idempotent(fleet_env):
    hosts = fleet_env.sshd.start(3) + fleet_env.sshd.start(1, allow_stream_local=False)
    h1, h2, h3, h4 = hosts
    fleet_env.add_host(h1, labels={"site": "lab"})
    fleet_env.add_host(h2, capacity=2)
    fleet_env.add_host(h3, capacity=2)
    fleet_env.add_host(h4, labels={"site": "hpc"})
    fleet_env.doc["groups"] = {"pool": [h2.name, h3.name]}
    fleet_env.add_agent("pinned", {"hosts": [h1.name]})
    fleet_env.add_agent("pooled", {"group": "pool", "replicas": 2})
    fleet_env.add_agent("hpc", {"labels": {"site": "hpc"}, "singleton": True})
    inventory = fleet_env.write()

    report = fleet_env.sac_json("fleet", "up", inventory)
    assert report["ok"] and report["changed"]
    started = {(r["action"]["agent"], r["action"]["host"]) for r in report["results"]}
    assert started == {("pinned", "h1"), ("pooled-0", "h2"), ("pooled-1", "h3"), ("hpc", "h4")}
    hosts_rows = by_name(report["hosts"])
    assert hosts_rows["h4"]["channel"] == "exec" and hosts_rows["h1"]["channel"] == "stream-local"

    for agent in ("pinned", "pooled-0", "pooled-1", "hpc"):
        reply = fleet_env.sac("fleet", "send", agent, "hi %s" % agent, "-i", inventory).stdout.strip()
        assert reply == "echo: hi %s" % agent

    status = fleet_env.sac_json("fleet", "status", inventory)
    assert status["ok"] and status["diff"] == []
    agents = by_name(status["agents"])
    assert {n: a["host"] for n, a in agents.items()} == {"pinned": "h1", "pooled-0": "h2", "pooled-1": "h3",
                                                         "hpc": "h4"}
    assert all(a["turns"]["completed"] == 1 for a in agents.values())
    assert all(h["state"] == "ok" and h["agents_running"] == h["agents_desired"] for h in status["hosts"])

    again = fleet_env.sac("fleet", "up", inventory)
    assert "already converged" in again.stdout and "nothing to change" in again.stdout
    pids = {a["name"]: a["pid"] for a in fleet_env.sac_json("fleet", "status", inventory)["agents"]}
    assert pids == {n: a["pid"] for n, a in agents.items()}


def test_jump_host_chain_goes_through_the_bastion(fleet_env):
    bastion, target = fleet_env.sshd.start(2, log_level="DEBUG1")
    fleet_env.add_host(bastion, jump_only=True)
    fleet_env.add_host(target, jump=[bastion.name])
    fleet_env.add_agent("behind", {"hosts": [target.name]})
    inventory = fleet_env.write()
    report = fleet_env.sac_json("fleet", "up", inventory)
    assert report["ok"] and [h["name"] for h in report["hosts"]] == [target.name]
    assert "direct-tcpip" in bastion.log() and "port %d" % target.port in bastion.log()
    assert fleet_env.sac("fleet", "send", "behind", "via bastion", "-i", inventory).stdout.strip() == \
        "echo: via bastion"
    tail = fleet_env.sac("fleet", "tail", "behind", "-i", inventory, "-n", "20").stdout
    assert "user       via bastion" in tail and "assistant  echo: via bastion" in tail
    bastion.stop()
    down = fleet_env.sac_json("fleet", "status", inventory, check=False)
    assert by_name(down["hosts"])[target.name]["state"] in ("unreachable", "timed_out")
    assert "jump host" in by_name(down["hosts"])[target.name]["reason"]


def test_unknown_and_changed_host_keys_are_refused(fleet_env):
    host, = fleet_env.sshd.start(1)
    known = fleet_env.root / "empty_known_hosts"
    known.write_text("")
    fleet_env.add_host(host, known_hosts=str(known))
    fleet_env.add_agent("a1", {"hosts": [host.name]})
    inventory = fleet_env.write()
    proc = fleet_env.sac("fleet", "status", inventory, "--json", check=False)
    assert proc.returncode == 1
    row = by_name(json.loads(proc.stdout)["hosts"])[host.name]
    assert row["state"] == "host_key_unknown" and "--accept-new-host-keys" in row["reason"]
    assert row["agents_running"] is None  # never shown as "0 agents"

    assert fleet_env.sac_json("fleet", "up", inventory, "--accept-new-host-keys")["ok"]
    assert host.address in known.read_text()
    host.regenerate_host_key()
    proc = fleet_env.sac("fleet", "up", inventory, "--accept-new-host-keys", "--json", check=False)
    row = by_name(json.loads(proc.stdout)["hosts"])[host.name]
    assert proc.returncode == 1 and row["state"] == "host_key_changed" and "ssh-keygen -R" in row["reason"]


def test_a_stopped_host_is_unreachable_and_the_others_answer(fleet_env):
    h1, h2 = fleet_env.sshd.start(2)
    fleet_env.add_host(h1)
    fleet_env.add_host(h2, connect_timeout=3)
    fleet_env.add_agent("one", {"hosts": [h1.name]})
    fleet_env.add_agent("two", {"hosts": [h2.name]})
    inventory = fleet_env.write()
    fleet_env.sac_json("fleet", "up", inventory)
    h2.stop()
    started = time.monotonic()
    proc = fleet_env.sac("fleet", "status", inventory, "--json", check=False)
    elapsed = time.monotonic() - started
    report = json.loads(proc.stdout)
    assert proc.returncode == 1
    rows = by_name(report["hosts"])
    assert rows[h1.name]["state"] == "ok" and rows[h1.name]["agents_running"] == 1
    assert rows[h2.name]["state"] == "unreachable" and "refused" in rows[h2.name]["reason"]
    assert rows[h2.name]["agents_running"] is None
    assert [a["name"] for a in report["agents"]] == ["one"]
    two = [d for d in report["diff"] if d["agent"] == "two"]
    assert len(two) == 1 and "%s unreachable" % h2.name in two[0]["line"], report["diff"]
    assert elapsed < 30
    assert fleet_env.sac("fleet", "send", "one", "still there", "-i", inventory).stdout.strip() == "echo: still there"
    text = fleet_env.sac("fleet", "status", inventory, check=False).stdout
    h2_row = [l for l in text.splitlines() if l.strip().startswith(h2.name + " ")][0]
    assert "unreachable" in h2_row and " ?/" in h2_row  # agents unknown, never "0"


def test_node_upgrade_keeps_agents_running(fleet_env):
    host, = fleet_env.sshd.start(1)
    fleet_env.add_host(host)
    fleet_env.add_agent("kept", {"hosts": [host.name]})
    inventory = fleet_env.write()
    fleet_env.sac_json("fleet", "up", inventory)
    before = by_name(fleet_env.sac_json("fleet", "status", inventory)["agents"])["kept"]
    daemon_file = host.state_dir / "daemon.json"
    current = json.loads(daemon_file.read_text())
    # Replace the daemon with one that says it came from another node.pyz (an older head's):
    # the agents' shims keep running meanwhile, as they would across a real upgrade.
    os.kill(current["pid"], signal.SIGTERM)
    pyz = host.state_dir / "node" / ("%s.pyz" % current["sha"])
    subprocess.run(["/usr/bin/env", "python3", str(pyz), "daemon", "--state-dir", str(host.state_dir), "--detach"],
                   env=dict(os.environ, SAC_NODE_SHA="0" * 64), check=True, timeout=30)
    old = json.loads(daemon_file.read_text())
    assert old["sha"] == "0" * 64 and old["pid"] != current["pid"]
    report = fleet_env.sac_json("fleet", "up", inventory)
    assert any("upgraded the node" in step for step in by_name(report["hosts"])[host.name]["bootstrap"])
    new = json.loads(daemon_file.read_text())
    assert new["pid"] != old["pid"] and new["sha"] == current["sha"]
    after = by_name(fleet_env.sac_json("fleet", "status", inventory)["agents"])["kept"]
    assert after["pid"] == before["pid"] and after["restarts"] == 0
    assert fleet_env.sac("fleet", "send", "kept", "after upgrade", "-i", inventory).stdout.strip() == \
        "echo: after upgrade"


def test_down_stops_agents_and_daemons(fleet_env):
    host, = fleet_env.sshd.start(1)
    fleet_env.add_host(host)
    fleet_env.add_agent("a1", {"hosts": [host.name]})
    inventory = fleet_env.write()
    fleet_env.sac_json("fleet", "up", inventory)
    engine = by_name(fleet_env.sac_json("fleet", "status", inventory)["agents"])["a1"]["pid"]
    report = fleet_env.sac_json("fleet", "down", inventory)
    assert [r["agent"] for r in report["stopped"]] == ["a1"] and report["daemons_stopped"]
    with pytest.raises(ProcessLookupError):
        os.kill(engine, 0)


def test_prune_stops_only_what_this_fleet_started(fleet_env):
    host, = fleet_env.sshd.start(1)
    fleet_env.add_host(host)
    fleet_env.add_agent("kept", {"hosts": [host.name]})
    fleet_env.add_agent("dropped", {"hosts": [host.name]})
    inventory = fleet_env.write()
    fleet_env.sac_json("fleet", "up", inventory)
    # An agent started on that node by hand, outside the inventory, with the node's own CLI.
    fleet_env.add_agent("by-hand")
    spec_dir = fleet_env.root / "agents" / "by-hand"
    fleet_env.doc["agents"] = [a for a in fleet_env.doc["agents"] if a["spec"] != "agents/by-hand"]
    fleet_env.doc["agents"] = [a for a in fleet_env.doc["agents"] if a["spec"] != "agents/dropped"]
    fleet_env.write()
    env = dict(fleet_env.env, SAC_HOME=str(host.state_dir))
    subprocess.run([sys.executable, "-m", "sac_fleet", "agents", "start", str(spec_dir)], env=env, check=True,
                   capture_output=True)
    plan = fleet_env.sac_json("fleet", "plan", inventory, "--prune")
    kinds = {(a["agent"], a["kind"]) for a in plan["plan"]}
    assert ("dropped", "stop") in kinds and ("kept", "keep") in kinds
    assert not any(a["agent"] == "by-hand" for a in plan["plan"])
    report = fleet_env.sac_json("fleet", "up", inventory, "--prune")
    assert {r["action"]["agent"] for r in report["results"] if r["action"]["kind"] == "stop"} == {"dropped"}
    listed = subprocess.run([sys.executable, "-m", "sac_fleet", "agents", "list", "--json"], env=env, check=True,
                            capture_output=True, text=True)
    states = {a["name"]: a["state"] for a in json.loads(listed.stdout)}
    assert states["by-hand"] == "idle" and states["dropped"] == "stopped" and states["kept"] == "idle"


def test_singleton_never_keeps_two_live_copies_after_a_partition(fleet_env):
    h1, h2 = fleet_env.sshd.start(2)
    fleet_env.add_host(h1, connect_timeout=3)
    fleet_env.add_host(h2, connect_timeout=3)
    fleet_env.doc["groups"] = {"pair": [h1.name, h2.name]}
    fleet_env.add_agent("solo", {"group": "pair", "singleton": True})
    inventory = fleet_env.write()
    first = fleet_env.sac_json("fleet", "up", inventory)
    home = [r["action"]["host"] for r in first["results"]][0]
    away = h2 if home == h1.name else h1
    home_host = h1 if home == h1.name else h2
    old = by_name(fleet_env.sac_json("fleet", "status", inventory)["agents"])["solo"]

    home_host.stop()  # partition: the copy keeps running there, unseen
    held = fleet_env.sac_json("fleet", "up", inventory, check=False)
    assert not [r for r in held["results"] if r["action"]["kind"] == "start"]
    assert any(a["agent"] == "solo" and "--reschedule" in a["line"] for a in held["plan"])
    moved = fleet_env.sac_json("fleet", "up", inventory, "--reschedule", check=False)
    assert [(r["action"]["agent"], r["action"]["host"]) for r in moved["results"]
            if r["action"]["kind"] == "start"] == [("solo", away.name)]
    os.kill(old["pid"], 0)  # the stale copy still lives behind the partition

    home_host.start()
    fenced = fleet_env.sac_json("fleet", "up", inventory)  # only `up` fences (test_read_only.py)
    assert [f["host"] for f in fenced["fenced"]] == [home]
    status = fleet_env.sac_json("fleet", "status", inventory)
    live = [a for a in status["agents"] if a["state"] != "stopped"]
    assert [(a["name"], a["host"]) for a in live] == [("solo", away.name)]
    assert live[0]["generation"] > old["generation"]
    # the stale engine is gone
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            os.kill(old["pid"], 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the fenced copy's engine is still running")
    reply = fleet_env.sac("fleet", "send", "solo", "who answers?", "-i", inventory).stdout.strip()
    assert reply == "echo: who answers?"
    again = fleet_env.sac_json("fleet", "up", inventory)
    assert not again["fenced"] and not [r for r in again["results"] if r["action"]["kind"] == "start"]


def test_warm_status_attaches_without_running_anything_on_the_host(fleet_env):
    host, = fleet_env.sshd.start(1, log_level="DEBUG1")
    fleet_env.add_host(host)
    fleet_env.add_agent("a1", {"hosts": [host.name]})
    inventory = fleet_env.write()
    fleet_env.sac_json("fleet", "up", inventory)
    execs_before = host.log().count("Starting session: command")
    assert execs_before == 3  # a cold up: probe, upload, probe that starts the daemon
    status = fleet_env.sac_json("fleet", "status", inventory)
    assert status["ok"] and status["hosts"][0]["channel"] == "stream-local"
    assert host.log().count("Starting session: command") == execs_before  # warm: nothing ran on the host


def test_a_host_without_the_python_it_names_says_so(fleet_env):
    good, bad = fleet_env.sshd.start(2)
    fleet_env.add_host(good)
    fleet_env.add_host(bad, python="/opt/no-such/python3")
    fleet_env.add_agent("a1", {"hosts": [good.name]})
    inventory = fleet_env.write()
    proc = fleet_env.sac("fleet", "up", inventory, "--json", check=False)
    report = json.loads(proc.stdout)
    rows = by_name(report["hosts"])
    assert proc.returncode == 1 and rows[good.name]["state"] == "ok"
    assert rows[bad.name]["state"] == "python_missing" and "set `python:`" in rows[bad.name]["reason"]
    assert rows[bad.name]["agents_running"] is None


def test_a_host_behind_a_jump_host_sends_small_packets_at_once(fleet_env):
    """sshd turns Nagle off only for a session that execs, and the head's quick ACKs reach only the
    first hop: without one no-op exec on the target, a gateway's warm connection to a host behind a
    bastion left the target's sshd with Nagle on, and the second of two turns at once to it waited
    ~40 ms for the bastion's delayed ACK (bench/gateway.py, "2 turns at once to one host")."""
    bastion, target = fleet_env.sshd.start(2, log_level="DEBUG1")
    fleet_env.add_host(bastion, jump_only=True)
    fleet_env.add_host(target, jump=[bastion.name])
    fleet_env.add_agent("behind", {"hosts": [target.name]})
    inventory = fleet_env.write()
    assert fleet_env.sac_json("fleet", "up", inventory)["ok"]
    assert target.connections_nodelay() == {}  # the CLI's connection is closed
    execs_before = target.log().count("Starting session: command")

    gateway = GatewayProcess(fleet_env.env, inventory)
    try:
        status = gateway.get_json("/v1/status")  # warm: the gateway keeps this connection open
        assert by_name(status["hosts"])[target.name]["state"] == "ok"
        assert list(target.connections_nodelay().values()) == [True]
        assert target.log().count("Starting session: command") == execs_before + 1  # the no-op, no probe
        assert bastion.log().count("Starting session: command") == 0  # the first hop needs none
    finally:
        gateway.stop()


def test_an_ansible_inventory_reaches_the_same_hosts_as_the_hand_written_one(fleet_env):
    bastion, behind, direct = fleet_env.sshd.start(3, log_level="DEBUG1")
    key = bastion.inventory_fields()["identity_file"]
    (fleet_env.root / "hosts.ini").write_text(
        "[bastions]\n%s ansible_host=%s ansible_port=%d\n\n"
        "[lab]\n%s ansible_host=%s ansible_port=%d ansible_ssh_common_args='-o ProxyJump=%s'\n"
        "%s ansible_host=%s ansible_port=%d ansible_become=true\n\n"
        "[all:vars]\nansible_user=root\nansible_ssh_private_key_file=%s\n"
        % (bastion.name, bastion.address, bastion.port, behind.name, behind.address, behind.port, bastion.name,
           direct.name, direct.address, direct.port, key))
    sac_only = {"env_preamble": "export SAC_CLAUDE_BIN=%s" % fleet_env.claude_bin}
    imported = fleet_env.root / "from-ansible.yaml"
    imported.write_text(yaml.safe_dump({
        "name": "lab",
        "hosts_from": "hosts.ini",
        "defaults": {"connect_timeout": 5, "known_hosts": bastion.inventory_fields()["known_hosts"]},
        "hosts": {bastion.name: {"jump_only": True},
                  behind.name: dict(sac_only, state_dir=str(behind.state_dir)),
                  direct.name: dict(sac_only, state_dir=str(direct.state_dir))},
        "agents": [{"spec": "agents/spread", "placement": {"group": "lab", "per_host": True}}]}))
    fleet_env.add_agent("spread")  # writes agents/spread/spec.yaml
    up = fleet_env.sac("fleet", "up", imported, "--json")
    assert "ansible_become: not used by sac" in up.stderr  # told, not dropped in silence
    report = json.loads(up.stdout)
    assert report["ok"] and sorted(h["name"] for h in report["hosts"]) == sorted([behind.name, direct.name])
    assert "direct-tcpip" in bastion.log() and "port %d" % behind.port in bastion.log()

    # The hand-written inventory for the same hosts reaches the same nodes, by the same paths.
    fleet_env.add_host(bastion, jump_only=True)
    fleet_env.add_host(behind, jump=[bastion.name])
    fleet_env.add_host(direct)
    fleet_env.doc["agents"] = [{"spec": "agents/spread", "placement": {"hosts": [behind.name, direct.name],
                                                                         "per_host": True}}]
    fleet_env.doc["name"] = "lab"  # the same fleet, whichever file names it
    by_hand = fleet_env.write()
    rows, running = {}, {}
    for inventory in (imported, by_hand):
        status = fleet_env.sac_json("fleet", "status", "-i", inventory)
        rows[inventory] = sorted((h["name"], h["state"], h["channel"], h["python"], h["node_sha"])
                                 for h in status["hosts"])
        running[inventory] = [h["agents_running"] for h in status["hosts"]]
    assert rows[imported] == rows[by_hand] and {r[1] for r in rows[imported]} == {"ok"}
    assert running[imported] == running[by_hand] == [1, 1]
