"""sac_node/slurm.py's pure parts: the batch script, sbatch's refusal in one line, squeue's time left."""

import pytest

from sac_node.slurm import job_script, refusal, seconds_left

SETTINGS = {"partition": "batch", "account": "mylab", "time": "8:00:00", "cpus_per_agent": 2, "mem_per_agent": "8G",
            "gres": None, "agents_per_job": 4, "resubmit_before_s": 600, "extra": ["--qos=normal"]}


def test_a_job_asks_for_its_agents_resources_and_execs_the_node_in_job_mode():
    script = job_script(SETTINGS, ["alpha", "beta"], "/shared/.sac/slurm/k1", ["/usr/bin/python3", "/s/node.pyz"])
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh"
    for line in ("#SBATCH --partition=batch", "#SBATCH --account=mylab", "#SBATCH --time=8:00:00",
                 "#SBATCH --cpus-per-task=4", "#SBATCH --mem=16384M", "#SBATCH --signal=B:USR1@600",
                 "#SBATCH --output=/shared/.sac/slurm/k1/slurm-%j.out"):
        assert line in lines
    assert not any("gres" in l for l in lines) and not any("qos" in l for l in lines)  # extra goes on argv
    assert lines[-1] == "exec /usr/bin/python3 /s/node.pyz job /shared/.sac/slurm/k1"


@pytest.mark.parametrize("stderr, field", [
    ("sbatch: error: invalid partition specified: gpu-huge\nsbatch: error: Batch job submission failed: "
     "Invalid partition name specified", "partition"),
    ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
     "account"),
    ("sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some "
     "limit)", "time"),
    ("sbatch: error: Memory specification can not be satisfied", "mem_per_agent"),
    ("sbatch: error: Batch job submission failed: Requested node configuration is not available",
     "cpus_per_agent"),
])
def test_sbatch_refusing_is_one_line_with_its_words_and_the_field(stderr, field):
    message = refusal(stderr, 1).message
    assert "\n" not in message and "slurm.%s" % field in message
    assert stderr.splitlines()[-1].strip() in message


@pytest.mark.parametrize("text, seconds", [("59:59", 3599), ("1:00:00", 3600), ("1-00:00:00", 86400),
                                           ("0:05", 5), ("UNLIMITED", None), ("NOT_SET", None), ("INVALID", None)])
def test_time_left_reads_squeue_forms(text, seconds):
    assert seconds_left(text) == seconds


def test_a_job_that_dials_in_makes_the_next_status_read_squeue_anew(tmp_path):
    """The job takes its agents over as it starts; an squeue answer read just before still said PENDING,
    and status showed the agent idle in a PENDING job (the walltime test caught it)."""
    import asyncio

    from sac_node.slurm import SlurmAgents
    from sac_node.state_dir import StateDir

    slurm = SlurmAgents(StateDir(str(tmp_path / "state")).create(), command=None, clock=lambda: 100.0)
    answers = iter(["7|PENDING|Resources||2:00\n", "7|RUNNING|None|n1|1:59\n"])
    asked = []

    async def run(argv, *args, **kwargs):
        asked.append(argv[0])
        return 0, next(answers), ""

    slurm._run = run

    async def scenario():
        assert (await slurm.queue())["7"]["state"] == "PENDING"
        assert (await slurm.queue())["7"]["state"] == "PENDING" and asked == ["squeue"]  # cached
        slurm.links.on_change()  # job 7's control line connected
        return (await slurm.queue())["7"]

    assert asyncio.run(scenario()) == {"state": "RUNNING", "reason": "None", "node": "n1", "time_left": "1:59"}


def test_an_squeue_answer_read_while_a_job_dialled_in_is_not_kept(tmp_path):
    import asyncio

    from sac_node.slurm import SlurmAgents
    from sac_node.state_dir import StateDir

    slurm = SlurmAgents(StateDir(str(tmp_path / "state")).create(), command=None, clock=lambda: 100.0)
    answers = iter(["7|PENDING|Resources||2:00\n", "7|RUNNING|None|n1|1:59\n"])

    async def run(argv, *args, **kwargs):
        answer = next(answers)
        if "PENDING" in answer:
            slurm.links.on_change()  # the job dials in while this squeue runs
        return 0, answer, ""

    slurm._run = run

    async def scenario():
        assert (await slurm.queue())["7"]["state"] == "PENDING"  # what squeue said when asked
        return (await slurm.queue())["7"]["state"]

    assert asyncio.run(scenario()) == "RUNNING"
