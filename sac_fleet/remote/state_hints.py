"""Where a host's `~/...` state dir is, as its last probe found it: `<SAC_HOME>/hosts.json`.

A hint only, so that a warm attach can open the daemon's socket without a probe
first; the daemon's sha, checked at once, decides whether it is used.
"""

import json
import os

from sac_node.state_dir import default_state_dir, ensure_private_dir, write_atomic


def _path():
    return os.path.join(default_state_dir(), "hosts.json")


def _key(settings):
    return "%s|%s" % (settings.name, settings.state_dir)


def state_dir_hint(settings):
    """The absolute state dir of a host: its own when the inventory gives one, else what a probe found."""
    if os.path.isabs(settings.state_dir):
        return settings.state_dir
    try:
        with open(_path()) as fh:
            return json.load(fh).get(_key(settings))
    except (OSError, ValueError, AttributeError):
        return None


def remember_state_dir(settings, absolute):
    """Keep the probe's answer for a `~/...` state dir (nothing to keep for an absolute one)."""
    if os.path.isabs(settings.state_dir):
        return
    try:
        with open(_path()) as fh:
            hints = json.load(fh)
    except (OSError, ValueError):
        hints = {}
    hints[_key(settings)] = absolute
    try:
        ensure_private_dir(default_state_dir())
        write_atomic(_path(), json.dumps(hints, indent=1, sort_keys=True))
    except OSError:
        pass
