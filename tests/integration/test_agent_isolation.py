"""Isolation as an agent sees it: secrets stay out of argv, no sandbox means no start unless opted out."""

import secrets as random_secrets

import pytest

from tests.fixtures import procs
from tests.fixtures.agents import processes_mentioning

pytestmark = pytest.mark.integration


def cmdlines_and_environs():
    """(pid, cmdline, environ) of every process on this machine that we can read."""
    for process in procs.processes().values():
        environ = procs.read(process.pid, "environ")
        if environ is not None:
            yield process.pid, process.cmdline, environ


def test_provider_key_reaches_the_engine_but_no_argv(sac_env):
    key = "sk-test-" + random_secrets.token_hex(20)
    sac_env.env["SAC_TEST_PROVIDER_KEY"] = key
    sac_env.write_spec("a1", claude={"provider": {"base_url": sac_env.provider_url,
                                                  "api_key_env": "SAC_TEST_PROVIDER_KEY"}})
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    assert sac_env.sac("agents", "send", "a1", "secret path").stdout.strip() == "echo: secret path"
    engine = sac_env.sac_json("agents", "status", "a1")["pid"]
    seen = list(cmdlines_and_environs())
    assert not [pid for pid, cmdline, _ in seen if key.encode() in cmdline]
    holders = {pid for pid, _, environ in seen if key.encode() in environ}
    # the sandbox (bwrap) and the claude inside it carry it in their environment
    assert engine in holders and len(holders & set(processes_mentioning(str(sac_env.home)))) >= 1
    for name in ("journal.jsonl", "transcript.jsonl", "shim.log", "spec.json"):
        path = sac_env.agent_dir("a1") / name
        if path.exists():
            assert key not in path.read_text()
    assert key not in (sac_env.home / "daemon.log").read_text()
    assert key not in sac_env.sac("agents", "status", "a1", "--json").stdout


def test_no_sandbox_refuses_to_start_unless_none_is_chosen(sac_env):
    sac_env.env["PATH"] = str(sac_env.root / "empty-bin")  # no bwrap, no apptainer
    sac_env.write_spec("a1", runtime="auto")
    proc = sac_env.sac("agents", "start", sac_env.specs / "a1", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    message = proc.stderr
    assert "apptainer" in message and "bwrap" in message and "runtime: none" in message
    assert sac_env.sac_json("agents", "list") == []

    sac_env.write_spec("a2", runtime="none")
    sac_env.sac("agents", "start", sac_env.specs / "a2")
    assert sac_env.sac("agents", "send", "a2", "unsandboxed").stdout.strip() == "echo: unsandboxed"
    status = sac_env.sac_json("agents", "status", "a2")
    assert status["isolation"]["runtime"] == "none" and status["isolation"]["sandboxed"] is False
    assert "UNSANDBOXED" in sac_env.sac("agents", "list").stdout


def test_stalled_turn_fails_and_the_engine_resumes(sac_env):
    sac_env.provider.load_script({"rules": [{"match": "freeze", "fault": {"stall": True}}]})
    sac_env.write_spec("a1", extra={"health": {"turn_timeout_s": 120, "stall_timeout_s": 4}})
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    first = sac_env.sac_json("agents", "send", "a1", "before")
    stalled = sac_env.sac_json("agents", "send", "a1", "freeze now", check=False)
    assert stalled["status"] == "failed" and stalled["error"].startswith("stalled")
    after = sac_env.sac_json("agents", "send", "a1", "after")
    assert after["status"] == "completed" and after["reply"] == "echo: after"
    assert after["session_id"] == first["session_id"]  # resumed, not a new conversation
    tail = sac_env.sac("agents", "tail", "a1", "-n", "60").stdout
    assert "engine_restart" in tail and "stalled" in tail
