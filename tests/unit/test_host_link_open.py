"""Opening a link asks the node for host.facts once: a warm attach's answer is reused, not asked again."""

import asyncio
from types import SimpleNamespace

from sac_fleet.remote import host_link, ssh_path
from sac_fleet.remote.host_settings import HostSettings


class Client:
    """A NodeClient as _open uses it; counts host.facts calls."""

    channel = "exec"

    def __init__(self):
        self.asked = 0
        self.peer = SimpleNamespace(wait_closed=lambda: asyncio.sleep(3600))

    async def facts(self, timeout=None):
        self.asked += 1
        return {"sha": "s", "state_dir": None, "asked": self.asked}

    async def timed_facts(self, timeout=None):
        return await self.facts(timeout), 0.5


SETTINGS = HostSettings(name="h1", transport="ssh", python="python3", state_dir="~/.sac", connect_timeout=5)


async def open_with(monkeypatch, answered):
    client = Client()

    async def open_path(path, mode):
        path.answered = answered
        return client

    monkeypatch.setattr(ssh_path.SSHPath, "open", open_path)
    link = await host_link._open(SETTINGS, False, 0, "provision")
    return link, client


async def test_a_warm_attach_answer_is_used_and_facts_are_not_asked_again(monkeypatch):
    link, client = await open_with(monkeypatch, ({"sha": "s", "state_dir": None, "from": "attach"}, 1.5))
    assert client.asked == 0
    assert link.facts["from"] == "attach" and link.latency_ms == 1.5


async def test_after_a_bootstrap_facts_are_asked_once(monkeypatch):
    link, client = await open_with(monkeypatch, None)
    assert client.asked == 1 and link.facts["asked"] == 1 and link.latency_ms is not None
