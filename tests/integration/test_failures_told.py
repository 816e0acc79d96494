"""Every failure is told as it is: one line naming the file, field and reason, and counted in summaries."""

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
