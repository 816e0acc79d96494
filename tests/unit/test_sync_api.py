"""SyncFleet: Fleet's calls as blocking ones, on a private loop in a background thread."""

import asyncio
import inspect
import threading

import pytest

from sac_fleet.api import Fleet
from sac_fleet.sync import SyncFleet
from sac_node.protocol.errors import AgentNotFound


class FakeFleet:
    """Just enough of Fleet, recording which thread and loop ran each call."""

    def __init__(self):
        self.threads = set()
        self.closed = False
        self.stream_closed = False
        self.inventory_path = None

    async def status(self, name):
        self.threads.add(threading.get_ident())
        await asyncio.sleep(0)
        if name != "a1":
            raise AgentNotFound("no agent named %s on this host; see `sac agents list`" % name)
        return {"name": name, "state": "idle"}

    async def send(self, name, text, wait=True, timeout=600.0, on_record=None, key=None):
        for seq in (1, 2):
            if on_record is not None:
                on_record({"seq": seq})
        return {"id": name + ".0001", "status": "completed", "reply": "echo: " + text}

    async def follow(self, name, from_seq=None):
        try:
            seq = from_seq or 0
            while True:
                seq += 1
                await asyncio.sleep(0)
                yield {"seq": seq, "agent": name}
        finally:
            self.stream_closed = True

    async def close(self):
        self.closed = True


@pytest.fixture
def fake():
    return FakeFleet()


@pytest.fixture
def fleet(fake):
    with SyncFleet(fleet=fake) as sync:
        yield sync


def test_calls_return_results_from_a_background_loop(fleet, fake):
    assert fleet.status("a1") == {"name": "a1", "state": "idle"}
    assert fake.threads and threading.get_ident() not in fake.threads


def test_sac_errors_arrive_with_their_class_and_message(fleet):
    with pytest.raises(AgentNotFound, match="no agent named ghost"):
        fleet.status("ghost")


async def test_works_where_an_event_loop_already_runs(fleet):
    # Jupyter runs its own loop in the main thread; asyncio.run() would refuse here.
    assert asyncio.get_running_loop()
    assert fleet.send("a1", "hi")["reply"] == "echo: hi"


def test_on_record_runs_for_each_record(fleet):
    seen = []
    turn = fleet.send("a1", "hi", on_record=seen.append)
    assert turn["status"] == "completed" and [r["seq"] for r in seen] == [1, 2]


def test_calling_back_from_on_record_is_refused_not_deadlocked(fleet):
    with pytest.raises(RuntimeError, match="own callbacks"):
        fleet.send("a1", "hi", on_record=lambda record: fleet.status("a1"))


def test_follow_is_a_plain_iterator_and_break_unsubscribes(fleet, fake):
    seqs = []
    for record in fleet.follow("a1", from_seq=10):
        seqs.append(record["seq"])
        if len(seqs) == 3:
            break
    assert seqs == [11, 12, 13]
    assert fake.stream_closed


def test_close_closes_the_fleet_and_stops_the_thread(fake):
    sync = SyncFleet(fleet=fake)
    thread = sync._thread
    sync.close()
    sync.close()  # idempotent
    assert fake.closed and not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        sync.status("a1")


def test_every_call_of_fleet_has_a_blocking_twin():
    # node() hands out a connection bound to the private loop: not for callers of the facade.
    public = {name for name, fn in inspect.getmembers(Fleet, callable) if not name.startswith("_")} - {"node"}
    missing = sorted(name for name in public if not hasattr(SyncFleet, name))
    assert missing == []
    assert not inspect.iscoroutinefunction(SyncFleet.send)
    assert inspect.isgeneratorfunction(SyncFleet.follow)
    assert str(inspect.signature(SyncFleet.send)) == str(inspect.signature(Fleet.send))
