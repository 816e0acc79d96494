"""`python -m sac_node` / `python node.pyz`: daemon | attach | shim | version."""

import sys

# Daemons and shims never speak TLS (unix sockets only); keeping OpenSSL out of
# them saves ~4 MB RSS per process. asyncio copes with ssl being unavailable.
if len(sys.argv) > 1 and sys.argv[1] in ("daemon", "shim", "attach", "job"):
    sys.modules.setdefault("ssl", None)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json
import logging
import os
import socket
import threading
import time

from . import __version__
from .probe import answers
from .protocol.messages import PROTOCOL_VERSION, ready_line
from .state_dir import StateDir, default_state_dir

DAEMON_START_TIMEOUT_S = 15.0


def run_daemon(state):
    """Serve in the foreground until host.shutdown; exit 0 at once if another daemon holds the lock."""
    from .daemon import Node

    node = Node(state)
    if not node.acquire_lock():
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(node.serve())  # cancels and awaits what is left: no task is destroyed pending at exit
    return 0


def detach_daemon(state):
    """Start the daemon detached from this session (double fork); return once its socket answers."""
    state.create()
    if answers(state.socket):
        return 0
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        fd = os.open(state.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.chdir("/")
        try:
            code = run_daemon(state)
        except BaseException:
            logging.exception("node daemon crashed")
            code = 1
        os._exit(code)
    os.waitpid(pid, 0)
    deadline = time.time() + DAEMON_START_TIMEOUT_S
    while time.time() < deadline:
        if answers(state.socket):
            return 0
        time.sleep(0.02)
    sys.stderr.write("sac-node: the daemon did not start within %ss; see %s\n" % (DAEMON_START_TIMEOUT_S, state.log))
    return 1




def attach(state):
    """Bridge stdin/stdout to the daemon's socket (for SSH servers that forbid stream-local forwarding)."""
    if detach_daemon(state) != 0:
        return 1
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(state.socket)
    out = sys.stdout.buffer
    out.write(ready_line(__version__, os.environ.get("SAC_NODE_SHA", "-")).encode())
    out.flush()

    def upstream():
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            sock.sendall(data)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    threading.Thread(target=upstream, daemon=True).start()
    while True:
        data = sock.recv(65536)
        if not data:
            break
        out.write(data)
        out.flush()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="sac-node", description="sac's host-side helper")
    sub = parser.add_subparsers(dest="command")
    for name in ("daemon", "attach"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--state-dir", default=default_state_dir())
        if name == "daemon":
            cmd.add_argument("--detach", action="store_true", help="start in the background and return")
    shim = sub.add_parser("shim")
    shim.add_argument("agent_dir")
    job = sub.add_parser("job", help="run in a Slurm job: the shims of the agents it holds (slurm_job.py)")
    job.add_argument("job_dir")
    sub.add_parser("version")
    receive = sub.add_parser("engine-receive", help="take the head's engine on stdin (see engine_store.py)")
    receive.add_argument("--state-dir", default=default_state_dir())
    for name in ("sha", "offset", "codec"):
        receive.add_argument(name)
    args = parser.parse_args(argv)
    if args.command == "version":
        print(json.dumps({"version": __version__, "proto": PROTOCOL_VERSION,
                          "python": "%d.%d.%d" % sys.version_info[:3]}))
        return 0
    if args.command == "engine-receive":
        from .engine_store import main as receive_main

        return receive_main(os.path.abspath(os.path.expanduser(args.state_dir)), args.sha, args.offset, args.codec)
    if args.command == "shim":
        from .shim import main as shim_main

        return shim_main(args.agent_dir)
    if args.command == "job":
        from .slurm_job import main as job_main

        return job_main(args.job_dir)
    if args.command in ("daemon", "attach"):
        state = StateDir(args.state_dir)
        if args.command == "attach":
            return attach(state)
        return detach_daemon(state) if args.detach else run_daemon(state)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
