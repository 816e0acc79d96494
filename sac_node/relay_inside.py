"""The inside half of the provider relay: a standalone stdlib script, never imported by sac.

Run in the sandbox before the engine, as
    python3 -I -S -c <this file's text> <listen address> <port> <unix socket> <engine argv...>
it listens on <listen address>:<port> (the sandbox's own loopback), forks a child that
serves it, and execs the engine in its own place, so the engine keeps the pid, stdio and
environment bwrap gave. The socket listens before the exec: the engine's first request
cannot race it. For each connection the child asks <unix socket> (bound in from outside,
where the shim's ProviderRelay listens) for a TCP connection to the provider, which comes
back as a file descriptor made outside the sandbox's network namespace, and copies bytes
between the two: one hop, in this process.
"""

import array
import os
import socket
import sys
import threading
import time


def _copy(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _serve_one(client, path):
    upstream = _provider_connection(path)
    if upstream is None:
        client.close()
        return
    back = threading.Thread(target=_copy, args=(upstream, client))
    back.daemon = True
    back.start()
    _copy(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _provider_connection(path):
    """A socket connected to the provider, received from the shim (None when it could not dial)."""
    asker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        asker.connect(path)
        _, ancillary, _, _ = asker.recvmsg(1, socket.CMSG_LEN(array.array("i").itemsize))
    except OSError:
        return None
    finally:
        asker.close()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[:fds.itemsize])
            upstream = socket.socket(fileno=fds[0])
            upstream.setblocking(True)  # the shim dialled it non-blocking; the flag travels with the fd
            return upstream
    return None


def _serve(listener, path):
    while True:
        client, _ = listener.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        worker = threading.Thread(target=_serve_one, args=(client, path))
        worker.daemon = True
        worker.start()


def _exit_with(pid):
    """End when the engine does (a sandbox's PID namespace would end us anyway; this covers the rest)."""
    while os.getppid() == pid:
        time.sleep(1)
    os._exit(0)


def main(argv):
    address, port, path, engine = argv[1], int(argv[2]), argv[3], argv[4:]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(64)
    engine_pid = os.getpid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # the engine's pipes must close when the engine ends, not when the relay does
            os.dup2(null, fd)
        watch = threading.Thread(target=_exit_with, args=(engine_pid,))
        watch.daemon = True
        watch.start()
        try:
            _serve(listener, path)
        finally:
            os._exit(0)
    listener.close()
    os.execvp(engine[0], engine)


if __name__ == "__main__":
    main(sys.argv)
