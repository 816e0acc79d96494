"""The SSH transport against real OpenSSH sshd hosts on loopback."""

import asyncio
import os
import socket
import subprocess

import pytest

import sac_node
from sac_fleet.remote.pyz import build_pyz
from sac_fleet.remote.ssh import SSHTarget, StreamLocalRefused, connect_host, shell_path, translate_error
from sac_node.protocol.errors import (
    AuthFailed,
    BootstrapFailed,
    HostKeyChanged,
    HostKeyUnknown,
    HostUnreachable,
    RpcError,
)
from sac_node.protocol.messages import ready_line
from sac_node.rpc import RpcPeer

pytestmark = pytest.mark.integration


def target_for(host, **overrides):
    fields = host.inventory_fields()
    fields.pop("state_dir")
    fields.update({"name": host.name, "ssh_config": "", "connect_timeout": 5.0})
    fields.update(overrides)
    return SSHTarget(**fields)


async def test_runs_commands_on_two_hosts_at_once(sshd_hosts):
    hosts = sshd_hosts.start(2)
    conns = await asyncio.gather(*(connect_host(target_for(h), timeout=10) for h in hosts))
    try:
        results = await asyncio.gather(*(c.run("echo $SSH_CONNECTION; cat", input=b"\x00bin\xff") for c in conns))
        for host, result in zip(hosts, results):
            assert result.returncode == 0
            first, rest = result.stdout.split(b"\n", 1)
            assert first.decode().endswith("%s %d" % (host.address, host.port))
            assert rest == b"\x00bin\xff"
        failed = await conns[0].run("echo nope >&2; exit 7")
        assert (failed.returncode, failed.stderr) == (7, b"nope\n")
    finally:
        for conn in conns:
            await conn.aclose()


async def test_upload_writes_atomically_with_mode(sshd_hosts):
    (host,) = sshd_hosts.start(1)
    path = str(host.state_dir / "node" / "abc.pyz")
    async with await connect_host(target_for(host), timeout=10) as conn:
        await conn.upload(path, b"payload\x00" * 1000, mode=0o600)
        await conn.upload(path, b"second", mode=0o600)
    with open(path, "rb") as written:
        assert written.read() == b"second"
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)
    assert os.listdir(os.path.dirname(path)) == ["abc.pyz"]  # no temp files left behind


async def test_unknown_host_key_is_refused_with_the_fix(sshd_hosts, tmp_path):
    (host,) = sshd_hosts.start(1)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyUnknown) as caught:
        await connect_host(target_for(host, known_hosts=str(empty)), timeout=10)
    assert "--accept-new-host-keys" in caught.value.message
    assert host.name in caught.value.message and str(empty) in caught.value.message
    assert caught.value.data["reason"] == "host_key_unknown"
    assert empty.read_text() == ""


async def test_accept_new_host_keys_records_the_key(sshd_hosts, tmp_path):
    (host,) = sshd_hosts.start(1)
    known = tmp_path / "ssh" / "known_hosts"  # neither file nor dir exists yet
    target = target_for(host, known_hosts=str(known))
    conn = await connect_host(target, accept_new_host_keys=True, timeout=10)
    await conn.aclose()
    assert known.read_text() == host.known_hosts_line()
    conn = await connect_host(target, timeout=10)  # now known, no flag needed
    assert (await conn.run("true")).returncode == 0
    await conn.aclose()
    assert known.read_text() == host.known_hosts_line()  # not recorded twice


async def test_changed_host_key_is_refused_even_with_accept_new(sshd_hosts):
    (host,) = sshd_hosts.start(1)
    before = sshd_hosts.known_hosts.read_text()
    host.regenerate_host_key()
    host.restart()
    for accept in (False, True):
        with pytest.raises(HostKeyChanged) as caught:
            await connect_host(target_for(host), accept_new_host_keys=accept, timeout=10)
        assert "CHANGED" in caught.value.message and "ssh-keygen -R" in caught.value.message
    assert sshd_hosts.known_hosts.read_text() == before


