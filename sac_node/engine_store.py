"""The head's engine, received on this host: `python3 node.pyz engine-receive` reads it from stdin.

The head sends the file in chunks, each compressed on its own (`none`, `zlib` or `xz`: the
standard library's, so any Python >= 3.8 takes them) and framed as a 4-byte big-endian length
then the bytes; a zero length ends it. The bytes go to `<state>/engines/<sha>/claude.part`,
truncated first to OFFSET (a chunk boundary the head chose from the probe's `partial`), so a
transfer cut midway resumes where it stopped. At the end the whole file's sha256 must be SHA: then
it becomes `claude` (0755) with its `.verified` mark; else the part is removed and it fails.

Hosts that share the state dir (NFS) may be sent the same engine at once: one receiver holds
`claude.lock` (flock); another answers `busy` at once, reading nothing, and its head asks the probe
again. So does a receiver that finds the engine already there, or less of the part than OFFSET
(what the probe saw changed meanwhile).
"""

import fcntl
import lzma
import os
import struct
import sys
import zlib

from . import probe

DECODERS = {"none": lambda data: data, "zlib": zlib.decompress, "xz": lzma.decompress}
RESULT = "SAC-ENGINE "
BUSY = "busy"


def _read_exactly(stream, size):
    data = b""
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            raise EOFError("the head stopped sending after %d of %d bytes of a chunk" % (len(data), size))
        data += more
    return data


def receive(state, sha, offset, codec, stream):
    """Append the chunks on `stream` to the part file from `offset`; the engine's path once verified."""
    final = probe.engine_path(state, sha)
    part = final + probe.PARTIAL_SUFFIX
    os.makedirs(os.path.dirname(final), mode=0o755, exist_ok=True)
    decode = DECODERS[codec]
    fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        while True:
            (size,) = struct.unpack(">I", _read_exactly(stream, 4))
            if not size:
                break
            data = decode(_read_exactly(stream, size))
            while data:
                data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)
    if probe.file_sha256(part) != sha:
        os.unlink(part)
        raise ValueError("the received engine's sha256 is not %s: removed, the next `sac fleet up` sends it again"
                         % sha[:12])
    os.chmod(part, 0o755)
    os.rename(part, final)
    probe.mark_verified(final)
    return final


def resumable(final, offset):
    """False when what the head's probe saw has changed since: another upload finished the engine, or
    the part is shorter than OFFSET. The head then asks the probe again (the `busy` answer)."""
    if os.path.exists(final):
        return False
    try:
        return os.path.getsize(final + probe.PARTIAL_SUFFIX) >= offset
    except OSError:
        return offset == 0


def main(state, sha, offset, codec):
    final = probe.engine_path(state, sha)
    try:
        os.makedirs(os.path.dirname(final), mode=0o755, exist_ok=True)
        lock = os.open(final + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            sys.stdout.write(RESULT + BUSY + "\n")
            return 0
        if not resumable(final, int(offset)):
            sys.stdout.write(RESULT + BUSY + "\n")
            return 0
        path = receive(state, sha, int(offset), codec, sys.stdin.buffer)
    except (OSError, ValueError, EOFError, lzma.LZMAError, zlib.error) as exc:
        sys.stdout.write(RESULT + "failed: %s\n" % exc)
        return 1
    sys.stdout.write(RESULT + "ok " + path + "\n")
    return 0
