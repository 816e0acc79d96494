"""Secrets from the head: the inventory's sources, reading them, what a host is sent, secrets.env on the host."""

import os
import stat
import textwrap
import types

import pytest

from sac_fleet.control import secrets
from sac_fleet.core.inventory import load_inventory
from sac_fleet.core.plan import Action, ActionKind, Plan
from sac_node import secrets_env
from sac_node.protocol.errors import InventoryError
from sac_node.protocol.messages import secret_hash, secret_names
from sac_node.state_dir import StateDir


def write_inventory(tmp_path, text):
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_sources_merge_top_then_group_then_host(tmp_path):
    inv = load_inventory(write_inventory(tmp_path, """\
        secrets: {A_KEY: {env: LAB_A}, B_KEY: {env: LAB_B}}
        hosts:
          h1: {address: 127.0.0.2, secrets: {B_KEY: {file: ~/b.key}}}
          h2: {address: 127.0.0.3}
        groups:
          gpu: {hosts: [h1, h2], secrets: {C_KEY: {command: "pass show c"}}}
          cpu: [h2]
        """), load_specs=False)
    h1, h2 = inv.hosts["h1"], inv.hosts["h2"]
    assert {n: s.describe() for n, s in h1.secrets.items()} == {"A_KEY": "$LAB_A", "B_KEY": "file ~/b.key",
                                                                 "C_KEY": "command `pass show c`"}
    assert h2.secrets["B_KEY"].describe() == "$LAB_B" and inv.groups == {"gpu": ("h1", "h2"), "cpu": ("h2",)}


@pytest.mark.parametrize("text, message", [
    ("secrets: {K: {env: A, file: b}}\nhosts: {h1: {}}\n", "secrets.K: give exactly one of env"),
    ("secrets: {K: {}}\nhosts: {h1: {}}\n", "secrets.K: give exactly one of env"),
    ("secrets: {9K: {env: A}}\nhosts: {h1: {}}\n", "secrets"),
    ("hosts: {h1: {}}\ngroups:\n  a: {hosts: [h1], secrets: {K: {env: A}}}\n  b: {hosts: [h1], secrets: {K: {env: B}}}\n",
     "groups.b.secrets.K: K is also given by group a"),
])
def test_a_bad_secret_source_is_one_line_naming_the_field(tmp_path, text, message):
    with pytest.raises(InventoryError) as caught:
        load_inventory(write_inventory(tmp_path, text), load_specs=False)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def _source(**kw):
    return types.SimpleNamespace(env=kw.get("env"), file=kw.get("file"), command=kw.get("command"),
                                 describe=lambda: "the source")


def test_the_reader_reads_env_file_and_command_once_and_never_shows_a_value(tmp_path):
    key = tmp_path / "key"
    key.write_text("from-a-file\n")
    calls = []

    def run(command, **kw):
        calls.append(command)
        return types.SimpleNamespace(returncode=0, stdout="from-a-command\n", stderr="")

    reader = secrets.SecretReader(types.SimpleNamespace(path="inv.yaml"), environ={"LAB": "from-env"}, run=run)
    assert reader.value("A", _source(env="LAB")) == "from-env"
    assert reader.value("B", _source(file=str(key))) == "from-a-file"
    assert reader.value("C", _source(command="pass show c")) == "from-a-command"
    assert reader.value("D", _source(command="pass show c")) == "from-a-command" and calls == ["pass show c"]


def test_a_source_that_cannot_be_read_says_which_and_why_without_the_value():
    def failing(command, **kw):
        return types.SimpleNamespace(returncode=1, stdout="sk-leaked-if-printed", stderr="gpg: decryption failed\n")

    reader = secrets.SecretReader(types.SimpleNamespace(path="inv.yaml"), environ={}, run=failing)
    for source, expected in ((_source(env="NOPE"), "$NOPE is not set on this machine"),
                             (_source(file="/nonexistent/k"), "cannot read it: No such file or directory"),
                             (_source(command="pass show x"), "the command exited 1: gpg: decryption failed")):
        with pytest.raises(InventoryError) as caught:
            reader.value("K", source)
        assert str(caught.value).startswith("inv.yaml: secrets.K (the source): " + expected)
        assert "sk-leaked" not in str(caught.value)


def test_a_host_is_sent_only_the_names_its_agents_use_and_only_when_they_changed():
    spec = types.SimpleNamespace(to_node=lambda: {"claude": {"provider": {"api_key_env": "A_KEY"},
                                                             "accounts": [{"api_key_env": "B_KEY"}, {"config_dir": "x"}]}})
    source = _source(env="X")
    inventory = types.SimpleNamespace(
        path="inv.yaml", hosts={"h1": types.SimpleNamespace(secrets={"A_KEY": source, "B_KEY": source, "UNUSED": source}),
                                "h2": types.SimpleNamespace(secrets={"A_KEY": source})},
        agent=lambda name: types.SimpleNamespace(spec=spec))
    plan = Plan.of([Action(ActionKind.START, "a1", "h1", "pinned"), Action(ActionKind.KEEP, "a2", "h2", "runs")])
    reader = secrets.SecretReader(inventory, environ={"X": "value-x"})
    wanted = secrets.wanted(inventory, plan, reader)
    assert wanted == {"h1": {"A_KEY": "value-x", "B_KEY": "value-x"}, "h2": {"A_KEY": "value-x"}}
    links = {"h1": types.SimpleNamespace(ok=True, facts={"secrets": {"A_KEY": secret_hash("old")}}),
             "h2": types.SimpleNamespace(ok=True, facts={"secrets": {"A_KEY": secret_hash("value-x")}})}
    (action,) = secrets.actions(wanted, links)
    assert (action.kind, action.host, action.reason) == (ActionKind.SECRETS, "h1", "write B_KEY (new); A_KEY (changed)")
    assert action.describe() == "secrets.env on h1: write B_KEY (new); A_KEY (changed)"
    assert "value-x" not in repr(action.to_dict())
    ordered = Plan.of(plan.actions + (action,))
    assert [a.kind for a in ordered.actions] == [ActionKind.SECRETS, ActionKind.START, ActionKind.KEEP]
    assert ordered.summary() == "1 to start, 1 secrets.env to write, 1 kept"
    assert secret_names({"claude": {"provider": {"api_key_env": "A_KEY"}}}) == ["A_KEY"]


def test_secrets_env_keeps_other_lines_and_stays_private(tmp_path):
    state = StateDir(str(tmp_path))
    path = tmp_path / "secrets.env"
    path.write_text("# mine\nOTHER=keep-me\nA_KEY=old\n")
    os.chmod(path, 0o600)
    assert secrets_env.write(state, {"A_KEY": "new", "B_KEY": "b"}) == ["A_KEY", "B_KEY"]
    assert path.read_text() == "# mine\nOTHER=keep-me\nA_KEY=new\nB_KEY=b\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert secrets_env.write(state, {"A_KEY": "new"}) == []  # unchanged: not rewritten
    assert secrets_env.hashes(state.secrets())["A_KEY"] == secret_hash("new")
    with pytest.raises(Exception) as caught:
        secrets_env.write(state, {"A_KEY": "two\nlines"})
    assert "one line" in str(caught.value) and "two" not in str(caught.value)