async def test_stopped_host_is_unreachable_then_comes_back(sshd_hosts):
    up, down = sshd_hosts.start(2)
    down.stop()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(HostUnreachable) as caught:
        await connect_host(target_for(down), timeout=5)
    assert loop.time() - started < 5
    assert caught.value.data["reason"] == "refused" and down.name in caught.value.message
    async with await connect_host(target_for(up), timeout=5) as conn:
        assert (await conn.run("true")).returncode == 0
    down.start().wait_ready()
    async with await connect_host(target_for(down), timeout=5) as conn:
        assert (await conn.run("true")).returncode == 0


async def test_silent_host_times_out_within_connect_timeout(sshd_hosts):
    (host,) = sshd_hosts.start(1)
    host.stop()
    with socket.socket() as silent:  # accepts TCP, never speaks SSH
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        silent.bind((host.address, host.port))
        silent.listen(8)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(HostUnreachable) as caught:
            await connect_host(target_for(host, connect_timeout=1.0), timeout=10)
        assert loop.time() - started < 3
    assert caught.value.data["reason"] == "timed_out"


async def test_wrong_client_key_is_auth_failed(sshd_hosts, tmp_path):
    (host,) = sshd_hosts.start(1)
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    with pytest.raises(AuthFailed) as caught:
        await connect_host(target_for(host, identity_file=str(other)), timeout=10)
    assert str(other) in caught.value.message and caught.value.data["reason"] == "auth_failed"


async def test_jump_chain_goes_through_the_bastion(sshd_hosts):
    (bastion,) = sshd_hosts.start(1, log_level="DEBUG1")
    (target,) = sshd_hosts.start(1)
    chained = target_for(target, jump=(target_for(bastion),))
    async with await connect_host(chained, timeout=10) as conn:
        result = await conn.run("echo $SSH_CONNECTION")
    assert result.stdout.decode().strip().endswith("%s %d" % (target.address, target.port))
    assert "direct-tcpip" in bastion.log()
    assert "target %s port %d" % (target.address, target.port) in bastion.log()
    bastion.stop()
    with pytest.raises(HostUnreachable) as caught:
        await connect_host(chained, timeout=5)
    assert "via jump host %s" % bastion.name in caught.value.message
    assert caught.value.data["hop"] == bastion.name and caught.value.data["host"] == target.name


async def test_ssh_config_alias_supplies_hostname_port_user_and_key(sshd_hosts, tmp_path):
    (host,) = sshd_hosts.start(1)
    config = tmp_path / "ssh_config"
    config.write_text("Host myalias\n  HostName %s\n  Port %d\n  User root\n  IdentityFile %s\n"
                      % (host.address, host.port, sshd_hosts.client_key))
    alias = SSHTarget(name="myalias", known_hosts=str(sshd_hosts.known_hosts), ssh_config=str(config))
    async with await connect_host(alias, timeout=10) as conn:
        result = await conn.run("echo $SSH_CONNECTION")
    assert result.stdout.decode().strip().endswith("%s %d" % (host.address, host.port))


async def _serve_rpc(path):
    async def ping(peer, params):
        return {"pong": params.get("n")}

    async def on_client(reader, writer):
        await RpcPeer(reader, writer, {"ping": ping}, name="test-node").run()

    return await asyncio.start_unix_server(on_client, path=path)


async def _rpc_roundtrip(stream):
    peer = RpcPeer(stream.reader, stream.writer, name="head")
    runner = asyncio.ensure_future(peer.run())
    try:
        results = await asyncio.gather(*(peer.call("ping", {"n": n}, timeout=5) for n in range(20)))
        assert results == [{"pong": n} for n in range(20)]
    finally:
        await peer.close()
        runner.cancel()


async def test_stream_local_channel_carries_rpc_to_a_unix_socket(sshd_hosts):
    (host,) = sshd_hosts.start(1)
    path = str(host.state_dir / "node.sock")
    server = await _serve_rpc(path)
    try:
        async with await connect_host(target_for(host), timeout=10) as conn:
            stream = await conn.open_unix_connection(path)
            assert stream.kind == "stream-local"
            await _rpc_roundtrip(stream)
    finally:
        server.close()
    assert "refused streamlocal" not in host.log()


BRIDGE = r"""
import os, socket, sys, threading
print("Welcome to login1. Quota: fine."); print("module: python loaded")
sys.stdout.write(%r); sys.stdout.flush()
sock = socket.socket(socket.AF_UNIX); sock.connect(%r)
def up():
    while True:
        data = os.read(0, 65536)
        if not data: break
        sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while True:
    data = sock.recv(65536)
    if not data: break
    os.write(1, data)
"""


