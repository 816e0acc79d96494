"""The `sac` MCP server's command inside the sandbox: a standalone stdlib script, never imported by sac.

Claude Code starts it as
    python3 -I -S -c <this file's text> <unix socket>
and speaks MCP (newline-delimited JSON-RPC) on its stdin and stdout. It connects to
<unix socket>, bound into the sandbox from outside, where the agent's shim serves the
tools (sac_node/agent_talk.py), and copies bytes both ways until either side ends. No
network: the sandbox reaches the shim through this one socket.
"""

import os
import socket
import sys
import threading


def _to_socket(sock):
    try:
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            sock.sendall(data)
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main(argv):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # from the socket's own dir: an unsandboxed agent's path may be too long for AF_UNIX
        os.chdir(os.path.dirname(argv[1]) or ".")
        sock.connect(os.path.basename(argv[1]))
    except OSError as exc:
        sys.stderr.write("sac MCP bridge: cannot reach %s: %s\n" % (argv[1], exc))
        return 1
    writer = threading.Thread(target=_to_socket, args=(sock,))
    writer.daemon = True
    writer.start()
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout
    while True:
        data = sock.recv(65536)
        if not data:
            return 0
        out.write(data)
        out.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
