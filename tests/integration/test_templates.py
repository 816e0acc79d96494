"""Many agents from one spec, and specs imported from upstream: real Claude Code on the built-in provider,
real bwrap, real sshd hosts."""

import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstream_v3"
# The provider answers "which topic?" by running `echo $TOPIC@$WHERE` in the agent's sandbox.
TOPIC_SCRIPT = {"rules": [{"match": "which topic", "tool": "Bash",
                           "input": {"command": "echo $TOPIC@$WHERE", "description": "Say the topic"},
                           "then": "topic: {tool_result}"}]}
TEMPLATE_ENV = {"TOPIC": "${params.topic}", "WHERE": "${host.name}", "AGENT": "${metadata.name}"}


def test_three_agents_from_one_template_answer_with_their_own_parameter(sac_env):
    sac_env.provider.load_script(TOPIC_SCRIPT)
    template = sac_env.write_spec("paper", extra={"env": TEMPLATE_ENV})
    params = sac_env.root / "sections.csv"
    params.write_text("id,topic\nintro,cats\nmethods,dogs\nresults,fish\n")
    checked = sac_env.sac("spec", "check", template, "--params", params, "--name", "{template}-${params.id}")
    assert checked.stdout.splitlines() == ["row 1: paper-intro ok", "row 2: paper-methods ok",
                                           "row 3: paper-results ok"]

    started = sac_env.sac("agents", "start", template, "--params", params, "--name", "{template}-${params.id}")
    assert [line.split(":")[0] for line in started.stdout.splitlines()] == ["paper-intro", "paper-methods",
                                                                           "paper-results"]
    for name, topic in (("paper-intro", "cats"), ("paper-methods", "dogs"), ("paper-results", "fish")):
        reply = sac_env.sac("agents", "send", name, "which topic?").stdout.strip()
        assert reply == "topic: %s@local" % topic
        assert (sac_env.agent_dir(name) / "work").is_dir() and (sac_env.agent_dir(name) / "home").is_dir()
    labels = {a["name"] for a in sac_env.sac_json("agents", "list")}
    assert labels == {"paper-intro", "paper-methods", "paper-results"}


def test_a_bad_row_stops_every_start_and_names_its_row(sac_env):
    template = sac_env.write_spec("paper", extra={"env": TEMPLATE_ENV})
    params = sac_env.root / "sections.csv"
    params.write_text("name,topic\nintro,cats\nIntro_2,dogs\n")
    proc = sac_env.sac("agents", "start", template, "--params", params, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "sections.csv:3: row 2: 'Intro_2' is not a valid agent name" in proc.stderr
    assert not (sac_env.home / "agents" / "intro").exists()  # nothing started


def test_template_instances_spread_over_two_sshd_hosts_and_know_where_they_run(fleet_env):
    fleet_env.provider.load_script(TOPIC_SCRIPT)
    h1, h2 = fleet_env.sshd.start(2)
    fleet_env.add_host(h1, labels={"pool": "paper"})
    fleet_env.add_host(h2, labels={"pool": "paper"})
    fleet_env.add_agent("paper", extra={"env": TEMPLATE_ENV})
    fleet_env.doc["agents"] = [{"template": "agents/paper", "params": "sections.yaml",
                                "name": "{template}-${params.id}", "placement": {"labels": {"pool": "paper"}}}]
    (fleet_env.root / "sections.yaml").write_text("- {id: a, topic: cats}\n- {id: b, topic: dogs}\n"
                                                  "- {id: c, topic: fish}\n- {id: d, topic: owls}\n")
    inventory = fleet_env.write()
    assert fleet_env.sac_json("fleet", "up", "-i", inventory)["ok"]
    placed = {a["name"]: a["host"] for a in fleet_env.sac_json("fleet", "status", "-i", inventory)["agents"]}
    assert sorted(placed) == ["paper-a", "paper-b", "paper-c", "paper-d"]
    assert sorted(placed.values()) == sorted([h1.name, h1.name, h2.name, h2.name])
    for name, topic in (("paper-a", "cats"), ("paper-d", "owls")):
        reply = fleet_env.sac("fleet", "send", name, "which topic?", "-i", inventory).stdout.strip()
        assert reply == "topic: %s@%s" % (topic, placed[name])


def import_and_point_at(sac_env, kind):
    """`sac spec import` the fixture; then, as a site would, point its provider at ours (the test provider)."""
    out = sac_env.root / "imported"
    sac_env.sac("spec", "import", FIXTURES / kind, "--out", out)
    path = out / kind / "spec.yaml"
    data = yaml.safe_load(path.read_text())
    claude = data.setdefault("spec", {}).setdefault("claude", {})
    claude.setdefault("provider", {})["base_url"] = sac_env.provider.url
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path.parent


@pytest.mark.parametrize("kind", ["minimal", "provider", "apptainer", "full"])
def test_imported_upstream_specs_start_and_answer(sac_env, kind):
    if kind == "provider":
        secrets = sac_env.home / "secrets.env"
        secrets.parent.mkdir(parents=True, exist_ok=True)
        secrets.write_text("DEEPSEEK_API_KEY=test-key\n")
        secrets.chmod(0o600)
    sac_env.env["HOME"] = str(sac_env.root)  # the apptainer fixture's ${HOME} becomes ${env.HOME}
    agent = import_and_point_at(sac_env, kind)
    sac_env.sac("agents", "start", agent)
    assert sac_env.sac("agents", "send", kind, "hello there").stdout.strip() == "echo: hello there"
    status = json.loads(sac_env.sac("agents", "status", kind, "--json").stdout)
    assert status["state"] == "idle"
