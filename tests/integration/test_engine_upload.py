"""The engine travels from the head: hosts with no `claude` get the head's copy from `fleet up` (real sshd)."""

import hashlib
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from sac_fleet.remote.engine_ship import CHUNK
from tests.fixtures import procs

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
    assert [row["engine"] for row in report["hosts"]] == [str(engine), str(_engine_dir(h2) / "claude")]
    for agent in ("one", "two"):
        assert fleet_env.sac("fleet", "send", agent, "hello " + agent, "-i", inventory).stdout.strip() == \
            "echo: hello " + agent

    again = fleet_env.sac_json("fleet", "up", inventory)
    assert again["ok"] and not _uploads(again) and not again["changed"], again


def _fake_engine(path, megabytes):
    """A stand-in for the head's Claude Code: answers `--version`, then `megabytes` of random bytes."""
    with open(path, "wb") as fh:
        fh.write(b'#!/bin/sh\necho "2.1.197 (Claude Code)"\nexit 0\n')
        fh.write(os.urandom(megabytes << 20))
    os.chmod(path, 0o755)
    return path


def _one_fake_host(fleet_env, megabytes):
    (host,) = fleet_env.sshd.start(1)
    fleet_env.env["SAC_CLAUDE_BIN"] = str(_fake_engine(fleet_env.root / "fake-claude", megabytes))
    _bare_host(fleet_env, host)
    fleet_env.add_agent("one", {"hosts": [host.name]})
    return host, fleet_env.write()


def _cut_when(host, path, size):
    """Kill the host's sshd session processes (the connection drops) once `path` holds `size` bytes."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            reached = path.stat().st_size >= size
        except FileNotFoundError:
            reached = False
        if reached:
            for pid in procs.children(host.process.pid):
                os.kill(pid, signal.SIGKILL)
            return True
        time.sleep(0.005)
    return False


def test_an_upload_cut_midway_resumes_where_it_stopped(fleet_env):
    host, inventory = _one_fake_host(fleet_env, 96)
    fleet_env.env["SAC_ENGINE_CODEC"] = "none"
    head_sha = hashlib.sha256(Path(fleet_env.env["SAC_CLAUDE_BIN"]).read_bytes()).hexdigest()
    part = host.state_dir / "engines" / head_sha / "claude.part"
    cut = []
    cutter = threading.Thread(target=lambda: cut.append(_cut_when(host, part, 3 * CHUNK)))
    cutter.start()
    first = fleet_env.sac_json("fleet", "up", inventory, check=False)
    cutter.join()
    assert cut == [True] and not first["ok"]
    row = first["hosts"][0]
    assert row["state"] != "ok" and not _uploads(first), row
    had = part.stat().st_size
    assert 3 * CHUNK <= had < 96 << 20

    second = fleet_env.sac_json("fleet", "up", inventory, check=False)
    ((resumed_at, sent),) = _uploads(second)[host.name]
    assert resumed_at == (had // CHUNK * CHUNK) >> 20 and resumed_at >= 24
    assert sent == 96 - resumed_at  # only the rest travelled
    engine = _engine_dir(host) / "claude"
    assert engine.read_bytes() == Path(fleet_env.env["SAC_CLAUDE_BIN"]).read_bytes() and not part.exists()


def test_a_corrupted_engine_on_the_host_is_found_by_its_hash_and_sent_again(fleet_env):
    host, inventory = _one_fake_host(fleet_env, 20)
    first = fleet_env.sac_json("fleet", "up", inventory, check=False)
    assert [s for _, s in _uploads(first)[host.name]] == [20]
    engine = _engine_dir(host) / "claude"
    with open(engine, "r+b") as fh:  # one byte flipped in the middle: same size
        fh.seek(10 << 20)
        byte = fh.read(1)
        fh.seek(10 << 20)
        fh.write(bytes([byte[0] ^ 0xFF]))

    second = fleet_env.sac_json("fleet", "up", inventory, check=False)
    assert [s for _, s in _uploads(second)[host.name]] == [20], second["hosts"]
    assert engine.read_bytes() == Path(fleet_env.env["SAC_CLAUDE_BIN"]).read_bytes()
    third = fleet_env.sac_json("fleet", "up", inventory, check=False)
    assert not _uploads(third)


def test_upload_false_makes_a_missing_engine_one_line_with_the_fix(fleet_env):
    (host,) = fleet_env.sshd.start(1)
    _bare_host(fleet_env, host, engine={"upload": False})
    fleet_env.add_agent("one", {"hosts": [host.name]})
    inventory = fleet_env.write()
    proc = fleet_env.sac("fleet", "up", inventory, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    report = fleet_env.sac_json("fleet", "up", inventory, check=False)
    (row,) = report["hosts"]
    assert row["state"] == "bootstrap_failed" and row["reason"].endswith(
        "host %s: no suitable Claude Code (no `claude` on PATH; upload: false): install Claude Code there and set "
        "engine.bin, or allow the upload (remove engine.upload: false)" % host.name)
    assert "make tools" not in proc.stdout + proc.stderr and not (host.state_dir / "engines").exists()
