"""Who may call the gateway: a named token (tokens.py) found by its bearer value, then its scopes.

Every route asks `authorize` for an action (scopes.READ, FOLLOW, SEND, ADMIN) before
it acts. A token's value never reaches a log or an error message; its name does.
"""

from sac_node.protocol.errors import ConfigError, SacError

from . import scopes
from .schema import Forbidden, Unauthorized

PUBLIC_PATHS = frozenset({"/v1/health"})
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sac"'}


class TokensUnreadable(SacError):
    """The tokens file went bad while the gateway runs: every request is refused (HTTP 500) until fixed."""

    code = "tokens_unreadable"


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
