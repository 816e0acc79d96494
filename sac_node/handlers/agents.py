"""agents.* on the node daemon: start, stop, restart, delete, list, status."""

import asyncio
import hashlib
import json
import os
import shutil

from .. import engine, hooks_socket, launch, lifecycle, slurm
from ..node_spec import NodeSpec
from ..protocol.errors import AgentError, AgentNotFound, AgentNotRunning, SpecError
from ..protocol import messages as m
from ..protocol.messages import NAME_RE
from ..state_dir import ensure_private_dir, write_atomic
from ..supervision import states
from ..transcript import read_tail
from ..journal import Journal, Retention


def spec_hash(spec):
    """A stable digest of a resolved spec (to_home included), so the head can tell 'changed'."""
    def default(obj):
        if isinstance(obj, bytes):
            return hashlib.sha256(obj).hexdigest()
        raise TypeError(type(obj).__name__)
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=default).encode()).hexdigest()[:16]


def _agent(node, name):
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise AgentNotFound("no agent named %r on this host" % (name,))
    agent = node.state.agent(name)
    if not agent.exists():
        raise AgentNotFound("no agent named %s on this host (see `sac agents list`)" % name)
    return agent


def _load_spec(agent):
    """The agent's spec.json as the head sent it (its hash added)."""
    with open(agent.spec) as fh:
        return json.load(fh)


def _node_spec(agent):
    return NodeSpec.from_wire(_load_spec(agent))


