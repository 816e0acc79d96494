"""gateway.tokens: named tokens stored hashed (0600), `sac fleet token add|list|revoke`, reload on change."""

import json
import os

import pytest

from sac_fleet.frontends.gateway.tokens import (Keyring, add_token, digest, ensure_default,
                                                load_or_create_token, read_tokens, revoke_token)
from sac_node.protocol.errors import ConfigError
from tests.fixtures.cli_imports import run_sac


def test_a_token_is_stored_hashed_in_a_private_file(tmp_path):
    path = tmp_path / "home" / "gateway.tokens"
    value = add_token(path, "ci", ["read", "send:role=worker"])
    assert value.startswith("sac_") and len(value) >= 47
    assert path.stat().st_mode & 0o777 == 0o600
    assert value not in path.read_text() and digest(value) in path.read_text()
    (token,) = read_tokens(path)
    assert (token.name, token.scopes) == ("ci", ("read", "send:role=worker"))
    assert add_token(path, "bot", ["admin"]) != value


def test_names_scopes_and_duplicates_are_checked(tmp_path):
    path = tmp_path / "gateway.tokens"
    add_token(path, "ci", ["read"])
    with pytest.raises(ConfigError, match="already has a token named ci"):
        add_token(path, "ci", ["admin"])
    with pytest.raises(ConfigError, match="token name 'a b'"):
        add_token(path, "a b", ["admin"])
    with pytest.raises(ConfigError, match="no scope"):
        add_token(path, "x", [])
    with pytest.raises(ConfigError, match="unknown scope 'write'"):
        add_token(path, "x", ["write"])
    assert [t.name for t in read_tokens(path)] == ["ci"]


def test_a_tokens_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "gateway.tokens"
    add_token(path, "ci", ["read"])
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_tokens(path)


def test_the_keyring_sees_an_add_and_a_revoke_without_restarting(tmp_path):
    path = tmp_path / "gateway.tokens"
    first = add_token(path, "ci", ["read"])
    keyring = Keyring(path)
    assert keyring.find(first).name == "ci" and keyring.find("sac_other") is None
    second = add_token(path, "bot", ["admin"])
    assert keyring.find(second).name == "bot"
    revoke_token(path, "ci")
    assert keyring.find(first) is None and keyring.find(second).name == "bot"
    os.unlink(path)
    assert keyring.find(second) is None  # no file: no token opens the gateway


def test_the_single_token_of_before_becomes_the_default_admin_token(tmp_path):
    legacy, path = tmp_path / "gateway.token", tmp_path / "gateway.tokens"
    old = load_or_create_token(legacy)
    ensure_default(path, legacy)
    token = Keyring(path).find(old)
    assert (token.name, token.scopes) == ("default", ("admin",))
    assert legacy.read_text().strip() == old  # the CLI here keeps reading it
    add_token(path, "ci", ["read"])
    ensure_default(path, legacy)  # a second start changes nothing
    assert [t.name for t in read_tokens(path)] == ["default", "ci"]
    revoke_token(path, "default", legacy=legacy)
    assert not legacy.exists() and Keyring(path).find(old) is None


def test_the_cli_shows_a_token_once_and_never_lists_it(tmp_path):
    old = load_or_create_token(tmp_path / "gateway.token")  # a gateway of before made it
    added = run_sac(["fleet", "token", "add", "ci", "--scope", "read", "-s", "send:role=worker"], tmp_path)
    assert added.code == 0, added.stderr
    value = added.stdout.strip()
    assert value.startswith("sac_") and "shown only now" in added.stderr
    listed = run_sac(["fleet", "token", "list"], tmp_path)
    assert listed.code == 0 and "ci" in listed.stdout and "send:role=worker" in listed.stdout
    as_json = run_sac(["fleet", "token", "list", "--json"], tmp_path)
    assert [(r["name"], r["scopes"]) for r in json.loads(as_json.stdout)] == [
        ("default", ["admin"]), ("ci", ["read", "send:role=worker"])]  # the token of before is kept
    assert Keyring(tmp_path / "gateway.tokens").find(old).name == "default"
    stored = (tmp_path / "gateway.tokens").read_text()
    assert value not in listed.stdout + as_json.stdout + stored and old not in listed.stdout + stored
    bad = run_sac(["fleet", "token", "add", "x", "-s", "write"], tmp_path)
    assert bad.code == 2 and bad.stderr.startswith("error: ") and "unknown scope 'write'" in bad.stderr
    revoked = run_sac(["fleet", "token", "revoke", "ci"], tmp_path)
    assert revoked.code == 0
    assert [r["name"] for r in json.loads(run_sac(["fleet", "token", "list", "--json"], tmp_path).stdout)] == [
        "default"]
