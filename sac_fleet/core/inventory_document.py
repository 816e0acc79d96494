"""The inventory file's shape: its sections as pydantic models, and sac's defaults for a host.

inventory.py validates a document against ``InventoryDocument``, then resolves
hosts (inventory_hosts.py) and agents (inventory_agents.py) from it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StrictBool, StringConstraints, model_validator

from .host_engine import EngineSetting
from .inventory_slurm import SlurmSettings
from .secret_sources import Secrets
from .spec import LabelKey, NonEmpty, Placement, Text
from .validation import ConfigModel, invalid, null_as_empty

HOST_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
HostName = Annotated[str, StringConstraints(pattern=HOST_NAME_RE.pattern)]

# Defaults of sac's own fields; ssh's fields (user, port, identity_file, known_hosts) have none here.
SAC_DEFAULTS = {"transport": "ssh", "python": "python3", "state_dir": "~/.sac",
                "connect_timeout": 10.0, "keepalive_s": 2.0}


def hosts_from_list(value: Any) -> Any:
    """``hosts_from``: one path or a list of them."""
    return [value] if isinstance(value, str) else value


def _some_hosts(value: dict) -> dict:
    if not value:
        raise invalid("no hosts (add one, e.g. local: {transport: local})")
    return value


def _group_entry(value: Any) -> Any:
    return {"hosts": value} if isinstance(value, list) else value


class GroupEntry(ConfigModel):
    """One entry under ``groups``: a list of hosts, or ``{hosts: [...], secrets: {...}}``."""

    hosts: list[NonEmpty] = []
    secrets: Secrets = {}
    engine: EngineSetting | None = None  # which Claude Code its hosts run (core/host_engine.py)


class Defaults(ConfigModel):
    """``defaults``: values for every host that does not set its own."""

    transport: Literal["ssh", "local"] | None = None
    user: NonEmpty | None = None
    port: Annotated[int, Field(strict=True, ge=1, le=65535)] | None = None
    identity_file: NonEmpty | None = None
    known_hosts: NonEmpty | None = None
    python: NonEmpty | None = None
    state_dir: NonEmpty | None = None
    connect_timeout: Annotated[float, Field(strict=True, gt=0)] | None = None
    keepalive_s: Annotated[float, Field(strict=True, ge=0)] | None = None
    capacity: Annotated[int, Field(strict=True, ge=0)] | None = None
    env_preamble: NonEmpty | None = None
    engine: EngineSetting | None = None  # which Claude Code the host runs (core/host_engine.py)


class HostEntry(Defaults):
    """One entry under ``hosts``."""

    address: NonEmpty | None = None
    jump: list[NonEmpty] = []
    jump_only: StrictBool = False
    labels: dict[LabelKey, Text] = {}
    secrets: Secrets = {}
    slurm: SlurmSettings | None = None  # agents run in Slurm allocations submitted from this login node


class AgentEntry(ConfigModel):
    """One entry under ``agents``: a spec (file or directory), or a template with a parameter file (one agent
    per row, named by its ``name`` column or the ``name`` pattern); and an optional placement."""

    spec: NonEmpty | None = Field(None, json_schema_extra={"example": "agents/reviewer"})
    template: NonEmpty | None = None
    params: NonEmpty | None = None
    name: NonEmpty | None = None
    placement: Placement | None = None

    @model_validator(mode="after")
    def _spec_or_template(self) -> "AgentEntry":
        if (self.spec is None) == (self.template is None):
            raise invalid("give spec: (one agent) or template: with params: (one agent per row), not %s"
                          % ("both" if self.spec else "neither"))
        if self.template is not None and self.params is None:
            raise invalid("a template needs params: FILE (.csv, .yaml or .jsonl, one row per agent)")
        if self.spec is not None and (self.params or self.name):
            raise invalid("params: and name: go with template:, not spec: (write template: %s)" % self.spec)
        return self


class InventoryDocument(ConfigModel):
    """The whole file."""

    name: HostName | None = Field(None, json_schema_extra={"example": "docs-fleet"})
    hosts_from: Annotated[list[NonEmpty], BeforeValidator(hosts_from_list)] = Field(
        default=[], json_schema_extra={"example": "ansible/hosts.ini"})
    defaults: Annotated[Defaults, BeforeValidator(null_as_empty)] = Defaults()
    hosts: Annotated[dict[HostName, Annotated[HostEntry, BeforeValidator(null_as_empty)]],
                     AfterValidator(_some_hosts)] = Field(json_schema_extra={"example": "{local: {transport: local}}"})
    groups: Annotated[dict[HostName, Annotated[GroupEntry, BeforeValidator(_group_entry)]],
                      BeforeValidator(null_as_empty)] = {}
    secrets: Secrets = Field(default={}, json_schema_extra={"example": "{ANTHROPIC_API_KEY: {env: LAB_KEY}}"})
    agents: list[AgentEntry] = []
