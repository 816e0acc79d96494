"""Malformed, truncated and oversized frames close that connection only; the daemon keeps serving."""

import asyncio
import os
import signal
import subprocess
import sys

import msgpack
import pytest

from sac_node.protocol import framing
from sac_node.rpc import open_unix_peer

pytestmark = pytest.mark.integration


@pytest.fixture
def daemon(tmp_path):
    state = tmp_path / "state"
    subprocess.run([sys.executable, "-m", "sac_node", "daemon", "--state-dir", str(state), "--detach"], check=True)
    yield state
    pid = int(__import__("json").loads((state / "daemon.json").read_text())["pid"])
    os.kill(pid, signal.SIGTERM)


async def send_raw(path, data):
    """Send bytes, then EOF; return what came back before the daemon closed the connection."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
    except (ConnectionError, OSError):
        pass  # the daemon may hang up before it has read everything
    try:
        got = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        got = b""  # hung up with our bytes unread: also no answer
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionResetError:
        pass
    return got


async def facts(path):
    peer = await open_unix_peer(str(path))
    try:
        return await peer.call("host.facts", {}, timeout=5)
    finally:
        await peer.close()


@pytest.mark.parametrize("garbage", [
    b"\xc1\xc1\xc1\xc1",                                   # never valid msgpack
    msgpack.packb({"not": "an array"}),                     # valid msgpack, not rpc
    msgpack.packb([0, "id-not-int", "host.facts", {}]),     # wrong types
    framing.encode_request(1, "host.facts", {})[:-3] + b"", # truncated, then EOF
    b"\xdb" + (1 << 30).to_bytes(4, "big") + b"x" * (17 << 20),  # a 1 GiB string, past 16 MiB
], ids=["invalid", "not-rpc", "bad-types", "truncated", "oversized"])
async def test_bad_frames_close_only_that_connection(daemon, garbage):
    sock = daemon / "node.sock"
    bystander = await open_unix_peer(str(sock))
    try:
        reply = await send_raw(sock, garbage)
        assert reply == b""  # closed without an answer
        assert (await bystander.call("host.facts", {}, timeout=5))["proto"] == 1
        assert (await facts(sock))["pid"] > 0
    finally:
        await bystander.close()


async def test_unknown_method_is_an_error_not_a_crash(daemon):
    peer = await open_unix_peer(str(daemon / "node.sock"))
    try:
        with pytest.raises(Exception, match="unknown method"):
            await peer.call("host.explode", {}, timeout=5)
        with pytest.raises(Exception, match="no agent named"):
            await peer.call("agents.status", {"name": "ghost"}, timeout=5)
        assert (await peer.call("host.facts", {}, timeout=5))["proto"] == 1
    finally:
        await peer.close()


async def test_socket_is_private(daemon):
    assert oct((daemon / "node.sock").stat().st_mode & 0o777) == oct(0o600)
    assert oct(daemon.stat().st_mode & 0o777) == oct(0o700)
