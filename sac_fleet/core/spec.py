"""The agent spec: ``spec.yaml`` (plus an optional sibling ``to_home/``) -> a validated ``Spec``.

``parse_spec(path_or_dir)`` is the only way in; ``Spec.to_node()`` is the plain
dict the node receives (contract: every key present, defaults filled in, no
secrets). Every mistake becomes one ``SpecError`` line naming file, line and
field; docs/spec-reference.md lists the fields and examples of the errors.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, StrictBool,
                      StringConstraints, ValidationError, ValidationInfo, field_validator, model_validator)
from pydantic_core import PydanticCustomError

from sac_node.protocol.errors import SpecError
from sac_node.protocol.messages import NAME_RE

from .documents import Document, describe, load_document, validation_error

API_VERSION = "sac/v1"
KIND = "Agent"
SPEC_FILE = "spec.yaml"
TO_HOME_DIR = "to_home"
TO_HOME_MAX_BYTES = 10 * 1024 * 1024

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
SECRET_VALUE_RE = re.compile(r"sk-ant-|sk-[A-Za-z0-9]{20,}")
CREDENTIAL_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
ENGINE_OWNED_FLAGS = ("-p", "--print", "--input-format", "--output-format", "--resume", "-r", "--continue", "-c")
# Flags that decide which tools run: sac builds them from the spec's fields (sac_node/engine.py).
PERMISSION_FLAGS = {"--allowedTools": "allowed_tools", "--allowed-tools": "allowed_tools",
                    "--disallowedTools": "disallowed_tools", "--disallowed-tools": "disallowed_tools",
                    "--permission-mode": "permission_mode", "--dangerously-skip-permissions": "permission_mode"}
PERMISSION_MODES = ("default", "acceptEdits", "dontAsk", "plan", "bypassPermissions")
# A tool name (Bash, mcp__server__tool), optionally with a rule in parentheses: Bash(git:*), Read(./src/**).
TOOL_RULE_RE = re.compile(r"^[A-Za-z0-9_-]+(\(.+\))?$", re.S)
_SECRETS_HINT = "put the key in <state_dir>/secrets.env on the host as KEY=VALUE and name KEY in claude.provider.api_key_env"


def _invalid(message: str) -> PydanticCustomError:
    # The message travels as context so braces in it are never treated as a template.
    return PydanticCustomError("sac_invalid", "{reason}", {"reason": message})


# --- field types ---------------------------------------------------------------


def _text(value: Any) -> str:
    """A string; a whole number is accepted and written out (8080 -> "8080")."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _invalid("expected a string, got %s (quote it, e.g. \"...\")" % describe(value))


def _agent_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise _invalid("%s is not a valid agent name (lowercase letters, digits and '-', starting with a letter or "
                       "digit, at most 63 characters, no dots)" % describe(value))
    return value


def _env_name(value: str) -> str:
    if not ENV_NAME_RE.match(value):
        raise _invalid("not a valid environment variable name (letters, digits and '_', not starting with a digit)")
    if value in CREDENTIAL_ENV:
        raise _invalid("a credential does not belong in a spec (%s)" % _SECRETS_HINT)
    return value


def _not_secret(value: str) -> str:
    # Never echo the value: it looks like a key.
    if SECRET_VALUE_RE.search(value):
        raise _invalid("looks like an API key; a credential does not belong in a spec (%s)" % _SECRETS_HINT)
    return value


def _flag(value: str) -> str:
    name = value.split("=", 1)[0]
    if name in ENGINE_OWNED_FLAGS:
        raise _invalid("%s is set by sac itself (remove it)" % describe(value))
    if name in PERMISSION_FLAGS:
        raise _invalid("%s is set by sac from claude.%s (write it there and remove the flag)"
                       % (describe(value), PERMISSION_FLAGS[name]))
    return value


def _tool_rule(value: str) -> str:
    if not TOOL_RULE_RE.match(value):
        raise _invalid("%s is not a tool rule (write a tool name like Bash, a pattern like \"Bash(git:*)\", or an "
                       "MCP tool like mcp__server__tool; one per list item)" % describe(value))
    return value


def _label_key(value: str) -> str:
    if not LABEL_KEY_RE.match(value):
        raise _invalid("not a valid label key (letters, digits, '.', '_', '/', '-', at most 63 characters)")
    return value


def _bind(value: str) -> str:
    parts = value.split(":")
    fix = "write SRC:DST or SRC:DST:ro, e.g. /data/shared:/data:ro"
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise _invalid("%s is not a bind (%s)" % (describe(value), fix))
    src, dst = parts[0], parts[1]
    if not (src.startswith("/") or src == "~" or src.startswith("~/")):
        raise _invalid("source %s must be an absolute path or start with ~/ (%s)" % (describe(src), fix))
    if not dst.startswith("/"):
        raise _invalid("destination %s must be an absolute path (%s)" % (describe(dst), fix))
    if len(parts) == 3 and parts[2] not in ("ro", "rw"):
        raise _invalid("mode %s is not one of ro, rw (%s)" % (describe(parts[2]), fix))
    return value


