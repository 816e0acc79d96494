"""The engine travels from the head: which Claude Code a host gets, and the upload of the head's copy.

The head's copy is the Claude Code this machine runs (`find_claude`: SAC_CLAUDE_BIN, PATH, the
project's .tools/), one native executable. `HeadEngine` is its identity (sha256, version, the
architecture and glibc it needs), read once and remembered per (path, size, mtime) in
`<SAC_HOME>/engine-facts.json`. `wish` is what the probe (sac_node/probe.py) is told; the probe
answers with the engine the host's daemon gets, or `upload` with how much of it is already there.

`send` streams the file to `python3 node.pyz engine-receive` (sac_node/engine_store.py) in
chunks of CHUNK bytes, each compressed on its own with CODEC and cached in this process, so 16
hosts cost one compression and a transfer cut midway resumes at the last whole chunk the host
has. The host checks the sha256 before the file is used.
"""

import asyncio
import hashlib
import json
import lzma
import os
import re
import struct
import time
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from sac_node import probe as node_probe
from sac_node.engine import find_claude
from sac_node.engine_store import BUSY, RESULT
from sac_node.protocol.errors import AgentError, BootstrapFailed
from sac_node.state_dir import default_state_dir, ensure_private_dir, write_atomic

CHUNK = 8 << 20
AHEAD = 2  # chunks compressed ahead of the one being sent
# Measured end to end on loopback (docs/benchmarks.md, "Engine upload"): see bench/fleet.py --engine-codecs.
CODECS = {"none": lambda data: data, "zlib": lambda data: zlib.compress(data, 1),
          "xz": lambda data: lzma.compress(data, preset=0)}
DEFAULT_CODEC = "zlib"
ELF_MACHINES = {3: "i686", 40: "armv7l", 62: "x86_64", 183: "aarch64", 243: "riscv64", 21: "ppc64le"}
GLIBC_RE = re.compile(rb"GLIBC_(2\.[0-9]+)")


@dataclass(frozen=True)
class HeadEngine:
    """The head's Claude Code: what a host is sent when it has none that fits."""

    path: str
    sha: str
    version: Optional[str]
    size: int
    arch: Optional[str]
    glibc: Optional[str]


def _facts_of(path):
    """{sha, version, arch, glibc} of the file at `path` (reads it once: ~0.5 s for 245 MB)."""
    digest, newest, arch = hashlib.sha256(), None, None
    with open(path, "rb") as fh:
        head = fh.read(20)
        if head[:4] == b"\x7fELF" and len(head) == 20:
            arch = ELF_MACHINES.get(struct.unpack("<H" if head[5] == 1 else ">H", head[18:20])[0])
        fh.seek(0)
        for block in iter(lambda: fh.read(4 << 20), b""):
            digest.update(block)
            for found in GLIBC_RE.findall(block):
                if newest is None or _version_key(found) > _version_key(newest):
                    newest = found
    return {"sha": digest.hexdigest(), "version": node_probe.engine_version(path), "arch": arch,
            "glibc": newest.decode() if newest else None}


def _version_key(text):
    return [int(part) for part in text.split(b".")]


@lru_cache(maxsize=1)
def head_engine():
    """The head's copy (a HeadEngine), or None when this machine has no Claude Code."""
    try:
        path = os.path.realpath(find_claude())
    except AgentError:
        return None
    st = os.stat(path)
    key = "%s|%d|%d" % (path, st.st_size, st.st_mtime_ns)
    cache = os.path.join(default_state_dir(), "engine-facts.json")
    try:
        with open(cache) as fh:
            facts = json.load(fh)[key]
    except (OSError, ValueError, KeyError, TypeError):
        facts = _facts_of(path)
        try:
            ensure_private_dir(default_state_dir())
            write_atomic(cache, json.dumps({key: facts}))
        except OSError:
            pass
    return HeadEngine(path, facts["sha"], facts["version"], st.st_size, facts["arch"], facts["glibc"])


def wish(engine, needed):
    """What the probe is told (its ENGINE argument, without `settings`): the inventory's `engine`
    fields (a dict) and, unless `bin` names one, the head's copy. `needed` is False when no agent of
    the inventory runs Claude Code: then no engine is looked for or sent."""
    if not needed:
        return {"needed": False}
    found = dict(engine, needed=True)
    head = None if found.get("bin") else head_engine()
    if head is not None:
        found.update(sha=head.sha, head_version=head.version, arch=head.arch, glibc=head.glibc, size=head.size)
    return found


def engine_problem(name, engine):
    """The one-line error for a host whose probe found no engine it may use (the probe's `problem`)."""
    fix = ("set engine.bin for this host to a Claude Code that runs there" if engine.get("source") else
           "install Claude Code there and set engine.bin, or allow the upload (remove engine.upload: false)")
    return BootstrapFailed("host %s: %s: %s" % (name, engine["problem"], fix), {"host": name})


