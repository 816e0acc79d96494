"""Regression: Python's `$` also matches before a final newline, so `pattern.match` took "name\n" for a name.

Hypothesis found it as a spec key "0\n" printed raw in a one-line error; the same held for agent names,
environment variable names, label keys, host names and the apptainer command line's plain values.
"""

import pytest
import yaml

from sac_fleet.core.ansible_hosts import read_ansible
from sac_fleet.core.spec import parse_spec
from sac_fleet.core.wording import format_loc
from sac_node.protocol.errors import InventoryError, SpecError


def _spec(tmp_path, doc):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("spec, field", [
    ({"metadata": {"name": "reviewer\n"}, "spec": {}}, "metadata.name"),
    ({"metadata": {"name": "reviewer"}, "spec": {"env": {"PATH\n": "x"}}}, "spec.env"),
    ({"metadata": {"name": "reviewer", "labels": {"role\n": "x"}}, "spec": {}}, "metadata.labels"),
])
def test_a_spec_refuses_names_that_end_in_a_newline_in_one_line(tmp_path, spec, field):
    with pytest.raises(SpecError) as caught:
        parse_spec(_spec(tmp_path, dict({"apiVersion": "sac/v1", "kind": "Agent"}, **spec)))
    assert field in caught.value.message and "\n" not in caught.value.message


def test_an_odd_key_is_quoted_in_a_field_path():
    assert format_loc(("spec", "env", "PATH")) == "spec.env.PATH"
    assert format_loc(("0\n",)) == "'0\\n'"


def test_an_ansible_host_name_with_a_newline_is_refused(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"h1\n": {"ansible_host": "127.0.0.2"}}}}))
    with pytest.raises(InventoryError):
        read_ansible(path)


def test_apptainer_puts_a_value_with_a_newline_in_its_env_file_not_its_argv():
    from tests.unit.test_sandbox import launch

    got = launch("apptainer", env={"PLAIN": "one", "ODD": "two\n"})
    assert "PLAIN=one" in got.argv and not [a for a in got.argv if a.startswith("ODD=")]
    assert any("ODD=" in text for text in got.secret_files.values())
