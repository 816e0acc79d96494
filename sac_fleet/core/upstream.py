"""Upstream specs (``apiVersion: scitex-agent-container/v3``) -> sac/v1 specs: `sac spec import`.

The mapping follows the upstream project's public spec reference. ``convert(doc, name)``
is pure: it returns the sac document and the warnings, one per upstream field that sac does
not take, each ``FILE:LINE FIELD: why (what to do)``. A field at its upstream default is
dropped without a word; nothing else is ever dropped in silence. ``import_spec`` reads,
converts, writes ``OUT/<name>/spec.yaml`` (with ``to_home/`` and the usable part of
``dot_claude/``) and checks the result with ``parse_spec``.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from sac_node.protocol.errors import SpecError

from .documents import Document
from .spec import API_VERSION, KIND
from .upstream_claude import convert_claude

UPSTREAM_API = "scitex-agent-container/v3"
# Upstream fields whose value here means "as upstream does by default": dropped silently.
DEFAULTS = {
    ("runtime",): ("apptainer", ""), ("to_home",): ("./to_home", "to_home"),
    ("dot_claude",): ("./dot_claude", "dot_claude"), ("harness",): ("anthropic",), ("provider",): ("anthropic",),
    ("residency",): ("resident",), ("access",): ("full", "capsule"), ("multiplexer",): ("tmux",),
    ("health", "enabled"): (True,), ("health", "method"): ("sdk-alive",),
    ("apptainer", "nv"): (False,), ("apptainer", "rocm"): (False,), ("apptainer", "raw_args"): ([],),
    ("apptainer", "container_workdir"): ("/work",), ("apptainer", "tmpfs_size"): ("2G",),
    ("apptainer", "relaxed"): (False,), ("apptainer", "fakeroot"): (False,), ("apptainer", "nested_build"): (False,),
    ("apptainer", "overlay_create_if_missing"): (True,),
    ("a2a",): ({}, None, {"port": "auto"}, {"host": "127.0.0.1", "port": "auto"}),
}
# Why sac does not take a field, by name; the rest get the generic reason.
REASONS = {
    "a2a": "sac serves every agent over `sac fleet serve` (HTTP and A2A); there is no per-agent port",
    "listen": "sac serves every agent over `sac fleet serve`",
    "mcp_servers": "sac has no mcp_servers field (pass Claude Code's --mcp-config in claude.flags, or put the "
                   "servers in to_home/.claude.json)",
    "telegram": "sac has no Telegram bridge",
    "autonomous": "sac runs turns when they are sent; it does not nudge an idle agent",
    "watchdog": "sac watches each turn with health.turn_timeout_s and health.stall_timeout_s",
    "context_management": "sac has no context management policy",
    "python-venv": "sac has no python-venv (activate it in startup_commands)",
    "env-file": "sac has no env-file (plain settings go in spec.env, credentials in the host's secrets.env)",
    "engines": "sac runs one engine per spec (import one engine's settings into claude: by hand)",
    "startup": "sac has no ready-pattern gating (startup_commands run before the engine starts)",
    "skills": "skills live in to_home/.claude/skills/",
    "extensions": "sac has no extensions dict (put what tools need in metadata.labels)",
    "interval": "sac watches each turn with health.turn_timeout_s and health.stall_timeout_s, not a probe",
    "timeout": "sac watches each turn with health.turn_timeout_s and health.stall_timeout_s, not a probe",
    "overlay": "sac's sandbox has no writable overlay (bind a directory in isolation.binds)",
    "raw_args": "sac builds the sandbox's argv itself",
    "runtime": "sac chooses the sandbox itself (isolation.runtime: auto, apptainer, bwrap or none)",
    "to_home": "sac reads the to_home/ directory next to spec.yaml only (move the files there)",
    "dot_claude": "sac reads dot_claude/ next to spec.yaml only (move the files there)",
}


class Converter:
    """One upstream document being converted: the sac document so far and the warnings."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.warnings: list = []

    def warn(self, loc, reason: str) -> None:
        self.warnings.append("%s:%d %s: %s; not imported" % (self.doc.path, self.doc.line_of(loc),
                                                               self.doc.field_path(loc), reason))

    def unused(self, loc, value: Any) -> None:
        """A field sac does not take: silent at its upstream default, else a warning."""
        if value in DEFAULTS.get(tuple(loc[1:]), ()):
            return
        self.warn(loc, REASONS.get(str(loc[-1]), "sac has no such field"))

    def section(self, loc, value) -> dict:
        """``value`` as a mapping (a warning and {} when it is not one)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.warn(loc, "expected a mapping")
            return {}
        return value


def convert(doc: Document, name: str) -> tuple:
    """The sac/v1 document for the upstream ``doc`` of agent ``name``, and the warnings."""
    data = doc.data
    if data.get("apiVersion") != UPSTREAM_API:
        raise SpecError("%s:%d apiVersion: %r is not an upstream v3 spec (sac spec import reads apiVersion: %s)"
                        % (doc.path, doc.line_of(("apiVersion",)), data.get("apiVersion"), UPSTREAM_API))
    if data.get("kind", "Agent") != "Agent":
        raise SpecError("%s:%d kind: %s has no sac equivalent (sac runs agents, kind: Agent)"
                        % (doc.path, doc.line_of(("kind",)), data.get("kind")))
    conv = Converter(doc)
    out = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}}
    for key, value in data.items():
        if key == "metadata":
            _metadata(conv, value, out["metadata"])
        elif key == "spec":
            out["spec"] = _spec(conv, conv.section(("spec",), value))
        elif key not in ("apiVersion", "kind"):
            conv.unused((key,), value)
    if not out.get("spec"):
        out.pop("spec", None)
    return out, conv.warnings


def _metadata(conv, value, meta):
    for key, item in conv.section(("metadata",), value).items():
        if key == "labels" and isinstance(item, dict):
            meta["labels"] = {str(k): str(v) for k, v in item.items()}
        else:
            conv.unused(("metadata", key), item)


def _spec(conv, spec) -> dict:
    out: dict = {}
    for key, value in spec.items():
        handler = _SPEC_FIELDS.get(key)
        if handler is None:
            conv.unused(("spec", key), value)
        else:
            handler(conv, value, out)
    return {k: v for k, v in out.items() if v not in ({}, [], None)}


def _put(out, path, value):
    target = out
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def _copy_to(*path) -> Callable:
    def copy(conv, value, out):
        _put(out, path, value)
    return copy


def _apptainer(conv, value, out):
    for key, item in conv.section(("spec", "apptainer"), value).items():
        loc = ("spec", "apptainer", key)
        if key == "image" and item:
            _put(out, ("isolation", "image"), str(item))
        elif key == "binds" and isinstance(item, list):
            _put(out, ("isolation", "binds"), [_bind(conv, loc + (i,), b) for i, b in enumerate(item)])
        elif key == "env" and isinstance(item, dict):
            out.setdefault("env", {}).update({str(k): _host_vars(conv, loc + (k,), v) for k, v in item.items()})
        elif key in ("nv", "rocm") and item is True:
            _put(out, ("isolation", "gpus"), True)
        else:
            conv.unused(loc, item)


def _bind(conv, loc, value):
    if isinstance(value, dict):  # the legacy {src, dst, mode} form
        value = ":".join(str(value[k]) for k in ("src", "dst", "mode") if value.get(k))
    return _host_vars(conv, loc, value)


def _host_vars(conv, loc, value):
    """Upstream expands ``${VAR}`` from the host's environment at start; sac fills ``${env.VAR}`` on the head."""
    text = str(value)
    if re.search(r"\$\{?[A-Za-z_]", text):
        conv.warnings.append("%s:%d %s: upstream expands $VAR on the host at start; written as ${env.VAR}, taken "
                             "from the environment of the head that starts it (check it)"
                             % (conv.doc.path, conv.doc.line_of(loc), conv.doc.field_path(loc)))
        text = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)",
                      lambda m: "${env.%s}" % (m.group(1) or m.group(2)), text)
    return text


