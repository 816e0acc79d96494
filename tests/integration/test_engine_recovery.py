"""An engine that comes back after a crash: its turn runs once and completes (real claude, real bwrap).

Regression tests for the shim-kill failure: Claude Code saves a session's file ~0.1 s after each
turn, so an engine killed in that window leaves a session id with no conversation behind it, and
`--resume` of it failed every later turn with `error_during_execution`.
"""

import glob
import json
import os
import signal
import textwrap
import time

import pytest
import yaml

from tests.fixtures.agents import SacEnv

pytestmark = pytest.mark.integration


def _transcript(env, name):
    path = env.agent_dir(name) / "transcript.jsonl"
    return [json.loads(line)["event"] for line in path.read_text().splitlines() if line.strip()]


def _journal(env, name):
    return [json.loads(line) for line in (env.agent_dir(name) / "journal.jsonl").read_text().splitlines()]


def test_a_session_the_engine_never_saved_is_started_again_and_the_turn_completes(sac_env):
    sac_env.write_spec("a1")
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    first = sac_env.sac_json("agents", "send", "a1", "remember me")
    assert first["status"] == "completed"
    saved = os.path.join(str(sac_env.agent_dir("a1")), "home", ".claude", "projects", "*",
                         first["session_id"] + ".jsonl")
    sac_env.wait_for(lambda: glob.glob(saved), what="Claude Code to save the session")
    # What a kill within ~0.1 s of a turn leaves: the session id, and no file for it.
    for path in glob.glob(saved):
        os.unlink(path)
    engine = sac_env.sac_json("agents", "status", "a1")["pid"]
    os.kill(engine, signal.SIGKILL)

    turn = sac_env.sac_json("agents", "send", "a1", "after the crash", timeout=90)
    assert turn["status"] == "completed", turn
    assert turn["reply"] == "echo: after the crash"
    assert "could not be resumed" in turn["notice"] and first["session_id"] in turn["notice"]
    assert turn["session_id"] != first["session_id"]
    lost = [e for e in _transcript(sac_env, "a1") if e.get("subtype") == "session_lost"]
    assert [e["session_id"] for e in lost] == [first["session_id"]]
    # The CLI tells it on stderr beside the reply, and the next turn runs on in the new session.
    plain = sac_env.sac("agents", "send", "a1", "and again")
    assert plain.stdout.strip() == "echo: and again" and "could not be resumed" not in plain.stderr
    status = sac_env.sac_json("agents", "status", "a1")
    assert status["session_id"] == turn["session_id"] and status["turns"]["failed"] == 0


# An engine speaking Claude Code's stream-json that fails its first turn inside itself, as Claude
# Code does when it cannot run the turn at all, then exits; a marker file makes the next one answer.
FLAKY_ENGINE = textwrap.dedent("""\
    import json, os, sys
    MARK = "failed-%s" % os.environ.get("FAIL_TIMES", "1")
    session = os.environ.get("SAC_RESUME_SESSION") or "s-1"
    for line in sys.stdin:
        text = json.loads(line)["message"]["content"]
        failed = len([n for n in os.listdir(".") if n.startswith("failed-")])
        if failed < int(os.environ.get("FAIL_TIMES", "1")):
            open("failed-%d" % failed, "w").close()
            print(json.dumps({"type": "result", "subtype": "error_during_execution", "is_error": True,
                              "num_turns": 0, "session_id": session}), flush=True)
            sys.stderr.write("the engine could not run the turn\\n")
            sys.exit(1)
        print(json.dumps({"type": "system", "subtype": "init", "session_id": session}), flush=True)
        print(json.dumps({"type": "assistant", "session_id": session,
                          "message": {"content": [{"type": "text", "text": "echo: " + text}]}}), flush=True)
        print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "echo: " + text,
                          "session_id": session, "usage": {"output_tokens": 1}}), flush=True)
""")


