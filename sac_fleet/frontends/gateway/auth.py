"""The gateway's bearer token: a 0600 file under the state dir, compared in constant time.

The token's value never reaches a log or an error message; only its path is shown.
"""

import hmac
import os
import secrets
import stat
from pathlib import Path

from sac_node.protocol.errors import ConfigError

from .schema import Forbidden, Unauthorized

PUBLIC_PATHS = frozenset({"/v1/health"})
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sac"'}


def token_path(environ=None):
    """<SAC_HOME>/gateway.token (SAC_HOME defaults to ~/.sac)."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("SAC_HOME") or "~/.sac").expanduser() / "gateway.token"


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


def check_request(headers, token):
    """Raise Unauthorized without a bearer token, Forbidden with a wrong one."""
    header = headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("send the gateway token as `Authorization: Bearer <token>` "
                           "(it is in the file `sac fleet serve` printed)")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Forbidden("wrong gateway token")
