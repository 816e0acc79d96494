"""The real Claude Code CLI against the built-in provider, in stream-json mode as agents run it."""

import json
import os
import queue
import subprocess
import threading
import time

import pytest

pytestmark = pytest.mark.integration

TURN_TIMEOUT_S = 60


class ClaudeStream:
    """One long-lived `claude -p` in stream-json mode: a turn is one line in, events until `result`."""

    def __init__(self, claude_bin, provider, home, cwd, api_key="sac-test-key", extra_env=None, flags=()):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
        env.update(provider.client_env(api_key), **(extra_env or {}))
        argv = [claude_bin, "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose", *flags]
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def turn(self, text):
        """Send one prompt; return (all events, the result event)."""
        self.process.stdin.write(json.dumps({"type": "user", "message": {"role": "user", "content": text}}) + "\n")
        self.process.stdin.flush()
        events, deadline = [], time.monotonic() + TURN_TIMEOUT_S
        while True:
            line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise AssertionError("claude exited (%s): %s" % (self.process.wait(), self.process.stderr.read()[-2000:]))
            if not line.strip().startswith("{"):
                continue
            event = json.loads(line)
            events.append(event)
            if event.get("type") == "result":
                return events, event

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()


@pytest.fixture
def claude_stream(claude_bin, tmp_path):
    """Start ClaudeStream(provider, **kwargs) sessions in tmp dirs; each is closed after the test."""
    sessions = []

    def start(provider, **kwargs):
        home, cwd = tmp_path / ("home%d" % len(sessions)), tmp_path / ("work%d" % len(sessions))
        home.mkdir()
        cwd.mkdir()
        session = ClaudeStream(claude_bin, provider, home, cwd, **kwargs)
        session.cwd = cwd
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.close()


def test_two_turns_in_one_process_echo_in_one_session(provider, claude_stream):
    session = claude_stream(provider)
    _, first = session.turn("hello provider")
    _, second = session.turn("and a second turn")
    assert (first["result"], first["is_error"]) == ("echo: hello provider", False)
    assert (second["result"], second["is_error"]) == ("echo: and a second turn", False)
    assert first["session_id"] == second["session_id"]
    # What Claude Code sent: system prompt, tools, and the first exchange as history of the second.
    last = provider.requests[-1]
    assert last["stream"] is True and last["system"] and any(t["name"] == "Bash" for t in last["tools"])
    history = json.dumps(last["messages"])
    assert "hello provider" in history and "echo: hello provider" in history
    assert all(record.path.startswith("/v1/messages") for record in provider.records)


def test_scripted_bash_tool_call_creates_a_file_and_the_final_text_quotes_its_output(provider, claude_stream):
    provider.load_script(
        {
            "rules": [
                {
                    "name": "make-file",
                    "match": "make the file",
                    "tool": "Bash",
                    "input": {"command": "touch hello.txt && echo made-it-$((6*7))", "description": "Create hello.txt"},
                    "then": "Done. The tool said: {tool_result}",
                }
            ]
        }
    )
    session = claude_stream(provider, flags=("--allowedTools", "Bash"))
    events, result = session.turn("please make the file")
    assert (session.cwd / "hello.txt").exists()
    assert result["result"] == "Done. The tool said: made-it-42" and result["is_error"] is False
    tool_results = [b for e in events if e["type"] == "user" for b in e["message"]["content"] if b.get("type") == "tool_result"]
    assert tool_results and "made-it-42" in json.dumps(tool_results)
    assert [r.rule for r in provider.records if r.path.startswith("/v1/messages?")] == ["make-file", "make-file"]


def test_429_for_a_key_is_an_error_result_when_retries_are_off_then_clears(provider_factory, claude_stream):
    server = provider_factory({"keys": {"key-a": {"fault": {"status": 429, "retry_after": 1}, "times": 1}}})
    session = claude_stream(server, api_key="key-a", extra_env={"CLAUDE_CODE_MAX_RETRIES": "0"})
    _, failed = session.turn("first try")
    assert failed["is_error"] is True and failed["api_error_status"] == 429
    _, recovered = session.turn("second try")
    assert (recovered["result"], recovered["is_error"]) == ("echo: second try", False)
    assert [r.status for r in server.records if r.path.startswith("/v1/messages")] == [429, 200]


def test_claude_retries_429_by_itself_and_succeeds_when_the_fault_clears(provider_factory, claude_stream):
    server = provider_factory({"keys": {"key-a": {"fault": {"status": 429, "retry_after": 0}, "times": 2}}})
    session = claude_stream(server, api_key="key-a")
    _, result = session.turn("retry me")
    assert (result["result"], result["is_error"]) == ("echo: retry me", False)
    assert [r.status for r in server.records if r.path.startswith("/v1/messages")] == [429, 429, 200]
