"""The steps of one host's path over SSH (SSHPath), against a fake connection that answers like a host.

The fake connection answers the probe the way sac_node/probe.py does (from a small state:
pyz cached? daemon alive? of which sha?); the real thing runs against sshd in
tests/integration/test_fleet.py, test_read_only.py and test_ssh_transport.py.
"""

import json
import shlex
from types import SimpleNamespace

import pytest

from sac_fleet.remote import ssh_path
from sac_fleet.remote.host_settings import BOOTSTRAP_S, HostSettings, SSHTarget
from sac_fleet.remote.pyz import build_pyz
from sac_fleet.remote.ssh import RunResult, StreamLocalRefused
from sac_node import probe
from sac_node.protocol.errors import BootstrapFailed

SHA = build_pyz()[1]
STATE = "/home/u/.sac"


class Host:
    """What the fake connection's host holds, and what was done to it."""

    def __init__(self, cached=False, daemon_sha=None, alive=False, starts=True, stream_local=True):
        self.cached, self.daemon_sha, self.alive, self.starts = cached, daemon_sha, alive, starts
        self.stream_local = stream_local
        self.steps, self.timeouts, self.closed = [], [], False

    def answer(self, mode):
        info = {"python": [3, 11, 2], "executable": "/usr/bin/python3", "state_dir": STATE,
                "pyz": "%s/node/%s.pyz" % (STATE, SHA), "pyz_cached": self.cached, "upgraded_from": None}
        if mode != probe.LOOK and self.cached:
            if self.alive and (self.daemon_sha != SHA or mode == probe.RESTART):
                info["upgraded_from" if self.daemon_sha != SHA else "restarted"] = self.daemon_sha
                self.alive = False
            if not self.alive and self.starts:
                info["started"], self.alive, self.daemon_sha = True, True, SHA
        info["daemon"] = {"sha": self.daemon_sha, "alive": self.alive} if self.daemon_sha else None
        return info


class Conn:
    """An SSHConnection as SSHPath uses it."""

    name = "h1"

    def __init__(self, host):
        self.host = host

    async def disable_nagle(self):
        self.host.steps.append("nodelay")

    async def run(self, command, input=None, timeout=None):
        mode = shlex.split(command)[-2]  # probe_command ends with STATE_DIR SHA MODE ENGINE
        self.host.steps.append("probe " + mode)
        self.host.timeouts.append(timeout)
        return RunResult(0, ("motd\n" + probe.MARKER + json.dumps(self.host.answer(mode)) + "\n").encode(), b"")

    async def upload(self, path, data, mode=0o644, timeout=None):
        self.host.steps.append("upload")
        self.host.cached = True

    async def open_unix_connection(self, path):
        if not (self.host.stream_local and self.host.alive):
            raise StreamLocalRefused("refused")
        self.host.steps.append("attach stream-local")
        return SimpleNamespace(reader=None, writer=None, kind="stream-local")

    async def open_exec(self, command):
        self.host.steps.append("attach exec: " + command)
        return SimpleNamespace(reader=None, writer=None, kind="exec")

    def close(self):
        self.host.closed = True


class Client:
    """A NodeClient; its facts name the daemon's sha."""

    def __init__(self, reader, writer, host, channel, sha=None):
        self.host, self.channel, self.sha = host, channel, sha

    async def timed_facts(self, timeout=None):
        return {"sha": self.sha}, 1.0

    async def close(self):
        pass


@pytest.fixture
def open_path(monkeypatch, tmp_path):
    monkeypatch.setenv("SAC_HOME", str(tmp_path / "head"))  # where the state dir hints live

    def opener(host, settings=None):
        settings = settings or HostSettings("h1", "ssh", "python3", "~/.sac", 7.0, target=SSHTarget("h1"),
                                            needs_engine=False)
        path = ssh_path.SSHPath(settings)

        async def connect():
            host.steps.append("connect")
            path.conn = Conn(host)

        monkeypatch.setattr(path, "connect", connect)
        monkeypatch.setattr(ssh_path, "NodeClient", lambda *a, **k: Client(*a, sha=host.daemon_sha, **k))
        return path

    return opener


async def test_a_cold_host_is_probed_uploaded_started_and_attached_in_that_order(open_path):
    host = Host()
    path = open_path(host)
    client = await path.open("provision")
    assert host.steps == ["connect", "nodelay", "probe 1", "upload", "probe 1", "attach stream-local"]
    assert path.done == ["uploaded node.pyz (%d KB)" % (len(build_pyz()[0]) // 1024), "started the node daemon"]
    assert client.channel == "stream-local" and path.conn is not None and path.answered is None


async def test_a_warm_host_is_attached_without_a_probe_once_its_state_dir_is_known(open_path):
    host = Host()
    await open_path(host).open("provision")
    host.steps.clear()
    path = open_path(host)
    client = await path.open("attach")
    assert host.steps == ["connect", "attach stream-local", "nodelay"] and client is not None
    assert path.answered == ({"sha": SHA}, 1.0) and path.done == [] and path.would == []


async def test_reading_a_host_without_a_daemon_provisions_nothing_and_says_what_it_would_do(open_path):
    host = Host()
    path = open_path(host)
    assert await path.open("attach") is None
    assert host.steps == ["connect", "nodelay", "probe 0"] and host.closed and path.conn is None
    assert path.would == ["upload node.pyz (%d KB)" % (len(build_pyz()[0]) // 1024), "start the node daemon"]
    assert path.answered == ({"python": "3.11.2"}, None)


async def test_reading_a_host_with_an_older_node_attaches_to_it_and_would_upgrade(open_path):
    host = Host(cached=True, daemon_sha="0ld" * 10, alive=True, stream_local=False)
    path = open_path(host)
    client = await path.open("attach")
    assert client is not None and path.would == ["upgrade the node from " + ("0ld" * 10)[:12]]
    assert host.steps[-1].startswith("attach exec: SAC_NODE_SHA=%s python3 %s/node/%s.pyz attach"
                                     % ("0ld" * 10, STATE, "0ld" * 10))


async def test_restart_skips_the_warm_attach_and_replaces_the_daemon(open_path):
    host = Host()
    await open_path(host).open("provision")  # the state dir is known now: a read would attach warm
    host.steps.clear()
    path = open_path(host)
    await path.open("restart")
    assert host.steps == ["connect", "nodelay", "probe 2", "attach stream-local"]
    assert path.done == ["stopped the node daemon (its agents keep running)", "started the node daemon"]


async def test_a_daemon_that_does_not_start_is_bootstrap_failed_and_the_connection_closed(open_path):
    host = Host(cached=True, starts=False)
    path = open_path(host)
    with pytest.raises(BootstrapFailed) as caught:
        await path.open("provision")
    assert caught.value.message == ("host h1: the node daemon did not start; see %s/daemon.log on that host"
                                    % STATE)
    assert host.closed and path.conn is None


async def test_the_probe_runs_under_the_one_bootstrap_timeout_with_the_hosts_preamble(open_path):
    host = Host(stream_local=False)
    settings = HostSettings("h1", "ssh", "/opt/bin/python3", "/scratch/sac", 4.0, env_preamble="module load py",
                            target=SSHTarget("h1"))
    await open_path(host, settings).open("provision")
    assert host.timeouts == [4.0 + BOOTSTRAP_S] * 2
    assert host.steps[-1].startswith("attach exec: module load py\nSAC_NODE_SHA=%s /opt/bin/python3 " % SHA)
