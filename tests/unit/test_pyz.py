"""node.pyz: deterministic bytes, sources only, small, and runnable with nothing beside it."""

import glob
import hashlib
import io
import json
import shutil
import subprocess
import sys
import zipfile

import pytest

import sac_node
from sac_fleet.remote.pyz import archive_entries, build_pyz, pack_entries
from sac_node.protocol.messages import PROTOCOL_VERSION

MAX_PYZ_BYTES = 400 * 1024  # 300 KB until issues 14, 16, 17, 18 gave the node engine receipt, hooks, messages, Slurm


@pytest.fixture
def pyz_path(tmp_path):
    data, _ = build_pyz()
    path = tmp_path / "node.pyz"
    path.write_bytes(data)
    return path


def test_two_builds_give_identical_bytes_and_the_sha_names_them():
    data, sha = build_pyz()
    rebuilt = pack_entries(archive_entries())
    assert rebuilt == data
    assert hashlib.sha256(rebuilt).hexdigest() == sha


def test_a_fresh_process_elsewhere_builds_the_same_sha(tmp_path):
    _, sha = build_pyz()
    code = "from sac_fleet.remote.pyz import build_pyz; print(build_pyz()[1])"
    out = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out == sha


def test_entries_are_sorted_sources_with_fixed_dates_and_modes():
    data, _ = build_pyz()
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}
    assert all(name.endswith(".py") for name in names), names
    assert not [name for name in names if "__pycache__" in name or "_cmsgpack" in name]
    assert {"__main__.py", "sac_node/__main__.py", "sac_node/protocol/framing.py",
            "msgpack/__init__.py", "msgpack/exceptions.py", "msgpack/ext.py", "msgpack/fallback.py"} <= set(names)


def test_pyz_stays_well_under_the_size_budget():
    data, _ = build_pyz()
    assert len(data) < MAX_PYZ_BYTES, "node.pyz is %d bytes (budget %d)" % (len(data), MAX_PYZ_BYTES)


def _run_isolated(python, pyz_path, *args):
    # -I: no user site, no env vars; -S: no site-packages either, so only the pyz is importable.
    return subprocess.run([python, "-I", "-S", str(pyz_path)] + list(args), cwd=str(pyz_path.parent),
                          capture_output=True, text=True, timeout=30)


def test_version_runs_with_only_the_pyz_on_the_path(pyz_path):
    result = _run_isolated(sys.executable, pyz_path, "version")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["version"] == sac_node.__version__
    assert facts["proto"] == PROTOCOL_VERSION


def test_msgpack_inside_uses_its_pure_python_fallback(pyz_path):
    code = ("import sys; sys.path.insert(0, %r); import msgpack; "
            "print(msgpack.Packer.__module__, msgpack.__file__)" % str(pyz_path))
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=30)
    module, origin = result.stdout.split()
    assert module == "msgpack.fallback"
    assert origin.startswith(str(pyz_path))


def _python38():
    """A working Python 3.8 (a pyenv shim may exist without one behind it), or None."""
    candidates = sorted(glob.glob("/root/.pyenv/versions/3.8*/bin/python3.8"))
    candidates += [found for found in [shutil.which("python3.8")] if found]
    for python in candidates:
        probe = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2] == (3, 8))"],
                               capture_output=True, text=True)
        if probe.stdout.strip() == "True":
            return python
    return None


def test_version_runs_on_python_3_8(pyz_path):
    python = _python38()
    if python is None:
        pytest.skip("no python3.8 here to prove the oldest supported host Python")
    result = _run_isolated(python, pyz_path, "version")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["version"] == sac_node.__version__
