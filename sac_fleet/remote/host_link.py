"""A live link to one host's node: this machine's over its unix socket, another's over SSH (ssh_path).

`open_link` never raises for a host that is down or refuses us: it returns a
HostLink whose `state` says why (`unreachable`, `timed_out`, `auth_failed`,
`host_key_unknown`, `host_key_changed`, `python_missing`, `bootstrap_failed`),
so one bad host slows nothing else and is never shown as "0 agents".

It opens in one of three modes. "attach" (the default, for every read: status,
plan, `up --dry-run`, turns, tails, the gateway) provisions nothing: a host that
answers but runs no node daemon is an `ok` link without a client, whose `would`
says what provisioning would do. (A daemon that died, rather than was stopped,
is started again: its agents still run, and nothing else would bring it back.)
"provision" (`sac fleet up`) uploads node.pyz and starts or upgrades the daemon
as needed; "restart" (`sac node restart`) also replaces a running daemon,
leaving its agents running.

The path of one host, top to bottom: `open_link` -> `HostSettings.of` (host_settings.py)
-> this machine's node (local.py) or `SSHPath.open` (ssh_path.py: connect, probe,
upload, start, attach) -> host.facts -> a HostLink.
"""

import asyncio
import time

from sac_node.protocol.errors import (AuthFailed, BootstrapFailed, HostKeyChanged, HostKeyUnknown, HostUnreachable,
                                      PythonMissing, SacError)

from .host_settings import HostSettings
from .local import attach_local, connect_local

MODES = ("attach", "provision", "restart")

STATES = {
    HostKeyUnknown: "host_key_unknown", HostKeyChanged: "host_key_changed", AuthFailed: "auth_failed",
    PythonMissing: "python_missing", BootstrapFailed: "bootstrap_failed",
}


def state_of(exc):
    """The host state word for an error."""
    if isinstance(exc, HostUnreachable) and (exc.data or {}).get("reason") == "timed_out":
        return "timed_out"
    for cls, word in STATES.items():
        if isinstance(exc, cls):
            return word
    return "unreachable"


class HostLink:
    """One host as the head sees it now: state, reason, latency, facts and a NodeClient when ok.

    `actions` is what opening the link did on the host; `would` what provisioning would still
    do there (an attach-only link). A link that is `ok` without a client reached a host that
    runs no node daemon (`node_running` is False).
    """

    def __init__(self, name, state="ok", reason="", client=None, conn=None, facts=None, latency_ms=None,
                 actions=(), channel=None, would=()):
        self.name, self.state, self.reason = name, state, reason
        self.client, self.conn, self.facts = client, conn, facts or {}
        self.latency_ms, self.actions, self.channel = latency_ms, list(actions), channel
        self.would = list(would)
        self.since = None if state == "ok" else time.time()
        self._closing = False
        if client is not None:
            # The channel closes when SSH keepalives go unanswered (3 x keepalive_s) or the host drops us.
            asyncio.ensure_future(client.peer.wait_closed()).add_done_callback(self._lost)

    def _lost(self, _):
        if not self._closing and self.state == "ok":
            reason = self.client.peer.close_reason or "closed"
            self.state, self.since = "unreachable", time.time()
            self.reason = "connection lost (%s)" % reason

    @property
    def ok(self):
        return self.state == "ok" and self.client is not None and not self.client.peer.closed

    @property
    def node_running(self):
        """False for a host that answered but runs no node daemon (an attach-only link)."""
        return self.state != "ok" or self.client is not None

    @property
    def provisioned(self):
        """True when this head's node runs there, as `up` needs it: nothing left to upload or start."""
        return self.ok and not self.would

    def down(self, exc):
        """Mark the link lost (e.g. the connection dropped mid-call)."""
        self.mark(state_of(exc), exc.message if isinstance(exc, SacError) else str(exc))

    def mark(self, state, reason):
        """Set a non-ok state; `since` keeps the moment the host stopped answering."""
        if self.state == "ok" or self.since is None:
            self.since = time.time()
        self.state, self.reason = state, reason

    async def close(self):
        self._closing = True
        if self.client is not None:
            await self.client.close()
        if self.conn is not None:
            self.conn.close()


async def open_link(inventory, host, accept_new_host_keys=False, timeout=None, mode="attach", report=None):
    """Connect and attach to one inventory host, provisioning its node first as `mode` says (see the
    module docstring), within `timeout` and never beyond its connect_timeout + BOOTSTRAP_S, except
    that an engine upload that moves (calls `report(words)`) is given the time it needs."""
    assert mode in MODES, mode
    start = time.monotonic()
    settings = HostSettings.of(inventory, host)
    timeout = min(timeout, settings.open_timeout) if timeout else settings.open_timeout
    moved = Moved(report)
    task = asyncio.ensure_future(_open(settings, accept_new_host_keys, start, mode, moved))
    try:
        while not (await asyncio.wait({task}, timeout=timeout))[0]:
            if not moved.since_last_look():
                task.cancel()
                return HostLink(host.name, "timed_out", "no answer within %ss (connect and bootstrap)" % timeout)
        return task.result()
    except SacError as exc:
        return HostLink(host.name, state_of(exc), exc.message)
    finally:
        task.cancel()


class Moved:
    """Passes an upload's progress on, and tells whether it moved since it was last asked."""

    def __init__(self, report):
        self.report, self.count, self.seen = report, 0, 0

    def __call__(self, words):
        self.count += 1
        if self.report:
            self.report(words)

    def since_last_look(self):
        moved, self.seen = self.count != self.seen, self.count
        return moved


def carry_since(old, new):
    """A host that stays down keeps the time it went down."""
    if old is not None and not new.ok and old.since is not None:
        new.since = old.since
    return new


async def _open(settings, accept_new, start, mode, report=None):
    """The HostLink of a host that answered: its client (when a daemon runs), facts and what was done."""
    if settings.transport == "local":
        client, done, would = await _open_local(settings.state_dir, mode)
        conn, channel, answered = None, "unix", None if client is not None else ({}, None)
    else:
        # Imported here: asyncssh takes ~0.4 s to load, and an inventory of local hosts needs none of it.
        from .ssh_path import SSHPath

        path = SSHPath(settings, accept_new, report)
        client = await path.open(mode)
        conn, done, would, answered = path.conn, path.done, path.would, path.answered
        channel = client.channel if client is not None else None
    facts, latency = answered if answered is not None else await client.timed_facts(settings.connect_timeout)
    if channel == "stream-local" and facts.get("state_dir"):
        client.direct_to_shims(conn.open_unix_connection, facts["state_dir"])
    link = HostLink(settings.name, client=client, conn=conn, facts=facts,
                    latency_ms=round(latency, 1) if latency is not None else None,
                    actions=done, channel=channel, would=would)
    link.connect_ms = round((time.monotonic() - start) * 1000)
    return link


async def _open_local(state_dir, mode):
    """(client or None, done, would) of this machine's node."""
    if mode == "attach":
        return await attach_local(state_dir)
    return await connect_local(state_dir, restart=mode == "restart"), [], []
