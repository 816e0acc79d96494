"""The engine: Claude Code (or any program speaking its stream-json protocol).

Pure parts: finding the binary, building argv and environment, turning a turn's
text into an input line and reading the events that come back. The shim owns
the process itself.
"""

import glob
import json
import os
import shutil

from .protocol import messages as m
from .protocol.errors import AgentError, SpecError

STREAM_FLAGS = ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]

# Always set for agents: nothing may try to reach the internet on its own.
QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
}

CLAUDE_HELP = ("set SAC_CLAUDE_BIN, put `claude` on PATH, or run `make tools` "
               "(installs the pinned Claude Code into the project's .tools/)")
# On a host whose node a head started (it set SAC_NODE_SETTINGS), the head brings the engine.
FLEET_CLAUDE_HELP = ("run `sac fleet up` on the head, which sends its own Claude Code to hosts that have none, "
                     "or set this host's `engine: {bin: PATH}` in the inventory (docs/inventory.md, engine)")


def find_claude(environ=None, which=shutil.which):
    """Locate the Claude Code CLI: SAC_CLAUDE_BIN, then PATH, then <state>/tools, then the repo's .tools/."""
    environ = os.environ if environ is None else environ
    help_text = FLEET_CLAUDE_HELP if environ.get("SAC_NODE_SETTINGS") else CLAUDE_HELP
    explicit = environ.get("SAC_CLAUDE_BIN")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise AgentError("SAC_CLAUDE_BIN=%s is not an executable file; %s" % (explicit, help_text))
    found = which("claude", path=environ.get("PATH"))
    if found:
        return found
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    state = os.path.expanduser(environ.get("SAC_HOME") or "~/.sac")
    for base in (os.path.join(state, "tools"), os.path.join(here, ".tools")):
        candidate = os.path.join(base, "node_modules", ".bin", "claude")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise AgentError("the Claude Code CLI (`claude`) was not found on this host; " + help_text)


def install_paths(binary):
    """Paths a sandbox must bind read-only so the binary runs (its real dir and the package around it)."""
    real = os.path.realpath(binary)
    paths = [os.path.dirname(real)]
    marker = os.sep + "node_modules" + os.sep
    if marker in real:
        paths.append(real.split(marker)[0] + marker.rstrip(os.sep))
    if binary != real:
        paths.append(os.path.dirname(os.path.abspath(binary)))
    seen = []
    for path in paths:
        if path not in seen:
            seen.append(path)
    return seen


def build_argv(spec, binary, session_id=None, sandboxed=False, mcp=None):
    """argv of the engine for a NodeSpec; `--resume` when a session is to be continued.

    `mcp`: (--mcp-config JSON, allow rule) of sac's own MCP server (agent_talk.py), or None."""
    if not spec.engine.is_claude:
        argv = list(spec.engine.command)
        if not argv:
            raise SpecError("%s: spec.engine.command is empty" % spec.source)
        return argv
    claude = spec.claude
    argv = [binary] + STREAM_FLAGS
    if claude.model:
        argv += ["--model", claude.model]
    argv += permission_argv(claude, sandboxed, (mcp[1],) if mcp else ())
    if mcp:
        argv += ["--mcp-config", mcp[0]]
    if session_id:
        argv += ["--resume", session_id]
    return argv + list(claude.flags)


def permission_argv(claude, sandboxed, also_allowed=()):
    """The flags that decide which tools run (docs/spec-reference.md, "Tools and permissions").

    With an allow list Claude Code runs in dontAsk mode: what the list does not pre-approve is
    refused (bypassPermissions would allow it). Without one every tool runs but the denied ones,
    through bypassPermissions where the sandbox gives a non-root uid (Claude Code refuses that mode
    as root); deny rules hold in every mode. An explicit permission_mode is passed as it is.
    `also_allowed`: sac's own tools, allowed whatever the mode (they do not choose it).
    """
    allowed, denied, mode = claude.allowed_tools, claude.disallowed_tools, claude.permission_mode
    if mode is None:
        mode = "dontAsk" if allowed else "bypassPermissions" if sandboxed else None
    allowed = tuple(allowed) + tuple(r for r in also_allowed if r not in allowed)
    argv = []
    if allowed:
        argv += ["--allowedTools", ",".join(allowed)]
    if denied:
        argv += ["--disallowedTools", ",".join(denied)]
    if mode:
        argv += ["--permission-mode", mode]
    return argv


def build_env(spec, home, base_env=None):
    """The non-secret environment of the engine."""
    base_env = os.environ if base_env is None else base_env
    env = {
        "HOME": home,
        "PATH": base_env.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": base_env.get("LANG", "C.UTF-8"),
        "TERM": "dumb",
        "USER": "agent",
        "SAC_AGENT": spec.name,
    }
    env.update(QUIET_ENV)
    if spec.claude.provider.base_url:
        env["ANTHROPIC_BASE_URL"] = spec.claude.provider.base_url
    env.update(spec.env)
    return env


def key_not_set(what, var, secrets_file=None):
    """The error for a key that is neither in secrets.env nor in the node's environment, with fixes that work:
    secrets.env is read at every agent start; the environment only by a daemon started after the export."""
    path = secrets_file or "<state_dir>/secrets.env"
    ignored = ""
    try:
        mode = os.stat(path).st_mode & 0o777
        if mode & 0o077:
            ignored = " (%s is ignored while its mode is %03o: `chmod 600 %s`)" % (path, mode, path)
    except OSError:
        pass
    return AgentError("%s names %s, which is not set on this host%s; add the line %s=<key> to %s (mode 0600, read at "
                      "every agent start: just start the agent again), or export %s where the node daemon starts and "
                      "run `sac node restart` (agents keep running)" % (what, var, ignored, var, path, var))