def _write_home(agent, files):
    """Copy the spec's to_home/ files into the agent's home (paths were checked on the head; check again)."""
    home = os.path.realpath(ensure_private_dir(agent.home))
    for rel, content in sorted((files or {}).items()):
        target = os.path.realpath(os.path.join(home, rel))
        if not target.startswith(home + os.sep):
            raise SpecError("to_home: %r escapes the agent's home" % rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        write_atomic(target, content, 0o600)


async def start(node, peer, p):
    """agents.start {spec: resolved spec dict, restart?: bool} -> {status, changed, started}

    Writes the spec, checks that the engine can launch (claude found, sandbox
    available, secrets present), then starts the shim unless it already runs
    with the same spec. A fresh session (claude.session: fresh) on a new start
    clears the last session id and queues startup_prompts.
    """
    spec = dict(p["spec"])
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise SpecError("metadata.name %r is not a valid agent name (lowercase letters, digits, '-')" % (name,))
    agent = node.state.agent(name)
    files = spec.pop("to_home", None) or {}
    digest = spec_hash(dict(spec, to_home=files))
    running = node.live_shim_pid(name)
    try:
        os.unlink(os.path.join(agent.path, "fenced.json"))
    except FileNotFoundError:
        pass
    if running and agent.exists() and _load_spec(agent).get("hash") == digest and not p.get("restart"):
        return {"status": await _status(node, name), "changed": False, "started": False}
    if running:
        await stop(node, peer, {"name": name})
    ensure_private_dir(agent.path)
    spec["hash"] = digest
    read = NodeSpec.from_wire(spec)
    # Raises the user's fix before anything is running: claude, sandbox, every account's credentials.
    for account in read.claude.accounts or [None]:
        launch.prepare(read, agent, node.state, account=account)
    problem = engine.login_problem(read, os.environ, lambda rel: rel in files or os.path.exists(
        os.path.join(agent.home, rel)))
    if problem:
        raise AgentError(problem)
    fresh = read.claude.session == "fresh" or not os.path.exists(agent.session)
    if fresh and os.path.exists(agent.session):
        os.unlink(agent.session)
    _write_home(agent, hooks_socket.home_files(files) if read.engine.is_claude else files)
    write_atomic(agent.spec, json.dumps(spec, indent=1, sort_keys=True))
    agent.write_desired("running")
    if slurm.settings_of(agent) is not None:
        await node.slurm.forget_ended(name)
    try:
        shim = await node.ensure_shim(name, wait_s=slurm.START_WAIT_S, queued=True)
    except slurm.AgentPending:  # queued in Slurm: `pending (Resources)`, not failed
        if fresh and read.startup_prompts:  # submitted by the daemon once its job runs (slurm.py)
            slurm.keep_startup_prompts(agent, read.startup_prompts)
        return {"status": await _status(node, name), "changed": True, "started": True}
    await _pre_start_done(node, name, read)
    if fresh:
        for prompt in read.startup_prompts:
            await shim.call(m.TURNS_SUBMIT, {"text": prompt, "source": "startup"})
    return {"status": await _status(node, name), "changed": True, "started": True}


async def _pre_start_done(node, name, spec):
    """Wait while the shim runs hooks.pre_start; AgentError with its reason when one failed."""
    if not spec.hooks.pre_start:
        return
    deadline = node.clock() + sum(cmd.timeout_s for cmd in spec.hooks.pre_start) + 10
    while node.clock() < deadline:
        status = await _status(node, name)
        if status["state"] == states.FAILED:
            raise AgentError("agent %s did not start: %s" % (name, status["last_error"]))
        if status["state"] != states.STARTING:
            return
        await asyncio.sleep(0.1)


async def stop(node, peer, p):
    """agents.stop {name} -> status; pending turns stay in the journal and run after the next start"""
    agent = _agent(node, p["name"])
    agent.write_desired("stopped")
    try:
        shim = await node.shim(agent.name)
        await shim.call(m.AGENTS_STOP, {})
    except AgentNotRunning:
        pass
    hooks = _node_spec(agent).hooks  # the shim runs pre_stop and post_stop before it exits
    await node.wait_shim_exit(agent.name, 15.0 + sum(cmd.timeout_s for cmd in hooks.pre_stop + hooks.post_stop))
    if slurm.settings_of(agent) is not None:
        await node.slurm.release(agent.name)
    return await _status(node, agent.name)


async def fence(node, peer, p):
    """agents.fence {name, generation, by} -> status

    A singleton's copy of a lower generation than `generation` stops itself for
    good (desired=stopped, its engine ends), so a host back from a partition
    never keeps a second live copy next to the one rescheduled elsewhere.
    """
    agent = _agent(node, p["name"])
    own = _node_spec(agent).generation or 0
    if own >= p["generation"]:
        return dict(await _status(node, agent.name), fenced=False)
    write_atomic(os.path.join(agent.path, "fenced.json"), json.dumps(
        {"generation": own, "by_generation": p["generation"], "by": p.get("by")}))
    status = await stop(node, peer, {"name": agent.name})
    return dict(status, fenced=True)


async def restart(node, peer, p):
    """agents.restart {name} -> {status, ...} with the spec it already has"""
    agent = _agent(node, p["name"])
    spec = _load_spec(agent)
    spec.pop("hash", None)
    await stop(node, peer, {"name": agent.name})
    return await start(node, peer, {"spec": spec, "restart": True})


async def delete(node, peer, p):
    """agents.delete {name} -> {deleted: name}; stops it and removes its dir (journal, home, workdir under it)"""
    agent = _agent(node, p["name"])
    await stop(node, peer, {"name": agent.name})
    shutil.rmtree(agent.path, ignore_errors=True)
    return {"deleted": agent.name}


async def list_agents(node, peer, p):
    """agents.list {} -> [status]"""
    return [await _status(node, name) for name in node.state.agent_names()]


async def status(node, peer, p):
    """agents.status {name} -> status"""
    return await _status(node, _agent(node, p["name"]).name)


async def _status(node, name):
    try:
        shim = await node.shim(name)
        result = await shim.call(m.AGENTS_STATUS, {}, timeout=10)
        result["desired"] = node.state.agent(name).read_desired()
        result["shim_respawns"] = node.shim_respawns.get(name, 0)
    except AgentNotRunning as exc:
        result = offline_status(node.state.agent(name), node.clock())
        if isinstance(exc, slurm.AgentPending):
            result["last_error"] = exc.message
    if slurm.settings_of(node.state.agent(name)) is not None:
        result = await node.slurm.annotate(name, result)
    return result


def offline_status(agent, now):
    """Status of an agent whose shim is not running, read from its dir."""
    spec = _node_spec(agent)
    journal = offline_journal(agent, spec)
    desired = agent.read_desired()
    try:
        with open(agent.session) as fh:
            session = json.load(fh).get("session_id")
    except (OSError, ValueError):
        session = None
    return {
        "name": agent.name, "state": "stopped" if desired == "stopped" else "failed", "desired": desired,
        "pid": None, "shim_pid": None, "uptime_s": None, "restarts": 0, "session_id": session,
        "turns": journal.summary(),
        "current_turn": None, "last_turn_at": journal.last_turn_at(),
        "last_error": lifecycle.stop_problem(read_tail(agent.transcript, 50)) if desired == "stopped"
        else "the agent's shim is not running",
        "usage": journal.usage_total(), "isolation": {"runtime": spec.isolation.runtime},
        "heartbeat_age_s": None, "labels": spec.labels,
        "workdir": launch.resolve_workdir(spec, agent), "fleet": spec.fleet,
        "generation": spec.generation, "fenced": os.path.exists(os.path.join(agent.path, "fenced.json")),
    }


def offline_journal(agent, spec=None):
    """The journal of an agent whose shim is not running, read only (only a shim compacts its journal)."""
    return Journal(agent.journal, retention=Retention.from_spec(_node_spec(agent) if spec is None else spec))


def tail_offline(agent, n):
    return read_tail(agent.transcript, n)
