"""The bootstrap probe: what the head asks a host before it attaches, in one round trip.

The head runs this file's text as `python3 -c <text> STATE_DIR SHA MODE ENGINE` (see
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

ENGINE (JSON, from sac_fleet/remote/engine_ship.py) says which Claude Code the head wants
there: {sha, version, arch, glibc} of the head's copy, the inventory's `bin`, `version` and
`upload`, and `settings` (what the daemon is started with, recorded in its facts). The answer's
`engine` says which one the daemon gets (`bin`, `source`) or why none: `upload` (send the head's
copy; `partial` bytes of it are already there), `problem` (one line). A daemon is started only
once its engine is settled, with SAC_CLAUDE_BIN and SAC_NODE_SETTINGS in its environment.
"""

import hashlib
import json
import os
import platform
import shutil
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


ENGINE_FILE, PARTIAL_SUFFIX, VERIFIED_SUFFIX = "claude", ".part", ".verified"
VERSION_TIMEOUT_S = 20


def engine_path(state, sha):
    """Where the head's engine of `sha` lives on this host: content-addressed under the state dir."""
    return os.path.join(state, "engines", sha, ENGINE_FILE)


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


RACY_NS = 2 * 10 ** 9  # a file written this close before its mark may change again with the same mtime


def stamp(path):
    """What the `.verified` mark records of a file: a change of size or mtime means hash it again."""
    st = os.stat(path)
    return "%d %d" % (st.st_size, st.st_mtime_ns)


def mark_verified(path):
    """Record that `path` was just hashed and found right: its stamp, and when this was written. Its mtime is
    first set back past RACY_NS, so that any later write (which sets it to now) changes the stamp."""
    before = time.time_ns() - 2 * RACY_NS
    try:
        os.utime(path, ns=(before, before))
    except OSError:
        pass  # not ours to touch (a shared store): the next check hashes it again instead
    with open(path + VERIFIED_SUFFIX, "w") as fh:
        fh.write("%s %d" % (stamp(path), time.time_ns()))


def _read_mark(path):
    """(size, mtime_ns, marked_ns) of `path`'s `.verified` mark, as ints; OSError without one, None for a
    mark that is not three numbers."""
    with open(path + VERIFIED_SUFFIX) as fh:
        fields = fh.read().split()
    return tuple(int(f) for f in fields) if len(fields) == 3 and all(f.isdigit() for f in fields) else None


def mark_matches(path):
    """The `.verified` mark's stamp is the file's (OSError when there is no mark)."""
    mark = _read_mark(path)
    return mark is not None and "%d %d" % mark[:2] == stamp(path)


def mark_trusted(path):
    """The mark matches, and the file had been written well before it was marked. Timestamps are coarse
    (a tick of a few ms, or a file server's clock), so a write in the same tick as the mark's hashing keeps
    the stamp; such a file is hashed again (as git does for a racy index), and then marked anew."""
    mark = _read_mark(path)
    return mark is not None and "%d %d" % mark[:2] == stamp(path) and mark[1] < mark[2] - RACY_NS


def verified(path, sha, repair=True):
    """True when `path` holds the bytes of `sha`: by its mark when the file is unchanged, else by hashing.
    A file that is not (corrupt) is removed when `repair`, so that the head sends it again."""
    try:
        if mark_trusted(path):
            return True
    except OSError:
        pass
    try:
        if file_sha256(path) == sha:
            mark_verified(path)
            return True
    except OSError:
        return False
    for stale in () if not repair else (path, path + VERIFIED_SUFFIX):  # corrupt: gone, so that it is sent again
        try:
            os.unlink(stale)
        except OSError:
            pass
    return False


def engine_version(path):
    """The first word of `path --version` (e.g. 2.1.197), or None when it does not run."""
    try:
        out = subprocess.run([path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=VERSION_TIMEOUT_S).stdout.decode("utf-8", "replace").split()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0] if out else None


def glibc():
    """This host's glibc version (e.g. "2.36"), or None (musl and others)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").split()[-1] or None
    except (ValueError, OSError, IndexError):
        return None


def cannot_run(want, found):
    """Why the head's copy cannot run here (arch, then glibc), or None."""
    if want.get("arch") and found["arch"] != want["arch"]:
        return "the head's Claude Code is built for %s and this host is %s" % (want["arch"], found["arch"])
    need, have = want.get("glibc"), found["glibc"]
    if need and (have is None or [int(x) for x in have.split(".")] < [int(x) for x in need.split(".")]):
        return "the head's Claude Code needs glibc >= %s and this host has %s" % (need, have or "no glibc")
    return None


