"""NodeSpec.from_wire: the node's one reading of a spec dict, with the head's defaults for what it lacks."""

from sac_fleet.core.spec import parse_spec
from sac_node.journal import MIN_KEEP_TURNS, Retention
from sac_node.node_spec import NodeSpec
from sac_node.supervision.restart_policy import RestartTracker

MINIMAL = "apiVersion: sac/v1\nkind: Agent\n"


def test_a_bare_dict_reads_as_the_heads_minimal_spec(tmp_path):
    """The node's defaults are the head's: a spec.json written by hand, or by an older head, that leaves
    a section out runs as the head would have sent it."""
    (tmp_path / "a1").mkdir()
    (tmp_path / "a1" / "spec.yaml").write_text(MINIMAL)
    sent = parse_spec(tmp_path / "a1").to_node()
    assert NodeSpec.from_wire({"name": "a1"}) == NodeSpec.from_wire(dict(sent, source="spec"))


def test_sections_are_read_and_nulls_take_defaults():
    spec = NodeSpec.from_wire({
        "name": "a1", "source": "/s/spec.yaml", "workdir": None, "env": {"N": 3},
        "engine": {"kind": "command", "command": ["python3", "x.py"]},
        "claude": {"session": None, "quota": {"cooldown_s": 5}, "accounts": [{"name": "b", "api_key_env": "KB"}],
                   "provider": {"base_url": "http://127.0.0.1:9", "api_key_env": "PK"}},
        "restart": {"policy": "always", "backoff": {"max": 9}}, "health": {"turn_timeout_s": 0, "stall_timeout_s": 5},
        "journal": {"keep_turns": 1}, "isolation": {"network": "none", "image": "", "binds": ["/d"]},
        "generation": 4})
    assert (spec.source, spec.workdir, spec.env) == ("/s/spec.yaml", "work", {"N": "3"})
    assert not spec.engine.is_claude and spec.engine.command == ("python3", "x.py")
    assert spec.claude.session == "fresh" and spec.claude.quota.cooldown_s == 5.0
    assert spec.claude.quota.max_cooldown_s == 900.0
    assert spec.secret_names == ("KB", "PK")
    assert (spec.restart.policy, spec.restart.max_retries, spec.restart.maximum) == ("always", 5, 9.0)
    assert (spec.health.turn_timeout_s, spec.health.stall_timeout_s) == (600.0, 5.0)  # 0 is "not set"
    assert Retention.from_spec(spec).keep_turns == MIN_KEEP_TURNS
    assert spec.isolation.image == "~/.sac/images/sac-base.sif" and spec.isolation.binds == ("/d",)
    assert spec.generation == 4 and spec.fleet is None
    tracker = RestartTracker.from_spec(spec.restart)
    assert (tracker.policy, tracker.initial, tracker.maximum) == ("always", 1.0, 9.0)
