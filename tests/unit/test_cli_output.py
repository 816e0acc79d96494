"""What `sac` prints for given answers: user text stays as written, errors come whole.

The Fleet's answer is given (these tests are about the rendering); the commands that
produce real answers are covered in tests/integration.
"""

import pytest
from typer.testing import CliRunner

from sac_fleet.frontends.cli import agents_cmd, fleet_cmd
from sac_fleet.frontends.cli.app import app
from tests.fixtures.cli_imports import run_sac

FAILED_UP = {
    "dry_run": False, "changed": False, "ok": False, "fenced": [], "summary": "1 to start",
    "hosts": [{"name": "h3", "state": "ok", "latency_ms": 1.0, "python": "3.11", "node_version": "1",
               "agents_running": 0, "agents_desired": 1, "reason": "", "bootstrap": []}],
    "plan": [{"kind": "start", "agent": "solo", "host": "h3", "line": "solo -> h3: pinned (hosts: [h3])"}],
    "results": [{"ok": False, "changed": False, "error": "spec [workdir] is bad",
                 "action": {"kind": "start", "agent": "solo", "host": "h3",
                            "line": "solo -> h3: pinned (hosts: [h3])"}}],
}


def invoke(monkeypatch, module, answer, args):
    monkeypatch.setattr(module, "run", lambda *a, **kw: answer)
    return CliRunner().invoke(app, args, env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_a_failure_line_keeps_brackets_rich_would_read_as_markup(monkeypatch, tmp_path):
    ran = invoke(monkeypatch, fleet_cmd, FAILED_UP, ["fleet", "up", str(tmp_path / "inv.yaml")])
    assert ran.exit_code == 1
    assert "failed solo -> h3: pinned (hosts: [h3]): spec [workdir] is bad" in ran.output
    assert "start       solo -> h3: pinned (hosts: [h3])" in ran.output


def test_table_cells_keep_their_brackets(monkeypatch):
    status = {"name": "a1", "state": "failed", "pid": None, "restarts": 2, "turns": {},
              "isolation": {"runtime": "bwrap"}, "last_error": "exit 1 [bold]oops[/bold] [h3]"}
    ran = invoke(monkeypatch, agents_cmd, [status], ["agents", "list"])
    assert ran.exit_code == 0, ran.output
    assert "exit 1 [bold]oops[/bold] [h3]" in ran.output


def test_spec_check_shows_every_error_on_its_own_line(tmp_path):
    bad = tmp_path / "[x]" / "spec.yaml"
    bad.parent.mkdir()
    bad.write_text("apiVersion: sac/v1\nkind: Agent\nmetadata: {name: a}\nspec:\n  workdr: x\n"
                   "  restart: {policy: sometimes}\n  claude: {modle: x}\n")
    ran = run_sac(["spec", "check", bad], tmp_path)
    assert ran.code == 2
    lines = ran.stderr.splitlines()
    assert [line.split(" ", 2)[1].rsplit(":", 1)[1] for line in lines] == ["5", "6", "7"], ran.stderr
    assert all(line.startswith("error: %s:" % bad) for line in lines)
    assert "more]" not in ran.stderr


def test_send_json_speaks_of_prompt_and_reply(tmp_path):
    import json

    ran = run_sac(["agents", "send", "a1", "hi", "--json"], tmp_path, fake_node=True)
    turn = json.loads(ran.stdout)
    assert ran.code == 0 and (turn["prompt"], turn["reply"]) == ("hi", "echo: hi") and "text" not in turn


async def test_the_python_api_takes_prompt_and_still_text(monkeypatch):
    from sac_fleet import api

    class Node:
        async def submit(self, name, prompt, key=None, wait_s=None):
            return {"turn": {"id": name + ".0000000000000001", "status": "pending", "text": prompt}, "created": True}

    fleet = api.Fleet()
    monkeypatch.setattr(fleet, "node", lambda name=None, provision=False: _value(Node()))
    assert (await fleet.send("a1", "by position", wait=False))["prompt"] == "by position"
    assert (await fleet.send("a1", prompt="by name", wait=False))["prompt"] == "by name"
    assert (await fleet.send("a1", text="old name", wait=False))["prompt"] == "old name"


async def _value(value):
    return value


def test_a_piped_table_keeps_each_row_on_one_line(monkeypatch):
    error = "the engine exited with code 1 after the provider refused the key for this agent, see the log"
    status = {"name": "a-rather-long-agent-name", "state": "failed", "pid": None, "restarts": 2, "turns": {},
              "isolation": {"runtime": "bwrap"}, "last_error": error}
    monkeypatch.setattr(agents_cmd, "run", lambda *a, **kw: [status])
    monkeypatch.setattr(agents_cmd.out, "_console", None)
    ran = CliRunner().invoke(app, ["agents", "list"], env={"COLUMNS": "80", "NO_COLOR": "1"})
    lines = ran.output.splitlines()
    assert ran.exit_code == 0 and len(lines) == 2, ran.output
    assert lines[1].strip().startswith("a-rather-long-agent-name") and lines[1].rstrip().endswith(error)
