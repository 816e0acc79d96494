"""The link a Slurm job dials back to the login daemon (docs/slurm.md): nothing listens on a compute node.

A unix socket cannot be reached from another machine, even on a shared file system. The daemon listens
on TCP (its address in <state>/slurm/listen.json); a job proves itself with the token in its job dir's
link.json and keeps a control line (it reports `{"shims": {agent: pid}}`, the daemon asks `{"open":
agent, "cookie"}`); for each open it dials a stream and bridges it to the shim's local socket.
"""

import asyncio
import hmac
import json
import logging
import os
import secrets
import socket
import threading

from .protocol.errors import AgentNotRunning
from .state_dir import write_atomic

log = logging.getLogger("sac_node.slurm_link")

HELLO_LIMIT = 4096
OPEN_TIMEOUT_S = 10.0


def link_file(job_dir):
    return os.path.join(job_dir, "link.json")


def write_token(job_dir):
    """A fresh token for the job in its dir (0600)."""
    write_atomic(link_file(job_dir), json.dumps({"token": secrets.token_hex(16)}), 0o600)


def read_token(job_dir):
    try:
        with open(link_file(job_dir)) as fh:
            return json.load(fh)["token"]
    except (OSError, ValueError, KeyError):
        return None


class JobLinks:
    """The login daemon's end: the listening socket and each connected job's control line."""

    def __init__(self, root, on_change=lambda: None):
        self.root = root  # <state>/slurm
        self.on_change = on_change  # called when a job's control line connects or closes
        self.server = None
        self.controls = {}  # job key -> asyncio writer of its control connection
        self.shims = {}  # job key -> {agent: pid} as the job last reported
        self._waiting = {}  # cookie -> future of (reader, writer)

    async def listen(self, address):
        """Listen (once) on `address`; jobs read where from listen.json each time they dial."""
        if self.server is not None:
            return
        host = address or socket.gethostbyname(socket.gethostname())
        self.server = await asyncio.start_server(self._on_connection, host, 0, limit=256 * 1024)
        bound = self.server.sockets[0].getsockname()
        write_atomic(os.path.join(self.root, "listen.json"), json.dumps({"address": bound[0], "port": bound[1]}))
        log.info("Slurm jobs connect back to %s:%d", bound[0], bound[1])

    def shim_pid(self, key, agent):
        """The pid of the agent's shim that job `key` reports serving, or None."""
        return (self.shims.get(key) or {}).get(agent)

    async def open_stream(self, key, agent):
        """(reader, writer) bridged by job `key` to the agent's shim socket on its compute node."""
        control = self.controls.get(key)
        if control is None:
            raise AgentNotRunning("agent %s: its Slurm job has not connected back to the login node" % agent)
        cookie = secrets.token_hex(16)
        found = self._waiting[cookie] = asyncio.get_event_loop().create_future()
        control.write((json.dumps({"open": agent, "cookie": cookie}) + "\n").encode())
        try:
            return await asyncio.wait_for(found, OPEN_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise AgentNotRunning("agent %s: its Slurm job did not open a stream to its shim" % agent) from None
        finally:
            self._waiting.pop(cookie, None)

    async def _on_connection(self, reader, writer):
        try:
            hello = json.loads((await asyncio.wait_for(reader.readline(), OPEN_TIMEOUT_S))[:HELLO_LIMIT])
            key = str(hello["job"])
            token = read_token(os.path.join(self.root, os.path.basename(key)))
            if token is None or not hmac.compare_digest(str(hello.get("token")), token):
                raise ValueError("bad token")
        except (ValueError, KeyError, TypeError, OSError, asyncio.TimeoutError):
            writer.close()  # not one of our jobs: say nothing
            return
        if hello.get("kind") == "stream":
            found = self._waiting.get(hello.get("cookie"))
            if found is None or found.done():
                writer.close()
            else:
                found.set_result((reader, writer))
            return
        await self._serve_control(key, reader, writer)

    async def _serve_control(self, key, reader, writer):
        self.controls[key] = writer
        self.on_change()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                report = json.loads(line)
                self.shims[key] = {str(k): int(v) for k, v in (report.get("shims") or {}).items()}
        except (ValueError, OSError, AttributeError):
            pass
        finally:
            if self.controls.get(key) is writer:
                del self.controls[key]
                self.shims.pop(key, None)
            writer.close()
            self.on_change()


class LinkClient:
    """The job's end (threads): dial, report, bridge."""

    def __init__(self, state_root, job_dir, shim_socket):
        self.listen_json = os.path.join(state_root, "slurm", "listen.json")
        self.key = os.path.basename(job_dir)
        self.token = read_token(job_dir)
        self.shim_socket = shim_socket  # fn(agent) -> the path of its shim's socket
        self.control = None
        self.lock = threading.Lock()
        self.reported = None

    def _dial(self, kind, **extra):
        with open(self.listen_json) as fh:
            where = json.load(fh)
        sock = socket.create_connection((where["address"], where["port"]), timeout=OPEN_TIMEOUT_S)
        sock.settimeout(None)
        sock.sendall((json.dumps(dict(extra, job=self.key, token=self.token, kind=kind)) + "\n").encode())
        return sock

    def report(self, shims):
        """Tell the daemon which shims serve (only when it changed, or after a reconnect)."""
        with self.lock:
            if self.control is None:
                try:
                    self.control = self._dial("control")
                    self.reported = None
                    threading.Thread(target=self._read_control, args=(self.control,), daemon=True).start()
                except (OSError, ValueError, KeyError) as exc:
                    log.warning("cannot reach the login daemon: %s", exc)
                    return
            if shims == self.reported:
                return
            try:
                self.control.sendall((json.dumps({"shims": shims}) + "\n").encode())
                self.reported = dict(shims)
            except OSError:
                self.control = None

    def _read_control(self, sock):
        stream = sock.makefile("rb")
        for line in stream:
            try:
                ask = json.loads(line)
                threading.Thread(target=self._bridge, args=(ask["open"], ask["cookie"]), daemon=True).start()
            except (ValueError, KeyError):
                continue
        with self.lock:
            if self.control is sock:
                self.control = None

    def _bridge(self, agent, cookie):
        try:
            shim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            shim.connect(self.shim_socket(agent))
            up = self._dial("stream", cookie=cookie)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("[agent=%s] cannot bridge to its shim: %s", agent, exc)
            return
        other = threading.Thread(target=_pump, args=(up, shim), daemon=True)
        other.start()
        _pump(shim, up)
        other.join()
        shim.close()
        up.close()

    def close(self):
        with self.lock:
            if self.control is not None:
                try:
                    self.control.shutdown(socket.SHUT_RDWR)  # the reader thread's file keeps the fd open
                except OSError:
                    pass
                self.control.close()
                self.control = None


def _pump(src, dst):
    """Copy src to dst until EOF; then close dst's write side (and both once done)."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
        try:
            sock.shutdown(how)
        except OSError:
            pass
