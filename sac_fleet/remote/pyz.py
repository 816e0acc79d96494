"""node.pyz: the installed `sac_node` plus msgpack's pure-Python sources, as a zipapp.

The bytes are deterministic (sorted entries, fixed 1980-01-01 timestamps, fixed
permissions, stored uncompressed so no zlib version can change them, no
bytecode), so the sha256 of the archive names it on every head and host.
msgpack ships without its C extension: with no `_cmsgpack` in the archive,
`msgpack/__init__.py` falls back to `msgpack.fallback`, which runs anywhere.
"""

import hashlib
import io
import zipfile
from functools import lru_cache
from pathlib import Path

import msgpack

import sac_node

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # a regular file, rw-r--r--
MSGPACK_SOURCES = ("__init__.py", "exceptions.py", "ext.py", "fallback.py")

# Runs `sac_node/__main__.py` as the program, whatever its inner layout.
MAIN = b'''"""node.pyz entry point: python3 node.pyz {daemon|attach|shim|version} ..."""
import runpy

runpy.run_module("sac_node", run_name="__main__", alter_sys=True)
'''


def _package_sources(package_dir, prefix):
    """(archive name, bytes) for every .py file of a package, skipping bytecode caches."""
    root = Path(package_dir)
    entries = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        if "__pycache__" in relative.parts:
            continue
        entries.append(("%s/%s" % (prefix, relative.as_posix()), path.read_bytes()))
    return entries


def _msgpack_sources():
    root = Path(msgpack.__file__).parent
    return [("msgpack/%s" % name, (root / name).read_bytes()) for name in MSGPACK_SOURCES]


def archive_entries():
    """Everything that goes into node.pyz, as sorted (name, bytes) pairs."""
    entries = _package_sources(Path(sac_node.__file__).parent, "sac_node")
    entries += _msgpack_sources()
    entries.append(("__main__.py", MAIN))
    return sorted(entries)


def pack_entries(entries):
    """Deterministic zip bytes for (name, bytes) pairs, in the given order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.external_attr = FILE_MODE << 16
            info.create_system = 3  # unix, so the mode bits mean the same everywhere
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, data)
    return buffer.getvalue()


@lru_cache(maxsize=1)
def build_pyz():
    """Return (node.pyz bytes, sha256 hex digest); built once per process."""
    data = pack_entries(archive_entries())
    return data, hashlib.sha256(data).hexdigest()
