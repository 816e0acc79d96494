"""Bringing the node helper up on a host over SSH, and attaching to it.

One probe round trip tells the Python version, whether this head's node.pyz is
cached in `<state_dir>/node/<sha>.pyz` and whether a daemon of that sha runs;
when the pyz is cached the same round trip also starts (or upgrades, or
restarts) the daemon. The pyz is uploaded only when missing. Then the head
attaches: a direct stream-local channel to the daemon's socket, or, where the
server forbids that, `python3 node.pyz attach` bridging stdio to it.

`inspect` is the read-only twin of `bootstrap`: the same probe, asked to change
nothing, and the list of what `bootstrap` would do.
"""

import json
import shlex

from sac_node.protocol.errors import BootstrapFailed, PythonMissing

from .node_client import NodeClient
from .pyz import build_pyz
from .ssh import StreamLocalRefused, shell_path

MIN_PYTHON = (3, 8)
PROBE_MARKER = "SAC-PROBE "

REVIVED = "started the node daemon again (it had died; its agents kept running)"

# Probe modes: LOOK provisions nothing (it only starts again a daemon that died); START starts (or
# upgrades) the daemon; RESTART also replaces a current one.
LOOK, START, RESTART = "0", "1", "2"

# Runs on the host with only the standard library. argv: state_dir sha mode (LOOK | START | RESTART)
PROBE = r'''
import json, os, signal, socket, subprocess, sys, time
state, sha, start, restart = os.path.expanduser(sys.argv[1]), sys.argv[2], sys.argv[3] != "0", sys.argv[3] == "2"
state = os.path.abspath(state)
pyz = os.path.join(state, "node", sha + ".pyz")
sock = os.path.join(state, "node.sock")
def answers():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sock); return True
    except OSError:
        return False
    finally:
        s.close()
def daemon():
    try:
        with open(os.path.join(state, "daemon.json")) as fh:
            d = json.load(fh)
    except Exception:
        return None
    d["alive"] = answers()
    return d
info = {"python": list(sys.version_info[:3]), "executable": sys.executable, "state_dir": state,
        "pyz": pyz, "pyz_cached": os.path.isfile(pyz), "upgraded_from": None}
d = daemon()
if start and info["pyz_cached"] and sys.version_info[:2] >= (3, 8):
    if d and d.get("alive") and (d.get("sha") != sha or restart):
        info["upgraded_from" if d.get("sha") != sha else "restarted"] = d.get("sha")
        try:
            os.kill(d["pid"], signal.SIGTERM)
        except OSError:
            pass
        for _ in range(200):
            if not answers():
                break
            time.sleep(0.025)
        d = None
    if not (d and d.get("alive")):
        env = dict(os.environ, SAC_NODE_SHA=sha)
        r = subprocess.call([sys.executable, pyz, "daemon", "--state-dir", state, "--detach"], env=env)
        info["started"] = r == 0
        d = daemon()
elif not start and d and not d.get("alive") and not d.get("stopped_at") and sys.version_info[:2] >= (3, 8):
    # The daemon died (it did not stop on purpose): start the one that ran, whose shims still do.
    ran = os.path.join(state, "node", str(d.get("sha")) + ".pyz")
    if os.path.isfile(ran):
        env = dict(os.environ, SAC_NODE_SHA=str(d.get("sha")))
        info["revived"] = subprocess.call([sys.executable, ran, "daemon", "--state-dir", state, "--detach"],
                                          env=env) == 0
        d = daemon()
info["daemon"] = d
sys.stdout.write("SAC-PROBE " + json.dumps(info) + "\n")
'''


def _shell(host, command):
    """Prefix a command with the host's env preamble (e.g. `module load python`)."""
    preamble = (host.get("env_preamble") or "").strip()
    return "%s\n%s" % (preamble, command) if preamble else command


def _python(host):
    return host.get("python") or "python3"


