"""From a resolved spec to the engine's launch: binary, argv, env, secrets, sandbox.

The shim calls `prepare` before every engine start; the daemon calls it once before
spawning a shim so that a missing `claude`, a missing secret or an unavailable
sandbox is a clear error at `agents start`, not at the first turn.
"""

import ctypes
import os
import signal
import socket

from . import agent_talk, engine, hooks_socket, sandbox
from .startup import with_startup
from .protocol.errors import SpecError
from .state_dir import ensure_private_dir


def resolve_workdir(spec, agent_dir):
    """The agent's workdir on this host: relative paths are taken from the agent's dir."""
    workdir = os.path.expanduser(spec.workdir)
    if not os.path.isabs(workdir):
        workdir = os.path.join(agent_dir.path, workdir)
    return os.path.normpath(workdir)


def make_workdir(spec, agent_dir):
    """The agent's workdir, created if missing; SpecError naming the spec file and field when it cannot be."""
    workdir = resolve_workdir(spec, agent_dir)
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as exc:
        raise SpecError("%s: spec.workdir %s cannot be made on %s: %s; choose a directory this host's user can "
                        "create" % (spec.source, workdir, socket.gethostname(),
                                    exc.strerror or exc)) from None
    return workdir


def prepare(spec, agent_dir, state_dir, session_id=None, environ=None, account=None):
    """Everything needed to start the engine; raises SacError with the fix when something is missing.

    `account` is one of `claude.accounts` (its key or config dir replaces the provider's key).
    """
    environ = os.environ if environ is None else environ
    runtime = sandbox.choose_runtime(spec.isolation.runtime)
    is_claude = spec.engine.is_claude
    binary = engine.find_claude(environ) if is_claude else None
    workdir = make_workdir(spec, agent_dir)
    ensure_private_dir(agent_dir.home)
    sandboxed = runtime != "none"
    isolation = spec.isolation
    talk_sockets, mcp = agent_talk.engine_side(spec, agent_dir, workdir, sandboxed)
    argv = engine.build_argv(spec, binary, session_id=session_id, sandboxed=sandboxed and is_claude, mcp=mcp)
    env = engine.build_env(spec, agent_dir.home, environ)
    if session_id and not is_claude:
        # A command engine's argv is its own; it learns the session to continue from here.
        env["SAC_RESUME_SESSION"] = session_id
    if account is not None:
        secrets, account_env, binds = engine.account_launch(spec, account, state_dir.secrets(), environ,
                                                            state_dir.secrets_file)
        env.update(account_env)
        isolation = isolation._replace(binds=isolation.binds + tuple(binds))
    else:
        secrets = engine.resolve_secrets(spec, state_dir.secrets(), environ, state_dir.secrets_file)
    ro_paths = engine.install_paths(binary) if binary else _command_paths(argv)
    argv = with_startup(spec.startup_commands, argv)
    hooks_env, hooks_sockets = hooks_socket.engine_side(agent_dir, runtime)
    env.update(hooks_env)
    return sandbox.build_launch(
        runtime, argv, workdir=workdir, home=agent_dir.home, env=env, secrets=secrets,
        isolation=isolation, ro_paths=ro_paths, agent_dir=agent_dir.path, sockets=talk_sockets + hooks_sockets)


def prepare_command(spec, agent_dir, state_dir, argv, extra_env, environ=None):
    """The launch of a command (a hook) in the agent's sandbox: its runtime, binds, home and workdir, the
    engine's environment without its secrets, and no network but the host's (network: host)."""
    environ = os.environ if environ is None else environ
    runtime = sandbox.choose_runtime(spec.isolation.runtime)
    workdir = make_workdir(spec, agent_dir)
    ensure_private_dir(agent_dir.home)
    env = dict(engine.build_env(spec, agent_dir.home, environ), **extra_env)
    env["SAC_WORKDIR"] = sandbox.APPTAINER_WORKDIR if runtime == "apptainer" else workdir
    isolation = spec.isolation
    if isolation.network == "provider":
        isolation = isolation._replace(network="none")  # the relay serves the engine only
    return sandbox.build_launch(runtime, argv, workdir=workdir, home=agent_dir.home, env=env, secrets={},
                                isolation=isolation, ro_paths=_command_paths(argv), agent_dir=agent_dir.path)


def _command_paths(argv):
    """Read-only paths a custom engine command needs: the directories of its files."""
    paths = []
    for arg in argv:
        if os.path.isabs(arg) and os.path.exists(arg):
            parent = os.path.dirname(os.path.realpath(arg))
            if parent not in paths:
                paths.append(parent)
    return paths


_PR_SET_PDEATHSIG = 1


def die_with_parent():
    """In the child before exec: die when the shim dies (Linux), so no engine is orphaned."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