def _health(conv, value, out):
    for key, item in conv.section(("spec", "health"), value).items():
        conv.unused(("spec", "health", key), item)


def _restart(conv, value, out):
    restart = {}
    for key, item in conv.section(("spec", "restart"), value).items():
        if key in ("policy", "max_retries"):
            restart[key] = item
        elif key == "backoff" and isinstance(item, dict):
            restart.setdefault("backoff", {}).update(item)
        elif key in ("backoff_initial", "backoff_max", "backoff_multiplier"):
            restart.setdefault("backoff", {})[key[len("backoff_"):]] = item
        else:
            conv.unused(("spec", "restart", key), item)
    if restart:
        out["restart"] = restart


def _startup_commands(conv, value, out):
    commands = []
    for index, item in enumerate(value if isinstance(value, list) else []):
        loc = ("spec", "startup_commands", index)
        if isinstance(item, dict):
            if item.get("delay"):
                conv.warn(loc + ("delay",), "sac runs startup commands one after another, without a delay")
            item = item.get("command")
        if isinstance(item, str) and item:
            commands.append(item)
        else:
            conv.warn(loc, "expected a shell command")
    out["startup_commands"] = commands


def _hooks(conv, value, out):
    hooks = {}
    for key, item in conv.section(("spec", "hooks"), value).items():
        if key in ("pre_start", "post_start", "pre_stop", "post_stop", "on_failure") and isinstance(item, list):
            hooks[key] = [str(command) for command in item]
        else:
            conv.unused(("spec", "hooks", key), item)
    out["hooks"] = hooks


