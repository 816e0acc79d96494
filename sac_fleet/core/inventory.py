"""The inventory: ``inventory.yaml`` -> hosts, groups and agents, validated (docs/inventory.md).

``load_inventory(path)`` is the way in. It reads the file (and each agent's
spec), validates it with pydantic (unknown keys refused with "did you mean"),
then cross-checks names: group members, jump hosts and pinned hosts must
exist, agent names must be unique. Every mistake is one ``InventoryError``
line ``FILE:LINE FIELD: problem (fix)``.

A ``Host`` records which fields the user wrote (``explicit``), so the SSH
transport can let ``~/.ssh/config`` fill the rest: ``user``, ``port``,
``identity_file`` and ``known_hosts`` stay None unless written, and
``address`` falls back to the host's name (which ssh_config may alias).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Optional

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StringConstraints,
                      ValidationError, model_validator)

from pydantic_core import PydanticCustomError

from sac_node.protocol.errors import InventoryError

from .documents import Document, did_you_mean, load_document, validation_error
from .placement import DesiredAgent, HostSlot, Rule, replica_names
from .spec import LabelKey, NonEmpty, Placement, Text

DEFAULT_PATH = "inventory.yaml"
ENV_VAR = "SAC_INVENTORY"
HostName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]

# Defaults of sac's own fields; ssh's fields (user, port, identity_file, known_hosts) have none here.
SAC_DEFAULTS = {"transport": "ssh", "python": "python3", "state_dir": "~/.sac",
                "connect_timeout": 10.0, "keepalive_s": 2.0}


def _empty_mapping(value: Any) -> Any:
    return {} if value is None else value


def _some_hosts(value: dict) -> dict:
    if not value:
        raise PydanticCustomError("sac_invalid", "{reason}",
                                  {"reason": "no hosts (add one, e.g. local: {transport: local})"})
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, allow_inf_nan=False)


SecretName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class SecretSource(_Model):
    """Where the head reads one secret: exactly one of ``env``, ``file`` or ``command`` (run on the head)."""

    env: NonEmpty | None = None
    file: NonEmpty | None = None
    command: NonEmpty | None = None

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("env", "file", "command") if getattr(self, k) is not None]
        if len(given) != 1:
            raise PydanticCustomError("sac_invalid", "{reason}", {"reason": "give exactly one of env (a variable "
                                      "on the head), file (a path on the head) or command (run on the head)"})
        return self

    def describe(self) -> str:
        """Where the value comes from, in words (never the value)."""
        if self.env is not None:
            return "$%s" % self.env
        return "file %s" % self.file if self.file is not None else "command `%s`" % self.command


Secrets = Annotated[dict[SecretName, SecretSource], BeforeValidator(_empty_mapping)]


def _group_entry(value: Any) -> Any:
    return {"hosts": value} if isinstance(value, list) else value


class GroupEntry(_Model):
    """One entry under ``groups``: a list of hosts, or ``{hosts: [...], secrets: {...}}``."""

    hosts: list[NonEmpty] = []
    secrets: Secrets = {}


class Defaults(_Model):
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


class HostEntry(Defaults):
    """One entry under ``hosts``."""

    address: NonEmpty | None = None
    jump: list[NonEmpty] = []
    jump_only: StrictBool = False
    labels: dict[LabelKey, Text] = {}
    secrets: Secrets = {}


class AgentEntry(_Model):
    """One entry under ``agents``: a spec (file or directory) and an optional placement."""

    spec: NonEmpty = Field(json_schema_extra={"example": "agents/reviewer"})
    placement: Placement | None = None


class InventoryDocument(_Model):
    """The whole file."""

    name: HostName | None = Field(None, json_schema_extra={"example": "docs-fleet"})
    hosts_from: Annotated[list[NonEmpty], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)] = Field(
        default=[], json_schema_extra={"example": "ansible/hosts.ini"})
    defaults: Annotated[Defaults, BeforeValidator(_empty_mapping)] = Defaults()
    hosts: Annotated[dict[HostName, Annotated[HostEntry, BeforeValidator(_empty_mapping)]],
                     AfterValidator(_some_hosts)] = Field(json_schema_extra={"example": "{local: {transport: local}}"})
    groups: Annotated[dict[HostName, Annotated[GroupEntry, BeforeValidator(_group_entry)]],
                      BeforeValidator(_empty_mapping)] = {}
    secrets: Secrets = Field(default={}, json_schema_extra={"example": "{ANTHROPIC_API_KEY: {env: LAB_KEY}}"})
    agents: list[AgentEntry] = []


@dataclass(frozen=True)
class JumpHop:
    """One hop of a jump chain: an inventory host (``host`` set) or a literal ``user@address:port``."""

    address: str
    user: Optional[str] = None
    port: Optional[int] = None
    host: Optional[str] = None

    def __str__(self):
        address = "[%s]" % self.address if ":" in self.address else self.address
        text = "%s@%s" % (self.user, address) if self.user else address
        return "%s:%d" % (text, self.port) if self.port else text


@dataclass(frozen=True)
class Host:
    """A host after defaults are applied. ``explicit`` names the fields written in the file
    (in the host's entry or in ``defaults``); the rest are sac's defaults or None."""

    name: str
    transport: str
    address: str
    user: Optional[str]
    port: Optional[int]
    identity_file: Optional[str]
    known_hosts: Optional[str]
    python: str
    state_dir: str
    connect_timeout: float
    keepalive_s: float
    jump: tuple
    jump_only: bool
    labels: Mapping[str, str]
    capacity: Optional[int]
    env_preamble: Optional[str]
    groups: frozenset
    explicit: frozenset
    line: int
    secrets: Mapping[str, SecretSource] = None  # {NAME: source}: the inventory's, its groups', its own


    def is_set(self, field: str) -> bool:
        """True when the user wrote ``field`` for this host (directly or in ``defaults``)."""
        return field in self.explicit

    def slot(self) -> HostSlot:
        """What placement needs to know about this host."""
        return HostSlot(self.name, self.labels, self.capacity, self.groups, self.jump_only)


@dataclass(frozen=True)
class InventoryAgent:
    """An agent of the inventory: its loaded spec and the placement in force."""

    name: str
    spec_path: Path
    spec: Any
    placement: Placement
    placement_from: str  # "inventory" or "spec"
    line: int

    def rule(self) -> Rule:
        """The placement as a ``placement.Rule``."""
        p = self.placement
        return Rule(hosts=tuple(p.hosts), group=p.group, labels=p.labels, replicas=p.replicas,
                    per_host=p.per_host, singleton=p.singleton, sticky=p.sticky)

    def copies(self) -> list:
        """The names its copies have on hosts (``name``, or ``name-0 ..`` for replicas)."""
        return replica_names(self.name, self.placement.replicas)


@dataclass(frozen=True)
class Inventory:
    """A validated inventory. ``hosts`` and ``agents`` keep the file's order. ``name`` (the file's
    ``name:``, else its stem) is who owns the agents the fleet starts, wherever the file lives."""

    path: Path
    hosts: Mapping[str, Host]
    groups: Mapping[str, tuple]
    agents: tuple
    name: str = ""
    warnings: tuple = ()  # what sac did not take from an Ansible inventory (hosts_from), one line each

    def host(self, name: str) -> Host:
        """The host called ``name``; InventoryError with "did you mean" when there is none."""
        if name not in self.hosts:
            raise InventoryError("%s: no host %r%s" % (self.path, name, did_you_mean(name, self.hosts)))
        return self.hosts[name]

    def agent(self, name: str) -> InventoryAgent:
        """The agent called ``name`` (or owning the copy ``name``)."""
        for agent in self.agents:
            if name == agent.name or name in agent.copies():
                return agent
        raise InventoryError("%s: no agent %r%s" % (self.path, name, did_you_mean(name, [a.name for a in self.agents])))

    def node_hosts(self) -> list:
        """Hosts that run a node (all but the ``jump_only`` ones), in file order."""
        return [host for host in self.hosts.values() if not host.jump_only]

    def slots(self) -> list:
        """Every host as placement sees it."""
        return [host.slot() for host in self.hosts.values()]

    def desired(self) -> list:
        """Every agent as placement sees it."""
        return [DesiredAgent(agent.name, agent.rule()) for agent in self.agents]

    def jump_chain(self, name: str) -> tuple:
        """The hops to go through, in order, to reach host ``name`` (jump hosts' own jumps first)."""
        return _chain(self.hosts, name, ())


def resolve_inventory_path(given=None, environ: Optional[Mapping[str, str]] = None) -> Path:
    """INVENTORY argument, else ``$SAC_INVENTORY``, else ``./inventory.yaml``."""
    environ = os.environ if environ is None else environ
    if given:
        return Path(given)
    if environ.get(ENV_VAR):
        return Path(environ[ENV_VAR])
    path = Path(DEFAULT_PATH)
    if not path.exists():
        raise InventoryError("no inventory given and ./%s does not exist (pass INVENTORY, set %s, or start "
                             "from inventory.example.yaml)" % (DEFAULT_PATH, ENV_VAR))
    return path


def load_inventory(path, *, load_specs: bool = True) -> Inventory:
    """Read and validate the inventory at ``path``, loading every agent's spec.

    With ``load_specs=False`` agents are named after their spec directory and
    use only the inventory's placement (for tools that must not read specs).
    """
    doc = load_document(path, InventoryError)
    return parse_inventory(doc, load_specs=load_specs)


def parse_inventory(doc: Document, *, load_specs: bool = True) -> Inventory:
    """Validate an already loaded document; see ``load_inventory``."""
    doc, warnings = _with_ansible_hosts(doc)
    try:
        model = InventoryDocument.model_validate(doc.data)
    except ValidationError as exc:
        raise validation_error(doc, exc, InventoryError, model=InventoryDocument) from exc
    groups = _check_groups(doc, model)
    hosts = {name: _resolve_host(doc, model, name, groups) for name in model.hosts}
    _check_hosts(doc, hosts)
    agents = tuple(_resolve_agent(doc, model, index, hosts, groups, load_specs)
                   for index in range(len(model.agents)))
    _check_agent_names(doc, agents)
    return Inventory(Path(doc.path), hosts, groups, agents, model.name or Path(doc.path).stem, warnings)


def _with_ansible_hosts(doc):
    """The document with the hosts and groups of its ``hosts_from`` files merged in, and their warnings.

    The file's own entries win field by field, so an imported host can get labels or a capacity.
    """
    data = doc.data if isinstance(doc.data, dict) else {}
    sources = data.get("hosts_from") or []
    if not sources:
        return doc, ()
    from .ansible_hosts import read_ansible

    hosts, groups, warnings = {}, {}, []
    for index, source in enumerate([sources] if isinstance(sources, str) else sources):
        if not isinstance(source, str) or not source:
            raise doc.error(("hosts_from", index), "expected the path of an Ansible inventory (INI or YAML)",
                            InventoryError)
        imported = read_ansible(Path(doc.path).parent / Path(source).expanduser())
        hosts.update(imported.hosts)
        groups.update(imported.groups)
        warnings += imported.warnings
    own_hosts = data.get("hosts") or {}
    if isinstance(own_hosts, dict):
        for name, entry in own_hosts.items():
            hosts[name] = dict(hosts.get(name) or {}, **(entry or {})) if isinstance(entry, (dict, type(None))) \
                else entry
    own_groups = data.get("groups") or {}
    if isinstance(own_groups, dict):
        groups.update(own_groups)
    merged = dict(data, hosts=hosts, groups=groups)
    return Document(doc.path, merged, doc.lines), tuple(warnings)


# -- hosts and groups -------------------------------------------------------------------


def _check_groups(doc, model) -> dict:
    groups = {}
    for group, entry in model.groups.items():
        written_as_list = isinstance((doc.data.get("groups") or {}).get(group), list)
        for index, member in enumerate(entry.hosts):
            if member not in model.hosts:
                loc = ("groups", group, index) if written_as_list else ("groups", group, "hosts", index)
                raise doc.error(loc, "no host %r in hosts%s"
                                % (member, did_you_mean(member, model.hosts)), InventoryError)
        groups[group] = tuple(dict.fromkeys(entry.hosts))
    return groups


def _resolve_host(doc, model, name, groups) -> Host:
    entry = model.hosts[name]
    defaults = model.defaults
    own = set(entry.model_fields_set)
    inherited = {field for field in defaults.model_fields_set if field not in own}

    def value(field):
        # An explicit null means "not set": fall through to defaults, then sac's own.
        if field in own and getattr(entry, field) is not None:
            return getattr(entry, field)
        if field in inherited and getattr(defaults, field) is not None:
            return getattr(defaults, field)
        return SAC_DEFAULTS.get(field)

    transport = value("transport")
    loc = ("hosts", name)
    if transport == "local":
        for field in ("address", "user", "port", "identity_file", "known_hosts", "jump", "jump_only"):
            if field in own:
                raise doc.error(loc + (field,), "a host with transport: local does not use %s (remove it)"
                                % field, InventoryError)
    jump = tuple(_jump_hop(doc, model, loc + ("jump", index), text) for index, text in enumerate(entry.jump))
    return Host(
        name=name, transport=transport, address=entry.address or name,
        user=value("user"), port=value("port"), identity_file=value("identity_file"),
        known_hosts=value("known_hosts"), python=value("python"), state_dir=value("state_dir"),
        connect_timeout=float(value("connect_timeout")), keepalive_s=float(value("keepalive_s")),
        jump=jump, jump_only=entry.jump_only, labels=dict(entry.labels), capacity=value("capacity"),
        env_preamble=value("env_preamble"),
        groups=frozenset(group for group, members in groups.items() if name in members),
        explicit=frozenset(own | inherited), line=doc.line_of(loc), secrets=_host_secrets(doc, model, name))


def _host_secrets(doc, model, name) -> dict:
    """The inventory's secrets, then its groups' (a name two groups give differently is an error), then the host's."""
    found = dict(model.secrets)
    from_group = {}
    for group, entry in model.groups.items():
        if name not in entry.hosts:
            continue
        for secret, source in entry.secrets.items():
            if secret in from_group and from_group[secret][1] != source:
                raise doc.error(("groups", group, "secrets", secret), "%s is also given by group %s, which host %s "
                                "is in too (give it once, or in hosts.%s.secrets)" % (secret, from_group[secret][0],
                                                                                     name, name), InventoryError)
            from_group[secret] = (group, source)
    found.update({secret: source for secret, (_, source) in from_group.items()})
    found.update(model.hosts[name].secrets)
    return found


def _check_hosts(doc, hosts):
    """Jump hosts must be SSH hosts and form no loop; two local hosts must not share a state dir."""
    local_dirs = {}
    for name, host in hosts.items():
        for index, hop in enumerate(host.jump):
            if hop.host is not None and hosts[hop.host].transport == "local":
                raise doc.error(("hosts", name, "jump", index), "%s has transport: local and cannot be a jump host"
                                % hop.host, InventoryError)
        _chain(hosts, name, (), doc)
        if host.transport == "local":
            if host.state_dir in local_dirs:
                raise doc.error(("hosts", name), "transport: local with the same state_dir as %s (one node per "
                                "state dir: give one another state_dir)" % local_dirs[host.state_dir], InventoryError)
            local_dirs[host.state_dir] = name


def _jump_hop(doc, model, loc, text) -> JumpHop:
    if text in model.hosts:
        return JumpHop(address=text, host=text)
    if not any(mark in text for mark in "@:."):
        raise doc.error(loc, "no host %r in hosts%s; a host outside the inventory is written user@address:port"
                        % (text, did_you_mean(text, model.hosts)), InventoryError)
    user, _, rest = text.rpartition("@")
    address, port = rest, None
    if rest.startswith("["):  # [ipv6]:port
        address, _, tail = rest[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else None
    elif rest.count(":") == 1:
        address, port = rest.split(":")
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise doc.error(loc, "%r: port must be a number from 1 to 65535 (write user@address:port)" % text,
                        InventoryError)
    if not address or (user == "" and "@" in text):
        raise doc.error(loc, "%r is not user@address:port" % text, InventoryError)
    return JumpHop(address=address, user=user or None, port=int(port) if port else None)


def _chain(hosts, name, seen, doc=None) -> tuple:
    hops = []
    for index, hop in enumerate(hosts[name].jump):
        if hop.host is None:
            hops.append(hop)
            continue
        if hop.host in seen + (name,):
            message = "jump chain loops back to %s (%s)" % (hop.host, " -> ".join(seen + (name, hop.host)))
            if hop.host == name and not seen:
                message = "a host cannot jump through itself"
            if doc is not None:
                raise doc.error(("hosts", name, "jump", index), message + " (break the loop)", InventoryError)
            raise InventoryError(message)
        hops.extend(_chain(hosts, hop.host, seen + (name,), doc))
        via = hosts[hop.host]
        hops.append(JumpHop(address=via.address, user=via.user, port=via.port, host=via.name))
    return tuple(hops)


# -- agents -------------------------------------------------------------------------------


def _resolve_agent(doc, model, index, hosts, groups, load_specs) -> InventoryAgent:
    entry = model.agents[index]
    loc = ("agents", index)
    target = (Path(doc.path).parent / Path(entry.spec).expanduser())
    if not target.exists():
        raise doc.error(loc + ("spec",), "%s does not exist (a spec file or agent directory, relative to %s)"
                        % (target, Path(doc.path).name), InventoryError)
    spec = read_spec(target) if load_specs else None
    name = spec.name if spec is not None else (target.parent.name if target.is_file() else target.name)
    if entry.placement is not None:
        placement, source = entry.placement, "inventory"
    else:
        placement = spec.spec.placement if spec is not None else Placement()
        source = "spec"
    _check_placement(doc, loc, placement, source, hosts, groups)
    return InventoryAgent(name=name, spec_path=target.resolve(), spec=spec, placement=placement,
                          placement_from=source, line=doc.line_of(loc))


def read_spec(target):
    """Load one agent spec (the only place the inventory reads specs; swap here for tests)."""
    from .spec import parse_spec

    return parse_spec(target)


def _check_placement(doc, loc, placement, source, hosts, groups):
    where = loc + ("placement",) if source == "inventory" else loc + ("spec",)
    origin = "" if source == "inventory" else " (the spec's placement)"
    for index, name in enumerate(placement.hosts):
        field = where + ("hosts", index) if source == "inventory" else where
        if name not in hosts:
            raise doc.error(field, "no host %r in hosts%s%s" % (name, did_you_mean(name, hosts), origin),
                            InventoryError)
        if hosts[name].jump_only:
            raise doc.error(field, "%s is jump_only and never runs agents%s (pin another host)" % (name, origin),
                            InventoryError)
    if placement.group is not None and placement.group not in groups:
        field = where + ("group",) if source == "inventory" else where
        raise doc.error(field, "no group %r in groups%s%s" % (placement.group, did_you_mean(placement.group, groups),
                                                               origin), InventoryError)


def _check_agent_names(doc, agents):
    owner = {}
    for index, agent in enumerate(agents):
        for copy in agent.copies():
            if copy in owner:
                first = owner[copy]
                what = "agent name %r" % copy if copy == agent.name and copy == agents[first].name \
                    else "copy name %r (of %s)" % (copy, agent.name)
                raise doc.error(("agents", index, "spec"), "%s is already used by agents[%d] (line %d) (give one "
                                "spec another metadata.name)" % (what, first, agents[first].line), InventoryError)
            owner[copy] = index