async def probe(conn, host, sha, mode):
    """One round trip: python version, cached pyz, daemon state (and start/upgrade/restart it, by `mode`)."""
    cmd = "%s -c %s %s %s %s" % (_python(host), shlex.quote(PROBE), shell_path(host.get("state_dir") or "~/.sac"),
                                 sha, mode)
    result = await conn.run(_shell(host, cmd), timeout=host.get("connect_timeout", 10) + 20)
    out = result.stdout.decode("utf-8", "replace")
    for line in out.splitlines():
        if line.startswith(PROBE_MARKER):
            return json.loads(line[len(PROBE_MARKER):])
    err = (result.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
    if result.returncode == 127 or "not found" in err:
        raise PythonMissing("host %s: `%s` was not found (%s); set `python:` for this host in the inventory, "
                            "or an `env_preamble` such as `module load python`" % (conn.name, _python(host), err))
    raise BootstrapFailed("host %s: the probe failed (exit %s): %s" % (conn.name, result.returncode, err))


def _check_python(conn, host, info):
    version = tuple(info["python"])
    if version < MIN_PYTHON:
        raise PythonMissing("host %s: %s is Python %s; sac needs >= 3.8: set `python:` for this host in the "
                            "inventory" % (conn.name, info["executable"], ".".join(map(str, version))))


async def bootstrap(conn, host, restart=False):
    """Make sure this head's node runs on the host (a fresh daemon when `restart`: agents keep running);
    return (probe info, what was done)."""
    data, sha = build_pyz()
    mode = RESTART if restart else START
    info = await probe(conn, host, sha, mode)
    _check_python(conn, host, info)
    actions = []
    if not info["pyz_cached"]:
        await conn.upload(info["pyz"], data, mode=0o600)
        actions.append("uploaded node.pyz (%d KB)" % (len(data) // 1024))
        info = await probe(conn, host, sha, mode)
    if info.get("upgraded_from"):
        actions.append("upgraded the node from %s" % (info["upgraded_from"] or "?")[:12])
    if info.get("restarted"):
        actions.append("stopped the node daemon (its agents keep running)")
    if info.get("started"):
        actions.append("started the node daemon")
    daemon = info.get("daemon") or {}
    if not daemon.get("alive"):
        raise BootstrapFailed("host %s: the node daemon did not start; see %s/daemon.log on that host"
                              % (conn.name, info["state_dir"]))
    return info, actions


async def inspect(conn, host):
    """Provision nothing on the host; return (probe info, what was done, what `bootstrap` would do there).

    The one thing done: a daemon that died (did not stop on purpose) is started again, from the pyz it
    ran, as nothing else would (its agents' shims run on without it). With a daemon running (of any
    sha), `info` names the pyz it runs from, for `attach`.
    """
    data, sha = build_pyz()
    info = await probe(conn, host, sha, LOOK)
    _check_python(conn, host, info)
    daemon = info.get("daemon") or {}
    would = [] if info["pyz_cached"] else ["upload node.pyz (%d KB)" % (len(data) // 1024)]
    done = [REVIVED] if info.get("revived") else []
    if daemon.get("alive") and daemon.get("sha") != sha:
        would.append("upgrade the node from %s" % (daemon.get("sha") or "?")[:12])
        info = dict(info, pyz="%s/node/%s.pyz" % (info["state_dir"], daemon.get("sha")), sha=daemon.get("sha"))
    elif not daemon.get("alive"):
        would.append("start the node daemon")
    return info, done, would


async def attach(conn, host, info):
    """A NodeClient on the host's daemon: stream-local first, the exec bridge where that is refused."""
    sock = info["state_dir"] + "/node.sock"
    try:
        stream = await conn.open_unix_connection(sock)
    except StreamLocalRefused:
        sha = info.get("sha") or build_pyz()[1]
        cmd = "SAC_NODE_SHA=%s %s %s attach --state-dir %s" % (
            sha, _python(host), shlex.quote(info["pyz"]), shlex.quote(info["state_dir"]))
        stream = await conn.open_exec(_shell(host, cmd))
    return NodeClient(stream.reader, stream.writer, host=conn.name, channel=stream.kind)
