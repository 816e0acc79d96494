"""Inventory: loading, defaults vs explicit fields, cross-checks with file:line errors."""

import re
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from sac_fleet.core.inventory import load_inventory, resolve_inventory_path
from sac_fleet.core.placement import HostState, place
from sac_node.protocol.errors import InventoryError, SpecError

REPO = Path(__file__).resolve().parents[2]


def make_spec(root, name, placement=""):
    folder = root / "agents" / name
    folder.mkdir(parents=True)
    text = "apiVersion: sac/v1\nkind: Agent\n"
    if placement:
        text += "spec:\n  placement: %s\n" % placement
    (folder / "spec.yaml").write_text(text)
    return folder


def write_inventory(root, text):
    path = root / "inventory.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load_error(root, text):
    with pytest.raises(InventoryError) as caught:
        load_inventory(write_inventory(root, text))
    return caught.value.message


ISSUE_EXAMPLE = """
defaults: {user: alice, port: 22, identity_file: ~/.ssh/id_ed25519, known_hosts: ~/.ssh/known_hosts,
           python: python3, state_dir: ~/.sac, connect_timeout: 10, keepalive_s: 5}
hosts:
  laptop:  {transport: local}
  login1:  {address: login1.example.edu, port: 2222, jump: [bastion], labels: {site: hpc}, capacity: 8,
            python: /usr/bin/python3.11, env_preamble: "module load python/3.11",
            state_dir: /scratch/alice/sac}
  bastion: {address: gw.example.edu, jump_only: true}
groups: {hpc: [login1]}
agents:
  - spec: agents/reviewer/spec.yaml
    placement: {hosts: [login1]}
  - spec: agents/lead
"""


@pytest.fixture
def fleet_dir(tmp_path):
    make_spec(tmp_path, "reviewer")
    make_spec(tmp_path, "lead", placement="{labels: {site: hpc}, singleton: true}")
    return tmp_path


def test_issue_example_loads_with_defaults_and_overrides(fleet_dir):
    inv = load_inventory(write_inventory(fleet_dir, ISSUE_EXAMPLE))
    login1 = inv.host("login1")
    assert (login1.address, login1.user, login1.port, login1.python) == (
        "login1.example.edu", "alice", 2222, "/usr/bin/python3.11")
    assert login1.state_dir == "/scratch/alice/sac" and login1.env_preamble == "module load python/3.11"
    assert login1.groups == {"hpc"} and login1.capacity == 8 and login1.line == 5
    assert [str(hop) for hop in inv.jump_chain("login1")] == ["alice@gw.example.edu:22"]
    assert inv.host("laptop").transport == "local" and inv.host("login1").transport == "ssh"
    assert [h.name for h in inv.node_hosts()] == ["laptop", "login1"]
    reviewer, lead = inv.agents
    assert (reviewer.name, reviewer.placement_from, reviewer.placement.hosts) == ("reviewer", "inventory", ["login1"])
    assert (lead.name, lead.placement_from, lead.placement.singleton) == ("lead", "spec", True)
    assert lead.spec_path == (fleet_dir / "agents" / "lead").resolve()


def test_issue_example_places_as_the_user_expects(fleet_dir):
    inv = load_inventory(write_inventory(fleet_dir, ISSUE_EXAMPLE))
    observed = [HostState("laptop", True, ()), HostState("login1", True, ("x", "y"))]
    plan = place(inv.desired(), observed, inv.slots())
    assert [a.describe() for a in plan.starts] == [
        "lead -> login1: labels {site: hpc}, 3/8 slots used",
        "reviewer -> login1: pinned (hosts: [login1]), 4/8 slots used",
    ]


def test_unset_ssh_fields_stay_none_so_ssh_config_can_fill_them(tmp_path):
    inv = load_inventory(write_inventory(tmp_path, """
        defaults: {user: alice}
        hosts:
          gpu-box: {labels: {gpu: a100}}
    """))
    host = inv.host("gpu-box")
    assert (host.address, host.port, host.identity_file, host.known_hosts) == ("gpu-box", None, None, None)
    assert host.user == "alice" and host.is_set("user") and not host.is_set("port")
    assert (host.python, host.state_dir, host.connect_timeout, host.keepalive_s) == ("python3", "~/.sac", 10.0, 2.0)
    assert host.explicit == {"user", "labels"}


