"""asyncssh and socket errors, translated once into the sac error tree.

`translate_error` names the host (and the jump host it failed at), what went
wrong and what to do; `data.reason` is the word status tables show. Nothing
above remote/ssh*.py sees an asyncssh type.
"""

import asyncio
import socket

import asyncssh

from sac_node.protocol.errors import AuthFailed, HostError, HostKeyChanged, HostKeyUnknown, HostUnreachable

from .known_hosts import known_hosts_name

class StreamLocalRefused(HostError):
    """The server would not open a stream-local channel: forwarding is off
    (`AllowStreamLocalForwarding no`) or nothing listens at the path.
    The caller falls back to exec'ing the bridge."""

    code = "stream_local_refused"



def where(target, host=None, port=None):
    return "%s (%s:%s)" % (target.name, host or target.address or target.name, port or target.port or 22)


def translate_error(exc, target, hop, host, port, known_hosts_path=None, has_known_key=False):
    """Map one asyncssh/OS exception raised while reaching `hop` (on the way to `target`) to a SacError.

    `data` carries host, hop, address and `reason` (refused, timed_out, dns, unreachable,
    auth_failed, host_key_unknown, host_key_changed) for status tables.
    """
    place = where(target, host, port) if hop is target else \
        "%s via jump host %s" % (where(target), where(hop, host, port))
    error = _key_error(exc, place, host, port, known_hosts_path, has_known_key) or \
        _auth_error(exc, place, hop) or _network_error(exc, place, hop, host)
    error.data = {"host": target.name, "hop": hop.name, "address": "%s:%s" % (host, port),
                  "reason": error.data.get("reason", error.code)}
    return error


def _key_error(exc, place, host, port, known_hosts_path, has_known_key):
    if isinstance(exc, (asyncssh.HostKeyNotVerifiable, asyncssh.KeyExchangeFailed)) and has_known_key:
        fix = "ssh-keygen -R '%s' -f %s" % (known_hosts_name(host, port), known_hosts_path)
        return HostKeyChanged(
            "host %s: its host key CHANGED from the one in %s (possible man-in-the-middle) and is never "
            "accepted automatically; if the change is expected, run `%s` and re-run with --accept-new-host-keys"
            % (place, known_hosts_path, fix))
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return HostKeyUnknown(
            "host %s: its host key is not in %s; check the host and re-run with --accept-new-host-keys "
            "to record it" % (place, known_hosts_path))
    return None


def _auth_error(exc, place, hop):
    if isinstance(exc, asyncssh.PermissionDenied):
        return AuthFailed(
            "host %s: authentication as %s failed (key %s); check `user` and `identity_file`, or add the "
            "public key to the host's authorized_keys"
            % (place, hop.user or "the default user", hop.identity_file or "from ssh config or agent"))
    if isinstance(exc, (FileNotFoundError, asyncssh.KeyImportError)):
        return AuthFailed("host %s: cannot load identity_file %s: %s; fix the path in the inventory"
                          % (place, hop.identity_file, exc))
    return None


def _network_error(exc, place, hop, host):
    if isinstance(exc, asyncio.TimeoutError):
        reason, why = "timed_out", "no answer within %ss (connect_timeout)" % hop.connect_timeout
    elif isinstance(exc, socket.gaierror):
        reason, why = "dns", "cannot resolve %r (DNS): %s; check `address`" % (host, exc.strerror)
    elif isinstance(exc, ConnectionRefusedError):
        reason, why = "refused", "connection refused; is sshd running there and is `port` right?"
    elif isinstance(exc, asyncssh.ChannelOpenError):
        reason, why = "refused", "the jump host could not connect to it: %s" % exc.reason
    elif isinstance(exc, OSError):
        reason, why = "unreachable", exc.strerror or str(exc)
    else:
        reason, why = "unreachable", "SSH failed: %s" % exc
    return HostUnreachable("host %s: %s" % (place, why), {"reason": reason})

