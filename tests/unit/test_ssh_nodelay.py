"""The no-op exec that makes a host behind a jump host turn Nagle off: the target only, never a failure."""

import asyncio
import logging
from types import SimpleNamespace

import asyncssh
import pytest

from sac_fleet.remote.ssh import SSHConnection, SSHTarget


class FakeHop:
    """An asyncssh connection as disable_nagle sees it: `run` answers, refuses, hangs or fails."""

    def __init__(self, behaviour="ok"):
        self.behaviour, self.commands = behaviour, []

    async def run(self, command, check=True):
        self.commands.append((command, check))
        if self.behaviour == "refuse":
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "exec is off here")
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        return SimpleNamespace(exit_status=1 if self.behaviour == "fails" else 0)

    def close(self):
        pass


def connection(*hops):
    return SSHConnection(SSHTarget(name="h1", address="127.0.0.9"), list(hops))


async def test_behind_a_jump_host_only_the_target_runs_true():
    bastion, target = FakeHop(), FakeHop()
    await connection(bastion, target).disable_nagle()
    assert (bastion.commands, target.commands) == ([], [("true", False)])


async def test_a_direct_host_runs_nothing():
    host = FakeHop()
    await connection(host).disable_nagle()
    assert host.commands == []


@pytest.mark.parametrize("behaviour, why", [("refuse", "exec is off here"), ("hang", "TimeoutError"),
                                            ("fails", "exited 1")])
async def test_a_target_that_refuses_hangs_or_fails_fails_nothing(caplog, behaviour, why):
    with caplog.at_level(logging.INFO, logger="sac_fleet.remote.ssh"):
        await connection(FakeHop(), FakeHop(behaviour)).disable_nagle(timeout=0.1)
    assert "host h1: the no-op exec" in caplog.text and why in caplog.text