def test_example_inventory_works_as_is():
    inv = load_inventory(REPO / "inventory.example.yaml")
    assert [(h.name, h.transport) for h in inv.hosts.values()] == [("local", "local")]
    assert [a.name for a in inv.agents] == ["echo"]
    assert inv.agents[0].spec.to_node()["claude"]["provider"]["base_url"] == "http://127.0.0.1:8787"
    plan = place(inv.desired(), [HostState("local", True, ())], inv.slots())
    assert [(a.agent, a.host) for a in plan.starts] == [("echo", "local")]


def test_example_inventory_commented_ssh_hosts_are_valid(tmp_path):
    """Uncommenting the SSH examples in hosts: and groups: gives a valid inventory."""
    text = (REPO / "inventory.example.yaml").read_text()
    out, section = [], None
    for line in text.splitlines():
        top = re.match(r"^(\w+):", line)
        if top:
            section = top.group(1)
        match = re.match(r"^(\s*)# ((\s*)([\w-]+:|- ).*)$", line)
        if section in ("hosts", "groups") and match and not match.group(2).startswith(("- ",)):
            line = match.group(1) + match.group(2)
        out.append(line)
    path = tmp_path / "inventory.yaml"
    path.write_text("\n".join(out).replace("spec: examples/", "spec: %s/examples/" % REPO))
    inv = load_inventory(path)
    assert set(inv.hosts) == {"local", "login1", "bastion", "gpu-box"}
    assert inv.host("bastion").jump_only and [h.host for h in inv.jump_chain("login1")] == ["bastion"]
    assert inv.host("login1").env_preamble == "module load python/3.11"
    assert inv.groups["hpc"] == ("login1",)


@pytest.mark.parametrize("text, expected", [
    ("hosts:\n  login1: {adress: x}\n",
     "inventory.yaml:2 hosts.login1.adress: unknown field (did you mean 'address'?)"),
    ("hosts:\n  a: {}\ndefault: {}\n",
     "inventory.yaml:3 default: unknown field (did you mean 'defaults'?)"),
    ("hosts:\n  a:\n    port: 70000\n",
     "inventory.yaml:3 hosts.a.port: must be at most 65535, got 70000"),
    ("hosts:\n  a: {transport: mosh}\n",
     "inventory.yaml:2 hosts.a.transport: 'mosh' is not one of ssh, local"),
    ("hosts: {}\n",
     "inventory.yaml:1 hosts: no hosts (add one, e.g. local: {transport: local})"),
    ("hosts:\n  a: {}\ngroups:\n  hpc: [a, lgoin1]\n",
     "inventory.yaml:4 groups.hpc[1]: no host 'lgoin1' in hosts (allowed: a)"),
    ("hosts:\n  login1: {jump: [bastoin]}\n  bastion: {jump_only: true}\n",
     "inventory.yaml:2 hosts.login1.jump[0]: no host 'bastoin' in hosts (did you mean 'bastion'?); "
     "a host outside the inventory is written user@address:port"),
    ("hosts:\n  a: {jump: [b]}\n  b:\n    jump: [a]\n",
     "inventory.yaml:4 hosts.b.jump[0]: jump chain loops back to a (a -> b -> a) (break the loop)"),
    ("hosts:\n  a: {jump: [a]}\n",
     "inventory.yaml:2 hosts.a.jump[0]: a host cannot jump through itself (break the loop)"),
    ("hosts:\n  a: {jump: ['bob@gw:99999']}\n",
     "inventory.yaml:2 hosts.a.jump[0]: 'bob@gw:99999': port must be a number from 1 to 65535 "
     "(write user@address:port)"),
    ("hosts:\n  me:\n    transport: local\n    address: x\n",
     "inventory.yaml:4 hosts.me.address: a host with transport: local does not use address (remove it)"),
    ("hosts:\n  me: {transport: local}\n  b: {jump: [me]}\n",
     "inventory.yaml:3 hosts.b.jump[0]: me has transport: local and cannot be a jump host"),
    ("hosts:\n  me: {transport: local}\n  me2: {transport: local}\n",
     "inventory.yaml:3 hosts.me2: transport: local with the same state_dir as me "
     "(one node per state dir: give one another state_dir)"),
])
def test_bad_inventory_is_one_line_naming_file_line_and_field(tmp_path, text, expected):
    message = load_error(tmp_path, text)
    assert message == "%s/%s" % (tmp_path, expected)


