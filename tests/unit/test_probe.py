"""The bootstrap probe: sac_node/probe.py run as the head sends it (`python3 -c <text>`), and its answer read."""

import json
import subprocess
import sys

import pytest

from sac_fleet.remote.host_settings import HostSettings
from sac_fleet.remote.ssh import RunResult
from sac_fleet.remote.ssh_path import probe_command, probe_source, read_probe
from sac_node import probe
from sac_node.protocol.errors import BootstrapFailed, PythonMissing

SHA = "ab" * 32
SETTINGS = HostSettings(name="h1", transport="ssh", python=sys.executable, state_dir="~/.sac", connect_timeout=5)


def run_probe(state_dir, mode=probe.LOOK, sha=SHA):
    """The probe's text, run as a fresh python with nothing of sac importable (-I, cwd elsewhere)."""
    done = subprocess.run([sys.executable, "-I", "-c", probe_source(), str(state_dir), sha, mode],
                          capture_output=True, cwd=str(state_dir.parent), timeout=30)
    return RunResult(done.returncode, done.stdout, done.stderr)


def test_the_probe_runs_from_its_source_alone_on_an_empty_host(tmp_path):
    info = read_probe(SETTINGS, run_probe(tmp_path / "state"))
    assert info["state_dir"] == str(tmp_path / "state") and info["python"][:2] == list(sys.version_info[:2])
    assert info["pyz"] == str(tmp_path / "state" / "node" / (SHA + ".pyz"))
    assert info["pyz_cached"] is False and info["daemon"] is None


def test_the_probe_sees_a_cached_pyz_and_a_dead_daemon_that_was_stopped(tmp_path):
    state = tmp_path / "state"
    (state / "node").mkdir(parents=True)
    (state / "node" / (SHA + ".pyz")).write_bytes(b"not run")
    (state / "daemon.json").write_text(json.dumps({"pid": 1, "sha": SHA, "stopped_at": 1.0}))
    info = read_probe(SETTINGS, run_probe(state))
    assert info["pyz_cached"] is True
    assert info["daemon"]["alive"] is False and "revived" not in info  # stopped on purpose: left alone


def test_a_start_probe_without_a_cached_pyz_starts_nothing(tmp_path):
    info = read_probe(SETTINGS, run_probe(tmp_path / "state", mode=probe.START))
    assert "started" not in info and info["pyz_cached"] is False


def test_the_answer_is_found_past_login_banner_noise():
    answer = {"python": [3, 11, 0], "executable": "/usr/bin/python3", "state_dir": "/s", "pyz_cached": True}
    out = ("Welcome to login1\nquota: 2 GB left\n" + probe.MARKER + json.dumps(answer) + "\n").encode()
    assert read_probe(SETTINGS, RunResult(0, out, b"")) == answer


def test_a_python_too_old_is_python_missing_naming_the_host_and_the_fix():
    answer = {"python": [3, 6, 8], "executable": "/usr/bin/python3", "state_dir": "/s", "pyz_cached": False}
    with pytest.raises(PythonMissing) as caught:
        read_probe(SETTINGS, RunResult(0, (probe.MARKER + json.dumps(answer) + "\n").encode(), b""))
    assert "host h1" in caught.value.message and "Python 3.6.8" in caught.value.message
    assert "set `python:`" in caught.value.message


def test_a_python_not_found_is_python_missing():
    result = RunResult(127, b"", b"bash: line 1: python3.42: command not found\n")
    with pytest.raises(PythonMissing) as caught:
        read_probe(SETTINGS, result)
    assert "python3.42: command not found" in caught.value.message and "env_preamble" in caught.value.message


def test_a_probe_without_an_answer_is_bootstrap_failed_with_the_last_stderr_line():
    with pytest.raises(BootstrapFailed) as caught:
        read_probe(SETTINGS, RunResult(1, b"banner\n", b"Traceback ...\nOSError: disk full\n"))
    assert caught.value.message == "host h1: the probe failed (exit 1): OSError: disk full"


def test_the_command_uses_the_hosts_python_preamble_and_state_dir_as_given():
    settings = HostSettings(name="h1", transport="ssh", python="/opt/py/bin/python3", state_dir="~/scratch/sac",
                            connect_timeout=5, env_preamble="module load python")
    command = probe_command(settings, SHA, probe.START, {"needed": False})
    assert command.startswith("module load python\n/opt/py/bin/python3 -c ")
    assert command.endswith(' "$HOME"/scratch/sac %s 1 \'{"needed": false}\'' % SHA)
    assert "def probe(state_dir, sha, mode, want=None)" in command  # the module's own text, not a copy


def test_the_probe_source_imports_only_the_standard_library():
    imported = [line.split()[1] for line in probe_source().splitlines() if line.startswith(("import ", "from "))]
    assert imported and all(name.split(".")[0] in sys.stdlib_module_names for name in imported), imported
