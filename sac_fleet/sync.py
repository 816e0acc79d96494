"""SyncFleet: the Python API for scripts and notebooks, without async/await.

    from sac_fleet.sync import SyncFleet

    with SyncFleet() as fleet:
        fleet.start("agents/reviewer")
        print(fleet.send("reviewer", "Summarise README.md")["reply"])
        for record in fleet.follow("reviewer"):
            ...

Each call runs the matching `Fleet` coroutine on a private event loop in a
background thread, so it also works where a loop already runs (Jupyter).
"""

import asyncio
import functools
import threading

from .api import Fleet

_END = object()  # what _next_record returns when a follow stream ends


def _blocking(name):
    """A SyncFleet method that runs Fleet.<name> to completion and returns its result."""
    method = getattr(Fleet, name)

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        return self._run(getattr(self.fleet, name)(*args, **kwargs))

    call.__module__ = __name__
    return call


async def _next_record(stream):
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return _END


class SyncFleet:
    """`Fleet`'s methods as plain blocking calls; `follow` is a plain iterator.

    Arguments are Fleet's (`inventory=`, `state_dir=`, `agents_dir=`,
    `accept_new_host_keys=`), or `fleet=` an existing Fleet to drive. Callbacks such
    as `send(on_record=...)` run in the background thread; they must not call this
    SyncFleet. Close it (or use `with`) to close connections and stop the thread.
    """

    def __init__(self, *args, fleet=None, **kwargs):
        self.fleet = fleet if fleet is not None else Fleet(*args, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sac-fleet", daemon=True)
        self._thread.start()
        self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        where = self.fleet.inventory_path or "this machine"
        return "<SyncFleet %s%s>" % (where, " closed" if self._closed else "")

    def close(self):
        """Close the Fleet's connections, then stop and join the background thread. Idempotent."""
        if self._closed:
            return
        try:
            self._run(self.fleet.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def _run(self, coro):
        """Run `coro` on the private loop and wait for it; Ctrl-C cancels it there."""
        if self._closed:
            coro.close()
            raise RuntimeError("this SyncFleet is closed; make a new one")
        if threading.get_ident() == self._thread.ident:
            coro.close()
            raise RuntimeError("a SyncFleet cannot be called from its own callbacks (on_record); "
                               "collect the records and act after the call returns")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # KeyboardInterrupt while waiting: do not leave the coroutine running
            raise

    # -- agents (same arguments and results as Fleet's) --------------------------------
    start = _blocking("start")
    start_instances = _blocking("start_instances")
    stop = _blocking("stop")
    restart = _blocking("restart")
    delete = _blocking("delete")
    list = _blocking("list")
    status = _blocking("status")
    health = _blocking("health")

    # -- turns --------------------------------------------------------------------------
    send = _blocking("send")
    submit = _blocking("submit")
    wait = _blocking("wait")
    host_of = _blocking("host_of")
    get_turn = _blocking("get_turn")
    cancel = _blocking("cancel")
    tail = _blocking("tail")

    def follow(self, name, from_seq=None):
        """Live transcript records of an agent, after `from_seq`, as a plain iterator.

        It blocks between records and never ends on its own: `break` out of the loop
        (which unsubscribes) when you have what you need.
        """
        stream = self.fleet.follow(name, from_seq=from_seq)
        yield from self._records(stream, stream.aclose)

    def subscribe(self, name, turn_id=None, from_seq=None):
        """The records of an agent's transcript (of one turn, or after `from_seq`), as a plain iterator;
        `break` out of the loop to unsubscribe."""
        sub = self._run(self.fleet.subscribe(name, turn_id=turn_id, from_seq=from_seq))
        yield from self._records(sub, sub.close)

    def _records(self, stream, close):
        try:
            while True:
                record = self._run(_next_record(stream))
                if record is _END:
                    return
                yield record
        finally:
            if not self._closed:
                self._run(close())

    # -- the fleet (inventory) ------------------------------------------------------------
    connect = _blocking("connect")
    up = _blocking("up")
    plan = _blocking("plan")
    secrets = _blocking("secrets")
    fleet_status = _blocking("fleet_status")
    down = _blocking("down")
    restart_nodes = _blocking("restart_nodes")

    def load(self):
        """Load and validate the inventory (and every spec it names)."""
        return self.fleet.load()


__all__ = ["SyncFleet"]
