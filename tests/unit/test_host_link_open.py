"""Opening a link asks the node for host.facts once: a warm attach's answer is reused, not asked again."""

import asyncio
from types import SimpleNamespace

from sac_fleet.remote import host_link, ssh_link


class Client:
    """A NodeClient as _open uses it; counts host.facts calls."""

    channel = "exec"

    def __init__(self):
        self.asked = 0
        self.peer = SimpleNamespace(wait_closed=lambda: asyncio.sleep(3600))

    async def facts(self, timeout=None):
        self.asked += 1
        return {"sha": "s", "state_dir": None, "asked": self.asked}


HOST = SimpleNamespace(name="h1", transport="ssh", connect_timeout=5)


async def open_with(monkeypatch, answered):
    client = Client()

    async def open_ssh(inventory, host, accept_new, mode):
        return None, client, [], [], answered

    monkeypatch.setattr(ssh_link, "open_ssh", open_ssh)
    link = await host_link._open(None, HOST, False, 0, "provision")
    return link, client


async def test_a_warm_attach_answer_is_used_and_facts_are_not_asked_again(monkeypatch):
    link, client = await open_with(monkeypatch, ({"sha": "s", "state_dir": None, "from": "attach"}, 1.5))
    assert client.asked == 0
    assert link.facts["from"] == "attach" and link.latency_ms == 1.5


async def test_after_a_bootstrap_facts_are_asked_once(monkeypatch):
    link, client = await open_with(monkeypatch, None)
    assert client.asked == 1 and link.facts["asked"] == 1 and link.latency_ms is not None