def choose_engine(state, want, repair=True):
    """Which engine a daemon here gets (see the module docstring), as the `engine` of the answer."""
    found = {"arch": platform.machine(), "glibc": glibc(), "bin": None, "source": None, "version": None,
             "upload": False, "partial": 0, "problem": None}
    explicit = want.get("bin") or os.environ.get("SAC_CLAUDE_BIN")
    if explicit:
        found.update(bin=os.path.expanduser(explicit), source="inventory" if want.get("bin") else "env")
        found["version"] = engine_version(found["bin"])
        if found["version"] is None:
            found["problem"] = "%s (from %s) does not run `--version`" % (found["bin"], found["source"])
        return found
    pinned = want.get("version") or want.get("head_version")
    cached = engine_path(state, want["sha"]) if want.get("sha") else None
    if cached and (want.get("version") in (None, want.get("head_version"))) and verified(cached, want["sha"], repair):
        return dict(found, bin=cached, source="uploaded", version=want.get("head_version"))
    on_path = shutil.which("claude")
    version = engine_version(on_path) if on_path else None
    if version is not None and (pinned is None or version == pinned):
        return dict(found, bin=on_path, source="path", version=version)
    seen = "%s is %s" % (on_path, version or "broken") if on_path else "no `claude` on PATH"
    why = cannot_run(want, found) if cached else "the head has no Claude Code to send"
    if why is None and want.get("version") not in (None, want.get("head_version")):
        why = "the head's Claude Code is %s, not %s" % (want.get("head_version"), want["version"])
    if why is None and want.get("upload", True):
        partial = cached + PARTIAL_SUFFIX
        return dict(found, upload=True, partial=os.path.getsize(partial) if os.path.isfile(partial) else 0)
    found["problem"] = "no suitable Claude Code (%s%s)" % (seen, "; " + why if why else "; upload: false")
    return found


def start_daemon(state, pyz, sha, engine=None, settings=None):
    """Run `<pyz> daemon --detach` for `state`; True when it exited 0 (it then serves)."""
    env = dict(os.environ, SAC_NODE_SHA=sha)
    if engine and engine.get("bin"):
        env["SAC_CLAUDE_BIN"] = engine["bin"]
    if settings is not None:
        env["SAC_NODE_SETTINGS"] = json.dumps(settings, sort_keys=True)
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


def start(info, state, sha, restart, settings):
    """START / RESTART: run the cached pyz's daemon, replacing one of another sha (or any, to restart)."""
    found = info["daemon"]
    if found and found.get("alive") and (found.get("sha") != sha or restart):
        info["upgraded_from" if found.get("sha") != sha else "restarted"] = found.get("sha")
        stop_daemon(state, found)
        found = None
    if not (found and found.get("alive")):
        info["started"] = start_daemon(state, info["pyz"], sha, info["engine"], settings)
        info["daemon"] = daemon_of(state)


def revive(info, state):
    """LOOK: start again a daemon that died (it did not stop on purpose), from the pyz it ran."""
    found = info["daemon"]
    if not found or found.get("alive") or found.get("stopped_at"):
        return
    ran = os.path.join(state, "node", str(found.get("sha")) + ".pyz")
    if os.path.isfile(ran):
        engine = {"bin": found.get("engine_bin")}
        info["revived"] = start_daemon(state, ran, str(found.get("sha")), engine, found.get("settings"))
        info["daemon"] = daemon_of(state)


def probe(state_dir, sha, mode, want=None):
    """The probe's answer (a dict, JSON-ready), after acting as `mode` says; `want` is ENGINE."""
    want = want or {}
    state = os.path.abspath(os.path.expanduser(state_dir))
    pyz = os.path.join(state, "node", sha + ".pyz")
    info = {"python": list(sys.version_info[:3]), "executable": sys.executable, "state_dir": state,
            "pyz": pyz, "pyz_cached": os.path.isfile(pyz), "upgraded_from": None, "daemon": daemon_of(state),
            "engine": None}
    if tuple(sys.version_info[:2]) >= MIN_PYTHON:
        if want.get("needed"):
            info["engine"] = choose_engine(state, want, repair=mode != LOOK)
        settled = not (info["engine"] and (info["engine"]["upload"] or info["engine"]["problem"]))
        if mode != LOOK and info["pyz_cached"] and settled:
            start(info, state, sha, mode == RESTART, want.get("settings"))
        elif mode == LOOK:
            revive(info, state)
    return info


def main(argv):
    state_dir, sha, mode = argv[:3]
    want = json.loads(argv[3]) if len(argv) > 3 else None
    sys.stdout.write(MARKER + json.dumps(probe(state_dir, sha, mode, want)) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
