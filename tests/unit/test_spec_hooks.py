"""``spec.hooks`` and ``spec.startup_commands``: their validation, and what the node reads of them."""

import pytest

from sac_fleet.core.spec import HOOK_EVENTS, parse_spec
from sac_node.node_spec import HOOK_EVENTS as NODE_HOOK_EVENTS
from sac_node.node_spec import HookCommand, NodeSpec
from sac_node.protocol.errors import SpecError

HEAD = "apiVersion: sac/v1\nkind: Agent\nmetadata: {name: a1}\nspec:\n"


def _spec(tmp_path, body):
    (tmp_path / "spec.yaml").write_text(HEAD + body)
    return parse_spec(tmp_path / "spec.yaml")


def test_the_issues_example_reaches_the_node_with_its_timeouts(tmp_path):
    spec = _spec(tmp_path, "  hooks:\n    pre_start:\n      - {run: \"make data\", timeout_s: 5}\n"
                           "    post_stop: [\"rm -f /tmp/x\"]\n"
                           "  startup_commands: [\"module load python\", \"source venv/bin/activate\"]\n")
    node = NodeSpec.from_wire(spec.to_node())
    assert node.hooks.pre_start == (HookCommand("make data", 5.0),)
    assert node.hooks.post_stop == (HookCommand("rm -f /tmp/x", 60.0),)  # a bare string: the default timeout
    assert node.hooks.post_start == node.hooks.on_failure == ()
    assert node.startup_commands == ("module load python", "source venv/bin/activate")


def test_head_and_node_agree_on_the_events_and_the_default_timeout(tmp_path):
    assert HOOK_EVENTS == NODE_HOOK_EVENTS
    head = _spec(tmp_path, "  hooks: {on_failure: [x]}\n").to_node()["hooks"]["on_failure"][0]
    assert NodeSpec.from_wire({"hooks": {"on_failure": [{"run": "x"}]}}).hooks.on_failure[0].timeout_s == \
        head["timeout_s"]


def test_a_spec_without_hooks_sends_neither_key_so_its_hash_is_unchanged(tmp_path):
    node = _spec(tmp_path, "  hooks: {}\n  startup_commands: []\n").to_node()
    assert "hooks" not in node and "startup_commands" not in node


@pytest.mark.parametrize("body, message", [
    ("  hooks: {pre_strat: [x]}\n", "spec.yaml:5 spec.hooks.pre_strat: unknown field (did you mean 'pre_start'?)"),
    ("  hooks: {post_stop: [3]}\n",
     "spec.yaml:5 spec.hooks.post_stop[0]: 3 is not a hook command (write a shell line, or {run: \"...\", "
     "timeout_s: 60})"),
    ("  hooks: {pre_start: [{run: a, timeout_s: 0}]}\n",
     "spec.yaml:5 spec.hooks.pre_start[0].timeout_s: must be greater than 0, got 0"),
    ("  hooks: {pre_start: [{run: a, timeout: 5}]}\n",
     "spec.yaml:5 spec.hooks.pre_start[0].timeout: unknown field (did you mean 'timeout_s'?)"),
    ("  startup_commands: [\"\"]\n", "spec.yaml:5 spec.startup_commands[0]: must not be empty"),
    ("  startup_commands: [\"export KEY=sk-ant-abc123\"]\n",
     "spec.yaml:5 spec.startup_commands[0]: looks like an API key"),
])
def test_bad_hooks_get_one_line_naming_the_field(tmp_path, body, message):
    with pytest.raises(SpecError) as caught:
        _spec(tmp_path, body)
    assert message in str(caught.value)
    assert "sk-ant-abc123" not in str(caught.value)
