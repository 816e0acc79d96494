"""How the head's SSH connections use their TCP socket: writes corked per loop pass, ACKs sent at once.

Both reach into asyncssh's private `_transport` and leave a connection as it is
where a version of asyncssh keeps it elsewhere (or on a hop tunneled through a
jump host, whose transport is an SSH channel).
"""

import asyncio
import socket


class _CorkedTransport:
    """An asyncio transport whose writes of one pass of the event loop leave in one system call.

    asyncssh writes every packet (and the empty IGNORE packet it puts before each
    data packet) to the socket on its own: with many turns in flight that is a
    system call per packet here and a read per packet on the server. Everything
    but `write` goes to the real transport; `close` sends what is pending first.
    """

    def __init__(self, transport):
        self._transport = transport
        self._pending = []
        self._loop = asyncio.get_event_loop()

    def write(self, data):
        self._pending.append(data)
        if len(self._pending) == 1:
            self._loop.call_soon(self._flush)

    def _flush(self):
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self):
        self._flush()
        self._transport.close()

    def abort(self):
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name):
        return getattr(self._transport, name)


def ack_at_once(conn, transport):
    """Acknowledge what the server sends as soon as it is read (TCP_QUICKACK), not up to ~40 ms later.

    sshd turns Nagle's algorithm off only for a session that execs something; a connection
    that carries only stream-local channels (a warm attach, as the gateway's) keeps it on.
    Then a reply written while the one before is unacknowledged waits for that ACK, which
    Linux delays when the head has nothing to send back: two turns at once to one host
    took ~47 ms instead of ~5. QUICKACK does not stay set, so it is set again at each read;
    setting it also sends an ACK that is due. Left as it is where the option or a TCP
    socket is missing (not Linux).
    """
    option = getattr(socket, "TCP_QUICKACK", None)
    sock = transport.get_extra_info("socket")
    if option is None or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    received = conn.data_received

    def data_received(data):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)
        except OSError:
            pass
        received(data)

    conn.data_received = data_received


def tune(conn):
    """Quick ACKs and corked writes on an asyncssh connection's own socket. Left as it is where a
    version of asyncssh keeps its transport elsewhere, and on a hop tunneled through a jump host
    (its transport is an SSH channel: the first hop's socket carries its packets)."""
    transport = getattr(conn, "_transport", None)
    if isinstance(transport, asyncio.Transport):
        ack_at_once(conn, transport)
        conn._transport = _CorkedTransport(transport)
