"""The engine travels from the head: hosts with no `claude` get the head's copy from `fleet up` (real sshd)."""

import os
import re
import signal
import threading
import time

import pytest

from sac_fleet.remote.engine_ship import CHUNK

pytestmark = pytest.mark.integration

UPLOADED = re.compile(r"uploaded Claude Code \S+( \(resumed at (\d+) MB\))?: (\d+) MB sent")


def _bare_host(fleet_env, host, **fields):
    """A host whose login PATH has no claude and whose preamble does not name one."""
    entry = fleet_env.add_host(host, **fields)
    entry.pop("env_preamble")
    return entry


def _uploads(report):
    """{host: [(resumed at MB or None, MB sent)]} from `up --json`."""
    found = {}
    for row in report["hosts"]:
        for done in row["bootstrap"]:
            match = UPLOADED.search(done)
            if match:
                found.setdefault(row["name"], []).append(
                    (int(match.group(2)) if match.group(2) else None, int(match.group(3))))
    return found


def _engine_dir(host):
    (sha_dir,) = (host.state_dir / "engines").iterdir()
    return sha_dir


def test_hosts_without_claude_get_the_heads_engine_once_and_answer_turns(fleet_env):
    h1, h2 = fleet_env.sshd.start(2)
    # h2 shares h1's engines (as two hosts with one state_dir on NFS do): it must not be sent a second copy.
    (h1.state_dir / "engines").mkdir()
    os.symlink(h1.state_dir / "engines", h2.state_dir / "engines")
    _bare_host(fleet_env, h1)
    _bare_host(fleet_env, h2)
    fleet_env.add_agent("one", {"hosts": [h1.name]})
    fleet_env.add_agent("two", {"hosts": [h2.name]})
    inventory = fleet_env.write()

    report = fleet_env.sac_json("fleet", "up", inventory, timeout=300)
    assert report["ok"], report
    uploads = _uploads(report)
    assert sum(len(u) for u in uploads.values()) == 1, report["hosts"]
    engine = _engine_dir(h1) / "claude"
    assert engine.stat().st_size == os.path.getsize(os.path.realpath(fleet_env.claude_bin))
    for agent in ("one", "two"):
        assert fleet_env.sac("fleet", "send", agent, "hello " + agent, "-i", inventory).stdout.strip() == \
            "echo: hello " + agent

    again = fleet_env.sac_json("fleet", "up", inventory)
    assert again["ok"] and not _uploads(again) and not again["changed"], again