def would(engine):
    """What `up` would do about the engine the probe looked at, in words ([] when nothing)."""
    if not engine:
        return []
    if engine.get("problem"):
        return ["fail: " + engine["problem"]]
    if engine.get("upload"):
        head = head_engine()
        left = head.size - engine["partial"] // CHUNK * CHUNK
        return ["upload Claude Code %s (%d MB%s)" % (head.version or "?", left >> 20,
                                                     ", resuming" if engine["partial"] >= CHUNK else "")]
    return []


class Payload:
    """The head's engine as compressed chunks, made once per process and shared by every host."""

    _done, _pending = {}, {}  # compressed chunks, by (sha, codec, index); in flight, also by event loop

    def __init__(self, head, codec=None):
        self.head, self.codec = head, codec or os.environ.get("SAC_ENGINE_CODEC") or DEFAULT_CODEC
        if self.codec not in CODECS:
            raise BootstrapFailed("SAC_ENGINE_CODEC=%s: not one of %s" % (self.codec, ", ".join(CODECS)))
        self.count = (head.size + CHUNK - 1) // CHUNK

    def chunk(self, index):
        """A future of the compressed bytes of chunk `index` (made in a thread, once)."""
        key = (self.head.sha, self.codec, index)
        loop = asyncio.get_running_loop()
        if key in self._done:
            made = loop.create_future()
            made.set_result(self._done[key])
            return made
        if (loop, key) not in self._pending:
            self._pending[(loop, key)] = asyncio.ensure_future(asyncio.to_thread(self._compress, key))
        return self._pending[(loop, key)]

    def _compress(self, key):
        with open(self.head.path, "rb") as fh:
            fh.seek(key[2] * CHUNK)
            self._done[key] = CODECS[self.codec](fh.read(CHUNK))
        return self._done[key]

    async def frames(self, first, on_chunk):
        """Length-prefixed compressed chunks from chunk `first`, then the zero end mark; the next AHEAD are
        made while one is sent. `on_chunk(raw bytes, wire bytes)` after each."""
        for index in range(first, self.count):
            for ahead in range(index + 1, min(index + 1 + AHEAD, self.count)):
                self.chunk(ahead)  # compressed in threads (zlib and lzma let go of the GIL) while this one travels
            data = await self.chunk(index)
            yield struct.pack(">I", len(data)) + data
            on_chunk(min(CHUNK, self.head.size - index * CHUNK), len(data) + 4)
        yield struct.pack(">I", 0)


class UploadProgress:
    """Bytes, rate and ETA of one host's upload, in words, for `fleet up`'s live table."""

    def __init__(self, size, offset, report, clock=time.monotonic):
        self.size, self.done, self.offset, self.report, self.clock = size, offset, offset, report, clock
        self.wire, self.started = 0, clock()

    def __call__(self, raw, wire):
        self.done += raw
        self.wire += wire
        if self.report:
            self.report(self.words())

    def words(self):
        elapsed = max(self.clock() - self.started, 1e-6)
        rate = (self.done - self.offset) / elapsed
        eta = (self.size - self.done) / rate if rate > 0 else 0
        return "engine %d/%d MB, %.0f MB/s, ETA %ds" % (self.done >> 20, self.size >> 20, rate / 1e6, eta)


async def send(conn, settings, info, pyz, report=None):
    """Upload the head's engine to the host the probe `info` came from; returns what was done, in words, or
    None when another upload to the same state dir holds it (ask the probe again a little later)."""
    head = head_engine()
    payload = Payload(head)
    first = info["engine"]["partial"] // CHUNK
    progress = UploadProgress(head.size, first * CHUNK, report)
    command = "%s %s engine-receive --state-dir %s %s %d %s" % (
        settings.python, pyz, info["state_dir"], head.sha, first * CHUNK, payload.codec)
    started = time.monotonic()
    result = await conn.stream_in(settings.shell(command), payload.frames(first, progress))
    said = result.stdout.decode("utf-8", "replace")
    if result.returncode == 0 and RESULT + BUSY in said:
        return None
    if result.returncode != 0 or received_path(said) is None:
        detail = said.strip().splitlines()[-1:] or result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise BootstrapFailed("host %s: the engine upload failed: %s" % (settings.name, (detail or ["no output"])[0]),
                              {"host": settings.name})
    seconds = time.monotonic() - started
    resumed = " (resumed at %d MB)" % (first * CHUNK >> 20) if first else ""
    return ("uploaded Claude Code %s%s: %d MB sent as %d MB %s in %.1fs" % (
        head.version or "?", resumed, (head.size - first * CHUNK) >> 20, progress.wire >> 20, payload.codec, seconds))


def received_path(said):
    """The engine's path from engine-receive's answer, or None when it failed."""
    for line in said.splitlines():
        if line.startswith(RESULT + "ok "):
            return line[len(RESULT) + 3:]
    return None
