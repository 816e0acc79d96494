"""What an agent's sandbox may reach over the network: `isolation.network` = provider | none | host.

provider (the default in a sandbox): the sandbox has its own network namespace, with
only `lo`. The engine's ANTHROPIC_BASE_URL names a listener on the sandbox's loopback
(relay_inside.py, started by python3 just before it execs the engine); each connection
it takes is carried over a unix socket bound into the sandbox to `ProviderRelay`, which
the shim serves outside and which connects to the provider's real host:port. Bytes only:
TLS stays end to end. For a provider named by host name, the URL keeps that name (TLS's
SNI and certificate check, the Host header) and a bound /etc/hosts maps it to 127.0.0.1;
there is no DNS inside. `plan` is pure; `ProviderRelay` is the shim's asyncio half.

none: the same namespace and no relay. host: the host's network, as without a sandbox.
"""

import asyncio
import collections
import ipaddress
import os
import pkgutil
import logging
import socket
from urllib.parse import urlsplit, urlunsplit

from .protocol.errors import SpecError

log = logging.getLogger("sac_node.egress")

NETWORKS = ("provider", "none", "host")
DEFAULT_NETWORK = "provider"
DEFAULT_BASE_URL = "https://api.anthropic.com"
INSIDE_SOCKET = "/run/sac/provider.sock"  # where the relay's socket appears in the sandbox
SOCKET_NAME = "provider.sock"  # in the agent's dir, outside the sandbox
HOSTS_NAME = "hosts"  # the sandbox's /etc/hosts, in the agent's dir
LOOPBACK = "127.0.0.1"
# A provider on a port below 1024 (https on 443) is listened for on this port inside:
# the sandbox's uid may not bind a privileged port.
UNPRIVILEGED_PORT = 8443
_DEFAULT_PORTS = {"http": 80, "https": 443}

Egress = collections.namedtuple("Egress", "network target url hosts socket")
Egress.__doc__ = """An agent's network, planned for one engine start.

network: provider | none | host; target: (host, port) the relay connects to, or None;
url: the engine's ANTHROPIC_BASE_URL inside the sandbox; hosts: (file, text) of the
sandbox's /etc/hosts, or None to keep the host's; socket: the relay's unix socket outside."""


def plan(network, env, agent_dir, runtime):
    """The Egress of an engine started with `env` (its ANTHROPIC_BASE_URL) under `runtime`."""
    network = network or DEFAULT_NETWORK
    if network not in NETWORKS:
        raise SpecError("isolation.network is %r; use one of %s" % (network, ", ".join(NETWORKS)))
    if runtime == "none" or network == "host":
        return Egress("host", None, None, None, None)  # unsandboxed: nothing can take the network away
    if network == "none":
        return Egress("none", None, None, None, None)
    base_url = env.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL
    parts = urlsplit(base_url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise SpecError("isolation.network: provider needs an http:// or https:// provider URL with a host; "
                        "ANTHROPIC_BASE_URL is %r" % base_url)
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    inside_port = port if port >= 1024 else UNPRIVILEGED_PORT
    if _is_address(parts.hostname):
        if parts.scheme == "https":
            raise SpecError("isolation.network: provider relays https by host name (the certificate names it) "
                            "but the provider URL %s names an address; use its host name, or "
                            "isolation.network: host" % base_url)
        name, hosts = LOOPBACK, None
    else:
        name = parts.hostname
        hosts = (os.path.join(agent_dir, HOSTS_NAME), "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.0.1\t%s\n" % name)
    netloc = "%s:%d" % (name, inside_port)
    if "@" in parts.netloc:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return Egress("provider", (parts.hostname, port), url, hosts,
                  os.path.join(agent_dir, SOCKET_NAME))


def _is_address(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def inside_argv(egress, engine_argv, python="python3"):
    """The argv run in the sandbox: the relay's inside half, which execs the engine once it listens."""
    if egress.network != "provider":
        return list(engine_argv)
    port = str(urlsplit(egress.url).port)
    return [python, "-I", "-S", "-c", _inside_source(), LOOPBACK, port, INSIDE_SOCKET] + list(engine_argv)


_SOURCE = []


def _inside_source():
    if not _SOURCE:  # pkgutil reads it from node.pyz as well as from a checkout
        _SOURCE.append(pkgutil.get_data(__package__, "relay_inside.py").decode("utf-8"))
    return _SOURCE[0]


def failure_hint(network, error):
    """A failed turn's error, with why when the sandbox has no network at all."""
    if network == "none" and error:
        return error + " (isolation.network is none: the sandbox has no network, so the engine cannot reach " \
                       "its provider; use network: provider, or reach a local model through a bound socket)"
    return error


class ProviderRelay:
    """The outside half: a unix socket in the agent's dir; each connection goes to the current target.

    The shim points it at each engine start's target, so an engine that moves to another
    account (and provider address) is relayed there from its first request.
    """

    def __init__(self):
        self.target = None
        self.path = None
        self._server = None

    async def serve(self, egress):
        """Listen on egress.socket (once) and relay new connections to egress.target."""
        self.target = egress.target
        if self._server is None:
            self.path = egress.socket
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self._server = await asyncio.start_unix_server(self._on_client, path=self.path)
            os.chmod(self.path, 0o600)

    def close(self):
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _on_client(self, reader, writer):
        host, port = self.target
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            log.warning("provider relay: cannot connect to %s:%s: %s", host, port, exc)
            writer.close()
            return
        up_writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        finally:
            writer.close()
            up_writer.close()


async def _copy(reader, writer):
    """One direction until EOF, passed on as a half-close; an error closes the other side as well."""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()
