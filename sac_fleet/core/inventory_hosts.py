"""The inventory's hosts: each entry resolved against ``defaults`` and sac's own, and checked.

A ``Host`` records which fields the user wrote (``explicit``), so the SSH
transport can let ``~/.ssh/config`` fill the rest: ``user``, ``port``,
``identity_file`` and ``known_hosts`` stay None unless written, and
``address`` falls back to the host's name (which ssh_config may alias).
Jump hosts must exist (or be written ``user@address:port``), be SSH hosts and
form no loop; group members must exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from sac_node.protocol.errors import InventoryError

from .host_engine import EngineSetting, host_engine
from .inventory_document import SAC_DEFAULTS
from .inventory_slurm import SlurmSettings
from .placement import HostSlot
from .secret_sources import SecretSource, host_secrets
from .wording import did_you_mean


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
    engine: EngineSetting = EngineSetting()  # which Claude Code it runs: defaults', its groups', its own
    slurm: Optional[SlurmSettings] = None  # set: a login node whose agents run in Slurm allocations


    def is_set(self, field: str) -> bool:
        """True when the user wrote ``field`` for this host (directly or in ``defaults``)."""
        return field in self.explicit

    def slot(self) -> HostSlot:
        """What placement needs to know about this host."""
        return HostSlot(self.name, self.labels, self.capacity, self.groups, self.jump_only)


def check_groups(doc, model) -> dict:
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



def resolve_host(doc, model, name, groups) -> Host:
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
        explicit=frozenset(own | inherited), line=doc.line_of(loc), secrets=host_secrets(doc, model, name),
        engine=host_engine(doc, model, name),
        slurm=entry.slurm)



def check_hosts(doc, hosts):
    """Jump hosts must be SSH hosts and form no loop; two local hosts must not share a state dir."""
    local_dirs = {}
    for name, host in hosts.items():
        for index, hop in enumerate(host.jump):
            if hop.host is not None and hosts[hop.host].transport == "local":
                raise doc.error(("hosts", name, "jump", index), "%s has transport: local and cannot be a jump host"
                                % hop.host, InventoryError)
        jump_chain(hosts, name, (), doc)
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



def jump_chain(hosts, name, seen, doc=None) -> tuple:
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
        hops.extend(jump_chain(hosts, hop.host, seen + (name,), doc))
        via = hosts[hop.host]
        hops.append(JumpHop(address=via.address, user=via.user, port=via.port, host=via.name))
    return tuple(hops)

