"""claude.accounts and claude.quota in spec.yaml: accepted shapes and one-line errors."""

import pytest
import yaml

from sac_fleet.core.spec import parse_spec
from sac_node.protocol.errors import SpecError


def write(tmp_path, claude):
    path = tmp_path / "agent" / "spec.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump({"apiVersion": "sac/v1", "kind": "Agent", "spec": {"claude": claude}}))
    return path


def test_accounts_resolve_for_the_node(tmp_path):
    spec = parse_spec(write(tmp_path, {"accounts": [{"name": "a", "api_key_env": "KEY_A", "limit_tokens": 1000},
                                                    {"name": "b", "config_dir": "~/.claude-b"}],
                                       "quota": {"rotate_at": 0.5}})).to_node()
    assert spec["claude"]["accounts"] == [
        {"name": "a", "api_key_env": "KEY_A", "config_dir": None, "limit_tokens": 1000},
        {"name": "b", "api_key_env": None, "config_dir": "~/.claude-b", "limit_tokens": None}]
    assert spec["claude"]["quota"] == {"rotate_at": 0.5, "cooldown_s": 60.0, "max_cooldown_s": 900.0,
                                       "overload_backoff_s": 5.0}


@pytest.mark.parametrize("claude, says", [
    ({"accounts": [{"name": "a"}]}, "give exactly one of api_key_env"),
    ({"accounts": [{"name": "a", "api_key_env": "K", "config_dir": "/x"}]}, "give exactly one of api_key_env"),
    ({"accounts": [{"name": "a", "api_key_env": "K"}, {"name": "a", "api_key_env": "L"}]}, "used twice"),
    ({"accounts": [{"name": "a", "api_key_env": "sk4ntapi03abcdefghijklmnopqrstuvwxyz12"}]}, "NAME of an environment"),
    ({"accounts": [{"name": "a", "api_key": "K"}]}, "unknown field"),
    ({"quota": {"rotate_at": 1.5}}, "spec.claude.quota.rotate_at"),
])
def test_bad_accounts_give_one_located_line(tmp_path, claude, says):
    path = write(tmp_path, claude)
    with pytest.raises(SpecError) as info:
        parse_spec(path)
    message = info.value.message
    assert message.startswith(str(path) + ":") and says in message and "\n" not in message
    assert "sk4ntapi03" not in message  # a key pasted by mistake is never echoed
