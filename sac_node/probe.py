"""The bootstrap probe: what the head asks a host before it attaches, in one round trip.

The head runs this file's text as `python3 -c <text> STATE_DIR SHA MODE` (see
sac_fleet/remote/ssh_path.py), because it must run on a host that has no node.pyz
yet. So it imports only the standard library and nothing else of sac_node, and it
stays parseable by an old python3, whose version it reports rather than fails on.

It prints one line, `SAC-PROBE <json>`: the Python version and executable, the
absolute state dir, whether `<state>/node/<SHA>.pyz` is cached, and the daemon's
daemon.json with `alive` (does its socket answer). By MODE it also acts:
LOOK starts nothing but a daemon that died (did not stop on purpose), from the
pyz it ran; START starts the cached SHA's daemon, replacing one of another sha;
RESTART also replaces a daemon of the same sha. What it did is in `started`,
`upgraded_from`, `restarted`, `revived`.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

MARKER = "SAC-PROBE "
LOOK, START, RESTART = "0", "1", "2"
MIN_PYTHON = (3, 8)
STOP_POLLS, STOP_POLL_S = 200, 0.025  # up to 5 s for an old daemon to let go of its socket


def answers(sock):
    """True when something accepts a connection on the unix socket `sock`."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sock)
        return True
    except OSError:
        return False
    finally:
        s.close()


def daemon_of(state):
    """The daemon.json of `state` with `alive` added, or None when there is none."""
    try:
        with open(os.path.join(state, "daemon.json")) as fh:
            found = json.load(fh)
    except Exception:
        return None
    found["alive"] = answers(os.path.join(state, "node.sock"))
    return found


def start_daemon(state, pyz, sha):
    """Run `<pyz> daemon --detach` for `state`; True when it exited 0 (it then serves)."""
    env = dict(os.environ, SAC_NODE_SHA=sha)
    return subprocess.call([sys.executable, pyz, "daemon", "--state-dir", state, "--detach"], env=env) == 0


def stop_daemon(state, found):
    """SIGTERM the daemon of `found` and wait until its socket stops answering."""
    try:
        os.kill(found["pid"], signal.SIGTERM)
    except (OSError, KeyError, TypeError):
        pass
    for _ in range(STOP_POLLS):
        if not answers(os.path.join(state, "node.sock")):
            return
        time.sleep(STOP_POLL_S)


def start(info, state, sha, restart):
    """START / RESTART: run the cached pyz's daemon, replacing one of another sha (or any, to restart)."""
    found = info["daemon"]
    if found and found.get("alive") and (found.get("sha") != sha or restart):
        info["upgraded_from" if found.get("sha") != sha else "restarted"] = found.get("sha")
        stop_daemon(state, found)
        found = None
    if not (found and found.get("alive")):
        info["started"] = start_daemon(state, info["pyz"], sha)
        info["daemon"] = daemon_of(state)


def revive(info, state):
    """LOOK: start again a daemon that died (it did not stop on purpose), from the pyz it ran."""
    found = info["daemon"]
    if not found or found.get("alive") or found.get("stopped_at"):
        return
    ran = os.path.join(state, "node", str(found.get("sha")) + ".pyz")
    if os.path.isfile(ran):
        info["revived"] = start_daemon(state, ran, str(found.get("sha")))
        info["daemon"] = daemon_of(state)


def probe(state_dir, sha, mode):
    """The probe's answer (a dict, JSON-ready), after acting as `mode` says."""
    state = os.path.abspath(os.path.expanduser(state_dir))
    pyz = os.path.join(state, "node", sha + ".pyz")
    info = {"python": list(sys.version_info[:3]), "executable": sys.executable, "state_dir": state,
            "pyz": pyz, "pyz_cached": os.path.isfile(pyz), "upgraded_from": None, "daemon": daemon_of(state)}
    if tuple(sys.version_info[:2]) >= MIN_PYTHON:
        if mode != LOOK and info["pyz_cached"]:
            start(info, state, sha, mode == RESTART)
        elif mode == LOOK:
            revive(info, state)
    return info


def main(argv):
    state_dir, sha, mode = argv[:3]
    sys.stdout.write(MARKER + json.dumps(probe(state_dir, sha, mode)) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