@pytest.fixture
def flaky_env(tmp_path, bwrap_bin):
    env = SacEnv(tmp_path, provider_url=None, claude_bin="/nonexistent/claude")
    script = tmp_path / "engines" / "flaky_engine.py"
    script.parent.mkdir()
    script.write_text(FLAKY_ENGINE)

    def write(name, fail_times):
        doc = {"apiVersion": "sac/v1", "kind": "Agent", "metadata": {"name": name},
               "spec": {"engine": {"command": ["python3", str(script)]}, "isolation": {"runtime": "bwrap"},
                        "env": {"FAIL_TIMES": str(fail_times)},
                        "restart": {"policy": "on-failure", "max_retries": 5,
                                    "backoff": {"initial": 0.1, "max": 1, "multiplier": 2}}}}
        (env.specs / name).mkdir()
        (env.specs / name / "spec.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        env.sac("agents", "start", env.specs / name)

    env.write_flaky = write
    yield env
    env.cleanup()


def test_a_turn_that_failed_inside_the_engine_before_acting_runs_once_more_on_a_fresh_engine(flaky_env):
    flaky_env.write_flaky("once", fail_times=1)
    turn = flaky_env.sac_json("agents", "send", "once", "hello", timeout=60)
    assert turn["status"] == "completed" and turn["reply"] == "echo: hello", turn
    runs = [r for r in _journal(flaky_env, "once") if r["op"] in ("started", "requeued", "completed", "failed")]
    assert [r["op"] for r in runs] == ["started", "requeued", "started", "completed"]
    assert [r.get("attempt") for r in runs if r["op"] == "started"] == [1, 2]
    events = _transcript(flaky_env, "once")
    retry = [e for e in events if e.get("subtype") == "turn_retry"]
    assert len(retry) == 1 and "could not run the turn" in retry[0]["reason"]
    assert [e["text"] for e in events if e.get("subtype") == "turn_started"] == ["hello", "hello"]
    # A retry on a fresh engine is not a crash: the restart policy's count is untouched.
    assert flaky_env.sac_json("agents", "status", "once")["restarts"] == 0


def test_a_turn_that_fails_inside_the_engine_twice_fails_with_the_engines_words(flaky_env):
    flaky_env.write_flaky("twice", fail_times=2)
    turn = flaky_env.sac_json("agents", "send", "twice", "hello", check=False, timeout=60)
    assert turn["status"] == "failed" and "error_during_execution" in turn["error"]
    started = [r for r in _journal(flaky_env, "twice") if r["op"] == "started"]
    assert len(started) == 2  # retried once, not again
    # The agent goes on: its next turn (on the engine the restart policy brings back) answers.
    assert flaky_env.sac_json("agents", "send", "twice", "next", timeout=60)["reply"] == "echo: next"


def _closed_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_provider_fails_the_turn_in_seconds_and_degrades_the_agent(sac_env):
    port = _closed_port()
    sac_env.write_spec("down", claude={"provider": {"base_url": "http://127.0.0.1:%d" % port}})
    sac_env.sac("agents", "start", sac_env.specs / "down")
    began = time.monotonic()
    turn = sac_env.sac_json("agents", "send", "down", "anyone there?", check=False, timeout=90)
    took = time.monotonic() - began
    assert turn["status"] == "failed"
    assert turn["error"].startswith("provider unreachable: connection refused by 127.0.0.1:%d" % port), turn
    assert took < 30, "took %.1fs: Claude Code's own retries would take minutes" % took
    health = sac_env.sac("agents", "health", "down", check=False)
    assert health.returncode == 1
    assert "degraded: provider unreachable (connection refused by 127.0.0.1:%d" % port in health.stdout
    status = sac_env.sac_json("agents", "status", "down")
    assert status["degraded"].startswith("provider unreachable (connection refused") and " since " in status["degraded"]
    assert "(degraded)" in sac_env.sac("agents", "list").stdout


def test_a_refused_key_fails_at_once_and_the_agent_recovers_when_the_provider_answers(sac_env):
    sac_env.provider.load_script({"rules": [{"match": "deny", "fault": {"status": 401}}]})
    sac_env.write_spec("keyed")
    sac_env.sac("agents", "start", sac_env.specs / "keyed")
    began = time.monotonic()
    turn = sac_env.sac_json("agents", "send", "keyed", "deny me", check=False, timeout=90)
    assert turn["status"] == "failed" and "HTTP 401" in turn["error"], turn
    assert time.monotonic() - began < 15
    assert sac_env.sac("agents", "health", "keyed", check=False).returncode == 1
    assert sac_env.sac_json("agents", "send", "keyed", "hello")["reply"] == "echo: hello"
    assert sac_env.sac_json("agents", "status", "keyed")["degraded"] is None
    assert sac_env.sac("agents", "health", "keyed").returncode == 0


def test_no_provider_and_no_login_is_refused_at_start(sac_env):
    sac_env.env.pop("ANTHROPIC_API_KEY", None)
    sac_env.write_spec("nologin", claude={"provider": {}})
    started = sac_env.sac("agents", "start", sac_env.specs / "nologin", check=False)
    assert started.returncode == 2
    assert "agent nologin has no model provider and no login" in started.stderr
    assert "Traceback" not in started.stderr and len(started.stderr.strip().splitlines()) == 1
