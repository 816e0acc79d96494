"""What a `sac` command imports before it does its work: only what that command uses.

Python start-up and imports are most of a one-shot `sac` command (bench/cli_startup.py,
docs/benchmarks.md). These tests pin which modules each common command loads, not how
long it takes, so they cannot flake.

pydantic is not in HEAVY: typer (0.29 here, since its pull request #1831) validates every
parameter with a pydantic TypeAdapter, so each command with a parameter imports it whatever
sac does. sac's own pydantic models (core.spec, core.inventory) are in SAC_HEAVY.
"""

import json
import subprocess
import sys

import pytest

from tests.fixtures.cli_imports import REPO, run_sac

# ~0.4 s each for aiohttp, asyncssh (with cryptography) and the mcp SDK; yaml only parses files.
HEAVY = {"aiohttp", "asyncssh", "cryptography", "mcp", "yaml"}
SAC_HEAVY = {"sac_fleet.core.spec", "sac_fleet.core.inventory", "sac_fleet.frontends.gateway",
             "sac_fleet.frontends.mcp", "sac_fleet.provider", "sac_fleet.remote.ssh"}


def heavy_in(modules):
    return sorted(modules & (HEAVY | SAC_HEAVY))


@pytest.mark.parametrize("args", [["--help"], ["agents", "send", "--help"], ["fleet", "status", "--help"]])
def test_help_loads_no_heavy_package_nor_the_node_client(tmp_path, args):
    ran = run_sac(args, tmp_path)
    assert ran.code == 0 and "Usage" in ran.stdout, ran.stderr
    assert heavy_in(ran.modules) == []
    assert "sac_fleet.api" not in ran.modules


@pytest.mark.parametrize("args, says", [
    (["agents", "list"], "a1"),
    (["agents", "status", "a1"], "state:"),
    (["agents", "send", "a1", "hi"], "echo: hi"),
])
def test_agent_commands_load_no_heavy_package(tmp_path, args, says):
    ran = run_sac(args, tmp_path, fake_node=True)
    assert ran.code == 0 and says in ran.stdout, ran.stderr
    assert heavy_in(ran.modules) == []


@pytest.mark.parametrize("args", [["agents", "list", "--json"], ["agents", "status", "a1", "--json"],
                                  ["agents", "send", "a1", "hi", "--json"]])
def test_json_output_loads_no_rich(tmp_path, args):
    ran = run_sac(args, tmp_path, fake_node=True)
    assert ran.code == 0, ran.stderr
    json.loads(ran.stdout)
    assert heavy_in(ran.modules) == [] and "rich" not in ran.modules


def test_an_error_still_prints_its_one_red_line(tmp_path):
    ran = run_sac(["spec", "check", tmp_path / "nothing"], tmp_path)
    assert ran.code == 2 and ran.stderr.startswith("error: ") and "nothing" in ran.stderr


def test_the_fleet_operations_load_ssh_only_for_an_ssh_host():
    """`sac fleet ...` runs control.fleet_ops: an inventory of local hosts needs no asyncssh."""
    code = "import sys, sac_fleet.control.fleet_ops; print(sorted(set(sys.modules) & %r))" % (HEAVY | SAC_HEAVY,)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
