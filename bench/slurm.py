"""Agents in Slurm: time from `sac fleet up` to the first answered turn, against Slurm's own sbatch -> RUNNING.

    python bench/slurm.py [--rounds 3] [--runtime bwrap|none] [--json]

Starts, in the same run, a real 2-node Slurm cluster (tests/fixtures/slurm.py), one loopback sshd host
as its login node (tests/fixtures/sshd.py) and the built-in provider. Each round, interleaved:

  slurm alone   `sbatch --parsable` of a job that only sleeps, until squeue shows it RUNNING (polled
                every 20 ms): what the scheduler itself takes
  sac up        `sac fleet up` of one agent on the login node (daemon, sbatch, job start, shim and
                engine on a compute node, the link back), as the real CLI with Python's start-up
  first turn    then `sac fleet send` until the answer: up + this is what a user waits for
  sac job       the agent's own job, submit -> start, as Slurm recorded it (scontrol; 1 s resolution)

then `sac fleet down`, with the queue empty before the next round. Root only (sshd, slurmd).
Loopback only; every process started here is stopped at the end.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from sac_fleet.provider.server import ProviderServer  # noqa: E402
from tests.fixtures.agents import SPEC_TEMPLATE, processes_mentioning  # noqa: E402
from tests.fixtures.slurm import SlurmCluster, slurm_available  # noqa: E402
from tests.fixtures.sshd import SshdFleet, sshd_available  # noqa: E402
from tests.fixtures.tools import find_claude  # noqa: E402


def slurm_alone(cluster, root):
    script = root / "sleep.sh"
    script.write_text("#!/bin/sh\nsleep 30\n")
    start = time.perf_counter()
    job = cluster.run("sbatch", "--parsable", "--output=/dev/null", str(script)).strip()
    while not any(j["id"] == job and j["state"] == "RUNNING" for j in cluster.squeue()):
        time.sleep(0.02)
    took = time.perf_counter() - start
    cluster.run("scancel", job)
    return took


def sac(env, *args):
    done = subprocess.run([sys.executable, "-m", "sac_fleet"] + [str(a) for a in args], env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit("sac %s failed: %s%s" % (" ".join(map(str, args)), done.stdout, done.stderr))
    return done.stdout


def job_times(cluster, job_id):
    """Submit -> start of a job as Slurm recorded it (scontrol's 1 s resolution)."""
    out = cluster.run("scontrol", "show", "job", job_id, "-o", check=False)
    fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
    try:
        submit, started = (datetime.fromisoformat(fields[k]) for k in ("SubmitTime", "StartTime"))
    except (KeyError, ValueError):
        return None
    return (started - submit).total_seconds()


def one_round(cluster, env, inventory, root):
    row = {"slurm_alone_s": slurm_alone(cluster, root)}
    while cluster.squeue():
        time.sleep(0.1)
    start = time.perf_counter()
    sac(env, "fleet", "up", inventory)
    row["up_s"] = time.perf_counter() - start
    reply = sac(env, "fleet", "send", "bench", "hello", "-i", inventory).strip()
    row["first_turn_s"] = time.perf_counter() - start
    assert reply == "echo: hello", reply
    status = json.loads(sac(env, "fleet", "status", inventory, "--json"))
    job = status["agents"][0]["slurm"]
    row["job"], row["node"] = job["job_id"], job["node"]
    row["sac_job_submit_to_start_s"] = job_times(cluster, job["job_id"])
    sac(env, "fleet", "down", inventory)
    deadline = time.time() + 30
    while cluster.squeue() and time.time() < deadline:
        time.sleep(0.1)
    return row


def setup(root, claude, runtime, provider):
    cluster = SlurmCluster(root / "slurm").start()
    sshd = SshdFleet(root / "sshd")
    login, = sshd.start(1)
    spec = json.loads(json.dumps(SPEC_TEMPLATE))
    spec["metadata"]["name"] = "bench"
    spec["spec"]["claude"]["provider"]["base_url"] = provider.url
    spec["spec"]["isolation"] = {"runtime": runtime}
    (root / "agents" / "bench").mkdir(parents=True)
    (root / "agents" / "bench" / "spec.yaml").write_text(yaml.safe_dump(spec))
    host = dict(login.inventory_fields(), slurm={"time": "10:00", "resubmit_before_s": 60,
                                                  "login_address": login.address},
                env_preamble="export SAC_CLAUDE_BIN=%s SLURM_CONF=%s" % (claude, cluster.env["SLURM_CONF"]))
    inventory = root / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": {login.name: host}, "agents": [{"spec": "agents/bench"}]}))
    env = dict(os.environ, SAC_HOME=str(root / "head-home"), NO_COLOR="1", COLUMNS="200", SAC_CLAUDE_BIN=claude,
               **cluster.env)
    return cluster, sshd, login, inventory, env


def median(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtime", choices=("bwrap", "none"), default="bwrap" if shutil.which("bwrap") else "none")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for reason in (slurm_available(), sshd_available()):
        if reason:
            raise SystemExit("cannot run: %s" % reason)
    claude = find_claude()
    if not claude:
        raise SystemExit("cannot run: no Claude Code CLI (make tools, or SAC_CLAUDE_BIN)")
    root = Path(tempfile.mkdtemp(prefix="sac-bench-slurm-"))
    provider = ProviderServer(None).start()
    cluster = sshd = login = None
    try:
        cluster, sshd, login, inventory, env = setup(root, claude, args.runtime, provider)
        rows = [one_round(cluster, env, inventory, root) for _ in range(args.rounds)]
    finally:
        if cluster is not None:
            cluster.close()
        if login is not None:
            for pid in processes_mentioning(str(login.state_dir)):
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        if sshd is not None:
            sshd.close()
        provider.stop()
        if not os.environ.get("SAC_BENCH_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
    report = {"rounds": rows, "runtime": args.runtime, "median": {k: median(rows, k) for k in (
        "slurm_alone_s", "up_s", "first_turn_s", "sac_job_submit_to_start_s")}}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print("round  slurm sbatch->RUNNING  sac fleet up  up->first answer  sac's job submit->start (Slurm, 1 s)")
    for i, r in enumerate(rows, 1):
        print("%5d  %19.2fs  %11.2fs  %15.2fs  %s" % (i, r["slurm_alone_s"], r["up_s"], r["first_turn_s"],
                                                     "-" if r["sac_job_submit_to_start_s"] is None
                                                     else "%.0fs" % r["sac_job_submit_to_start_s"]))
    m = report["median"]
    print("median %19.2fs  %11.2fs  %15.2fs   (runtime %s)" % (m["slurm_alone_s"], m["up_s"], m["first_turn_s"],
                                                               args.runtime))


if __name__ == "__main__":
    main()