async def test_refused_stream_local_falls_back_to_exec_bridge(sshd_hosts):
    (host,) = sshd_hosts.start(1, allow_stream_local=False)
    path = str(host.state_dir / "node.sock")
    server = await _serve_rpc(path)
    try:
        async with await connect_host(target_for(host), timeout=10) as conn:
            with pytest.raises(StreamLocalRefused) as caught:
                await conn.open_unix_connection(path)
            assert "AllowStreamLocalForwarding" in caught.value.message
            script = BRIDGE % (ready_line("9.9.9", "abc123"), path)
            stream = await conn.open_exec("python3 -c %s" % shell_path(script), ready_timeout=10)
            assert stream.kind == "exec"
            assert stream.ready == {"proto": "1", "version": "9.9.9", "sha": "abc123"}
            await _rpc_roundtrip(stream)
    finally:
        server.close()
    assert "refused streamlocal port forward" in host.log()


async def test_exec_that_never_says_ready_is_bootstrap_failed_with_stderr(sshd_hosts):
    (host,) = sshd_hosts.start(1)
    async with await connect_host(target_for(host), timeout=10) as conn:
        with pytest.raises(BootstrapFailed) as caught:
            await conn.open_exec("echo banner; echo 'python3: not found' >&2; exit 127", ready_timeout=5)
    assert "python3: not found" in caught.value.message and host.name in caught.value.message


def test_dns_failure_is_named_as_such():
    target = SSHTarget(name="login1", address="login1.invalid")
    error = translate_error(socket.gaierror(-2, "Name or service not known"), target, target, "login1.invalid", 22)
    assert isinstance(error, HostUnreachable)
    assert error.data["reason"] == "dns" and "login1" in error.message and "DNS" in error.message


def test_shell_path_keeps_home_and_quotes_the_rest():
    assert shell_path("~/.sac/node") == '"$HOME"/.sac/node'
    assert shell_path("/tmp/a b") == "'/tmp/a b'"


async def _facts(stream):
    peer = RpcPeer(stream.reader, stream.writer, name="head")
    runner = asyncio.ensure_future(peer.run())
    try:
        return await peer.call("host.facts", {}, timeout=10)
    finally:
        await peer.close()
        runner.cancel()


async def test_real_node_pyz_answers_over_exec_and_stream_local(sshd_hosts):
    """The built node.pyz, uploaded and run on a host, serves RPC through both channel kinds."""
    (host,) = sshd_hosts.start(1)
    data, sha = build_pyz()
    pyz = "%s/node/%s.pyz" % (host.state_dir, sha)
    async with await connect_host(target_for(host), timeout=10) as conn:
        await conn.upload(pyz, data)
        stream = await conn.open_exec("SAC_NODE_SHA=%s python3 -I %s attach --state-dir %s"
                                      % (sha, pyz, host.state_dir), ready_timeout=20)
        assert stream.ready["sha"] == sha and stream.ready["version"] == sac_node.__version__
        via_exec = await _facts(stream)
        via_socket = await _facts(await conn.open_unix_connection(str(host.state_dir / "node.sock")))
    assert via_exec and via_exec.keys() == via_socket.keys()
    assert host.session_pids(), "the detached daemon should still run after the SSH connection closed"
    host.close()
    assert host.session_pids() == []


async def test_a_host_going_down_closes_its_stream_instead_of_hanging(sshd_hosts):
    (host,) = sshd_hosts.start(1)
    path = str(host.state_dir / "node.sock")
    server = await _serve_rpc(path)
    try:
        conn = await connect_host(target_for(host), timeout=10)
        stream = await conn.open_unix_connection(path)
        peer = RpcPeer(stream.reader, stream.writer, name="head")
        runner = asyncio.ensure_future(peer.run())
        assert await peer.call("ping", {"n": 1}, timeout=5) == {"pong": 1}
        host.stop()
        await asyncio.wait_for(peer.wait_closed(), 5)
        with pytest.raises(RpcError):
            await peer.call("ping", {"n": 2}, timeout=5)
        await runner
        conn.close()
    finally:
        server.close()
