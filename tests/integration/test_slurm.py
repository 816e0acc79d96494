"""Agents in Slurm allocations: a real slurmctld and two slurmds (tests/fixtures/slurm.py), the login node a
loopback sshd host, real Claude Code on the built-in provider."""

import time


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
