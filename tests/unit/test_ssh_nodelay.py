"""The no-op exec that makes each server of a chain turn Nagle off: every hop gets one, none can fail a command."""

import asyncio
import logging
from types import SimpleNamespace

import asyncssh

from sac_fleet.remote.ssh import SSHConnection, SSHTarget


class FakeHop:
    """An asyncssh connection as disable_nagle sees it: `run` answers, refuses or never returns."""

    def __init__(self, port, behaviour="ok"):
        self.port, self.behaviour, self.commands = port, behaviour, []

    async def run(self, command, check=True):
        self.commands.append((command, check))
        if self.behaviour == "refuse":
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "exec is off here")
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        return SimpleNamespace(exit_status=1 if self.behaviour == "fails" else 0)

    def get_extra_info(self, name, default=None):
        return ("127.0.0.%d" % self.port, 22) if name == "peername" else default

    def close(self):
        pass


def connection(*hops):
    return SSHConnection(SSHTarget(name="h1", address="127.0.0.9"), list(hops))


async def test_every_hop_runs_true_and_a_hop_that_refuses_or_hangs_fails_nothing(caplog):
    hops = [FakeHop(2), FakeHop(3, "refuse"), FakeHop(4, "hang"), FakeHop(5, "fails")]
    with caplog.at_level(logging.INFO, logger="sac_fleet.remote.ssh"):
        await connection(*hops).disable_nagle(timeout=0.2)
    assert [h.commands for h in hops] == [[("true", False)]] * 4
    logged = caplog.text
    assert "127.0.0.2" not in logged  # the hop that answered is not mentioned
    for port, why in ((3, "exec is off here"), (4, "TimeoutError"), (5, "exited 1")):
        assert "host h1: no-op exec on 127.0.0.%d:22" % port in logged and why in logged


async def test_in_the_background_it_is_started_once_and_close_stops_it():
    hop = FakeHop(2, "hang")
    conn = connection(hop)
    conn.disable_nagle_soon()
    conn.disable_nagle_soon()
    await asyncio.sleep(0.05)
    assert hop.commands == [("true", False)]
    task = conn._nodelay
    conn.close()
    await asyncio.wait([task], timeout=2)
    assert task.cancelled()
