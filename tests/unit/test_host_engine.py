"""`engine:` in the inventory (defaults, groups, hosts) and the settings a node is started with."""

from sac_fleet.core.inventory import load_inventory
from sac_fleet.core.plan import Action, ActionKind
from sac_fleet.remote.host_settings import HostSettings
from sac_fleet.remote.node_settings import changed, record
from tests.unit.test_inventory import load_error, write_inventory

INVENTORY = """
defaults: {engine: {version: 2.1.197}}
hosts:
  a: {address: 10.0.0.1}
  b: {address: 10.0.0.2, engine: {bin: /opt/claude/claude}}
  c: {address: 10.0.0.3}
groups:
  airgap: {hosts: [c], engine: {upload: false}}
"""


def test_engine_fields_merge_from_defaults_groups_and_the_host(tmp_path):
    inv = load_inventory(write_inventory(tmp_path, INVENTORY))
    assert inv.hosts["a"].engine.wish() == {"version": "2.1.197", "upload": True}
    assert inv.hosts["b"].engine.wish() == {"bin": "/opt/claude/claude", "upload": True}  # bin replaces version
    assert inv.hosts["c"].engine.wish() == {"version": "2.1.197", "upload": False}


def test_bad_engine_fields_are_one_line_errors_naming_the_field(tmp_path):
    message = load_error(tmp_path, "hosts:\n  a: {engine: {bin: /x, version: '2'}}\n")
    assert "hosts.a.engine" in message and "not both" in message
    assert "upload" in load_error(tmp_path, "hosts:\n  a: {engine: {upload: maybe}}\n")


def test_a_node_started_with_other_settings_names_the_fields_that_changed(tmp_path):
    inv = load_inventory(write_inventory(tmp_path, "hosts:\n  a: {env_preamble: module load python}\n"))
    settings = HostSettings.of(inv, inv.hosts["a"])
    started = record(settings)
    assert changed(settings, {"settings": started}) == []
    moved = HostSettings(**dict(settings.__dict__, env_preamble="module load python/3.12"))
    assert changed(moved, {"settings": started}) == ["env_preamble"]
    assert changed(settings, {}) == ["env_preamble", "python", "engine"]
    action = Action(ActionKind.RESTART_NODE, "", "a", "env_preamble changed")
    assert action.describe() == "restart node on a: env_preamble changed"
