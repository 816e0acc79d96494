"""Check a site's sandbox by hand: `python3 -m sac_node.sandbox [runtime] [--reach HOST:PORT]`.

A probe agent, laid out and started exactly as sac starts an agent, reports what it
sees: its uid, whether the host's home is hidden, the root read-only, its workdir
writable, its secret delivered. With --reach it instead tries a TCP connection to
HOST:PORT from inside a sandbox with the network sac gives an agent by default
(its own namespace: the agent's provider relay is the only way out, and the probe has none).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from . import sandbox
from .node_spec import Isolation
from .protocol.errors import SacError

_REACH = ('import socket, sys\n'
          'try:\n'
          '    socket.create_connection((sys.argv[1], int(sys.argv[2])), 5).close()\n'
          '    print("%s:%s: REACHABLE from the sandbox" % tuple(sys.argv[1:]))\n'
          'except OSError as exc:\n'
          '    print("%s:%s: unreachable from the sandbox (%s)" % (sys.argv[1], sys.argv[2], exc))\n')


def describe(which=shutil.which, probe_bwrap=sandbox.probe_bwrap):
    """Host facts about sandboxing, for `python3 -m sac_node.sandbox`."""
    bwrap = which("bwrap")
    probe = probe_bwrap(bwrap) if bwrap else None
    return {"apptainer": which("apptainer") or which("singularity"), "bwrap": bwrap,
            "bwrap_works": bool(probe and probe.ok), "bwrap_detail": probe.detail if probe else None}


def self_check(runtime, host_home=None, reach=None):
    """Run a probe agent in `runtime`; returns (what it printed, the sandbox's properties).

    reach: (host, port) to try from inside, in the network an agent gets (network: none
    here, the same namespace as `provider` without the relay).
    """
    host_home = host_home or os.path.expanduser("~")
    root = tempfile.mkdtemp(prefix="sac-sandbox-check-")
    agent = os.path.join(root, "agents", "check")
    work, home = os.path.join(agent, "work"), os.path.join(agent, "home")
    os.makedirs(work)
    os.makedirs(home)
    script = ('echo "uid inside: $(id -u)"; ls -A %s >/dev/null 2>&1 && echo "host home: VISIBLE" '
              '|| echo "host home: hidden"; [ -w / ] && echo "root: WRITABLE" '
              '|| echo "root: read-only"; touch probe && echo "workdir: writable"; '
              'echo "secret via env: ${SAC_CHECK_SECRET:+yes}"') % host_home
    argv = ["python3", "-I", "-S", "-c", _REACH, reach[0], str(reach[1])] if reach else ["/bin/sh", "-c", script]
    try:
        plan = sandbox.build_launch(runtime, argv, workdir=work, home=home,
                                    env={"PATH": "/usr/local/bin:/usr/bin:/bin"}, secrets={"SAC_CHECK_SECRET": "s3"},
                                    isolation=Isolation(network="none"), ro_paths=[], agent_dir=agent,
                                    host_home=host_home)
        for path, text in plan.secret_files.items():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, text.encode("utf-8"))
            os.close(fd)
        done = subprocess.run(plan.argv, env=plan.env, cwd=plan.cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=120)
        return done.stdout.decode("utf-8", "replace"), plan.properties
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _parse_reach(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit("--reach takes HOST:PORT, e.g. --reach 10.0.0.5:22")
    return host.strip("[]"), int(port)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    reach = None
    if "--reach" in argv:
        at = argv.index("--reach")
        if at + 1 >= len(argv):
            raise SystemExit("--reach takes HOST:PORT, e.g. --reach 10.0.0.5:22")
        reach = _parse_reach(argv[at + 1])
        del argv[at:at + 2]
    if not reach:
        print(json.dumps(describe(), indent=2))
    try:
        chosen = sandbox.choose_runtime(argv[0] if argv else "auto")
        output, properties = self_check(chosen, reach=reach)
        if not reach:
            print("runtime: %s" % chosen)
            print(json.dumps(properties, indent=2))
        print(output, end="")
    except SacError as exc:
        print(exc.message)
        sys.exit(1)


if __name__ == "__main__":
    main()
