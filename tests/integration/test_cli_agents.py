"""The `sac agents` CLI on this machine's node: following a transcript, following up a turn."""

import queue
import subprocess
import sys
import threading
import time

import pytest

pytestmark = pytest.mark.integration


class Lines:
    """A running `sac` command whose stdout lines are read as they come."""

    def __init__(self, sac_env, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "sac_fleet"] + [str(a) for a in args], env=sac_env.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines, self.seen = queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                self.seen.append(self.lines.get(timeout=0.2))
            except queue.Empty:
                continue
            if text in self.seen[-1]:
                return self.seen[-1]
        raise AssertionError("no line with %r within %ss; saw %r" % (text, timeout, self.seen))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def test_tail_n_0_prints_nothing_and_a_negative_n_is_a_usage_error(sac_env):
    sac_env.write_spec("a1")
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    sac_env.sac("agents", "send", "a1", "before")
    assert "before" in sac_env.sac("agents", "tail", "a1", "-n", "5").stdout
    assert sac_env.sac("agents", "tail", "a1", "-n", "0").stdout == ""
    negative = sac_env.sac("agents", "tail", "a1", "-n", "-1", check=False)
    assert negative.returncode == 2 and negative.stdout == "" and "-n" in negative.stderr


def test_tail_follows_across_a_restart_and_ends_on_delete(sac_env):
    sac_env.write_spec("a1")
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    sac_env.sac("agents", "send", "a1", "old news")
    tail = Lines(sac_env, "agents", "tail", "a1", "-f", "-n", "0")
    try:
        time.sleep(1.5)  # subscribed
        sac_env.sac("agents", "send", "a1", "first")
        tail.wait_for("user       first")
        sac_env.sac("agents", "restart", "a1")
        sac_env.sac("agents", "send", "a1", "after the restart")
        tail.wait_for("user       after the restart")
        tail.wait_for("assistant  echo: after the restart")
        assert not any("old news" in line for line in tail.seen)
        sac_env.sac("agents", "delete", "a1", "-y")
        assert tail.proc.wait(timeout=15) == 0
    finally:
        tail.stop()


SLOW = {"rules": [{"match": "slow", "reply": "slowly done", "fault": {"chunk_delay": 1.5}}]}


def test_a_no_wait_turn_is_followed_up_and_cancelled_by_id(sac_env):
    sac_env.provider.load_script(SLOW)
    sac_env.write_spec("a1")
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    slow = sac_env.sac("agents", "send", "a1", "go slow", "--no-wait").stdout.split()[-1]
    queued = sac_env.sac("agents", "send", "a1", "then this", "--no-wait").stdout.split()[-1]
    early = sac_env.sac("agents", "turn", slow, check=False)
    assert early.returncode == 1 and "not ended yet" in early.stderr and early.stdout == ""
    cancelled = sac_env.sac("agents", "cancel", queued)
    assert cancelled.stdout.strip() == "turn %s cancelled" % queued
    assert sac_env.sac("agents", "turn", slow, "--wait", "60").stdout.strip() == "slowly done"
    looked_up = sac_env.sac("agents", "turn", queued, check=False)
    assert looked_up.returncode == 1 and "cancelled" in looked_up.stderr
    assert sac_env.sac_json("agents", "turn", queued, check=False)["status"] == "cancelled"
    too_late = sac_env.sac("agents", "cancel", slow, check=False)
    assert too_late.returncode == 1 and too_late.stdout.strip() == "turn %s completed" % slow


def test_send_reads_the_prompt_from_stdin_or_a_file(sac_env, tmp_path):
    sac_env.write_spec("a1")
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    assert sac_env.sac("agents", "send", "a1", "-", input="from stdin\n").stdout.strip() == "echo: from stdin"
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("from a file")
    assert sac_env.sac("agents", "send", "a1", "--file", prompt).stdout.strip() == "echo: from a file"
    both = sac_env.sac("agents", "send", "a1", "x", "--file", prompt, check=False)
    assert both.returncode == 2 and "one of them" in both.stderr


def test_agents_list_selects_by_label(sac_env):
    import yaml

    for name, team in (("a1", "docs"), ("a2", "ops")):
        spec = sac_env.write_spec(name) / "spec.yaml"
        doc = yaml.safe_load(spec.read_text())
        doc["metadata"]["labels"] = {"team": team}
        spec.write_text(yaml.safe_dump(doc))
        sac_env.sac("agents", "start", spec.parent)
    assert [a["name"] for a in sac_env.sac_json("agents", "list", "-l", "team=docs")] == ["a1"]
    assert "a2" in sac_env.sac("agents", "list", "-l", "team=ops").stdout
    assert "a1" not in sac_env.sac("agents", "list", "-l", "team=ops").stdout
    bad = sac_env.sac("agents", "list", "-l", "team", check=False)
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr
