"""Agents in Slurm allocations: a real slurmctld and two slurmds (tests/fixtures/slurm.py), the login node a
loopback sshd host, real Claude Code on the built-in provider."""

import json
import time

from tests.fixtures import procs


def test_the_cluster_fixture_runs_a_job_on_a_compute_node_and_leaves_nothing(slurm_cluster, tmp_path):
    script = tmp_path / "job.sh"
    marker = str(tmp_path / "marker")
    script.write_text("#!/bin/sh\npython3 -c 'import time; time.sleep(300)' %s &\nwait\n" % marker)
    job = slurm_cluster.run("sbatch", "--parsable", "--output=/dev/null", str(script)).strip()
    deadline = time.time() + 20
    while time.time() < deadline:
        jobs = slurm_cluster.squeue()
        if jobs and jobs[0]["state"] == "RUNNING":
            break
        time.sleep(0.2)
    assert jobs[0]["id"] == job and jobs[0]["state"] == "RUNNING" and jobs[0]["node"] in ("n1", "n2")
    assert slurm_cluster.job_processes(marker)
    slurm_cluster.run("scancel", job)
    deadline = time.time() + 15
    while time.time() < deadline and (slurm_cluster.squeue() or slurm_cluster.job_processes(marker)):
        time.sleep(0.2)
    assert slurm_cluster.squeue() == []
    assert slurm_cluster.job_processes(marker) == []


def by_name(rows):
    return {r["name"]: r for r in rows}


def slurm_login(fleet_env, slurm_cluster, **slurm):
    """One loopback sshd host as the cluster's login node: its preamble points Slurm's commands at the test
    cluster, and its agents run in allocations."""
    login, = fleet_env.sshd.start(1)
    slurm = dict({"time": "10:00", "resubmit_before_s": 30, "login_address": login.address}, **slurm)
    fleet_env.add_host(login, slurm=slurm,
                       env_preamble="export SAC_CLAUDE_BIN=%s SLURM_CONF=%s"
                       % (fleet_env.claude_bin, slurm_cluster.env["SLURM_CONF"]))
    return login


def fleet_status(fleet_env, inventory):
    """`sac fleet status --json` (it exits 1 while an agent is not running yet, which is no error here)."""
    return fleet_env.sac_json("fleet", "status", inventory, check=False)


def wait_for(what, probe, timeout=60.0):
    deadline = time.time() + timeout
    while True:
        found = probe()
        if found or time.time() > deadline:
            assert found, "timed out waiting for %s" % what
            return found
        time.sleep(0.5)


def ancestors(pid):
    table = procs.processes()
    found = []
    while pid in table and pid > 1:
        found.append(table[pid])
        pid = table[pid].ppid
    return found


def test_agents_answer_from_inside_allocations_and_a_cancelled_job_is_resubmitted(fleet_env, slurm_cluster):
    login = slurm_login(fleet_env, slurm_cluster, agents_per_job=2)
    fleet_env.add_agent("alpha", {"hosts": [login.name]})
    fleet_env.add_agent("beta", {"hosts": [login.name]})
    inventory = fleet_env.write()
    assert fleet_env.sac_json("fleet", "up", inventory)["ok"]

    for name in ("alpha", "beta"):
        assert fleet_env.sac("fleet", "send", name, "hi %s" % name, "-i", inventory).stdout.strip() == \
            "echo: hi %s" % name
    agents = by_name(fleet_status(fleet_env, inventory)["agents"])
    jobs = {j["id"]: j for j in slurm_cluster.squeue()}
    job = agents["alpha"]["slurm"]
    assert agents["beta"]["slurm"]["job_id"] == job["job_id"] and list(jobs) == [job["job_id"]]  # one job, packed
    assert job["state"] == "RUNNING" and job["node"] == jobs[job["job_id"]]["node"] in ("n1", "n2")
    for name in ("alpha", "beta"):  # the engine runs under the job's slurmstepd, not under the login daemon
        assert any(p.argv and p.argv[0].startswith("slurmstepd") for p in ancestors(agents[name]["pid"]))
    table = fleet_env.sac("fleet", "status", inventory).stdout
    assert "job %s RUNNING on %s" % (job["job_id"], job["node"]) in table

    session = json.loads((login.state_dir / "agents" / "alpha" / "session.json").read_text())["session_id"]
    slurm_cluster.run("scancel", job["job_id"])
    cancelled_at = time.time()
    fresh = wait_for("a new job", lambda: [a for a in fleet_status(fleet_env, inventory)["agents"]
                                           if a["slurm"]["job_id"] != job["job_id"]
                                           and a["slurm"]["state"] == "RUNNING" and a["state"] == "idle"])
    seen_s = time.time() - cancelled_at
    assert seen_s < 30, seen_s
    assert fleet_env.sac("fleet", "send", "alpha", "again", "-i", inventory).stdout.strip() == "echo: again"
    agents = by_name(fleet_status(fleet_env, inventory)["agents"])
    assert agents["alpha"]["slurm"]["resubmits"] == 1 and agents["alpha"]["turns"]["completed"] == 2
    assert agents["beta"]["slurm"]["job_id"] == agents["alpha"]["slurm"]["job_id"]  # packed again
    # the new job's engine resumed the same conversation
    assert json.loads((login.state_dir / "agents" / "alpha" / "session.json").read_text())["session_id"] == session

    # a new login daemon takes the agents over: the jobs dial it again and keep running
    old_daemon = json.loads((login.state_dir / "daemon.json").read_text())["pid"]
    fleet_env.sac("node", "restart", login.name, "-i", inventory)
    assert json.loads((login.state_dir / "daemon.json").read_text())["pid"] != old_daemon
    assert fleet_env.sac("fleet", "send", "beta", "still there", "-i", inventory).stdout.strip() == \
        "echo: still there"
    assert by_name(fleet_status(fleet_env, inventory)["agents"])["beta"]["slurm"]["job_id"] == \
        agents["beta"]["slurm"]["job_id"]

    down = fleet_env.sac_json("fleet", "down", inventory)
    assert all(r["ok"] for r in down["stopped"])
    wait_for("an empty queue", lambda: slurm_cluster.squeue() == [], timeout=20)
    wait_for("no process of the job", lambda: not slurm_cluster.job_processes(str(login.state_dir / "slurm")),
             timeout=20)
    assert not slurm_cluster.job_processes(str(login.state_dir / "agents"))


