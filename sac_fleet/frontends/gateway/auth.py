"""Who may call the gateway: a named token (tokens.py) found by its bearer value, then its scopes.

Every route asks `authorize` for an action (scopes.READ, FOLLOW, SEND, ADMIN) before
it acts. A token's value never reaches a log or an error message; its name does.
The plain token file <SAC_HOME>/gateway.token is the `default` admin token, which
the CLI on this machine reads to talk through a running gateway.
"""

import os
import secrets
import stat
from pathlib import Path

from sac_node.protocol.errors import ConfigError, SacError

from . import scopes
from .schema import Forbidden, Unauthorized

PUBLIC_PATHS = frozenset({"/v1/health"})
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sac"'}


class TokensUnreadable(SacError):
    """The tokens file went bad while the gateway runs: every request is refused (HTTP 500) until fixed."""

    code = "tokens_unreadable"


def load_or_create_token(path):
    """The token stored at `path`; a new one (256 random bits, mode 0600) when the file is missing."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_token(path)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
    return _read_token(path)


def _read_token(path):
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError("%s: the gateway token is readable by others (mode %o); run `chmod 600 %s`"
                          % (path, stat.S_IMODE(mode), path))
    token = path.read_text().strip()
    if len(token) < 16:
        raise ConfigError("%s: the gateway token is empty or shorter than 16 characters; delete the file "
                          "and a new one is made at the next start" % path)
    return token


def check_request(headers, keyring):
    """The Token the request's bearer names; Unauthorized without one, or with one no token has."""
    header = headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("send a gateway token as `Authorization: Bearer <token>` (the `default` one is in "
                           "the file `sac fleet serve` printed; `sac fleet token add` makes others)")
    try:
        token = keyring.find(given.strip())
    except ConfigError as exc:
        raise TokensUnreadable("the gateway refuses every request until its tokens file is fixed: "
                               + exc.message) from exc
    if token is None:
        raise Unauthorized("unknown or revoked gateway token; `sac fleet token list` shows the tokens there are")
    return token


async def authorize(token, action, agent=None, labels_of=None):
    """Forbidden, naming the scope needed, unless `token` may do `action` (on `agent`).

    `labels_of(agent)` (async) is asked only when a label selector could decide."""
    grant = token.grant
    if grant.allows(action, agent):
        return
    if agent is not None and labels_of is not None and grant.wants_labels(action):
        if grant.allows(action, agent, await labels_of(agent)):
            return
    what = {scopes.READ: "read the fleet's status and lists", scopes.ADMIN: "do this",
            scopes.FOLLOW: "read agent %s" % agent, scopes.SEND: "send to agent %s" % agent}[action]
    raise Forbidden("token %s may not %s: that needs scope %s, or admin"
                    % (token.name, what, scopes.needed(action, agent)),
                    {"token": token.name, "needed": scopes.needed(action, agent).split()[0]})