def resolve_secrets(spec, host_secrets, environ=None, secrets_file=None):
    """Secrets for the engine's environment, read on this host; never logged, never in argv."""
    environ = os.environ if environ is None else environ
    provider = spec.claude.provider
    var = provider.api_key_env
    if var:
        value = host_secrets.get(var) or environ.get(var)
        if not value:
            raise key_not_set("agent %s: spec.claude.provider.api_key_env" % spec.name, var, secrets_file)
        return {"ANTHROPIC_API_KEY": value}
    if provider.base_url:
        # A local provider (the built-in one) needs some key to be sent.
        return {"ANTHROPIC_API_KEY": environ.get("ANTHROPIC_API_KEY") or "sac-local"}
    if environ.get("ANTHROPIC_API_KEY"):
        return {"ANTHROPIC_API_KEY": environ["ANTHROPIC_API_KEY"]}
    return {}


LOGIN_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
LOGIN_FILE = os.path.join(".claude", ".credentials.json")


def login_problem(spec, environ, in_home):
    """Why Claude Code would have no way to reach a model (it would answer "please run /login"), or None.

    `in_home(rel)` tells whether the agent's home has (or is about to get, from to_home) a file.
    """
    claude = spec.claude
    if not spec.engine.is_claude or claude.accounts or claude.provider.base_url or claude.provider.api_key_env:
        return None
    if any(environ.get(var) or spec.env.get(var) for var in LOGIN_VARS) or in_home(LOGIN_FILE):
        return None
    return ("agent %s has no model provider and no login: set spec.claude.provider.base_url (and api_key_env) "
            "or claude.accounts, put a Claude Code login in the spec's to_home/%s, or export ANTHROPIC_API_KEY "
            "before the node daemon starts" % (spec.name, LOGIN_FILE))


def account_launch(spec, account, host_secrets, environ=None, secrets_file=None):
    """(secrets, env, binds) that put the engine on one of `claude.accounts`."""
    environ = os.environ if environ is None else environ
    # sac rotates accounts itself: the CLI's own retries would only delay that.
    env = {"CLAUDE_CODE_MAX_RETRIES": "0"}
    if account.get("api_key_env"):
        var = account["api_key_env"]
        value = host_secrets.get(var) or environ.get(var)
        if not value:
            raise key_not_set("agent %s: account %s" % (spec.name, account["name"]), var, secrets_file)
        return {"ANTHROPIC_API_KEY": value}, env, []
    path = config_dir(None, account)
    if not os.path.isdir(path):
        raise AgentError("agent %s: account %s: config_dir %s does not exist on this host; log in there with "
                         "`CLAUDE_CONFIG_DIR=%s claude` first" % (spec.name, account["name"], path, path))
    env["CLAUDE_CONFIG_DIR"] = path
    return {}, env, ["%s:%s:rw" % (path, path)]


def config_dir(home, account=None):
    """Claude Code's config dir for this launch (where it keeps sessions): an account's config dir
    (CLAUDE_CONFIG_DIR), else <home>/.claude."""
    if account and account.get("config_dir"):
        return os.path.abspath(os.path.expanduser(account["config_dir"]))
    return os.path.join(home, ".claude")


def session_saved(config, session_id):
    """True when Claude Code has saved session `session_id` under `config`, so `--resume` can find it.

    It writes a session's file about 0.1 s after each turn's result: an engine killed within that
    window (its shim was killed, say) leaves a session that no engine can resume.
    """
    pattern = os.path.join(glob.escape(config), "projects", "*", glob.escape(session_id) + ".jsonl")
    return bool(glob.glob(pattern))


def failed_before_acting(event, spoke):
    """True for a `result` that ended a turn in Claude Code itself before the turn produced anything.

    Such a turn (`error_during_execution`, no provider status, nothing said) is safe to run again
    on a fresh engine; a provider's error is not this (quota, overload and the like are handled apart).
    """
    return (event.get("subtype") == "error_during_execution" and not event.get("api_error_status")
            and not spoke)


def user_line(text):
    """One stream-json input line carrying a user turn."""
    msg = {"type": "user", "message": {"role": "user", "content": text}}
    return (json.dumps(msg) + "\n").encode("utf-8")


def parse_event(line):
    """Decode one output line; None for blank or non-JSON noise."""
    line = line.strip()
    if not line:
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return m.sac_event(m.ENGINE_NOISE, text=line[:2000].decode("utf-8", "replace")
                           if isinstance(line, bytes) else line[:2000])
    return event if isinstance(event, dict) else None


def assistant_text(event):
    """The text blocks of an `assistant` event, joined."""
    message = event.get("message") or {}
    parts = [b.get("text", "") for b in message.get("content") or [] if isinstance(b, dict) and b.get("type") == "text"]
    return "".join(parts)


def result_outcome(event):
    """(status, reply, error) for a `result` event."""
    if event.get("is_error") or event.get("subtype") not in (None, "success"):
        status = event.get("api_error_status")
        error = "engine reported an error"
        if status:
            error = "provider returned HTTP %s" % status
        detail = event.get("result") or event.get("subtype")
        if detail:
            error += ": %s" % str(detail)[:500]
        return "failed", event.get("result"), error
    return "completed", event.get("result", ""), None
