"""The corked SSH transport: the packets of one loop pass leave in one write, in order, none lost on close."""

import asyncio

from sac_fleet.remote.ssh_socket import _CorkedTransport, tune


class RecordingTransport(asyncio.Transport):
    def __init__(self):
        super().__init__()
        self.writes, self.closing, self.aborted = [], False, False

    def write(self, data):
        assert not self.closing, "write after close"
        self.writes.append(data)

    def is_closing(self):
        return self.closing

    def close(self):
        self.closing = True

    def abort(self):
        self.closing = self.aborted = True

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.2", 22)}.get(name, default)


async def test_writes_of_one_pass_leave_in_one_write_in_order():
    real = RecordingTransport()
    corked = _CorkedTransport(real)
    for packet in (b"ignore", b"data-1", b"data-2"):
        corked.write(packet)
    assert real.writes == []  # nothing yet: the pass is not over
    await asyncio.sleep(0)
    assert real.writes == [b"ignoredata-1data-2"]
    corked.write(b"next")
    await asyncio.sleep(0)
    assert real.writes == [b"ignoredata-1data-2", b"next"]


async def test_close_sends_what_is_pending_first_and_abort_drops_it():
    real = RecordingTransport()
    corked = _CorkedTransport(real)
    corked.write(b"disconnect")
    corked.close()
    assert real.writes == [b"disconnect"] and real.closing
    await asyncio.sleep(0)  # the scheduled flush finds nothing left and writes nothing after close
    assert real.writes == [b"disconnect"]

    real = RecordingTransport()
    corked = _CorkedTransport(real)
    corked.write(b"never")
    corked.abort()
    await asyncio.sleep(0)
    assert real.writes == [] and real.aborted


async def test_everything_else_reaches_the_real_transport():
    real = RecordingTransport()
    corked = _CorkedTransport(real)
    assert corked.get_extra_info("peername") == ("127.0.0.2", 22)
    real.closing = True
    assert corked.is_closing()


async def test_tune_corks_a_connection_transport_and_leaves_others_alone():
    class Conn:
        pass

    conn = Conn()
    conn._transport = RecordingTransport()
    tune(conn)
    assert isinstance(conn._transport, _CorkedTransport)
    other = Conn()
    other._transport = object()  # e.g. a tunnel through a jump host: not an asyncio transport
    tune(other)
    assert type(other._transport) is object