def test_agent_pinned_to_unknown_host_points_at_the_pin(fleet_dir):
    message = load_error(fleet_dir, """
        hosts:
          login1: {}
        agents:
          - spec: agents/reviewer
            placement:
              hosts: [login2]
    """)
    assert message.endswith("inventory.yaml:6 agents[0].placement.hosts[0]: no host 'login2' in hosts "
                            "(did you mean 'login1'?)")


def test_agent_pinned_to_jump_only_host_is_refused(fleet_dir):
    message = load_error(fleet_dir, """
        hosts:
          bastion: {jump_only: true}
        agents:
          - spec: agents/reviewer
            placement: {hosts: [bastion]}
    """)
    assert "agents[0].placement.hosts[0]: bastion is jump_only and never runs agents (pin another host)" in message


def test_unknown_group_in_spec_placement_points_at_the_agent_entry(tmp_path):
    make_spec(tmp_path, "lead", placement="{group: hcp}")
    message = load_error(tmp_path, """
        hosts:
          login1: {}
        groups: {hpc: [login1]}
        agents:
          - spec: agents/lead
    """)
    assert message.endswith("inventory.yaml:5 agents[0].spec: no group 'hcp' in groups "
                            "(did you mean 'hpc'?) (the spec's placement)")


def test_duplicate_agent_names_name_both_entries(fleet_dir):
    message = load_error(fleet_dir, """
        hosts:
          a: {}
        agents:
          - spec: agents/reviewer
          - spec: agents/lead
          - spec: agents/reviewer/spec.yaml
    """)
    assert message.endswith("inventory.yaml:6 agents[2].spec: agent name 'reviewer' is already used by agents[0] "
                            "(line 4) (give one spec another metadata.name)")


def test_replica_name_colliding_with_another_agent_is_refused(tmp_path):
    make_spec(tmp_path, "w")
    make_spec(tmp_path, "w-1")
    message = load_error(tmp_path, """
        hosts:
          a: {}
        agents:
          - spec: agents/w
            placement: {replicas: 2}
          - spec: agents/w-1
    """)
    assert "agents[1].spec: copy name 'w-1' (of w-1) is already used by agents[0] (line 4)" in message


def test_missing_spec_path_names_the_inventory_line(tmp_path):
    message = load_error(tmp_path, "hosts:\n  a: {}\nagents:\n  - spec: agents/nope\n")
    assert message == "%s/inventory.yaml:4 agents[0].spec: %s/agents/nope does not exist " \
        "(a spec file or agent directory, relative to inventory.yaml)" % (tmp_path, tmp_path)


def test_bad_spec_reports_the_spec_file(tmp_path):
    folder = make_spec(tmp_path, "bad")
    (folder / "spec.yaml").write_text("apiVersion: sac/v1\nkind: Agent\nspec:\n  claud: {}\n")
    with pytest.raises(SpecError, match=r"spec\.yaml:4 spec\.claud: unknown field \(did you mean 'claude'\?\)"):
        load_inventory(write_inventory(tmp_path, "hosts:\n  a: {}\nagents:\n  - spec: agents/bad\n"))


def test_specs_are_not_read_when_asked_not_to(tmp_path):
    folder = make_spec(tmp_path, "bad")
    (folder / "spec.yaml").write_text("not: a spec\n")
    inv = load_inventory(write_inventory(tmp_path, "hosts:\n  a: {}\nagents:\n  - spec: agents/bad\n"),
                         load_specs=False)
    assert [(a.name, a.spec) for a in inv.agents] == [("bad", None)]


