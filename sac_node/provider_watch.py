"""Whether an agent's model provider answers, told from Claude Code's own retries.

Claude Code retries a failed request by itself (10 times over about three minutes), printing one
`{"type": "system", "subtype": "api_retry", "error_status", "error"}` line per try: a turn against
a provider that is down, or that refuses the key, would wait all that time and then end with a
bare timeout. `ProviderWatch` (pure) turns those lines into a decision: an answer that cannot
change by itself (HTTP 401, 403) ends the turn at the first retry; a connection that fails (refused,
no DNS answer, TLS) or a 5xx ends it once the retries have gone on for `give_up_s`. 429 and 529 are
left to Claude Code and to the accounts (quota.py). `diagnose` then says why, from the shim, which
runs outside the sandbox: Claude Code itself reports every connection failure as "unknown".
"""

import asyncio
import importlib
import socket
import sys
import time
from urllib.parse import urlsplit

from .node_spec import ANTHROPIC_URL

GIVE_UP_S = 8.0  # Claude Code's 5th try comes ~8 s after the first: time enough for a provider's restart
PROBE_TIMEOUT_S = 3.0
LEFT_TO_OTHERS = (429, 529)  # rate limits and overload: Claude Code backs off, the accounts rotate
FINAL = (401, 403)


class ProviderWatch:
    """The provider's state for one agent: `problem` is None while it answers."""

    def __init__(self, give_up_s=GIVE_UP_S):
        self.give_up_s = give_up_s
        self.problem = None  # {"reason", "since"} once a turn gave up on the provider
        self._retrying_since = None

    def retrying(self, event, now):
        """An `api_retry` event: None to let Claude Code go on, else what made the turn give up."""
        status = event.get("error_status")
        if status in LEFT_TO_OTHERS or event.get("error") in ("rate_limit", "overloaded"):
            return None
        if self._retrying_since is None:
            self._retrying_since = now
        if status in FINAL:
            return "HTTP %s %s" % (status, event.get("error") or "")
        if now - self._retrying_since >= self.give_up_s:
            what = "HTTP %s %s" % (status, event.get("error") or "") if status else "no connection"
            return "%s after %d tries in %.0fs" % (what.strip(), event.get("attempt") or 0,
                                                   now - self._retrying_since)
        return None

    def answered(self):
        """The provider answered (a reply came): whatever was wrong is over."""
        self.problem = None
        self._retrying_since = None

    def gave_up(self, reason, now):
        if self.problem is None:
            self.problem = {"reason": reason, "since": now}
        else:
            self.problem["reason"] = reason
        self._retrying_since = None

    def degraded(self):
        """The status line: `provider unreachable (<reason>, since <time>)`, or None."""
        if self.problem is None:
            return None
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.problem["since"]))
        return "provider unreachable (%s, since %s)" % (self.problem["reason"], since)


def _endpoint(base_url):
    parts = urlsplit(base_url or ANTHROPIC_URL)
    tls = parts.scheme == "https"
    return parts.hostname or "", parts.port or (443 if tls else 80), tls


async def diagnose(base_url, timeout=PROBE_TIMEOUT_S):
    """Why `base_url` cannot be reached, in words (DNS, refused, TLS, silence), or None if it can."""
    return await asyncio.get_event_loop().run_in_executor(None, probe, base_url, timeout)


def probe(base_url, timeout=PROBE_TIMEOUT_S):
    """`diagnose`, blocking: plain sockets, so it needs none of asyncio's TLS machinery."""
    host, port, tls = _endpoint(base_url)
    where = "%s:%d" % (host, port)
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return "DNS lookup of %s failed: %s" % (host, exc.strerror or exc)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        return "connection refused by %s" % where
    except socket.timeout:
        return "no answer from %s within %gs" % (where, timeout)
    except OSError as exc:
        return "cannot connect to %s: %s" % (where, exc.strerror or exc)
    with sock:
        if not tls:
            return None
        ssl = _ssl()
        try:
            ssl.create_default_context().wrap_socket(sock, server_hostname=host).close()
        except socket.timeout:
            return "no TLS answer from %s within %gs" % (where, timeout)
        except ssl.SSLError as exc:
            return "TLS handshake with %s failed: %s" % (where, exc.reason or exc)
        except OSError as exc:
            return "TLS handshake with %s failed: %s" % (where, exc.strerror or exc)
    return None


def _ssl():
    """The ssl module, which sac_node's processes keep out of memory until a diagnosis needs it."""
    if "ssl" in sys.modules and sys.modules["ssl"] is None:
        del sys.modules["ssl"]  # __main__ blocked it (~4 MB a process): a failing https provider is worth it
    return importlib.import_module("ssl")
