"""hosts.<name>.slurm: what a login node's agents are submitted with, checked before anything is submitted."""

import textwrap

import pytest

from sac_fleet.core.inventory import load_inventory
from sac_fleet.core.inventory_slurm import walltime_s
from sac_node.protocol.errors import InventoryError


def inventory(tmp_path, slurm):
    spec = tmp_path / "agents" / "a" / "spec.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text("apiVersion: sac/v1\nkind: Agent\nmetadata: {name: a}\n")
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent("""\
        hosts:
          login: {address: login.example}
          hpc:
            address: login.cluster.example
            slurm: %s
        agents:
          - spec: agents/a
        """) % slurm)
    return load_inventory(path)


def test_the_issue_example_reaches_the_node_with_its_walltime_in_seconds(tmp_path):
    inv = inventory(tmp_path, '{partition: batch, account: mylab, time: "8:00:00", cpus_per_agent: 2, '
                              'mem_per_agent: 8G, gres: null, agents_per_job: 4, resubmit_before_s: 600, '
                              'extra: ["--qos=normal"]}')
    assert inv.hosts["login"].slurm is None
    wire = inv.hosts["hpc"].slurm.to_node()
    assert wire["partition"] == "batch" and wire["agents_per_job"] == 4 and wire["extra"] == ["--qos=normal"]
    assert wire["time_s"] == 8 * 3600 and wire["gres"] is None


@pytest.mark.parametrize("text, seconds", [("90", 5400), ("2:30", 150), ("1:00:00", 3600), ("2-00", 172800),
                                           ("1-02:03", 93780), ("0-00:02:00", 120)])
def test_walltime_reads_every_form_slurm_accepts(text, seconds):
    assert walltime_s(text) == seconds


@pytest.mark.parametrize("slurm, field, words", [
    ('{time: "8h"}', "hosts.hpc.slurm.time", "not a Slurm time limit"),
    ("{mem_per_agent: 8GB}", "hosts.hpc.slurm.mem_per_agent", "write e.g. 8G"),
    ('{time: "0:10:00", resubmit_before_s: 600}', "hosts.hpc.slurm:", "must be shorter than the walltime"),
    ("{extra: [--output=/tmp/x]}", "hosts.hpc.slurm.extra", "set by sac itself"),
    ("{extra: [qos=normal]}", "hosts.hpc.slurm.extra", "not an sbatch option"),
    ("{cpus: 2}", "hosts.hpc.slurm.cpus", "unknown field"),
    ("{agents_per_job: 0}", "hosts.hpc.slurm.agents_per_job", "at least 1"),
])
def test_a_bad_slurm_field_is_one_line_naming_it(tmp_path, slurm, field, words):
    with pytest.raises(InventoryError) as err:
        inventory(tmp_path, slurm)
    assert "\n" not in err.value.message and field in err.value.message and words in err.value.message
    assert "inventory.yaml:5" in err.value.message
