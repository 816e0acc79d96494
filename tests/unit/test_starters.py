"""`sac spec new`: every built-in starter spec passes `sac spec check` as written."""

import pytest

from sac_fleet.core.spec import parse_spec
from sac_fleet.core.starters import STARTERS, write_starter
from sac_node.protocol.errors import SpecError

from tests.fixtures.cli_imports import run_sac


@pytest.mark.parametrize("pattern", sorted(STARTERS))
def test_each_starter_passes_spec_check(tmp_path, pattern):
    path = write_starter(tmp_path / "my-agent", pattern)
    spec = parse_spec(path, environ={})
    assert spec.name == "my-agent"
    assert "# " in path.read_text()  # commented, to be edited


def test_the_patterns_are_the_four_the_cli_names():
    assert set(STARTERS) == {"local", "remote", "provider-only", "accounts"}


def test_an_existing_spec_is_not_overwritten(tmp_path):
    path = write_starter(tmp_path / "a")
    path.write_text("mine")
    with pytest.raises(SpecError, match="already exists"):
        write_starter(tmp_path / "a")
    assert path.read_text() == "mine"


def test_spec_new_then_spec_check_from_the_cli(tmp_path):
    made = run_sac(["spec", "new", str(tmp_path / "helper"), "--from", "provider-only"], tmp_path / "home")
    assert made.code == 0, made.stderr
    checked = run_sac(["spec", "check", "-q", str(tmp_path / "helper")], tmp_path / "home")
    assert checked.code == 0, checked.stderr
    wrong = run_sac(["spec", "new", str(tmp_path / "other"), "--from", "locl"], tmp_path / "home")
    assert wrong.code != 0 and "did you mean 'local'?" in wrong.stderr
