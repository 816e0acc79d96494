"""A live link to one host's node: connect (SSH or local), bootstrap, attach.

`open_link` never raises for a host that is down or refuses us: it returns a
HostLink whose `state` says why (`unreachable`, `timed_out`, `auth_failed`,
`host_key_unknown`, `host_key_changed`, `python_missing`, `bootstrap_failed`),
so one bad host slows nothing else and is never shown as "0 agents".
"""

import asyncio
import json
import os
import time

from sac_node.protocol.errors import (AuthFailed, BootstrapFailed, HostKeyChanged, HostKeyUnknown, HostUnreachable,
                                      PythonMissing, SacError)

from sac_node.state_dir import default_state_dir, ensure_private_dir, write_atomic

from .bootstrap import attach, bootstrap
from .local import connect_local
from .node_client import NodeClient
from .pyz import build_pyz
from .ssh import DEFAULT_KNOWN_HOSTS, SSHTarget, StreamLocalRefused, connect_host

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
    """One host as the head sees it now: state, reason, latency, facts and a NodeClient when ok."""

    def __init__(self, name, state="ok", reason="", client=None, conn=None, facts=None, latency_ms=None,
                 actions=(), channel=None):
        self.name, self.state, self.reason = name, state, reason
        self.client, self.conn, self.facts = client, conn, facts or {}
        self.latency_ms, self.actions, self.channel = latency_ms, list(actions), channel
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


def ssh_target(inventory, host):
    """The SSHTarget of an inventory host, with its jump chain."""
    hops = []
    for hop in inventory.jump_chain(host.name):
        via = inventory.hosts.get(hop.host) if hop.host else None
        hops.append(_target(via) if via else SSHTarget(name=str(hop), address=hop.address, port=hop.port,
                                                        user=hop.user, connect_timeout=host.connect_timeout))
    return _target(host, tuple(hops))


def _target(host, jump=()):
    return SSHTarget(
        name=host.name, address=host.address, port=host.port, user=host.user,
        identity_file=host.identity_file, known_hosts=host.known_hosts or DEFAULT_KNOWN_HOSTS,
        connect_timeout=host.connect_timeout, keepalive_s=host.keepalive_s, jump=jump)


def _hints_path():
    return os.path.join(default_state_dir(), "hosts.json")


def _state_dir_hint(host):
    """The absolute state dir of a host: its own when the inventory gives one, else what a probe found."""
    if os.path.isabs(host.state_dir):
        return host.state_dir
    try:
        with open(_hints_path()) as fh:
            return json.load(fh).get("%s|%s" % (host.name, host.state_dir))
    except (OSError, ValueError, AttributeError):
        return None


def remember_state_dir(host, absolute):
    """Keep the probe's answer for `~/...` state dirs: a path hint only, checked by the node's sha."""
    if os.path.isabs(host.state_dir):
        return
    try:
        with open(_hints_path()) as fh:
            hints = json.load(fh)
    except (OSError, ValueError):
        hints = {}
    hints["%s|%s" % (host.name, host.state_dir)] = absolute
    try:
        ensure_private_dir(default_state_dir())
        write_atomic(_hints_path(), json.dumps(hints, indent=1, sort_keys=True))
    except OSError:
        pass


async def _attach_warm(conn, host):
    """Straight to a running daemon of this head's sha over stream-local: no exec, no probe.

    None when that is not possible (no hint, forwarding refused, no daemon, another sha);
    the caller then bootstraps as usual, which also upgrades an old node.
    """
    hint = _state_dir_hint(host)
    if not hint:
        return None
    try:
        stream = await conn.open_unix_connection(hint.rstrip("/") + "/node.sock")
    except StreamLocalRefused:
        return None
    client = NodeClient(stream.reader, stream.writer, host=conn.name, channel=stream.kind)
    try:
        facts = await client.facts(timeout=host.connect_timeout)
    except SacError:
        facts = {}
    if facts.get("sha") != build_pyz()[1]:
        await client.close()
        return None
    return client


def _node_settings(host):
    return {"python": host.python, "env_preamble": host.env_preamble, "state_dir": host.state_dir,
            "connect_timeout": host.connect_timeout}


async def open_link(inventory, host, accept_new_host_keys=False, timeout=None):
    """Connect, bootstrap and attach to one host within `timeout` (default: its connect_timeout + 20 s)."""
    start = time.monotonic()
    timeout = timeout or host.connect_timeout + 20
    try:
        return await asyncio.wait_for(_open(inventory, host, accept_new_host_keys, start), timeout)
    except asyncio.TimeoutError:
        return HostLink(host.name, "timed_out", "no answer within %ss (connect and bootstrap)" % timeout)
    except SacError as exc:
        return HostLink(host.name, state_of(exc), exc.message)


def carry_since(old, new):
    """A host that stays down keeps the time it went down."""
    if old is not None and not new.ok and old.since is not None:
        new.since = old.since
    return new


async def _open(inventory, host, accept_new, start):
    if host.transport == "local":
        # A local host without an explicit state_dir shares `sac agents`' ($SAC_HOME or ~/.sac).
        client = await connect_local(host.state_dir if host.is_set("state_dir") else None)
        conn, actions, channel = None, [], "unix"
    else:
        conn = await connect_host(ssh_target(inventory, host), accept_new_host_keys=accept_new,
                                  timeout=host.connect_timeout)
        try:
            client, actions = await _attach_warm(conn, host), []
            if client is None:
                info, actions = await bootstrap(conn, _node_settings(host))
                client = await attach(conn, _node_settings(host), info)
                remember_state_dir(host, info["state_dir"])
        except BaseException:
            conn.close()
            raise
        channel = client.channel
    ping = time.monotonic()
    facts = await client.facts(timeout=host.connect_timeout)
    latency = (time.monotonic() - ping) * 1000
    if channel == "stream-local" and facts.get("state_dir"):
        client.direct_to_shims(conn.open_unix_connection, facts["state_dir"])
    link = HostLink(host.name, client=client, conn=conn, facts=facts, latency_ms=round(latency, 1),
                    actions=actions, channel=channel)
    link.connect_ms = round((time.monotonic() - start) * 1000)
    return link