def test_missing_file_and_yaml_errors_are_inventory_errors(tmp_path):
    with pytest.raises(InventoryError, match="no such file"):
        load_inventory(tmp_path / "inventory.yaml")
    with pytest.raises(InventoryError, match=r"inventory\.yaml:3 hosts\.a: duplicate key \(first at line 2"):
        load_inventory(write_inventory(tmp_path, "hosts:\n  a: {}\n  a: {}\n"))


def test_unknown_host_lookup_suggests_a_name(fleet_dir):
    inv = load_inventory(write_inventory(fleet_dir, ISSUE_EXAMPLE))
    with pytest.raises(InventoryError, match=r"no host 'logn1' \(did you mean 'login1'\?\)"):
        inv.host("logn1")
    assert inv.agent("lead").name == "lead"


def test_inventory_path_from_argument_env_or_cwd(tmp_path, monkeypatch):
    assert resolve_inventory_path("x.yaml", {"SAC_INVENTORY": "y.yaml"}) == Path("x.yaml")
    assert resolve_inventory_path(None, {"SAC_INVENTORY": "y.yaml"}) == Path("y.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InventoryError, match="pass INVENTORY, set SAC_INVENTORY"):
        resolve_inventory_path(None, {})
    (tmp_path / "inventory.yaml").write_text("hosts: {a: {}}\n")
    assert resolve_inventory_path(None, {}) == Path("inventory.yaml")


host_entries = st.fixed_dictionaries({}, optional={
    "address": st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
    "user": st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
    "port": st.integers(1, 65535),
    "python": st.sampled_from(["python3", "/usr/bin/python3.11"]),
    "state_dir": st.sampled_from(["~/.sac", "/scratch/alice/sac"]),
    "connect_timeout": st.integers(1, 60),
    "capacity": st.integers(0, 64),
    "labels": st.dictionaries(st.sampled_from(["site", "gpu"]), st.sampled_from(["hpc", "a100", "8"]), max_size=2),
    "env_preamble": st.sampled_from(["module load python/3.11", "source ~/venv/bin/activate"]),
})


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True), host_entries, min_size=1, max_size=4),
       st.fixed_dictionaries({}, optional={"user": st.just("alice"), "port": st.just(22)}))
def test_written_host_fields_come_back_and_only_they_are_explicit(tmp_path_factory, hosts, defaults):
    path = tmp_path_factory.mktemp("inv") / "inventory.yaml"
    path.write_text(yaml.safe_dump({"defaults": defaults, "hosts": hosts}, sort_keys=False))
    inv = load_inventory(path)
    assert list(inv.hosts) == list(hosts)
    for name, entry in hosts.items():
        host = inv.host(name)
        assert host.explicit == set(entry) | set(defaults)
        for field, value in dict(defaults, **entry).items():
            assert getattr(host, field) == value


def test_a_fleet_is_named_by_name_else_by_the_file_stem(tmp_path):
    from sac_fleet.control.reconciler import fleet_id, managed

    unnamed = load_inventory(write_inventory(tmp_path, "hosts: {here: {transport: local}}\n"))
    assert unnamed.name == "inventory" and fleet_id(unnamed) == "inventory"
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    named = load_inventory(write_inventory(tmp_path, "name: docs-fleet\nhosts: {here: {transport: local}}\n"))
    moved = load_inventory(write_inventory(copy, "name: docs-fleet\nhosts: {here: {transport: local}}\n"))
    assert fleet_id(named) == fleet_id(moved) == "docs-fleet"
    assert managed(moved, {"fleet": "docs-fleet"}) and not managed(moved, {"fleet": "other"})
    assert managed(moved, {"fleet": str(moved.path.resolve())})  # started before fleets had names
    assert "name" in load_error(tmp_path, "name: 'two words'\nhosts: {here: {transport: local}}\n")
