"""The gateway token: created once (0600, 256 bits), reused, refused when others can read it."""

import os

import pytest

from sac_fleet.frontends.gateway.auth import check_request, load_or_create_token, token_path
from sac_fleet.frontends.gateway.schema import Forbidden, Unauthorized
from sac_node.protocol.errors import ConfigError


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


@pytest.mark.parametrize("header, error", [
    (None, Unauthorized), ("", Unauthorized), ("Basic abc", Unauthorized), ("Bearer ", Unauthorized),
    ("Bearer wrong-token-wrong-token", Forbidden), ("Bearer right-token-right-tokenX", Forbidden),
])
def test_missing_or_wrong_bearer_is_refused(header, error):
    headers = {} if header is None else {"Authorization": header}
    with pytest.raises(error) as caught:
        check_request(headers, "right-token-right-token")
    assert "right-token" not in caught.value.message


def test_the_right_bearer_passes_whatever_the_scheme_case():
    check_request({"Authorization": "Bearer right-token-right-token"}, "right-token-right-token")
    check_request({"Authorization": "bearer right-token-right-token"}, "right-token-right-token")
