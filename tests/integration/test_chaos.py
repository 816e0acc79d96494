"""A short chaos run (bench/chaos.py) in CI: kill -9 engines, shims, node daemons and the gateway, stop an
sshd and script provider faults while turns flow through the gateway; nothing may be lost or run twice."""

import importlib.util
from pathlib import Path

import pytest

from tests.fixtures.sshd import sshd_available
from tests.fixtures.tools import require

CHAOS_PATH = Path(__file__).resolve().parents[2] / "bench" / "chaos.py"


def load_chaos():
    spec = importlib.util.spec_from_file_location("sac_bench_chaos", CHAOS_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def chaos():
    reason = sshd_available()
    if reason:
        require("a real OpenSSH sshd", reason)
    return load_chaos()


def test_chaos_run_loses_nothing_and_runs_nothing_twice(chaos, claude_bin, monkeypatch, capsys):
    monkeypatch.setenv("SAC_CLAUDE_BIN", claude_bin)
    args = chaos.parse_args(["--duration", "30", "--hosts", "2", "--agents-per-host", "2", "--claude-agents", "1",
                             "--rate", "8", "--interval", "2", "--sshd-down", "3", "--retry-window", "45",
                             "--settle", "60", "--seed", "20261126"])
    report = chaos.run(args)
    with capsys.disabled():
        print("\n" + chaos.render(report))
    assert set(report["kills"]) == set(chaos.KINDS), "every kind of fault happened: %s" % report["kills"]
    assert report["accepted"] >= 100, "a steady stream of turns was accepted"
    assert report["accepted_before_a_gateway_crash"] > 0
    # regression: a second shim once started while agents.start was still starting the first
    assert report["live_copies"] == 0, report["violations"][:3]
    assert report["violations"] == [], report["violations"][:10]
    assert (report["lost"], report["duplicated"], report["unfinished"], report["unretrievable"]) == (0, 0, 0, 0)
    assert report["wrong_replies"] == 0
    assert report["unrecovered"] == 0, [e for e in report["events"] if e["done"] and "recovery_s" not in e]
    assert report["finals"].get("completed", 0) >= report["accepted"] * 0.8
    # regression: an agent whose host was down once made the gateway answer 500 instead of 502
    assert not report["client_errors"].get("500 internal_error"), report["client_errors"]
