"""A host's node over SSH: connect, attach to a running daemon of this head's sha, else bootstrap one
(or, for reads, attach to whatever daemon runs and change nothing).

host_link imports this module only for hosts with an SSH transport: it brings in
asyncssh (~0.4 s to import), which an inventory of local hosts never needs.
"""

import asyncio
import json
import os

from sac_node.protocol.errors import SacError
from sac_node.state_dir import default_state_dir, ensure_private_dir, write_atomic

from .bootstrap import attach, bootstrap, inspect
from .host_link import timed_facts
from .node_client import NodeClient
from .pyz import build_pyz
from .ssh import DEFAULT_KNOWN_HOSTS, SSHTarget, StreamLocalRefused, connect_host


async def open_ssh(inventory, host, accept_new, mode):
    """(SSHConnection, NodeClient, done, would, answered) of an inventory host.

    `mode` is "provision" (upload and start what is missing; `done` says what was done),
    "restart" (provision, with a fresh daemon) or "attach" (provision nothing, but start a daemon
    that died again: `would` says what provisioning would do, and the client is None when no
    daemon runs). `answered` is (host.facts, round trip ms) from a warm attach, which asks for
    them anyway, else None; without a daemon it is ({"python": ...}, None). The connection is
    closed on failure or when no daemon runs (then it is None).
    """
    conn = await connect_host(ssh_target(inventory, host), accept_new_host_keys=accept_new,
                              timeout=host.connect_timeout)
    nodelay = asyncio.ensure_future(conn.disable_nagle())  # alongside the attach: no added round trip
    try:
        client, answered = (None, None) if mode == "restart" else await _attach_warm(conn, host)
        actions, would = [], []
        await nodelay  # before any probe, and before a command could close the connection under it
        if client is None:
            settings = _node_settings(host)
            if mode == "attach":
                info, actions, would = await inspect(conn, settings)
                alive = (info.get("daemon") or {}).get("alive")
                client = await attach(conn, settings, info) if alive else None
                answered = None if alive else ({"python": ".".join(map(str, info["python"]))}, None)
            else:
                info, actions = await bootstrap(conn, settings, restart=mode == "restart")
                client = await attach(conn, settings, info)
            remember_state_dir(host, info["state_dir"])
    except BaseException:
        nodelay.cancel()
        conn.close()
        raise
    if client is None:
        conn.close()
        conn = None
    return conn, client, actions, would, answered


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

    (client, (host.facts, round trip ms)); (None, None) when that is not possible (no hint,
    forwarding refused, no daemon, another sha): the caller then bootstraps as usual, which
    also upgrades an old node.
    """
    hint = _state_dir_hint(host)
    if not hint:
        return None, None
    try:
        stream = await conn.open_unix_connection(hint.rstrip("/") + "/node.sock")
    except StreamLocalRefused:
        return None, None
    client = NodeClient(stream.reader, stream.writer, host=conn.name, channel=stream.kind)
    try:
        answered = await timed_facts(client, host.connect_timeout)
    except SacError:
        answered = ({}, None)
    if answered[0].get("sha") != build_pyz()[1]:
        await client.close()
        return None, None
    return client, answered


def _node_settings(host):
    return {"python": host.python, "env_preamble": host.env_preamble, "state_dir": host.state_dir,
            "connect_timeout": host.connect_timeout}