def _workdir(value: str) -> str:
    if value.startswith("/") or value == "~" or value.startswith("~/"):
        return value.rstrip("/") or "/"
    return str(PurePosixPath(*[p for p in value.split("/") if p not in ("", ".")]) if value.strip("./") else ".")


NonEmpty = Annotated[str, StringConstraints(min_length=1)]
Text = Annotated[str, BeforeValidator(_text)]
EnvValue = Annotated[str, BeforeValidator(_text), AfterValidator(_not_secret)]
Flag = Annotated[str, StringConstraints(min_length=1), AfterValidator(_not_secret), AfterValidator(_flag)]
ToolRule = Annotated[str, AfterValidator(_tool_rule)]
AgentName = Annotated[str, AfterValidator(_agent_name)]
EnvName = Annotated[str, AfterValidator(_env_name)]
LabelKey = Annotated[str, AfterValidator(_label_key)]
Bind = Annotated[str, AfterValidator(_bind)]
Workdir = Annotated[str, StringConstraints(min_length=1), AfterValidator(_workdir)]
Seconds = Annotated[float, Field(strict=True, gt=0)]
Count = Annotated[int, Field(strict=True, ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, allow_inf_nan=False)


# --- sections --------------------------------------------------------------------


class Metadata(_Model):
    """``metadata``: the agent's name (default: the spec's directory name) and labels."""

    name: AgentName = Field(json_schema_extra={"example": "reviewer"})
    labels: dict[LabelKey, Text] = {}

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any, info: ValidationInfo) -> Any:
        default = (info.context or {}).get("default_name")
        if isinstance(data, dict) and "name" not in data and default is not None:
            if not NAME_RE.match(default):
                raise _invalid("no name, and the directory name %s is not a valid agent name (set metadata.name: "
                               "lowercase letters, digits and '-')" % describe(default))
            data = dict(data, name=default)
        return data


class Engine(_Model):
    """``engine``: ``claude`` or ``{command: [prog, args...]}`` (any stream-json speaker)."""

    kind: Literal["claude", "command"] = "claude"
    command: list[NonEmpty] | None = Field(None, min_length=1, json_schema_extra={"example": "[prog, args...]"})

    @model_validator(mode="after")
    def _command_matches_kind(self) -> "Engine":
        if self.kind == "command" and not self.command:
            raise _invalid("needs command: [prog, args...]")
        if self.kind == "claude" and self.command is not None:
            raise _invalid("kind claude takes no command (remove command, or write engine: {command: [...]})")
        return self


def _engine(value: Any) -> Any:
    if isinstance(value, str):
        if value != "claude":
            raise _invalid("%s is not an engine (write engine: claude, or engine: {command: [prog, args...]})"
                           % describe(value))
        return {"kind": "claude"}
    if isinstance(value, dict) and "kind" not in value:
        return dict(value, kind="command")
    return value


class Provider(_Model):
    """``claude.provider``: where the engine sends model requests (default: Anthropic)."""

    base_url: NonEmpty | None = None
    api_key_env: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_literal_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in ("base_url", "api_key_env") and re.search(r"key|token|secret|passw", str(key), re.I):
                    raise _invalid("%r is refused: a credential does not belong in a spec (%s)" % (str(key), _SECRETS_HINT))
        return data

    @field_validator("api_key_env", mode="before")
    @classmethod
    def _variable_name(cls, value: Any) -> Any:
        # Never echo the value: it may be the key itself.
        if value is None:
            return None
        if not isinstance(value, str) or not ENV_NAME_RE.match(value) or _looks_like_key(value):
            raise _invalid("must be the NAME of an environment variable, like SAC_PROVIDER_KEY, not the key "
                           "itself (%s)" % _SECRETS_HINT)
        return value

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
            raise _invalid("must not contain credentials (%s)" % _SECRETS_HINT)
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise _invalid("%s is not an http(s) URL (e.g. http://127.0.0.1:8787)" % describe(value))
        return value.rstrip("/")


def _looks_like_key(value: str) -> bool:
    """A variable name is short or has words; a key is long mixed letters and digits."""
    return len(value) >= 24 and "_" not in value and any(c.isdigit() for c in value) and any(c.islower() for c in value)


