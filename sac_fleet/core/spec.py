"""The agent spec: ``spec.yaml`` (plus an optional sibling ``to_home/``) -> a validated ``Spec``.

``parse_spec(path_or_dir)`` is the only way in; ``Spec.to_node()`` is the plain
dict the node receives (contract: every key present, defaults filled in, no
secrets). Every mistake becomes one ``SpecError`` line naming file, line and
field; docs/spec-reference.md lists the fields and examples of the errors.

The parts live beside it: the field types (spec_fields.py), the sections with their
defaults (spec_sections.py), the ``to_home/`` reader (to_home.py); every public name
of those is importable from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from sac_node.protocol.errors import SpecError

from .documents import Document, describe, load_document, validation_error
from .spec_fields import (CREDENTIAL_ENV, ENGINE_OWNED_FLAGS, ENV_NAME_RE, LABEL_KEY_RE, NAME_RE, PERMISSION_FLAGS,
                          PERMISSION_MODES, SECRET_VALUE_RE, TOOL_RULE_RE, AgentName, Bind, Count, EnvName, EnvValue,
                          Flag, KeyVariable, LabelKey, NonEmpty, Seconds, Text, ToolRule, Workdir)
from .spec_hooks import HOOK_EVENTS, HookCommand, Hooks
from .spec_sections import (Account, AgentSettings, Backoff, Claude, Engine, Health, Isolation, Journal, Metadata,
                            Placement, Provider, Quota, Restart)
from .to_home import TO_HOME_DIR, TO_HOME_MAX_BYTES, read_to_home
from .validation import ConfigModel, invalid

__all__ = [
    "API_VERSION", "KIND", "SPEC_FILE", "TO_HOME_DIR", "TO_HOME_MAX_BYTES",
    "NAME_RE", "ENV_NAME_RE", "LABEL_KEY_RE", "SECRET_VALUE_RE", "TOOL_RULE_RE", "CREDENTIAL_ENV",
    "ENGINE_OWNED_FLAGS", "PERMISSION_FLAGS", "PERMISSION_MODES",
    "AgentName", "Bind", "Count", "EnvName", "EnvValue", "Flag", "KeyVariable", "LabelKey", "NonEmpty", "Seconds",
    "Text", "ToolRule", "Workdir",
    "Account", "AgentSettings", "Backoff", "Claude", "Engine", "Health", "Isolation", "Journal", "Metadata",
    "Placement", "Provider", "Quota", "Restart", "HOOK_EVENTS", "HookCommand", "Hooks",
    "Spec", "parse_spec", "spec_file", "validate_spec", "read_to_home",
]

API_VERSION = "sac/v1"
KIND = "Agent"
SPEC_FILE = "spec.yaml"


class Spec(ConfigModel):
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
            raise invalid("%s is not supported (write apiVersion: %s)" % (describe(value), API_VERSION))
        return value

    @field_validator("kind", mode="before")
    @classmethod
    def _agent_kind(cls, value: Any) -> Any:
        if value != KIND:
            raise invalid("%s is not a spec kind (a spec.yaml has kind: %s)" % (describe(value), KIND))
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
        # Likewise hooks and startup commands: there only when the spec has some.
        if body.startup_commands:
            node["startup_commands"] = list(body.startup_commands)
        if any(getattr(body.hooks, event) for event in HOOK_EVENTS):
            node["hooks"] = body.hooks.model_dump()
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
