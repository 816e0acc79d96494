"""The gateway's named tokens: <SAC_HOME>/gateway.tokens (0600), each a name, scopes and a hash.

    {"tokens": [{"name": "default", "scopes": ["admin"], "sha256": "<hex>", "created": "2026-12-04T14:02:08Z"}]}

A token's value is shown once, when it is made, and stored only as its SHA-256
(a token is 256 random bits, so a fast hash is enough). `Keyring` answers each
request from the file as it is now: it re-reads it when its inode, size or mtime
changed, so `sac fleet token revoke` takes effect without restarting the gateway.

The single token of earlier versions, <SAC_HOME>/gateway.token (plain, 0600), is
the `default` admin token: `ensure_default` enters it in gateway.tokens, and the
CLI on this machine keeps reading it to talk through a running gateway.
Imports no aiohttp: `sac fleet token` loads this alone.
"""

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

from sac_node.protocol.errors import ConfigError

from .scopes import Grant, parse_selector

DEFAULT = "default"
TOKEN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def sac_home(environ=None):
    environ = os.environ if environ is None else environ
    return Path(environ.get("SAC_HOME") or "~/.sac").expanduser()


def token_path(environ=None):
    """<SAC_HOME>/gateway.token: the `default` token's value, for the CLI on this machine."""
    return sac_home(environ) / "gateway.token"


def tokens_path(environ=None):
    """<SAC_HOME>/gateway.tokens (SAC_HOME defaults to ~/.sac)."""
    return sac_home(environ) / "gateway.tokens"


def digest(value):
    return hashlib.sha256(value.encode()).hexdigest()


def canonical_scopes(scopes):
    """The scopes checked (ScopeError naming the bad one) and spelled one way, in the order given."""
    Grant.parse(scopes)
    spelled = [("send:%s" % parse_selector(s[5:], s)) if s.startswith("send:") else s for s in scopes]
    return tuple(dict.fromkeys(spelled))


@dataclass(frozen=True)
class Token:
    """One named token as stored: never its value."""

    name: str
    scopes: Tuple[str, ...]
    sha256: str
    created: str

    @property
    def grant(self):
        return Grant.parse(self.scopes)

    def row(self):
        """What `sac fleet token list` shows."""
        return {"name": self.name, "scopes": list(self.scopes), "created": self.created}


def check_private(path, what="the gateway's tokens"):
    """ConfigError when others may read `path` (it holds a secret or the hashes of some)."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError("%s holds %s and is readable by others (mode %o); run `chmod 600 %s`"
                          % (path, what, stat.S_IMODE(mode), path))


def read_tokens(path):
    """The tokens in `path`; ConfigError naming the file and the entry when it is not as written above."""
    path = Path(path)
    check_private(path)
    try:
        entries = json.loads(path.read_text())["tokens"]
        tokens = tuple(Token(e["name"], canonical_scopes(e["scopes"]), e["sha256"], e.get("created", ""))
                       for e in entries)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError("%s is not a gateway token file (%s: %s); fix it, or manage it only with "
                          "`sac fleet token add|list|revoke`" % (path, type(exc).__name__, exc)) from None
    except ConfigError as exc:
        raise ConfigError("%s: %s" % (path, exc.message)) from None
    return tokens


def write_tokens(path, tokens):
    """Replace `path` by `tokens` at once (a new 0600 file renamed over the old one)."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".new")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"tokens": [{"name": t.name, "scopes": list(t.scopes), "sha256": t.sha256, "created": t.created}
                              for t in tokens]}, fh, indent=1)
        fh.write("\n")
    os.replace(temp, path)


@contextlib.contextmanager
def _locked(path):
    """Writers of `path` one at a time (two `sac fleet token add` at once both land)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _current(path):
    return read_tokens(path) if path.exists() else ()


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
    check_private(path, "the `default` gateway token")
    token = path.read_text().strip()
    if len(token) < 16:
        raise ConfigError("%s: the gateway token is empty or shorter than 16 characters; delete the file "
                          "and a new one is made at the next start" % path)
    return token


def add_token(path, name, scopes, value=None):
    """Enter a new token `name` with `scopes`; returns its value (a new random one unless `value`)."""
    path = Path(path)
    if not TOKEN_NAME_RE.match(name or ""):
        raise ConfigError("token name %r: use letters, digits, '.', '_' or '-' (at most 63), starting with a "
                          "letter or digit" % name)
    if not scopes:
        raise ConfigError("token %s has no scope: give --scope read, admin or send:<selector>" % name)
    scopes = canonical_scopes(scopes)
    value = value or "sac_" + secrets.token_urlsafe(32)
    with _locked(path):
        tokens = _current(path)
        if any(t.name == name for t in tokens):
            raise ConfigError("%s already has a token named %s; revoke it first (`sac fleet token revoke %s`) "
                              "or choose another name" % (path, name, name))
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_tokens(path, tokens + (Token(name, scopes, digest(value), created),))
    return value


def revoke_token(path, name, legacy=None):
    """Remove token `name` (and, for `default`, the plain copy the CLI reads at `legacy`); returns it."""
    path = Path(path)
    with _locked(path):
        tokens = _current(path)
        gone = [t for t in tokens if t.name == name]
        if not gone:
            known = ", ".join(t.name for t in tokens) or "none"
            raise ConfigError("no gateway token named %s in %s (tokens: %s)" % (name, path, known))
        write_tokens(path, tuple(t for t in tokens if t.name != name))
    if legacy is not None and name == DEFAULT:
        Path(legacy).unlink(missing_ok=True)
    return gone[0]


def ensure_default(path, legacy):
    """Before the tokens file is first written (by `sac fleet serve` or `token add`): the single token of
    before (`legacy`, made if missing) becomes the `default` admin token. A tokens file that exists is
    left as it is."""
    path = Path(path)
    with _locked(path):
        if path.exists():
            read_tokens(path)  # refuse to start on a broken or readable file
            return
        value = load_or_create_token(legacy)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_tokens(path, (Token(DEFAULT, ("admin",), digest(value), created),))


class Keyring:
    """The tokens of `path` as they are now: re-read when the file changed (one stat per request)."""

    def __init__(self, path):
        self.path = Path(path)
        self._seen, self._tokens = None, ()

    def tokens(self):
        """The current tokens (none when the file is gone); ConfigError when it cannot be read."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._seen, self._tokens = None, ()
            return ()
        seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        if seen != self._seen:
            self._tokens, self._seen = read_tokens(self.path), seen
        return self._tokens

    def find(self, value):
        """The token whose value is `value`, or None (every entry compared in constant time)."""
        given = digest(value)
        found = None
        for token in self.tokens():
            if hmac.compare_digest(given, token.sha256):
                found = token
        return found