class Account(_Model):
    """One entry of ``claude.accounts``: an API key (by variable name) or an OAuth config dir."""

    name: Annotated[str, AfterValidator(_agent_name)]
    api_key_env: str | None = None
    config_dir: NonEmpty | None = None
    limit_tokens: Annotated[int, Field(strict=True, gt=0)] | None = None

    _variable_name = field_validator("api_key_env", mode="before")(Provider._variable_name.__func__)

    @model_validator(mode="after")
    def _one_credential(self) -> "Account":
        if (self.api_key_env is None) == (self.config_dir is None):
            raise _invalid("give exactly one of api_key_env (an API key's variable name) or config_dir "
                           "(a Claude Code config dir holding an OAuth login)")
        return self


class Quota(_Model):
    """``claude.quota``: how an agent with several accounts meets rate limits and quota."""

    rotate_at: Annotated[float, Field(strict=True, gt=0, le=1)] = 0.9
    cooldown_s: Seconds = 60.0
    max_cooldown_s: Seconds = 900.0
    overload_backoff_s: Seconds = 5.0


class Claude(_Model):
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
            raise _invalid("bypassPermissions allows every tool, so allowed_tools would restrict nothing (remove "
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
                raise _invalid("account name %r is used twice; names must be unique" % name)
        return self


class Backoff(_Model):
    """``restart.backoff``: delay before restart n is initial * multiplier**(n-1), capped at max."""

    initial: Seconds = 1.0
    max: Seconds = 60.0
    multiplier: Annotated[float, Field(strict=True, ge=1)] = 2.0

    @model_validator(mode="after")
    def _ordered(self) -> "Backoff":
        if self.max < self.initial:
            raise _invalid("max (%g) is smaller than initial (%g) (raise max or lower initial)" % (self.max, self.initial))
        return self


class Restart(_Model):
    """``restart``: what happens when the engine exits."""

    policy: Literal["never", "on-failure", "always"] = "on-failure"
    max_retries: Count = 5
    backoff: Backoff = Backoff()


class Health(_Model):
    """``health``: how long a turn may run, and how long the engine may stay silent in one."""

    turn_timeout_s: Seconds = 600.0
    stall_timeout_s: Seconds = 300.0


class Journal(_Model):
    """``journal``: how much of its ended turns an agent keeps (docs/reliability.md)."""

    keep_turns: Annotated[int, Field(strict=True, ge=10)] = 1000
    keep_keys_s: Seconds = 604800.0


class Isolation(_Model):
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
            raise _invalid("network: %s needs a sandbox, but runtime is none (the host's network); choose a "
                           "runtime (auto, bwrap, apptainer) or network: host" % self.network)
        return self


class Placement(_Model):
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
            raise _invalid("per_host runs one copy on each matching host; it cannot be combined with replicas or "
                           "singleton (remove one)")
        if self.singleton and self.replicas != 1:
            raise _invalid("singleton means one copy; it cannot be combined with replicas > 1 (remove one)")
        return self


class AgentSettings(_Model):
    """The ``spec`` section."""

    workdir: Workdir = "work"
    engine: Annotated[Engine, BeforeValidator(_engine)] = Engine()
    claude: Claude = Claude()
    env: dict[EnvName, EnvValue] = {}
    startup_prompts: list[NonEmpty] = []
    restart: Restart = Restart()
    health: Health = Health()
    journal: Journal = Journal()
    isolation: Isolation = Isolation()
    placement: Placement = Placement()


class Spec(_Model):
    """A validated agent spec: the ``spec.yaml`` document plus its ``to_home/`` files."""

    api_version: str = Field(alias="apiVersion", json_schema_extra={"example": API_VERSION})
    kind: str = Field(json_schema_extra={"example": KIND})
    metadata: Metadata
    spec: AgentSettings = AgentSettings()

    _source: str = PrivateAttr("")
    _to_home: dict = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _metadata_optional(cls, data: Any) -> Any:
        if isinstance(data, dict) and "metadata" not in data:
            data = dict(data, metadata={})
        return data

    @field_validator("api_version", mode="before")
    @classmethod
    def _known_version(cls, value: Any) -> Any:
        if value != API_VERSION:
            raise _invalid("%s is not supported (write apiVersion: %s)" % (describe(value), API_VERSION))
        return value

    @field_validator("kind", mode="before")
    @classmethod
    def _agent_kind(cls, value: Any) -> Any:
        if value != KIND:
            raise _invalid("%s is not a spec kind (a spec.yaml has kind: %s)" % (describe(value), KIND))
        return value

    @property
    def name(self) -> str:
        """The agent's name."""
        return self.metadata.name

    @property
    def source(self) -> str:
        """Absolute path of the spec file this came from ("" if built in memory)."""
        return self._source

    @property
    def to_home(self) -> dict[str, bytes]:
        """Files of the sibling ``to_home/`` directory: relative posix path -> bytes."""
        return dict(self._to_home)

    def to_node(self) -> dict:
        """The plain dict the node receives (see the contract in docs/spec-reference.md)."""
        body = self.spec
        engine = body.engine.model_dump(exclude_none=True)
        node = {
            "name": self.metadata.name,
            "labels": dict(self.metadata.labels),
            "workdir": body.workdir,
            "engine": engine,
            "claude": body.claude.to_node(),
            "env": dict(body.env),
            "startup_prompts": list(body.startup_prompts),
            "restart": body.restart.model_dump(),
            "health": body.health.model_dump(),
            "isolation": body.isolation.model_dump(),
            "placement": body.placement.model_dump(),
            "to_home": dict(self._to_home),
            "source": self._source,
        }
        if "journal" in body.model_fields_set:
            # Only when the spec says it: the node's defaults are the same, and a spec without it
            # keeps the hash it had before `journal` existed (so an upgrade restarts no agent).
            node["journal"] = body.journal.model_dump()
        return node


# --- reading ---------------------------------------------------------------------


def parse_spec(target, default_name: str | None = None) -> Spec:
    """Read, validate and resolve the spec at ``target`` (a spec.yaml or a directory holding one).

    ``metadata.name`` defaults to ``default_name``, else to the spec's directory
    name. Raises ``SpecError`` with one line ``FILE:LINE FIELD: problem (fix)``.
    """
    spec_path = spec_file(target)
    doc = load_document(spec_path, SpecError, example="docs/spec-reference.md")
    if default_name is None:
        default_name = spec_path.resolve().parent.name
    spec = validate_spec(doc, default_name)
    spec._source = str(spec_path.resolve())
    spec._to_home = read_to_home(spec_path.parent / TO_HOME_DIR)
    return spec


def spec_file(target) -> Path:
    """The spec.yaml that ``target`` names: the file itself, or ``<dir>/spec.yaml``."""
    path = Path(target)
    if path.is_dir():
        inside = path / SPEC_FILE
        if not inside.is_file():
            raise SpecError("%s: no %s in this directory (create %s or pass the spec file itself)" % (path, SPEC_FILE, inside))
        return inside
    if not path.exists():
        raise SpecError("%s: no such file or directory (pass a spec.yaml or a directory containing one)" % path)
    return path


def validate_spec(doc: Document, default_name: str | None = None) -> Spec:
    """Validate an already loaded document; errors point into ``doc``. No ``to_home``, no source."""
    try:
        return Spec.model_validate(doc.data, context={"default_name": default_name})
    except ValidationError as exc:
        raise validation_error(doc, exc, SpecError, model=Spec) from exc


def read_to_home(directory, max_bytes: int = TO_HOME_MAX_BYTES) -> dict[str, bytes]:
    """Files under ``directory`` as relative posix path -> bytes ({} if it does not exist).

    Refuses symlinks that lead outside it, symlinked directories, special files
    and more than ``max_bytes`` in total, each with a SpecError naming the path.
    """
    directory = Path(directory)
    if not directory.exists() and not directory.is_symlink():
        return {}
    root = directory.resolve()
    if not root.is_dir():
        raise SpecError("%s: not a directory (to_home/ holds files copied into the agent's home)" % directory)
    files, total = {}, 0
    for path in sorted(_walk_files(root, directory)):
        relative = path.relative_to(root).as_posix()
        shown = "%s/%s" % (directory, relative)
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root):
                raise SpecError("%s: symlink leads outside %s/ (copy the file in instead)" % (shown, TO_HOME_DIR))
            if not target.exists():
                raise SpecError("%s: broken symlink (remove it)" % shown)
        if not path.is_file():
            raise SpecError("%s: not a regular file (to_home/ may hold only files and directories)" % shown)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise SpecError("%s: cannot read: %s" % (shown, exc.strerror or exc)) from None
        total += len(content)
        if total > max_bytes:
            raise SpecError("%s: more than %d MB in total (keep to_home/ small: CLAUDE.md, settings, MCP config)"
                            % (directory, max_bytes // (1024 * 1024)))
        files[relative] = content
    return files


def _walk_files(root: Path, shown_dir: Path):
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            entries = list(current.iterdir())
        except OSError as exc:
            raise SpecError("%s: cannot list: %s" % (current, exc.strerror or exc)) from None
        for entry in entries:
            if entry.is_symlink() and entry.is_dir():
                raise SpecError("%s/%s: symlinked directories are not copied (copy the files in instead)"
                                % (shown_dir, entry.relative_to(root).as_posix()))
            if entry.is_dir() and not entry.is_symlink():
                stack.append(entry)
            else:
                yield entry
