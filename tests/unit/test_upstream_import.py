"""`sac spec import`: upstream v3 specs (our own fixtures, tests/fixtures/upstream_v3) -> sac/v1 specs."""

import shutil
from pathlib import Path

import pytest
import yaml

from sac_fleet.core.documents import parse_document
from sac_fleet.core.spec import parse_spec, validate_spec
from sac_fleet.core.upstream import convert, import_spec
from sac_node.protocol.errors import SpecError

from tests.fixtures.cli_imports import run_sac

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstream_v3"
KINDS = ("minimal", "provider", "apptainer", "full")


def imported(tmp_path, kind):
    path, warnings = import_spec(FIXTURES / kind, tmp_path / "out")
    return path, yaml.safe_load(path.read_text()), warnings


def where(warnings):
    """Each warning's `LINE FIELD` (after the file name)."""
    return [w.split(":", 1)[1].split(":")[0] for w in warnings]


@pytest.mark.parametrize("kind", KINDS)
def test_every_fixture_imports_into_a_spec_that_passes_check(tmp_path, kind):
    path, _, _ = imported(tmp_path, kind)
    spec = parse_spec(path, environ={"HOME": "/root"})
    assert spec.name == kind and path == tmp_path / "out" / kind / "spec.yaml"


def test_a_minimal_spec_imports_without_a_word(tmp_path):
    _, data, warnings = imported(tmp_path, "minimal")
    assert warnings == []
    assert data == {"apiVersion": "sac/v1", "kind": "Agent", "metadata": {"name": "minimal"},
                    "spec": {"startup_prompts": ["Say hello."]}}


def test_a_provider_names_its_key_variable_in_api_key_env(tmp_path):
    _, data, warnings = imported(tmp_path, "provider")
    assert warnings == []
    assert data["spec"]["claude"] == {"model": "deepseek-chat", "provider": {
        "base_url": "http://127.0.0.1:8787", "api_key_env": "DEEPSEEK_API_KEY"}}
    assert data["spec"]["restart"] == {"policy": "on-failure", "max_retries": 3}


def test_apptainer_fields_map_and_the_rest_are_warned_with_their_line(tmp_path):
    _, data, warnings = imported(tmp_path, "apptainer")
    assert data["spec"]["isolation"] == {"image": "~/.scitex/agent-container/containers/sac-base.sif",
                                         "gpus": True, "binds": ["/usr/share/doc:/data/doc:ro",
                                                                 "/usr/share/common-licenses:/data/licenses:ro"]}
    assert data["spec"]["env"] == {"PROJECT": "lab-a", "SCRATCH": "${env.HOME}/scratch"}
    assert where(warnings) == ["11 spec.apptainer.overlay", "18 spec.apptainer.env.SCRATCH",
                               "19 spec.apptainer.raw_args"]
    assert all(w.startswith(str(FIXTURES / "apptainer" / "spec.yaml")) for w in warnings)


def test_the_full_spec_maps_hooks_commands_placement_and_lists_every_field_it_drops(tmp_path):
    path, data, warnings = imported(tmp_path, "full")
    spec = data["spec"]
    assert spec["hooks"] == {"pre_start": ["mkdir -p data"], "post_stop": ["rm -f data/lock"]}
    assert spec["startup_commands"] == ["echo started > started.txt", "echo later"]
    assert spec["placement"] == {"hosts": ["gpu-box"], "singleton": True}
    assert spec["claude"]["permission_mode"] == "bypassPermissions" and spec["claude"]["flags"] == ["--verbose"]
    assert spec["restart"]["backoff"] == {"initial": 30, "max": 300, "multiplier": 2}
    assert where(warnings[:-1]) == [
        "14 spec.python-venv", "25 spec.startup_commands[1].delay", "31 spec.claude.channels", "38 spec.mcp_servers",
        "41 spec.a2a", "45 spec.health.interval", "58 spec.telegram", "60 spec.extensions"]
    assert "dot_claude/.mcp.json has no place" in warnings[-1]
    home = path.parent / "to_home"
    assert (home / ".claude" / "CLAUDE.md").read_text() == "You are the lab-a researcher.\n"
    assert (home / ".claude" / "commands" / "summarise.md").exists() and (home / ".config" / "lab.ini").exists()
    assert not (home / ".claude" / ".mcp.json").exists()
    assert path.read_text().startswith("# imported from %s by `sac spec import` (9 warnings)" % (FIXTURES / "full" /
                                                                                                 "spec.yaml"))


