"""HostSettings: an inventory host's settings, typed, as the host path uses them (no defaults applied again)."""

import ast
from pathlib import Path

from sac_fleet.core.inventory import load_inventory
from sac_fleet.remote.host_settings import BOOTSTRAP_S, HostSettings

REMOTE = Path(__file__).resolve().parents[2] / "sac_fleet" / "remote"

INVENTORY = """
defaults: {user: alice, connect_timeout: 4}
hosts:
  laptop: {transport: local}
  scratch: {transport: local, state_dir: /tmp/sac-scratch}
  gw: {address: gw.example.edu, jump_only: true}
  login1: {address: login1.example.edu, port: 2222, jump: [gw], python: /usr/bin/python3.11,
           env_preamble: "module load python/3.11", state_dir: /scratch/alice/sac}
  plain: {address: 10.0.0.7}
"""


def settings(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    inventory = load_inventory(path, load_specs=False)
    return {name: HostSettings.of(inventory, host) for name, host in inventory.hosts.items()}


def test_an_ssh_host_carries_its_own_settings_and_jump_chain(tmp_path):
    login1 = settings(tmp_path)["login1"]
    assert (login1.python, login1.state_dir, login1.env_preamble) == (
        "/usr/bin/python3.11", "/scratch/alice/sac", "module load python/3.11")
    assert (login1.target.address, login1.target.port, login1.target.user) == ("login1.example.edu", 2222, "alice")
    assert [hop.address for hop in login1.target.jump] == ["gw.example.edu"]
    assert login1.open_timeout == 4 + BOOTSTRAP_S
    assert login1.shell("python3 -V") == "module load python/3.11\npython3 -V"


def test_an_ssh_host_gets_the_inventorys_defaults_once(tmp_path):
    plain = settings(tmp_path)["plain"]
    assert (plain.python, plain.state_dir, plain.env_preamble, plain.connect_timeout) == ("python3", "~/.sac", "", 4)
    assert plain.shell("true") == "true"


def test_a_local_host_without_a_state_dir_shares_sac_agents_one(tmp_path):
    found = settings(tmp_path)
    assert found["laptop"].state_dir is None and found["laptop"].target is None
    assert found["scratch"].state_dir == "/tmp/sac-scratch"


def test_no_import_cycle_in_remote():
    """remote/'s modules import one another in one direction (host_link -> ssh_path -> ssh -> ...)."""
    graph = {}
    for path in REMOTE.glob("*.py"):
        tree = ast.parse(path.read_text())
        graph[path.stem] = {node.module for node in ast.walk(tree)
                            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}
    seen, stack = set(), []

    def visit(name):
        assert name not in stack, "import cycle: %s" % " -> ".join(stack[stack.index(name):] + [name])
        if name in seen or name not in graph:
            return
        stack.append(name)
        for imported in graph[name]:
            visit(imported)
        stack.pop()
        seen.add(name)

    for name in graph:
        visit(name)
