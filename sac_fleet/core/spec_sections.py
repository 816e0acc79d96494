"""The sections of a spec (``metadata``, ``spec.claude``, ``spec.restart`` ...) as pydantic models.

Each field's default is stated here and only here: ``Spec.to_node()`` dumps these models,
so the node receives them filled in, and docs/spec-reference.md's tables are checked
against them (tests/unit/test_spec_defaults.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, StrictBool, ValidationInfo, field_validator, model_validator

from .spec_hooks import Command, Hooks
from .spec_fields import (_SECRETS_HINT, NAME_RE, PERMISSION_MODES, AgentName, Bind, Count, EnvName, EnvValue, Flag,
                          KeyVariable, LabelKey, NonEmpty, Seconds, Text, ToolRule, Workdir)
from .validation import ConfigModel, invalid
from .wording import describe


class Metadata(ConfigModel):
    """``metadata``: the agent's name (default: the spec's directory name) and labels."""

    name: AgentName = Field(json_schema_extra={"example": "reviewer"})
    labels: dict[LabelKey, Text] = {}

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any, info: ValidationInfo) -> Any:
        default = (info.context or {}).get("default_name")
        if isinstance(data, dict) and "name" not in data and default is not None:
            if not NAME_RE.fullmatch(default):
                raise invalid("no name, and the directory name %s is not a valid agent name (set metadata.name: "
                              "lowercase letters, digits and '-')" % describe(default))
            data = dict(data, name=default)
        return data


class Engine(ConfigModel):
    """``engine``: ``claude`` or ``{command: [prog, args...]}`` (any stream-json speaker)."""

    kind: Literal["claude", "command"] = "claude"
    command: list[NonEmpty] | None = Field(None, min_length=1, json_schema_extra={"example": "[prog, args...]"})

    @model_validator(mode="after")
    def _command_matches_kind(self) -> "Engine":
        if self.kind == "command" and not self.command:
            raise invalid("needs command: [prog, args...]")
        if self.kind == "claude" and self.command is not None:
            raise invalid("kind claude takes no command (remove command, or write engine: {command: [...]})")
        return self


def _engine(value: Any) -> Any:
    if isinstance(value, str):
        if value != "claude":
            raise invalid("%s is not an engine (write engine: claude, or engine: {command: [prog, args...]})"
                          % describe(value))
        return {"kind": "claude"}
    if isinstance(value, dict) and "kind" not in value:
        return dict(value, kind="command")
    return value


class Provider(ConfigModel):
    """``claude.provider``: where the engine sends model requests (default: Anthropic)."""

    base_url: NonEmpty | None = None
    api_key_env: KeyVariable = None

    @model_validator(mode="before")
    @classmethod
    def _no_literal_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in ("base_url", "api_key_env") and re.search(r"key|token|secret|passw", str(key), re.I):
                    raise invalid("%r is refused: a credential does not belong in a spec (%s)" % (str(key), _SECRETS_HINT))
        return data

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            parts, port_ok = None, False
        if parts is not None and (parts.username or parts.password):
            raise invalid("must not contain credentials (%s)" % _SECRETS_HINT)
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise invalid("%s is not an http(s) URL (e.g. http://127.0.0.1:8787)" % describe(value))
        return value.rstrip("/")


class Account(ConfigModel):
    """One entry of ``claude.accounts``: an API key (by variable name) or an OAuth config dir."""

    name: AgentName
    api_key_env: KeyVariable = None
    config_dir: NonEmpty | None = None
    limit_tokens: Annotated[int, Field(strict=True, gt=0)] | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> "Account":
        if (self.api_key_env is None) == (self.config_dir is None):
            raise invalid("give exactly one of api_key_env (an API key's variable name) or config_dir "
                          "(a Claude Code config dir holding an OAuth login)")
        return self


class Quota(ConfigModel):
    """``claude.quota``: how an agent with several accounts meets rate limits and quota."""

    rotate_at: Annotated[float, Field(strict=True, gt=0, le=1)] = 0.9
    cooldown_s: Seconds = 60.0
    max_cooldown_s: Seconds = 900.0
    overload_backoff_s: Seconds = 5.0


class Claude(ConfigModel):
    """``claude``: settings of the Claude Code engine."""

    model: NonEmpty | None = None
    provider: Provider = Provider()
    allowed_tools: list[ToolRule] = []
    disallowed_tools: list[ToolRule] = []
    permission_mode: Literal[PERMISSION_MODES] | None = None
    flags: list[Flag] = []
    session: Literal["fresh", "continue"] = "fresh"
    accounts: list[Account] = []
    quota: Quota = Quota()

    @field_validator("permission_mode")
    @classmethod
    def _bypass_restricts_nothing(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value == "bypassPermissions" and info.data.get("allowed_tools"):
            raise invalid("bypassPermissions allows every tool, so allowed_tools would restrict nothing (remove "
                          "permission_mode to let sac choose a mode that enforces the list, or remove allowed_tools)")
        return value

    def to_node(self) -> dict:
        """The node's ``claude``. The permission keys are there only when the spec sets one of them: a
        spec without them keeps the hash it had before they existed (an upgrade restarts no such agent),
        and one with a tool list gets a new hash (an upgrade restarts it in the mode that enforces the list)."""
        node = self.model_dump()
        if not (self.allowed_tools or self.disallowed_tools or self.permission_mode):
            del node["disallowed_tools"], node["permission_mode"]
        return node

    @model_validator(mode="after")
    def _unique_accounts(self) -> "Claude":
        names = [a.name for a in self.accounts]
        for name in names:
            if names.count(name) > 1:
                raise invalid("account name %r is used twice; names must be unique" % name)
        return self


class Backoff(ConfigModel):
    """``restart.backoff``: delay before restart n is initial * multiplier**(n-1), capped at max."""

    initial: Seconds = 1.0
    max: Seconds = 60.0
    multiplier: Annotated[float, Field(strict=True, ge=1)] = 2.0

    @model_validator(mode="after")
    def _ordered(self) -> "Backoff":
        if self.max < self.initial:
            raise invalid("max (%g) is smaller than initial (%g) (raise max or lower initial)" % (self.max, self.initial))
        return self


class Restart(ConfigModel):
    """``restart``: what happens when the engine exits."""

    policy: Literal["never", "on-failure", "always"] = "on-failure"
    max_retries: Count = 5
    backoff: Backoff = Backoff()


class Health(ConfigModel):
    """``health``: how long a turn may run, and how long the engine may stay silent in one."""

    turn_timeout_s: Seconds = 600.0
    stall_timeout_s: Seconds = 300.0


class Journal(ConfigModel):
    """``journal``: how much of its ended turns an agent keeps (docs/reliability.md)."""

    keep_turns: Annotated[int, Field(strict=True, ge=10)] = 1000
    keep_keys_s: Seconds = 604800.0


class Isolation(ConfigModel):
    """``isolation``: the sandbox the engine runs in."""

    runtime: Literal["auto", "apptainer", "bwrap", "none"] = "auto"
    image: NonEmpty | None = None
    binds: list[Bind] = []
    network: Literal["provider", "none", "host"] = "provider"
    gpus: StrictBool = False

    @model_validator(mode="after")
    def _network_needs_a_sandbox(self) -> "Isolation":
        # runtime none leaves the host's network to the engine; a narrower ask cannot be met
        if self.runtime == "none" and "network" in self.model_fields_set and self.network != "host":
            raise invalid("network: %s needs a sandbox, but runtime is none (the host's network); choose a "
                          "runtime (auto, bwrap, apptainer) or network: host" % self.network)
        return self


class Placement(ConfigModel):
    """``placement``: where the fleet may run the agent (unused on a single machine)."""

    hosts: list[NonEmpty] = []
    group: NonEmpty | None = None
    labels: dict[LabelKey, Text] = {}
    replicas: Annotated[int, Field(strict=True, ge=1)] = 1
    per_host: StrictBool = False
    singleton: StrictBool = False
    sticky: StrictBool = True

    @model_validator(mode="after")
    def _copies_agree(self) -> "Placement":
        if self.per_host and (self.replicas != 1 or self.singleton):
            raise invalid("per_host runs one copy on each matching host; it cannot be combined with replicas or "
                          "singleton (remove one)")
        if self.singleton and self.replicas != 1:
            raise invalid("singleton means one copy; it cannot be combined with replicas > 1 (remove one)")
        return self


class AgentSettings(ConfigModel):
    """The ``spec`` section."""

    workdir: Workdir = "work"
    engine: Annotated[Engine, BeforeValidator(_engine)] = Engine()
    claude: Claude = Claude()
    env: dict[EnvName, EnvValue] = {}
    startup_prompts: list[NonEmpty] = []
    startup_commands: list[Command] = []
    hooks: Hooks = Hooks()
    restart: Restart = Restart()
    health: Health = Health()
    journal: Journal = Journal()
    isolation: Isolation = Isolation()
    placement: Placement = Placement()
