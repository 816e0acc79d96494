"""The head acknowledges what an SSH server sends at once: TCP_QUICKACK is set again at every read.

Why (sac_fleet/remote/ssh_socket.py, ack_at_once): sshd keeps Nagle's algorithm on for a connection
without an exec session, so its second reply of two waits for the head's ACK of the first,
which Linux would delay by ~40 ms (bench/gateway.py, "2 turns at once to one host").
"""

import asyncio
import socket

import pytest

from sac_fleet.remote.ssh import SSHConnection, SSHTarget
from sac_fleet.remote.ssh_socket import ack_at_once, tune

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux only")


class Protocol(asyncio.Protocol):
    """Stands in for asyncssh's connection: the protocol of a real loopback TCP transport."""

    def __init__(self):
        self.received, self.quickack_at_read = [], []
        self._transport = None

    def connection_made(self, transport):
        self._transport = transport

    def data_received(self, data):
        sock = self._transport.get_extra_info("socket")
        self.quickack_at_read.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK))
        self.received.append(data)

    def get_extra_info(self, name, default=None):
        return self._transport.get_extra_info(name, default)

    def close(self):
        self._transport.close()


async def loopback_pair():
    """(server writer, client Protocol) over real TCP on 127.0.0.1."""
    accepted = asyncio.get_event_loop().create_future()
    server = await asyncio.start_server(lambda r, w: accepted.set_result(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, client = await asyncio.get_event_loop().create_connection(Protocol, "127.0.0.1", port)
    return server, await accepted, client


async def wait_for(condition):
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_every_read_finds_quickack_set_and_the_bytes_pass_unchanged():
    server, writer, client = await loopback_pair()
    try:
        sock = client._transport.get_extra_info("socket")
        ack_at_once(client, client._transport)
        for i in range(5):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)  # as the stack may clear it
            writer.write(b"reply %d;" % i)
            await writer.drain()
            await wait_for(lambda: len(client.received) == i + 1)
        assert b"".join(client.received) == b"".join(b"reply %d;" % i for i in range(5))
        assert client.quickack_at_read == [1] * 5
    finally:
        writer.close()
        client.close()
        server.close()


async def test_a_connection_without_a_tcp_socket_is_left_as_it_is():
    class Tunneled:  # a hop behind a jump host: its transport is an SSH channel
        _transport = object()

        def data_received(self, data):
            pass

    conn = Tunneled()
    original = conn.data_received
    tune(conn)
    assert conn.data_received == original


async def test_every_connection_of_a_chain_gets_it():
    server, writer, client = await loopback_pair()
    try:
        SSHConnection(SSHTarget(name="h1", address="127.0.0.1"), [client])
        client._transport._transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
        writer.write(b"x")
        await wait_for(lambda: client.received)
        assert client.quickack_at_read == [1]
    finally:
        writer.close()
        client.close()
        server.close()
