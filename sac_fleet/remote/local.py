"""The local transport: the node daemon of this machine, over its unix socket.

Starts the daemon on demand (detached, single instance per state dir) and
replaces one of another version, which leaves running agents untouched;
`attach_local` is the read-only way in, which starts and replaces nothing.
"""

import asyncio
import json
import os
import sys

import sac_node
from sac_node.protocol.errors import HostUnreachable
from sac_node.state_dir import StateDir, default_state_dir

from .node_client import NodeClient

LOCAL_HOST = "local"


async def start_daemon(state):
    """Run `python -m sac_node daemon --detach` and wait for it to serve."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sac_node", "daemon", "--state-dir", state.root, "--detach",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise HostUnreachable("local: the node daemon did not start: %s (log: %s)"
                              % ((err or out).decode(errors="replace").strip(), state.log))


async def _open(state):
    reader, writer = await asyncio.open_unix_connection(state.socket, limit=1 << 20)
    return NodeClient(reader, writer, host=LOCAL_HOST)


async def connect_local(state_dir=None, restart=False):
    """A NodeClient for this machine's daemon, started (or upgraded) as needed.

    With `restart`, a running daemon is replaced by a fresh one (which reads this process's
    environment); the agents' shims keep running and the new daemon re-attaches to them.
    """
    state = StateDir(state_dir or default_state_dir())
    try:
        client = await _open(state)
    except OSError:
        await start_daemon(state)
        client, restart = await _open(state), False  # a daemon started just now is already fresh
    facts = await client.facts(timeout=10)
    if restart or facts.get("version") != sac_node.__version__:
        await client.shutdown()
        await client.close()
        await _wait_gone(state)
        await start_daemon(state)
        client = await _open(state)
    return client


async def attach_local(state_dir=None):
    """(NodeClient or None, what was done, what `connect_local` would do): attach to this machine's daemon.

    Nothing is started or replaced, but a daemon that died (it did not stop on purpose) is started again.
    """
    state = StateDir(state_dir or default_state_dir())
    done = []
    try:
        client = await _open(state)
    except OSError:
        if not _died(state):
            return None, [], ["start the node daemon"]
        await start_daemon(state)
        client, done = await _open(state), ["started the node daemon again (it had died; its agents kept running)"]
    facts = await client.facts(timeout=10)
    if facts.get("version") != sac_node.__version__:
        return client, done, ["upgrade the node from %s" % facts.get("version")]
    return client, done, []


def _died(state):
    """True when the daemon.json of a daemon that does not answer has no `stopped_at`: it died."""
    try:
        with open(os.path.join(state.root, "daemon.json")) as fh:
            return not json.load(fh).get("stopped_at")
    except (OSError, ValueError):
        return False


async def _wait_gone(state, timeout=10.0):
    loop = asyncio.get_event_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline and os.path.exists(state.socket):
        try:
            r, w = await asyncio.open_unix_connection(state.socket)
            w.close()
        except OSError:
            return
        await asyncio.sleep(0.05)
