"""The gateway's tokens: the plain `default` token file, and a bearer checked against the named tokens."""

import os

import pytest

from sac_fleet.frontends.gateway.auth import TokensUnreadable, authorize, check_request
from sac_fleet.frontends.gateway.schema import Forbidden, Unauthorized
from sac_fleet.frontends.gateway.scopes import FOLLOW, READ, SEND
from sac_fleet.frontends.gateway.tokens import load_or_create_token, token_path
from sac_node.protocol.errors import ConfigError
from tests.fixtures.gateway import keyring_with

RIGHT = "right-token-right-token"


def test_token_is_created_private_and_then_reused(tmp_path):
    path = tmp_path / "home" / "gateway.token"
    token = load_or_create_token(path)
    assert len(token) >= 43  # 32 random bytes, urlsafe base64
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_token(path) == token
    assert load_or_create_token(tmp_path / "other.token") != token


def test_token_path_follows_sac_home(tmp_path):
    assert token_path({"SAC_HOME": str(tmp_path)}) == tmp_path / "gateway.token"
    assert token_path({}).name == "gateway.token" and token_path({}).parent.name == ".sac"


def test_a_token_file_others_can_read_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "gateway.token"
    load_or_create_token(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_or_create_token(path)


def test_an_empty_token_file_is_refused(tmp_path):
    path = tmp_path / "gateway.token"
    path.write_text("\n")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="delete the file"):
        load_or_create_token(path)


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer wrong-token-wrong-token",
                                    "Bearer " + RIGHT + "X"])
def test_a_missing_or_unknown_bearer_is_unauthorized(tmp_path, header):
    headers = {} if header is None else {"Authorization": header}
    with pytest.raises(Unauthorized) as caught:
        check_request(headers, keyring_with(tmp_path, {RIGHT: ("ci", ["admin"])}))
    assert "right-token" not in caught.value.message


def test_the_right_bearer_names_its_token_whatever_the_scheme_case(tmp_path):
    keyring = keyring_with(tmp_path, {RIGHT: ("ci", ["read"]), "other-token-other-token": ("bot", ["admin"])})
    assert check_request({"Authorization": "Bearer " + RIGHT}, keyring).name == "ci"
    assert check_request({"Authorization": "bearer other-token-other-token"}, keyring).name == "bot"


def test_a_tokens_file_gone_bad_refuses_every_request(tmp_path):
    keyring = keyring_with(tmp_path, {RIGHT: ("ci", ["admin"])})
    (tmp_path / "gateway.tokens").write_text("{not json")
    with pytest.raises(TokensUnreadable, match="gateway.tokens") as caught:
        check_request({"Authorization": "Bearer " + RIGHT}, keyring)
    assert RIGHT not in caught.value.message


async def test_a_refusal_names_the_token_and_the_scope_needed(tmp_path):
    token = check_request({"Authorization": "Bearer " + RIGHT},
                          keyring_with(tmp_path, {RIGHT: ("ci", ["send:role=worker"])}))
    asked = []

    async def labels_of(agent):
        asked.append(agent)
        return {"lead": {"role": "lead"}, "w1": {"role": "worker"}}[agent]

    await authorize(token, SEND, "w1", labels_of)
    await authorize(token, FOLLOW, "w1", labels_of)
    with pytest.raises(Forbidden) as caught:
        await authorize(token, SEND, "lead", labels_of)
    assert "token ci may not send to agent lead" in caught.value.message and "send:lead" in caught.value.message
    assert caught.value.data == {"token": "ci", "needed": "send:lead"}
    with pytest.raises(Forbidden, match="needs scope read"):
        await authorize(token, READ, None, labels_of)
    assert asked == ["w1", "w1", "lead"]  # labels are asked only when a label selector decides