def test_sbatch_refusing_is_one_line_with_slurms_error_and_the_field(fleet_env, slurm_cluster):
    login = slurm_login(fleet_env, slurm_cluster, partition="gpu-huge")
    fleet_env.add_agent("alpha", {"hosts": [login.name]})
    inventory = fleet_env.write()
    up = fleet_env.sac("fleet", "up", inventory, check=False)
    assert up.returncode != 0
    line = [l for l in up.stdout.splitlines() + up.stderr.splitlines() if "invalid partition" in l.lower()]
    assert line and "slurm.partition" in line[0] and "Traceback" not in up.stderr, up.stdout + up.stderr
    assert slurm_cluster.squeue() == []


def test_an_agent_waiting_for_resources_is_pending_not_failed_and_runs_when_they_free(fleet_env, slurm_cluster,
                                                                                      tmp_path):
    blocker = tmp_path / "blocker.sh"
    blocker.write_text("#!/bin/sh\nsleep 600\n")
    blocking = slurm_cluster.run("sbatch", "--parsable", "--exclusive", "--nodes=2", "--output=/dev/null",
                                 str(blocker)).strip()
    wait_for("the blocker to run", lambda: [j for j in slurm_cluster.squeue() if j["state"] == "RUNNING"])
    login = slurm_login(fleet_env, slurm_cluster)
    fleet_env.add_agent("alpha", {"hosts": [login.name]}, extra={"startup_prompts": ["warm up"]})
    inventory = fleet_env.write()
    up = fleet_env.sac_json("fleet", "up", inventory)
    assert up["ok"]

    status = fleet_status(fleet_env, inventory)
    alpha = by_name(status["agents"])["alpha"]
    assert alpha["state"] == "pending" and alpha["slurm"]["state"] == "PENDING"
    assert alpha["slurm"]["reason"] == "Resources" and status["ok"], alpha
    table = fleet_env.sac("fleet", "status", inventory).stdout
    assert "pending (Resources)" in table and "failed" not in table

    slurm_cluster.run("scancel", blocking)
    wait_for("alpha to run", lambda: by_name(fleet_status(fleet_env, inventory)["agents"])
             ["alpha"]["state"] == "idle")
    assert fleet_env.sac("fleet", "send", "alpha", "at last", "-i", inventory).stdout.strip() == "echo: at last"
    # the startup prompt waited for the job and ran once, before the turn
    assert by_name(fleet_status(fleet_env, inventory)["agents"])["alpha"]["turns"]["completed"] == 2
    conversations = [json.dumps(r["messages"]) for r in fleet_env.provider.requests]
    assert sum("warm up" in c and "at last" not in c for c in conversations) == 1
    fleet_env.sac("fleet", "down", inventory)
    wait_for("an empty queue", lambda: slurm_cluster.squeue() == [], timeout=20)


def test_walltime_hands_the_conversation_over_to_the_next_job(fleet_env, slurm_cluster):
    login = slurm_login(fleet_env, slurm_cluster, time="2:00", resubmit_before_s=60)
    fleet_env.add_agent("alpha", {"hosts": [login.name]})
    inventory = fleet_env.write()
    assert fleet_env.sac_json("fleet", "up", inventory)["ok"]
    assert fleet_env.sac("fleet", "send", "alpha", "before", "-i", inventory).stdout.strip() == "echo: before"
    first = by_name(fleet_status(fleet_env, inventory)["agents"])["alpha"]["slurm"]
    session = json.loads((login.state_dir / "agents" / "alpha" / "session.json").read_text())["session_id"]

    # 60 s before the 2-minute walltime ends, the next job is queued; the agent moves to it and answers there
    after = wait_for("the next job", lambda: [a for a in fleet_status(fleet_env, inventory)["agents"]
                                              if a["slurm"]["job_id"] != first["job_id"] and a["state"] == "idle"],
                     timeout=110)[0]
    assert after["slurm"]["state"] == "RUNNING" and after["slurm"]["resubmits"] == 0  # handed over, not resubmitted
    assert fleet_env.sac("fleet", "send", "alpha", "after", "-i", inventory).stdout.strip() == "echo: after"
    # the engine in the new allocation resumed the conversation: its request for "after" carried "before"
    sent = [json.dumps(r["messages"]) for r in fleet_env.provider.requests]
    assert any('"after"' in body and '"before"' in body for body in sent), sent[-3:]
    alpha = by_name(fleet_status(fleet_env, inventory)["agents"])["alpha"]
    assert alpha["turns"]["completed"] == 2 and alpha["turns"]["failed"] == 0 and alpha["turns"]["pending"] == 0, alpha
    saved = json.loads((login.state_dir / "agents" / "alpha" / "session.json").read_text())
    assert saved["session_id"] == session, saved
    wait_for("the first job to end", lambda: first["job_id"] not in [j["id"] for j in slurm_cluster.squeue()],
             timeout=20)
    fleet_env.sac("fleet", "down", inventory)
    wait_for("an empty queue", lambda: slurm_cluster.squeue() == [], timeout=20)
