"""How the head reaches one host, as typed values: `HostSettings` (the node's side) and `SSHTarget` (SSH's).

Built once from an inventory host, whose defaults the inventory has already
applied; nothing below this module re-applies a default. Pure: no asyncssh, no
I/O, so an inventory of local hosts never loads the SSH stack.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_SSH_CONFIG = "~/.ssh/config"

# What opening a host may take beyond its connect_timeout: the probe, an upload of node.pyz, the daemon's
# start and the attach. The whole open gets connect_timeout + BOOTSTRAP_S, and so does the probe alone.
BOOTSTRAP_S = 20.0


@dataclass(frozen=True)
class SSHTarget:
    """How to reach one host. `None` fields are left to ~/.ssh/config, then to SSH defaults.

    `address` defaults to `name`, so a `Host` alias in ssh_config works as is.
    `ssh_config` is a path ("" for none). `jump` is the chain of jump hosts, first hop first.
    """

    name: str
    address: Optional[str] = None
    port: Optional[int] = None
    user: Optional[str] = None
    identity_file: Optional[str] = None
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    ssh_config: str = DEFAULT_SSH_CONFIG
    connect_timeout: float = 10.0
    keepalive_s: float = 2.0
    jump: Tuple["SSHTarget", ...] = ()


@dataclass(frozen=True)
class HostSettings:
    """One host's node as the head opens it.

    `state_dir` is as written (`~/...` is expanded on the host); None for a local host
    that names none, which then shares `sac agents`' ($SAC_HOME or ~/.sac).
    `env_preamble` runs before each command (e.g. `module load python`). `target` is
    None for `transport: local`.
    """

    name: str
    transport: str
    python: str
    state_dir: Optional[str]
    connect_timeout: float
    env_preamble: str = ""
    target: Optional[SSHTarget] = None
    engine: Tuple[Tuple[str, object], ...] = ()  # the inventory's `engine` fields, as (field, value) pairs
    needs_engine: bool = True  # False when no agent of the inventory runs Claude Code

    @property
    def open_timeout(self) -> float:
        """The time allowed to connect and bootstrap (the probe alone gets as much)."""
        return self.connect_timeout + BOOTSTRAP_S

    def shell(self, command: str) -> str:
        """`command` after the host's env preamble."""
        preamble = self.env_preamble.strip()
        return "%s\n%s" % (preamble, command) if preamble else command

    @classmethod
    def of(cls, inventory, host) -> "HostSettings":
        """The settings of an inventory host (a core.inventory.Host), with its jump chain."""
        if host.transport == "local":
            state_dir = host.state_dir if host.is_set("state_dir") else None
            return cls(host.name, "local", host.python, state_dir, host.connect_timeout, host.env_preamble or "")
        return cls(host.name, host.transport, host.python, host.state_dir, host.connect_timeout,
                   host.env_preamble or "", ssh_target(inventory, host), tuple(sorted(host.engine.wish().items())),
                   any(a.spec is None or a.spec.spec.engine.kind == "claude" for a in inventory.agents))


def ssh_target(inventory, host) -> SSHTarget:
    """The SSHTarget of an inventory host, with its jump chain."""
    hops = []
    for hop in inventory.jump_chain(host.name):
        via = inventory.hosts.get(hop.host) if hop.host else None
        hops.append(_target(via) if via else SSHTarget(name=str(hop), address=hop.address, port=hop.port,
                                                        user=hop.user, connect_timeout=host.connect_timeout))
    return _target(host, tuple(hops))


def _target(host, jump=()):
    return SSHTarget(
        name=host.name, address=host.address, port=host.port, user=host.user,
        identity_file=host.identity_file, known_hosts=host.known_hosts or DEFAULT_KNOWN_HOSTS,
        connect_timeout=host.connect_timeout, keepalive_s=host.keepalive_s, jump=jump)