def test_fields_at_their_upstream_default_are_dropped_silently():
    doc = parse_document("apiVersion: scitex-agent-container/v3\nkind: Agent\nspec:\n  runtime: apptainer\n"
                         "  multiplexer: tmux\n  health: {enabled: true, method: sdk-alive}\n"
                         "  apptainer: {nv: false, raw_args: [], container_workdir: /work}\n"
                         "  claude: {auto_accept: true, raw_options: {}, session: new-session}\n", "s.yaml")
    data, warnings = convert(doc, "a")
    assert warnings == [] and data == {"apiVersion": "sac/v1", "kind": "Agent", "metadata": {"name": "a"}}


def test_an_unknown_field_is_never_dropped_in_silence():
    doc = parse_document("apiVersion: scitex-agent-container/v3\nkind: Agent\nspec:\n  frobnicate: 1\n"
                         "  claude: {resume_id: abc}\n", "s.yaml")
    assert convert(doc, "a")[1] == ["s.yaml:4 spec.frobnicate: sac has no such field; not imported",
                                    "s.yaml:5 spec.claude.resume_id: sac resumes an agent's own session itself; it "
                                    "cannot adopt another; not imported"]


def test_a_proxy_agent_is_refused_in_one_line():
    doc = parse_document("apiVersion: scitex-agent-container/v3\nkind: AgentProxy\n", "s.yaml")
    with pytest.raises(SpecError, match=r"^s.yaml:2 kind: AgentProxy has no sac equivalent"):
        convert(doc, "a")


def test_an_import_never_overwrites(tmp_path):
    imported(tmp_path, "minimal")
    with pytest.raises(SpecError, match="already exists"):
        import_spec(FIXTURES / "minimal", tmp_path / "out")


def test_spec_check_on_an_upstream_spec_is_one_line_pointing_at_import(tmp_path):
    for kind in KINDS:
        with pytest.raises(SpecError) as caught:
            parse_spec(FIXTURES / kind)
        assert caught.value.message == (
            "%s:1 apiVersion: this is an upstream scitex-agent-container/v3 spec, not a sac spec: run `sac spec "
            "import %s` to convert it" % (FIXTURES / kind / "spec.yaml", FIXTURES / kind / "spec.yaml"))
        assert not (caught.value.data or {}).get("errors")


def test_auth_token_env_is_named_a_variable_not_a_credential():
    doc = parse_document("apiVersion: sac/v1\nkind: Agent\nspec:\n  claude:\n    provider:\n"
                         "      base_url: http://127.0.0.1:8787\n      auth_token_env: DEEPSEEK_API_KEY\n", "s.yaml")
    with pytest.raises(SpecError) as caught:
        validate_spec(doc, "a")
    assert caught.value.message == ("s.yaml:5 spec.claude.provider: unknown field 'auth_token_env': sac names the "
                                    "variable that holds the key in api_key_env (write api_key_env: DEEPSEEK_API_KEY)")
    assert "credential" not in caught.value.message


def test_sac_spec_import_from_the_cli(tmp_path):
    source = tmp_path / "src" / "paper-bot"
    shutil.copytree(str(FIXTURES / "apptainer"), str(source))
    ran = run_sac(["spec", "import", str(source), "--out", str(tmp_path / "agents")], tmp_path / "home")
    assert ran.code == 0, ran.stderr
    assert "wrote %s (3 warnings)" % (tmp_path / "agents" / "paper-bot" / "spec.yaml") in ran.stdout.replace("\n", "")
    assert ran.stderr.count("warning: ") == 3 and "spec.yaml:11 spec.apptainer.overlay" in ran.stderr
    checked = run_sac(["spec", "check", "-q", str(tmp_path / "src" / "paper-bot")], tmp_path / "home")
    assert checked.code == 2 and checked.stderr.count("\n") == 1 and "run `sac spec import" in checked.stderr


def test_a_runtime_or_home_sac_cannot_take_says_why():
    doc = parse_document("apiVersion: scitex-agent-container/v3\nkind: Agent\nspec:\n  runtime: tui\n"
                         "  to_home: ./home\n  hosts: all\n", "s.yaml")
    data, warnings = convert(doc, "a")
    assert data["spec"] == {"placement": {"per_host": True}}
    assert where(warnings) == ["4 spec.runtime", "5 spec.to_home"]
    assert "isolation.runtime: auto" in warnings[0] and "to_home/ directory next to spec.yaml" in warnings[1]