def _host(conv, value, out):
    _put(out, ("placement", "hosts"), [str(value)])
    _put(out, ("placement", "singleton"), True)


def _hosts(conv, value, out):
    if value != "all":
        _put(out, ("placement", "hosts"), [str(h) for h in (value if isinstance(value, list) else [value])])
    _put(out, ("placement", "per_host"), True)


def _session(conv, value, out):
    convert_claude(conv, {"session": value}, out, ("spec",))


def _claude(conv, value, out):
    convert_claude(conv, conv.section(("spec", "claude"), value), out, ("spec", "claude"))


_SPEC_FIELDS = {
    "workdir": _copy_to("workdir"), "startup_prompts": _copy_to("startup_prompts"),
    "apptainer": _apptainer, "claude": _claude, "health": _health, "restart": _restart,
    "startup_commands": _startup_commands, "hooks": _hooks, "host": _host, "hosts": _hosts, "session": _session,
}


# --- files ------------------------------------------------------------------------------------------------

DOT_CLAUDE_TAKEN = ("CLAUDE.md", "commands", "skills", "agents", "hooks")


def import_spec(source, out_dir) -> tuple:
    """Convert the upstream spec at ``source`` (a file or agent dir) into ``out_dir/<name>/spec.yaml``.

    Returns (the written path, the warnings). Refuses to overwrite; the written spec must pass
    ``parse_spec`` (SpecError otherwise, and nothing is left half-written).
    """
    import shutil
    import tempfile
    from pathlib import Path

    import yaml

    from .documents import load_document
    from .spec import NAME_RE, parse_spec, spec_file

    path = spec_file(source)
    doc = load_document(path, SpecError)
    name = path.resolve().parent.name
    if not NAME_RE.fullmatch(name):
        raise SpecError("%s: the agent's directory name %r is not a sac agent name (lowercase letters, digits and "
                        "'-'); rename the directory and import again" % (path, name))
    data, warnings = convert(doc, name)
    target = Path(out_dir) / name
    if (target / "spec.yaml").exists():
        raise SpecError("%s already exists (remove it, or choose another --out)" % (target / "spec.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / name
        staged.mkdir()
        warnings += _copy_home(path.parent, staged / "to_home")
        header = "# imported from %s by `sac spec import` (%d warning%s)\n" % (
            path, len(warnings), "" if len(warnings) == 1 else "s")
        (staged / "spec.yaml").write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        # The result must be a valid spec (SpecError if not); ${env.X} stands for a path here.
        parse_spec(staged, environ={k: "/" + k for k in _env_names(data)})
        shutil.copytree(str(staged), str(target), dirs_exist_ok=True)
    return target / "spec.yaml", warnings


def _env_names(data):
    return set(re.findall(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}", str(data)))


def _copy_home(source_dir, to_home):
    """``to_home/`` as it is; from ``dot_claude/`` what Claude Code reads from ``~/.claude`` too."""
    import shutil

    warnings = []
    if (source_dir / "to_home").is_dir():
        shutil.copytree(str(source_dir / "to_home"), str(to_home), dirs_exist_ok=True)
    dot = source_dir / "dot_claude"
    if dot.is_dir():
        for entry in sorted(dot.iterdir()):
            if entry.name in DOT_CLAUDE_TAKEN:
                dest = to_home / ".claude" / entry.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if entry.is_dir() else shutil.copy2)(str(entry), str(dest))
            else:
                warnings.append("%s: dot_claude/%s has no place in the agent's home (sac copies CLAUDE.md, commands/, "
                                "skills/, agents/ and hooks/ to to_home/.claude/); not imported"
                                % (entry, entry.name))
    return warnings
