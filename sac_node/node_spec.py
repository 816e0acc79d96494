"""The resolved spec as the node reads it: `NodeSpec.from_wire(dict)`, every default filled in here.

The head sends a plain dict (sac_fleet/core/spec.py `Spec.to_node`, with its own defaults
filled in by pydantic); the node keeps it as it came in spec.json (its hash is the head's
way to tell "changed"). Every reading of it on the node goes through this value, so a field
the dict leaves out (an older head, a test, a hand-written spec.json) has its default in one
place. Pure and stdlib only: namedtuples with defaults.
"""

from collections import namedtuple

from .protocol.messages import secret_names

ANTHROPIC_URL = "https://api.anthropic.com"  # the provider of a spec that names none
DEFAULT_IMAGE = "~/.sac/images/sac-base.sif"
KEEP_TURNS = 1000
KEEP_KEYS_S = 7 * 24 * 3600.0


def _section(wire, key):
    value = wire.get(key) if isinstance(wire, dict) else None
    return value if isinstance(value, dict) else {}


def _given(section, key, default):
    """section[key], or `default` when it is missing or null."""
    value = section.get(key)
    return default if value is None else value


def _read(cls, section, convert):
    """A `cls` from a wire section whose keys are its fields: a missing or null one takes its default."""
    return cls(*(convert(_given(section, field, default)) for field, default in cls._field_defaults.items()))


class Engine(namedtuple("Engine", "kind command", defaults=("claude", ()))):
    """`engine`: claude, or a command that speaks Claude Code's stream-json."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, engine):
        return cls(_given(engine, "kind", "claude"), tuple(engine.get("command") or ()))

    @property
    def is_claude(self):
        return self.kind == "claude"


Provider = namedtuple("Provider", "base_url api_key_env", defaults=(None, None))
Provider.__doc__ = "`claude.provider`: the model provider's URL (None: Anthropic) and its key's variable name."


class Quota(namedtuple("Quota", "rotate_at cooldown_s max_cooldown_s overload_backoff_s",
                       defaults=(0.9, 60.0, 900.0, 5.0))):
    """`claude.quota`: how several accounts meet rate limits (sac_node/accounts.py)."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, quota):
        return _read(cls, quota, float)


class Claude(namedtuple("Claude", "model provider allowed_tools disallowed_tools permission_mode flags session "
                                  "accounts quota",
                        defaults=(None, Provider(), (), (), None, (), "fresh", (), Quota()))):
    """`claude`: the Claude Code engine's settings. `accounts` are the wire's dicts (name, api_key_env
    or config_dir, limit_tokens)."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, claude):
        provider = _section(claude, "provider")
        return cls(claude.get("model"), Provider(provider.get("base_url"), provider.get("api_key_env")),
                   tuple(claude.get("allowed_tools") or ()), tuple(claude.get("disallowed_tools") or ()),
                   claude.get("permission_mode"), tuple(claude.get("flags") or ()),
                   _given(claude, "session", "fresh"),
                   tuple(a for a in claude.get("accounts") or () if isinstance(a, dict)),
                   Quota.from_wire(_section(claude, "quota")))


class Restart(namedtuple("Restart", "policy max_retries initial maximum multiplier",
                         defaults=("on-failure", 5, 1.0, 60.0, 2.0))):
    """`restart`: the policy and its backoff (supervision/restart_policy.py)."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, restart):
        backoff, default = _section(restart, "backoff"), cls._field_defaults
        return cls(_given(restart, "policy", default["policy"]),
                   int(_given(restart, "max_retries", default["max_retries"])),
                   float(_given(backoff, "initial", default["initial"])),
                   float(_given(backoff, "max", default["maximum"])),
                   float(_given(backoff, "multiplier", default["multiplier"])))


class Health(namedtuple("Health", "turn_timeout_s stall_timeout_s", defaults=(600.0, 300.0))):
    """`health`: how long a turn may run, and how long its engine may stay silent (0 or null: the default)."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, health):
        return _read(cls, {k: v for k, v in health.items() if v}, float)


class JournalSettings(namedtuple("JournalSettings", "keep_turns keep_keys_s", defaults=(KEEP_TURNS, KEEP_KEYS_S))):
    """`journal`: how much of its ended turns an agent keeps (journal.Retention applies it)."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, journal):
        return cls(int(_given(journal, "keep_turns", KEEP_TURNS)), float(_given(journal, "keep_keys_s", KEEP_KEYS_S)))


class Isolation(namedtuple("Isolation", "runtime image binds network gpus",
                           defaults=("auto", DEFAULT_IMAGE, (), "provider", False))):
    """`isolation`: the sandbox (sandbox.py) and its network (egress.py)."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, isolation):
        read = _read(cls, dict(isolation, image=isolation.get("image") or None), lambda value: value)
        return read._replace(binds=tuple(read.binds), gpus=bool(read.gpus))


HOOK_EVENTS = ("pre_start", "post_start", "pre_stop", "post_stop", "on_failure")
HOOK_TIMEOUT_S = 60.0

HookCommand = namedtuple("HookCommand", "run timeout_s")
HookCommand.__doc__ = "One hook command: a shell line and the seconds it may take."


class Hooks(namedtuple("Hooks", HOOK_EVENTS, defaults=((),) * len(HOOK_EVENTS))):
    """`hooks`: the commands of each moment of the agent's life (lifecycle.py runs them)."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, hooks):
        return cls(*(tuple(_hook_command(entry) for entry in hooks.get(event) or ()) for event in HOOK_EVENTS))


def _hook_command(entry):
    """A wire entry ({run, timeout_s}, or a bare string) as a HookCommand; a missing timeout is the default."""
    if isinstance(entry, str):
        return HookCommand(entry, HOOK_TIMEOUT_S)
    return HookCommand(str(entry.get("run") or ""), float(_given(entry, "timeout_s", HOOK_TIMEOUT_S)))


class NodeSpec(namedtuple("NodeSpec", "name source labels workdir engine claude env startup_prompts restart "
                                      "health journal isolation fleet generation secret_names hooks "
                                      "startup_commands", defaults=(Hooks(), ()))):
    """One agent's resolved spec on the node. Build it with `from_wire`."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, wire):
        """The NodeSpec of a spec dict as the head sends it (and spec.json keeps it); defaults for what it lacks."""
        return cls(
            name=wire.get("name"), source=wire.get("source") or "spec", labels=dict(wire.get("labels") or {}),
            workdir=wire.get("workdir") or "work", engine=Engine.from_wire(_section(wire, "engine")),
            claude=Claude.from_wire(_section(wire, "claude")),
            env={str(k): str(v) for k, v in (wire.get("env") or {}).items()},
            startup_prompts=tuple(wire.get("startup_prompts") or ()),
            restart=Restart.from_wire(_section(wire, "restart")), health=Health.from_wire(_section(wire, "health")),
            journal=JournalSettings.from_wire(_section(wire, "journal")),
            isolation=Isolation.from_wire(_section(wire, "isolation")),
            fleet=wire.get("fleet"), generation=wire.get("generation"), secret_names=tuple(secret_names(wire)),
            hooks=Hooks.from_wire(_section(wire, "hooks")),
            startup_commands=tuple(str(line) for line in wire.get("startup_commands") or ()))
