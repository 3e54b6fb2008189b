"""Large files are read straight from the media along TSK's block runs (``_direct_runs``): the
hashes must be those of the bytes written (hashlib) and of ``icat`` (TSK's command line), and
every file whose runs are not plain (sparse holes, preallocated extents, resident data) must
fall back to TSK's own read.

Fixtures are made here: an ext4 image by ``mke2fs -d`` from files written by the test (one
with holes, made by seeking), one extent preallocated by ``debugfs fallocate`` (unwritten: TSK
decides what it reads), a FAT16 image by ``mkfs.fat`` + ``mcopy``, and the ext4 image as E01 by
``ewfacquire``.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
from pathlib import Path

import pytest
from conftest import needs_tool

from triage.filesystems.backends import VolumeRef, backend
from triage.filesystems.backends.tsk import _direct_runs
from triage.evidence.containers import identify
from triage.records import ReadTarget

SIZES = {"a.bin": 300_000, "b.bin": 16 << 10, "c.bin": 5 << 20, "small.bin": 5000}


def _write_files(src: Path) -> dict[str, bytes]:
    rng = random.Random(7)
    src.mkdir()
    out = {}
    for name, size in SIZES.items():
        out[name] = rng.randbytes(size)
        (src / name).write_bytes(out[name])
    holes = rng.randbytes(100_000)
    with open(src / "sparse.bin", "wb") as fh:  # data, a 1 MiB hole, data
        fh.write(holes[:60_000])
        fh.seek(60_000 + (1 << 20))
        fh.write(holes[60_000:])
    out["sparse.bin"] = holes[:60_000] + bytes(1 << 20) + holes[60_000:]
    return out


def _icat_sha1(image: Path, inode: int, offset_sectors: int = 0) -> str:
    data = subprocess.run(["icat", "-o", str(offset_sectors), str(image), str(inode)],
                          check=True, capture_output=True).stdout
    return hashlib.sha1(data).hexdigest()


def _files(image: Path, fs_type: str):
    spec = identify(str(image))
    b = backend("tsk")
    handle = b.open(VolumeRef(spec, 0, fs_type, 0))
    # raw media always, E01 through the system libewf (libewf2, installed by .ci/run)
    assert handle.direct is not None, f"{spec.format}: no direct reader (is libewf2 installed?)"
    for f in handle.fs.open_dir("/"):
        meta = f.info.meta
        name = f.info.name.name.decode()
        if meta is None or int(meta.type) != 1 or name.startswith("."):  # regular files only
            continue
        yield b, handle, name, int(meta.addr), int(meta.size), f


def _check(image: Path, fs_type: str, written: dict[str, bytes], direct_expected: set[str],
           icat_image: Path | None = None) -> None:
    seen = set()
    for b, handle, name, addr, size, f in _files(image, fs_type):
        target = ReadTarget(addr, file=f)
        runs = _direct_runs(handle, target, size)
        assert (runs is not None) == (name.lower() in direct_expected), name
        read = b.hash_content(handle, target, size, ("md5", "sha1"), lambda: None)
        hashes, error = read.hashes, read.error
        assert error is None, (name, error)
        if name.lower() in written:
            assert hashes["sha1"] == hashlib.sha1(written[name.lower()]).hexdigest(), name
        if icat_image is not None:
            assert hashes["sha1"] == _icat_sha1(icat_image, addr), name
        seen.add(name.lower())
    assert set(written) <= seen


def _ext4(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    needs_tool("mke2fs")
    written = _write_files(tmp_path / "src")
    image = tmp_path / "ext4.raw"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-d",
                    str(tmp_path / "src"), str(image), "4096"], check=True, capture_output=True)
    return image, written


def test_ext4_direct_reads_match_written_bytes_and_icat(tmp_path: Path) -> None:
    needs_tool("icat")
    image, written = _ext4(tmp_path)
    # plain runs: read directly; the holed file has no run for its hole: TSK reads it
    _check(image, "ext4", written, {"a.bin", "b.bin", "c.bin", "small.bin"}, image)


def test_ext4_preallocated_extent_reads_as_tsk_does(tmp_path: Path) -> None:
    needs_tool("icat")
    needs_tool("debugfs")
    image, written = _ext4(tmp_path)
    # blocks 100..199 of a new file preallocated, never written (an "unwritten" extent)
    subprocess.run(["debugfs", "-w", "-R", "write /dev/null prealloc.bin", str(image)],
                   check=True, capture_output=True)
    subprocess.run(["debugfs", "-w", "-R", "fallocate /prealloc.bin 0 99", str(image)],
                   check=True, capture_output=True)
    subprocess.run(["debugfs", "-w", "-R", "sif /prealloc.bin size 409600", str(image)],
                   check=True, capture_output=True)
    names = {name for *_, name, _, size, _ in _files(image, "ext4") if size}
    assert "prealloc.bin" in names
    # whichever path reads it, the answer must be icat's
    for b, handle, name, addr, size, f in _files(image, "ext4"):
        if name == "prealloc.bin":
            read = b.hash_content(handle, ReadTarget(addr, file=f), size,
                                  ("sha1",), lambda: None)
            hashes, error = read.hashes, read.error
            assert error is None and hashes["sha1"] == _icat_sha1(image, addr)


def test_fat16_direct_reads(tmp_path: Path) -> None:
    needs_tool("mkfs.fat")
    needs_tool("mcopy")
    needs_tool("icat")
    rng = random.Random(9)
    image = tmp_path / "fat.raw"
    subprocess.run(["mkfs.fat", "-F", "16", "-C", str(image), "32768"], check=True,
                   capture_output=True)
    written = {}
    for name, size in (("big.bin", 700_000), ("mid.bin", 40_000), ("tiny.bin", 300)):
        written[name] = rng.randbytes(size)
        (tmp_path / name).write_bytes(written[name])
        subprocess.run(["mcopy", "-i", str(image), str(tmp_path / name), f"::{name}"],
                       check=True, capture_output=True)
    _check(image, "fat16", written, {"big.bin", "mid.bin", "tiny.bin"}, image)


def test_e01_direct_reads(tmp_path: Path) -> None:
    needs_tool("ewfacquire")
    image, written = _ext4(tmp_path)
    subprocess.run(["ewfacquire", "-u", "-q", "-t", str(tmp_path / "ext4"), "-f", "encase6",
                    "-c", "fast", str(image)], check=True, capture_output=True)
    e01 = tmp_path / "ext4.E01"
    assert identify(str(e01)).format == "ewf"  # libewf-python is a dependency
    _check(e01, "ext4", written, {"a.bin", "b.bin", "c.bin", "small.bin"}, image)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 10_000, (1 << 20) + 7, (3 << 20) + 1])
def test_runs_reader_over_fragmented_runs(size: int) -> None:
    """Content laid out in shuffled runs of a fake medium reads back as the bytes it holds,
    and a medium that ends early is a short read, never a shorter hash."""
    from triage.content.hashing import hash_reads, runs_reader

    rng = random.Random(size)
    content = rng.randbytes(size)
    medium = bytearray(rng.randbytes(8 << 20))
    runs, pos, cursor = [], 0, 4096
    while pos < size:  # runs of odd lengths, scattered forward and back
        length = min(rng.choice([512, 4096, 70_000, 1 << 20]), size - pos)
        start = cursor if len(runs) % 2 else (8 << 20) - cursor - length
        medium[start:start + length] = content[pos:pos + length]
        runs.append((start, length))
        pos += length
        cursor += length + 512
    read = lambda offset, n: bytes(medium[offset:offset + n])  # noqa: E731
    got = hash_reads(runs_reader(read, runs), size, ("md5", "sha1"))
    hashes, error, nbytes = got.hashes, got.error, got.nbytes
    assert error is None and nbytes == size
    assert hashes == {"md5": hashlib.md5(content).hexdigest(),
                      "sha1": hashlib.sha1(content).hexdigest()}
    if size > 1:
        cut = runs[:-1] + [(runs[-1][0], runs[-1][1] - 1)]  # the last run is one byte short
        got = hash_reads(runs_reader(read, cut), size, ("md5",))
        hashes, error, nbytes = got.hashes, got.error, got.nbytes
        assert hashes is None and error == f"short read: got {size - 1} of {size} bytes"
