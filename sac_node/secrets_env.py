"""<state_dir>/secrets.env: the host's secrets, as the head provisions them (never argv, never a log).

One `NAME=value` a line, mode 0600 (StateDir.secrets ignores a file others can read). The head
writes only the names its agents use and leaves every other line as the user wrote it; what it
shows of a value is `secret_hash`, 12 hex digits of its sha256.
"""

import os
import re

from .protocol.errors import ConfigError
from .protocol.messages import secret_hash
from .state_dir import write_atomic

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def hashes(values):
    return {name: secret_hash(value) for name, value in values.items()}


def write(state, values):
    """Set `values` {NAME: value} in secrets.env (0600, atomically); returns the names that changed."""
    current = state.secrets()
    changed = sorted(name for name, value in values.items() if current.get(name) != value)
    if not changed:
        return []
    for name, value in values.items():
        if not NAME.fullmatch(name) or "\n" in value or "\r" in value:
            raise ConfigError("secret %s: a name is letters, digits and _, and a value is one line" % name)
    path = os.path.join(state.root, "secrets.env")
    lines = []
    try:
        with open(path) as fh:
            lines = [line.rstrip("\n") for line in fh]
    except FileNotFoundError:
        pass
    kept = [line for line in lines if line.partition("=")[0].strip() not in values]
    kept += ["%s=%s" % (name, values[name]) for name in sorted(values)]
    write_atomic(path, "\n".join(kept) + "\n", 0o600)
    os.chmod(path, 0o600)  # an existing file keeps its mode through the rename's tmp file: be sure
    return changed
