"""The layout of a node's state dir, the only place a host keeps sac's facts.

    <state>/                      0700
      daemon.lock  daemon.log  node.sock (0600)  secrets.env (0600, optional, KEY=VALUE)
      outbox.jsonl                messages for agents on other hosts, until a head carries them (outbox.py)
      node/<sha>.pyz              cached node helper (fleet bootstrap)
      agents/<name>/              0700, one per agent
        spec.json                 the resolved spec the head sent
        desired                   "running" | "stopped"
        journal.jsonl             accepted turns and outcomes (fsynced; compacted, see journal.py)
        transcript.jsonl[.1]      engine and supervisor events (rotated at 64 MiB)
        session.json              the engine's last session id
        heartbeat                 touched by the shim
        shim.json  shim.sock  shim.log
        net.sock  hosts           isolation.network: provider: the relay's socket, the sandbox's /etc/hosts
        mcp.sock                  comms: the `sac` MCP server's socket (agent_talk.py)
        hooks.sock                Claude Code's hooks report here (hooks_socket.py), bound into the sandbox
        home/  work/              the agent's HOME and default workdir
"""

import json
import os

from .protocol.messages import NAME_RE


def _compact_json():
    """One line of a JSONL file of the state dir (journal, transcript): compact JSON.

    json.dumps builds a new C encoder for every call; this one is built once (no
    circular-reference check: these records are plain trees), which halves the cost.
    """
    plain = json.JSONEncoder(separators=(",", ":"))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without json's C accelerator
        return plain.encode
    encode = make(None, plain.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)
    return lambda record: "".join(encode(record, 0))


compact_json = _compact_json()


def default_state_dir():
    return os.path.expanduser(os.environ.get("SAC_HOME") or "~/.sac")


def ensure_private_dir(path):
    """Create `path` (and parents) and make it 0700; return it."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class StateDir:
    """Paths inside one node state dir; creating them is explicit."""

    def __init__(self, root):
        self.root = os.path.abspath(os.path.expanduser(root))

    @property
    def socket(self):
        return os.path.join(self.root, "node.sock")

    @property
    def lock(self):
        return os.path.join(self.root, "daemon.lock")

    @property
    def log(self):
        return os.path.join(self.root, "daemon.log")

    @property
    def agents(self):
        return os.path.join(self.root, "agents")

    def agent(self, name):
        return AgentDir(os.path.join(self.agents, name), name)

    def agent_names(self):
        try:
            names = os.listdir(self.agents)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if NAME_RE.fullmatch(n) and os.path.isfile(os.path.join(self.agents, n, "spec.json")))

    def create(self):
        ensure_private_dir(self.root)
        ensure_private_dir(self.agents)
        return self

    @property
    def secrets_file(self):
        return os.path.join(self.root, "secrets.env")

    def secrets(self):
        """KEY=VALUE pairs from <state>/secrets.env (ignored unless mode 0600 or stricter), read anew at each call:
        the daemon and the shims call it at every agent (engine) start."""
        path = self.secrets_file
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return {}
        if st.st_mode & 0o077:
            return {}
        values = {}
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip().strip("'\"")
        return values


class AgentDir:
    """Paths of one agent's directory."""

    def __init__(self, path, name):
        self.path = path
        self.name = name
        join = os.path.join
        self.spec = join(path, "spec.json")
        self.desired = join(path, "desired")
        self.journal = join(path, "journal.jsonl")
        self.transcript = join(path, "transcript.jsonl")
        self.session = join(path, "session.json")
        self.heartbeat = join(path, "heartbeat")
        self.shim_info = join(path, "shim.json")
        self.socket = join(path, "shim.sock")
        self.shim_log = join(path, "shim.log")
        self.home = join(path, "home")
        self.default_work = join(path, "work")

    def exists(self):
        return os.path.isfile(self.spec)

    def read_desired(self):
        try:
            with open(self.desired) as fh:
                return fh.read().strip() or "stopped"
        except FileNotFoundError:
            return "stopped"

    def write_desired(self, value):
        write_atomic(self.desired, value + "\n")


def write_atomic(path, text, mode=0o600, durable=True):
    """Write a small file atomically (tmp + fsync + rename; no fsync when it need not survive the machine)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    os.close(replace_file(path, data, mode, durable, tmp="%s.tmp.%d" % (path, os.getpid())))


def open_for_append(path):
    """An O_APPEND fd on a JSONL file (created 0600), with a line torn by a crash cut off its end:
    otherwise the next record would be glued to it and lost on reading."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    size = os.fstat(fd).st_size
    if size:
        tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
        if not tail.endswith(b"\n"):
            os.ftruncate(fd, size - len(tail) + tail.rfind(b"\n") + 1)
    return fd


def replace_file(path, data, mode=0o600, durable=True, tmp=None):
    """Replace `path` by `data` atomically (a tmp file, fsync unless not `durable`, rename) and return
    an fd on it for appends. A caller that needs the rename to outlive a power loss fsyncs the
    directory (fsync_dir) before anything depends on the new file.
    """
    tmp = tmp or path + ".tmp"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
        os.rename(tmp, path)  # atomic over an existing `path` on POSIX
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return fd


def fsync_dir(path):
    """fsync the directory holding `path`, so that a rename into it survives a power loss."""
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
