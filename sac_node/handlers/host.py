"""host.* on the node daemon: facts about this host and shutting the daemon down."""

import os
import platform
import socket
import sys

from .. import __version__, probe, secrets_env
from ..protocol.messages import PROTOCOL_VERSION


async def facts(node, peer, p):
    """host.facts {} -> {version, sha, proto, python, hostname, platform, pid, state_dir, uptime_s, agents,
    secrets: {NAME: secret_hash}, settings: {field: hash} (what the head started it with, or None),
    engine: {bin, intact} (SAC_CLAUDE_BIN; intact False when an engine the head sent changed since it was
    verified)}"""
    return {
        "version": __version__, "sha": node.sha, "proto": PROTOCOL_VERSION, "python": platform.python_version(),
        "python_path": sys.executable, "hostname": socket.gethostname(), "platform": platform.platform(),
        "pid": os.getpid(), "state_dir": node.state.root, "uptime_s": round(node.clock() - node.started_at, 1),
        "agents": len(node.state.agent_names()), "secrets": secrets_env.hashes(node.state.secrets()),
        "settings": node.settings, "engine": engine_facts(os.environ.get("SAC_CLAUDE_BIN")),
    }


def engine_facts(path):
    """{bin, intact}: a file the head sent is intact while its `.verified` mark matches it (no hashing)."""
    if not path:
        return {"bin": None, "intact": False}
    try:
        return {"bin": path, "intact": probe.mark_matches(path)}
    except OSError:
        return {"bin": path, "intact": os.access(path, os.X_OK)}  # not one the head sent


async def put_secrets(node, peer, p):
    """host.secrets {values: {NAME: value}} -> {changed: [NAME], secrets: {NAME: secret_hash}}

    Sets these names in <state_dir>/secrets.env (0600) and keeps its other lines. Agents started
    from now on see the new values; running ones keep theirs until restarted (their status says so).
    """
    changed = secrets_env.write(node.state, dict(p.get("values") or {}))
    return {"changed": changed, "secrets": secrets_env.hashes(node.state.secrets())}


async def shutdown(node, peer, p):
    """host.shutdown {} -> {stopping: true}; the daemon exits, shims and agents keep running"""
    node.shutdown()
    return {"stopping": True}
