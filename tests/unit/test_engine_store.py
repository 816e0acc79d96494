"""The engine on a host: which one the probe chooses, and the receiver's resume and hash check (stdlib, no SSH)."""

import hashlib
import io
import os
import struct
import zlib

import pytest

from sac_node import engine_store, probe

VERSION_SCRIPT = '#!/bin/sh\necho "%s (Claude Code)"\n'


def _script(path, version):
    path.write_text(VERSION_SCRIPT % version)
    path.chmod(0o755)
    return str(path)


def _frames(data, chunk, codec=zlib.compress):
    out = b""
    for start in range(0, len(data), chunk):
        packed = codec(data[start:start + chunk])
        out += struct.pack(">I", len(packed)) + packed
    return out + struct.pack(">I", 0)


@pytest.fixture
def bare_path(monkeypatch, tmp_path):
    """A host whose PATH has no claude and no SAC_CLAUDE_BIN."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("SAC_CLAUDE_BIN", raising=False)
    return tmp_path


def _want(sha="ab" * 32, **extra):
    return dict({"needed": True, "sha": sha, "head_version": "2.1.197", "upload": True}, **extra)


def test_a_host_with_no_claude_asks_for_the_upload_and_reports_what_it_already_has(bare_path):
    state = bare_path / "state"
    part = state / "engines" / ("ab" * 32) / "claude.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)
    found = probe.choose_engine(str(state), _want())
    assert (found["upload"], found["partial"], found["problem"]) == (True, 1000, None)
    assert found["arch"] and found["glibc"]
    refused = probe.choose_engine(str(state), _want(upload=False))
    assert not refused["upload"] and "no `claude` on PATH; upload: false" in refused["problem"]


def test_a_claude_on_path_of_the_pinned_version_is_used_and_another_version_is_not(bare_path, monkeypatch):
    bin_dir = bare_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    _script(bin_dir / "claude", "2.1.197")
    found = probe.choose_engine(str(bare_path / "state"), _want())
    assert (found["source"], found["bin"], found["upload"]) == ("path", str(bin_dir / "claude"), False)
    _script(bin_dir / "claude", "2.0.1")
    assert probe.choose_engine(str(bare_path / "state"), _want())["upload"]
    pinned = probe.choose_engine(str(bare_path / "state"), _want(version="2.0.1"))
    assert (pinned["source"], pinned["version"]) == ("path", "2.0.1")


def test_the_inventorys_bin_is_used_as_given_and_a_broken_one_is_a_problem(bare_path):
    good = _script(bare_path / "claude-here", "2.1.197")
    found = probe.choose_engine(str(bare_path / "state"), _want(bin=good))
    assert (found["source"], found["bin"], found["problem"]) == ("inventory", good, None)
    broken = probe.choose_engine(str(bare_path / "state"), _want(bin=str(bare_path / "missing")))
    assert "does not run `--version`" in broken["problem"] and not broken["upload"]


def test_the_heads_copy_that_cannot_run_here_says_which_part_is_missing(bare_path):
    found = probe.choose_engine(str(bare_path / "state"), _want(arch="riscv128"))
    assert "built for riscv128 and this host is" in found["problem"]
    newer = probe.choose_engine(str(bare_path / "state"), _want(glibc="2.999"))
    assert "needs glibc >= 2.999 and this host has" in newer["problem"]


def test_the_receiver_resumes_at_the_offset_and_verifies_the_whole_file(tmp_path):
    data = os.urandom(300_000)
    sha = hashlib.sha256(data).hexdigest()
    part = tmp_path / "engines" / sha / "claude.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:150_000] + b"garbage past the chunk boundary")
    path = engine_store.receive(str(tmp_path), sha, 100_000, "zlib", io.BytesIO(_frames(data[100_000:], 50_000)))
    with open(path, "rb") as fh:
        assert fh.read() == data
    assert os.access(path, os.X_OK) and not part.exists()
    assert probe.verified(path, sha)


def test_a_received_file_with_the_wrong_hash_is_removed_and_never_used(tmp_path):
    data = os.urandom(10_000)
    with pytest.raises(ValueError, match="sha256"):
        engine_store.receive(str(tmp_path), "00" * 32, 0, "none", io.BytesIO(_frames(data, 4_000, bytes)))
    assert not list((tmp_path / "engines" / ("00" * 32)).iterdir())


def test_a_verified_engine_that_changed_is_hashed_again_and_removed_when_corrupt(tmp_path):
    data = os.urandom(10_000)
    sha = hashlib.sha256(data).hexdigest()
    path = engine_store.receive(str(tmp_path), sha, 0, "none", io.BytesIO(_frames(data, 4_000, bytes)))
    with open(path, "r+b") as fh:
        fh.write(b"\0")
    assert probe.verified(path, sha, repair=False) is False and os.path.exists(path)  # reading changes nothing
    assert probe.verified(path, sha) is False and not os.path.exists(path)


def test_a_receiver_that_finds_the_engine_finished_or_its_part_shorter_asks_for_a_new_probe(tmp_path):
    final = probe.engine_path(str(tmp_path), "ab" * 32)
    os.makedirs(os.path.dirname(final))
    assert engine_store.resumable(final, 0) and not engine_store.resumable(final, CHUNK_OF_TEST)
    with open(final + probe.PARTIAL_SUFFIX, "wb") as fh:
        fh.write(b"x" * CHUNK_OF_TEST)
    assert engine_store.resumable(final, CHUNK_OF_TEST)
    os.rename(final + probe.PARTIAL_SUFFIX, final)  # another host's upload finished meanwhile
    assert not engine_store.resumable(final, 0)


CHUNK_OF_TEST = 4096


def test_a_verified_engine_is_trusted_by_its_mark_without_hashing_until_it_is_written(tmp_path, monkeypatch):
    data = os.urandom(10_000)
    sha = hashlib.sha256(data).hexdigest()
    path = engine_store.receive(str(tmp_path), sha, 0, "none", io.BytesIO(_frames(data, 4_000, bytes)))
    hashed = []
    real = probe.file_sha256
    monkeypatch.setattr(probe, "file_sha256", lambda p: hashed.append(p) or real(p))
    assert probe.verified(path, sha) and hashed == []  # the mark made at receipt is trusted at once
    with open(path, "r+b") as fh:  # within the same clock tick as the mark: the mtime still moves
        fh.write(b"\0")
    assert probe.verified(path, sha) is False and hashed == [path] and not os.path.exists(path)


def test_a_mark_made_as_the_file_was_written_is_not_trusted(tmp_path):
    path = str(tmp_path / "claude")
    with open(path, "wb") as fh:
        fh.write(b"x")
    with open(path + probe.VERIFIED_SUFFIX, "w") as fh:  # marked in the same instant as the write
        fh.write("%s %d" % (probe.stamp(path), os.stat(path).st_mtime_ns))
    assert probe.mark_matches(path) and not probe.mark_trusted(path)


def test_a_mark_that_is_not_three_numbers_is_hashed_again_not_a_crash(tmp_path):
    data = b"engine"
    path = str(tmp_path / "claude")
    with open(path, "wb") as fh:
        fh.write(data)
    with open(path + probe.VERIFIED_SUFFIX, "w") as fh:
        fh.write("6 garbage 12")
    assert not probe.mark_matches(path) and not probe.mark_trusted(path)
    assert probe.verified(path, hashlib.sha256(data).hexdigest())  # hashed, then marked anew
    assert probe.mark_trusted(path)
