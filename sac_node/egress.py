"""What an agent's sandbox may reach over the network: `isolation.network` = provider | none | host.

provider (the default in a sandbox): the sandbox has its own network namespace, with
only `lo`. The engine's ANTHROPIC_BASE_URL names a listener on the sandbox's loopback
(relay_inside.py, started by python3 just before it execs the engine). For each
connection it takes, it asks `ProviderRelay` (served by the shim outside, on a unix
socket bound into the sandbox) for a TCP connection to the provider's real host:port,
which the shim dials and passes back as a file descriptor; the listener then copies
bytes between the two. Bytes only: TLS stays end to end. A socket keeps the network
namespace it was made in, so the sandbox can use that one connection and make no other.
For a provider named by host name, the URL keeps that name (TLS's SNI and certificate
check, the Host header) and a bound /etc/hosts maps it to 127.0.0.1; there is no DNS
inside. `plan` is pure; `ProviderRelay` is the shim's asyncio half.

none: the same namespace and no relay. host: the host's network, as without a sandbox.
"""

import array
import asyncio
import collections
import ipaddress
import logging
import os
import pkgutil
import socket
from urllib.parse import urlsplit, urlunsplit

from .node_spec import ANTHROPIC_URL
from .protocol.errors import AgentError, SpecError

log = logging.getLogger("sac_node.egress")

NETWORKS = ("provider", "none", "host")
INSIDE_SOCKET = "/run/sac/provider.sock"  # where the relay's socket appears in the sandbox
SOCKET_NAME = "net.sock"  # in the agent's dir, outside the sandbox; shorter than shim.sock (AF_UNIX paths are short)
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
    if network not in NETWORKS:
        raise SpecError("isolation.network is %r; use one of %s" % (network, ", ".join(NETWORKS)))
    if runtime == "none" or network == "host":
        return Egress("host", None, None, None, None)  # unsandboxed: nothing can take the network away
    if network == "none":
        return Egress("none", None, None, None, None)
    base_url = env.get("ANTHROPIC_BASE_URL") or ANTHROPIC_URL
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
    """The outside half: a unix socket in the agent's dir that hands out connections to the provider.

    Each client gets one byte and, with it (SCM_RIGHTS), a TCP socket the shim has just
    connected to the current target; the sandbox's listener copies the engine's bytes to
    it directly, so the data never passes through the shim. The shim points the relay at
    each engine start's target, so an engine that moves to another account (and provider
    address) is relayed there from its first request.
    """

    def __init__(self):
        self.target = None
        self.path = None
        self._listener = None
        self._task = None

    async def serve(self, egress):
        """Listen on egress.socket (once) and dial egress.target for each new connection."""
        self.target = egress.target
        if self._listener is None:
            self.path = egress.socket
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind(self.path)
            except OSError as exc:
                listener.close()
                raise AgentError("cannot serve the provider relay on %s (%s); isolation.network: provider needs "
                                 "it (a shorter state dir path helps), or set isolation.network: host"
                                 % (self.path, exc)) from exc
            os.chmod(self.path, 0o600)
            listener.listen(64)
            listener.setblocking(False)
            self._listener = listener
            self._task = asyncio.ensure_future(self._accept(listener))

    def close(self):
        if self._listener is not None:
            self._task.cancel()
            self._listener.close()
            self._listener = None

    async def _accept(self, listener):
        loop = asyncio.get_event_loop()
        while True:
            client, _ = await loop.sock_accept(listener)
            asyncio.ensure_future(self._hand_over(client))

    async def _hand_over(self, client):
        host, port = self.target
        try:
            upstream = await _dial(host, port)
        except OSError as exc:
            log.warning("provider relay: cannot connect to %s:%s: %s", host, port, exc)
            client.close()
            return
        try:
            client.setblocking(True)  # one byte to a fresh unix socket: it does not block
            client.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [upstream.fileno()]))])
        except OSError as exc:
            log.warning("provider relay: cannot hand a connection to the sandbox: %s", exc)
        finally:
            upstream.close()
            client.close()


async def _dial(host, port):
    """A TCP socket connected to host:port (names resolved here, outside the sandbox)."""
    loop = asyncio.get_event_loop()
    error = OSError("no address for %s" % host)
    for family, kind, proto, _, address in await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise error
