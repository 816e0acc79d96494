"""examples/engines/fast_engine.py, the benchmarks' instant engine, answers real turns inside bwrap."""

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from tests.fixtures.agents import SacEnv
from tests.fixtures.tools import REPO

pytestmark = pytest.mark.integration

FAST_ENGINE = REPO / "examples" / "engines" / "fast_engine.py"


@pytest.fixture
def fast_env(tmp_path, bwrap_bin):
    env = SacEnv(tmp_path, provider_url=None, claude_bin="/nonexistent/claude")  # no claude for this engine
    doc = {"apiVersion": "sac/v1", "kind": "Agent", "metadata": {"name": "fast"},
           "spec": {"engine": {"command": ["python3", str(FAST_ENGINE)]}, "isolation": {"runtime": "bwrap"},
                    "restart": {"policy": "on-failure", "max_retries": 3,
                                "backoff": {"initial": 0.1, "max": 1, "multiplier": 2}}}}
    (env.specs / "fast").mkdir()
    (env.specs / "fast" / "spec.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    yield env
    env.cleanup()


def test_fast_engine_answers_turns_in_the_sandbox_and_after_a_restart(fast_env):
    fast_env.sac("agents", "start", fast_env.specs / "fast")
    first = fast_env.sac_json("agents", "send", "fast", "hello there")
    assert first["status"] == "completed" and first["reply"] == "echo: hello there"
    assert first["usage"]["output_tokens"] > 0 and first["session_id"]
    assert fast_env.sac("agents", "send", "fast", "second").stdout.strip() == "echo: second"
    status = fast_env.sac_json("agents", "status", "fast")
    assert status["isolation"]["runtime"] == "bwrap" and status["isolation"]["uid"] == 1000
    assert status["turns"]["completed"] == 2 and status["session_id"] == first["session_id"]

    # Killed, the shim restarts it (argv verbatim; the session comes as $SAC_RESUME_SESSION) and it answers.
    os.kill(status["pid"], signal.SIGKILL)
    fast_env.wait_for(lambda: (lambda s: s["restarts"] == 1 and s["state"] == "idle")(
        fast_env.sac_json("agents", "status", "fast")), what="the engine to restart")
    third = fast_env.sac_json("agents", "send", "fast", "after the restart")
    assert third["status"] == "completed" and third["reply"] == "echo: after the restart"
    assert third["session_id"] == first["session_id"]  # the restarted engine continued the session
    journal = [json.loads(l) for l in (fast_env.agent_dir("fast") / "journal.jsonl").read_text().splitlines()]
    assert [r["op"] for r in journal].count("completed") == 3


def test_fast_engine_accepts_resume_and_keeps_that_session():
    line = json.dumps({"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": "hi"}]}})
    done = subprocess.run([sys.executable, str(FAST_ENGINE), "--resume", "s-42"], input=line + "\n",
                          capture_output=True, text=True, timeout=30)
    events = [json.loads(l) for l in done.stdout.splitlines()]
    assert [e["type"] for e in events] == ["system", "assistant", "result"]
    assert {e["session_id"] for e in events} == {"s-42"} and events[-1]["result"] == "echo: hi"
