"""Differential matrix (issue 13): the same evidence content in every container, crossed with
every option that may only add information or change order, must give the same records.

One content tree (files whose sizes cross every internal threshold, every census kind, pictures
made with Pillow, a sparse file) is written once per session, then:

- put into an MBR disk with a FAT16, an ext4 and an NTFS partition (mkfs.vfat + mcopy,
  mke2fs -d, mkntfs + ntfscp through testimages/build.py; NTFS gets the files up to 2 MiB);
- that disk as raw, split raw, E01 (ewfacquire, two segments) read through the system libewf
  and through libewf-python (``TRIAGE_NO_NATIVE_EWF=1``), VHD, VHDX, VMDK and QCOW2
  (``qemu-img convert``), and the tree itself as a logical folder.

Truth comes from outside the tool: hashlib and xxhash over the bytes written, and the category
each file has in a generated CAID-like benign hash set (plus a known-good list). The plain raw
scan is checked against that truth; every other cell's set of (volume_offset, inode, path, size,
md5, sha1, sha256, category, error) - and the census kind and signature - must equal the plain
raw scan's (the logical folder: the ext4 volume's, without volume offset and inode), and no
cell may have an error on content that the plain scan read. Every cell also checks that
``totals.bytes_hashed`` is what its records hashed, and the conftest gate fails any cell with
an internal error.

Design (fast enough for CI: 132 cells, 141 scans, ~110 s on 2 idle cores): every container is
crossed with every option singly (``CELLS``); the raw image and the E01 also get combined cells
(``COMBINED``). The full cartesian product would be ~9 containers x 2^7 x 4 orders x 4
algorithm sets; singles plus combinations of the options most likely to interact (order with
workers, PDQ with the direct path and libewf) find the class of bug this matrix exists for (a
buffer type, a read path, a scheduling path). The folder skips --verify-image (no media
stream) and TRIAGE_NO_DIRECT (no direct path).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import xxhash
from PIL import Image

from triage.evidence import ewf_native
from triage.run.scan import ScanConfig, run_scan

from conftest import TESTIMAGES, needs_tool


def _fixture_builder():
    """testimages/build.py (mkntfs + libntfs-3g directories + ntfscp) for the NTFS partition."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("triage_fixture_build",
                                                  TESTIMAGES / "build.py")
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module

MIB = 1 << 20
EPOCH = 1_700_000_000
ENV = {**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC", "MTOOLSRC": "/dev/null",
       "E2FSPROGS_FAKE_TIME": str(EPOCH), "SOURCE_DATE_EPOCH": str(EPOCH)}

# Every internal threshold, just below, at and just above: 512-byte sectors, 4 KiB blocks,
# census HEAD (8 KiB), direct reads (TRIAGE_DIRECT_MIN 16 KiB), CHUNK and whole-read (1 MiB),
# BIG_FILE (8 MiB: larger files are their own tasks); plus several MiB.
SIZES = [0, 1, 2, 511, 512, 513, 4095, 4096, 4097, 8191, 8192, 8193, 16383, 16384, 16385,
         65539, 300_000, MIB - 1, MIB, MIB + 1, 3 * MIB + 7, 8 * MIB + 1]
NTFS_SIZE, NTFS_MAX = 24 * MIB, 2 * MIB  # the NTFS partition holds the files up to 2 MiB


@dataclass
class Item:
    path: str
    data: bytes
    kind: str | None = None  # expected census kind (None: not asserted)
    signature: str | None = None
    category: str = "unknown"  # in the generated sets
    sparse: bool = False


def _noise(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _picture(fmt: str, w: int, h: int, seed: int, **kw) -> bytes:
    rng = random.Random(seed)
    img = Image.new("RGB", (w, h))
    # blocky noise: compressible enough, with structure for PDQ
    small = Image.new("RGB", (max(1, w // 8), max(1, h // 8)))
    small.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256))
                   for _ in range(small.width * small.height)])
    img = small.resize((w, h), Image.NEAREST)
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=(2023, 11, 14, 22, 13, 20))
            z.writestr(info, data)
    return out.getvalue()


def _targz() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.USTAR_FORMAT) as t:
        data = b"tar member\n" * 50
        info = tarfile.TarInfo("member.txt")
        info.size, info.mtime = len(data), EPOCH
        t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _bmff(brand: bytes, size: int, seed: int) -> bytes:
    head = struct.pack(">I", 24) + b"ftyp" + brand + b"\0\0\0\0" + brand + b"mp41"
    return head + struct.pack(">I", 8 + size) + b"mdat" + _noise(seed, size)


def items() -> list[Item]:
    out = [Item(f"/sizes/f{n:08d}.bin", _noise(n, n)) for n in SIZES]
    out += [
        Item("/pictures/photo.jpg", _picture("JPEG", 640, 480, 1, quality=90), "picture",
             "jpeg", "B"),
        Item("/pictures/logo.png", _picture("PNG", 200, 150, 2), "picture", "png"),
        Item("/pictures/big.png", _picture("PNG", 900, 700, 3, compress_level=0), "picture",
             "png", "C"),  # > 1 MiB: several reads, content kept for PDQ
        Item("/pictures/anim.gif", _picture("GIF", 120, 90, 4), "picture", "gif"),
        Item("/pictures/scan.bmp", _picture("BMP", 100, 80, 5), "picture", "bmp"),
        Item("/pictures/pic.webp", _picture("WEBP", 160, 120, 6), "picture", "webp"),
        Item("/pictures/scan.tif", _picture("TIFF", 90, 70, 7), "picture", "tiff"),
        Item("/pictures/tiny.png", _picture("PNG", 12, 10, 8), "picture", "png"),
        Item("/pictures/holiday notes.txt", _picture("JPEG", 300, 200, 9), "picture", "jpeg"),
        Item("/video/clip.mp4", _bmff(b"isom", 300_000, 10), "video", "mp4", "A"),
        Item("/video/clip.mov", struct.pack(">I", 8 + 40_000) + b"mdat" + _noise(11, 40_000),
             "video", "mov"),
        Item("/video/clip.avi", b"RIFF" + struct.pack("<I", 20_004) + b"AVI " +
             _noise(12, 20_000), "video", "avi"),
        Item("/video/clip.mkv", b"\x1aE\xdf\xa3" + b"\x42\x82\x88matroska" + _noise(13, 9_000),
             "video", "mkv"),
        Item("/archive/a.zip", _zip({"a.txt": b"hello\n" * 100, "b.bin": _noise(14, 5000)}),
             "archive", "zip", "B"),
        Item("/archive/a.tar.gz", _targz(), "archive", "gzip"),
        Item("/archive/a.7z", b"7z\xbc\xaf'\x1c\0\x04" + _noise(15, 20_000), "archive", "7z"),
        Item("/docs/report.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + b"1 0 obj\n<<>>\nendobj\n"
             * 900 + b"%%EOF\n", "document", "pdf"),
        Item("/docs/letter.docx", _zip({"[Content_Types].xml": b"<Types/>",
                                        "word/document.xml": b"<w:document/>" * 300}),
             "document", "docx"),
        Item("/docs/old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + _noise(16, 30_000),
             "document", "ole"),
        Item("/docs/readme.txt", b"plain benign text\n" * 300, "other", None, "known-good"),
        Item("/bin/tool.elf", b"\x7fELF\x02\x01\x01" + bytes(57) + _noise(17, 70_000),
             "executable", "elf", "known-good"),
        Item("/bin/tool.exe", b"MZ" + bytes(58) + struct.pack("<I", 64) + b"PE\0\0" +
             _noise(18, 50_000), "executable", "pe"),
        # sparse in the ext4 image and the folder (a hole between two data ranges)
        Item("/deep/a/b/c/sparse.bin", _noise(19, 64 << 10) + bytes(2 * MIB) +
             _noise(20, 64 << 10), sparse=True),
    ]
    # categories of some size files (each read path: inline, direct, chunked, big task)
    cats = {16385: "A", MIB + 1: "C", 8 * MIB + 1: "B", 4097: "C", 300_000: "C"}
    for it in out:
        n = int(it.path[8:16]) if it.path.startswith("/sizes/") else None
        if n in cats:
            it.category = cats[n]
        if n == 1:
            it.category = "known-good"
    return out


@dataclass
class Matrix:
    root: Path
    tree: Path
    items: list[Item]
    containers: dict[str, list[Path]]  # name -> evidence (first segment) [+ env marker]
    caid: Path
    good: Path
    pdq_set: Path
    volumes: dict[str, int] = field(default_factory=dict)  # fs -> volume offset


def run(cmd: list, **kw) -> None:
    p = subprocess.run([str(c) for c in cmd], env=ENV, capture_output=True, **kw)
    if p.returncode:
        raise RuntimeError(f"{cmd[0]} failed: {p.stdout!r} {p.stderr!r}")


def _write_tree(tree: Path, its: list[Item]) -> None:
    for it in its:
        p = tree / it.path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        if it.sparse:
            with open(p, "wb") as fh:  # write only the data ranges: the middle stays a hole
                first = 64 << 10
                fh.write(it.data[:first])
                fh.seek(len(it.data) - first)
                fh.write(it.data[-first:])
        else:
            p.write_bytes(it.data)
        os.utime(p, (EPOCH, EPOCH))
    for d in sorted({p for p in tree.rglob("*") if p.is_dir()}, reverse=True):
        os.utime(d, (EPOCH, EPOCH))


@pytest.fixture(scope="session")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    for tool in ("mke2fs", "mkfs.vfat", "mcopy", "mkntfs", "ntfscp", "ntfsfix", "sfdisk",
                 "ewfacquire", "qemu-img"):
        needs_tool(tool)  # Debian packages; .ci/run installs them all
    root = tmp_path_factory.mktemp("matrix")
    its = items()
    tree = root / "tree"
    _write_tree(tree, its)
    for it in its:  # the bytes on disk are the bytes generated (truth is what we wrote)
        assert (tree / it.path.lstrip("/")).read_bytes() == it.data, it.path

    fs_size = 40 * MIB
    ext4, fat = root / "p2.ext4", root / "p1.fat"
    run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "MATRIX", "-U",
         "6d0c1b3a-1e2f-4a5b-8c7d-000000000013", "-E", "root_owner=0:0", "-d", tree, ext4,
         f"{fs_size // 1024}k"])
    run(["mkfs.vfat", "-C", "-F", "16", "-s", "2", "-S", "512", "-h", "2048", "-n", "MATRIX",
         "--invariant", fat, str(fs_size // 1024)])
    run(["mcopy", "-s", "-m", "-i", fat] + sorted(tree.iterdir()) + ["::/"])
    # NTFS (read through TSK only: no direct path) holds the files up to NTFS_MAX bytes
    build = _fixture_builder()
    ntfs = root / "p3.ntfs"
    build.make_ntfs(ntfs, NTFS_SIZE, "MATRIX", [build.FileSpec(it.path, it.data)
                                                 for it in its if len(it.data) <= NTFS_MAX])
    disk = root / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(2 * fs_size + NTFS_SIZE + 2 * MIB)
    p1, p2, p3 = 2048, 2048 + fs_size // 512, 2048 + 2 * fs_size // 512
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", "--wipe", "never", disk],
        input=(f"label: dos\nlabel-id: 0x13a13a00\nunit: sectors\n\nstart={p1}, "
               f"size={fs_size // 512}, type=6\nstart={p2}, size={fs_size // 512}, "
               f"type=83\nstart={p3}, size={NTFS_SIZE // 512}, type=7\n").encode())
    for src, start in ((fat, p1), (ext4, p2), (ntfs, p3)):
        run(["dd", f"if={src}", f"of={disk}", "bs=1M", f"seek={start * 512}", "oflag=seek_bytes",
             "conv=notrunc,sparse", "status=none"])

    containers: dict[str, list[Path]] = {"raw": [disk]}
    split_dir = root / "split"
    split_dir.mkdir()
    run(["split", "-b", "16M", "-d", "-a", "3", "--numeric-suffixes=1", disk,
         split_dir / "disk.img."])
    containers["split"] = [split_dir / "disk.img.001"]
    ewf_dir = root / "ewf"
    ewf_dir.mkdir()
    run(["ewfacquire", "-u", "-q", "-t", ewf_dir / "disk", "-f", "encase6", "-c", "fast",
         "-d", "sha1", "-S", str(16 * MIB), "-m", "fixed", "-M", "physical", disk])
    assert len(list(ewf_dir.glob("disk.E0*"))) >= 2  # a segmented E01
    containers["e01"] = [ewf_dir / "disk.E01"]
    containers["e01-pyewf"] = [ewf_dir / "disk.E01"]
    for name, fmt, opts in (("vhd", "vpc", ["-o", "force_size=on"]), ("vhdx", "vhdx", []),
                            ("vmdk", "vmdk", []), ("qcow2", "qcow2", [])):
        dest = root / f"disk.{name}"
        run(["qemu-img", "convert", "-f", "raw", "-O", fmt, *opts, disk, dest])
        containers[name] = [dest]
    containers["logical"] = [tree]

    # the generated CAID-like benign set (MD5, SHA1, category, size) and a known-good list
    caid = root / "caid.csv"
    rows = ["MD5,SHA1,Category,FileSize"]
    good = []
    for it in its:
        if it.category in ("A", "B", "C"):
            rows.append(f"{hashlib.md5(it.data).hexdigest().upper()},"
                        f"{hashlib.sha1(it.data).hexdigest().upper()},{it.category},"
                        f"{len(it.data)}")
        elif it.category == "known-good":
            good.append(f"{hashlib.md5(it.data).hexdigest()}  {it.path.rsplit('/', 1)[1]}")
    rows.append(f"{'0' * 31}1,{'0' * 39}1,A,4096")  # on no disk: a size shared with files
    caid.write_text("\r\n".join(rows) + "\r\n")
    good_file = root / "known-good.md5"
    good_file.write_text("\n".join(good) + "\n")
    pdq_set = root / "pdq.txt"
    pdq_set.write_text("".join(f"{random.Random(i).getrandbits(256):064x}\n" for i in range(20)))
    m = Matrix(root, tree, its, containers, caid, good_file, pdq_set)
    m.volumes = {"fat16": p1 * 512, "ext4": p2 * 512, "ntfs": p3 * 512}
    return m


# --- running one cell ----------------------------------------------------------------------

# option cells: name -> (ScanConfig overrides, environment)
CELLS: dict[str, tuple[dict, dict[str, str]]] = {
    "plain": ({}, {}),
    "pdq": ({"pdq": True}, {}),
    "pdq-set": ({"pdq_sets": "PDQ"}, {}),
    "alg-md5": ({"algorithms": ("md5",)}, {}),
    "alg-sha256-xxh128": ({"algorithms": ("sha256", "xxh128")}, {}),
    "alg-all": ({"algorithms": ("md5", "sha1", "sha256", "xxh128")}, {}),
    "order-smallest": ({"order": "smallest"}, {}),
    "order-physical": ({"order": "physical"}, {}),
    "order-pictures-first": ({"order": "pictures-first"}, {}),
    "workers-1": ({"workers": 1}, {}),
    "size-filter": ({"size_filter": True}, {}),
    "no-direct": ({}, {"TRIAGE_NO_DIRECT": "1"}),
    "verify-image": ({"verify_image": True}, {}),
    "resume": ({}, {}),  # special: interrupted, then --resume
}

COMBINED: dict[str, tuple[dict, dict[str, str]]] = {
    "pdq+order-pictures-first+workers-1": ({"pdq": True, "order": "pictures-first",
                                            "workers": 1}, {}),
    "pdq+no-direct+alg-all": ({"pdq": True, "algorithms": ("md5", "sha1", "sha256", "xxh128")},
                              {"TRIAGE_NO_DIRECT": "1"}),
    "order-physical+size-filter+verify-image": ({"order": "physical", "size_filter": True,
                                                 "verify_image": True}, {}),
    "order-smallest+workers-1+pdq-set": ({"order": "smallest", "workers": 1,
                                          "pdq_sets": "PDQ"}, {}),
}

CONTAINERS = ["raw", "split", "e01", "e01-pyewf", "vhd", "vhdx", "vmdk", "qcow2", "logical"]
TIMES: dict[str, float] = {}


def _env_for(container: str) -> dict[str, str]:
    return {"TRIAGE_NO_NATIVE_EWF": "1"} if container == "e01-pyewf" else {}


def _config(m: Matrix, container: str, out: Path, overrides: dict) -> ScanConfig:
    kw = dict(overrides)
    if kw.get("pdq_sets") == "PDQ":
        kw["pdq_sets"] = [str(m.pdq_set)]
    kw.setdefault("workers", 2)
    return ScanConfig(evidence=[str(p) for p in m.containers[container]],
                      hashsets=[str(m.caid)], known_good=[str(m.good)], out=out, **kw)


class _Env:
    """Set environment variables for a cell (spawned workers inherit them) and forget the
    main process's cached libewf choice so TRIAGE_NO_NATIVE_EWF takes effect."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env, self.saved = env, {}

    def __enter__(self) -> None:
        for k, v in self.env.items():
            self.saved[k] = os.environ.get(k)
            os.environ[k] = v
        ewf_native._lib.cache_clear()

    def __exit__(self, *exc) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        ewf_native._lib.cache_clear()


def _records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "files.jsonl").read_text().splitlines()]


def _interrupted_then_resumed(m: Matrix, container: str, out: Path, env: dict) -> dict:
    """A real interruption: the CLI is stopped with SIGINT while a worker hangs on one file
    (fault injection), then ``triage scan --resume`` finishes the run."""
    args = [str(p) for p in m.containers[container]] + [
        "--hashset", str(m.caid), "--known-good", str(m.good), "--out", str(out), "--quiet",
        "--workers", "2"]
    run_env = dict(os.environ, **env, TRIAGE_FAULT_INJECT="hang:/sizes/f00065539.bin")
    p = subprocess.Popen([sys.executable, "-m", "triage", "scan", *args], env=run_env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    jsonl = out / "files.jsonl"
    while time.monotonic() < deadline:
        if jsonl.exists() and jsonl.stat().st_size > 0:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    partial = json.loads((out / "summary.json").read_text())
    assert partial["complete"] is False
    done = subprocess.run([sys.executable, "-m", "triage", "scan", "--resume", str(out),
                           "--quiet"], env=dict(os.environ, **env), capture_output=True,
                          timeout=300)
    assert done.returncode in (0, 1), done.stderr
    return json.loads((out / "summary.json").read_text())


def scan_cell(m: Matrix, container: str, cell: str, spec: tuple[dict, dict[str, str]],
              out: Path) -> tuple[dict, list[dict]]:
    overrides, env = spec
    env = {**env, **_env_for(container)}
    t0 = time.monotonic()
    with _Env(env):
        if cell == "resume":
            summary = _interrupted_then_resumed(m, container, out, env)
        else:
            summary = run_scan(_config(m, container, out, overrides)).summary
        if container == "e01-pyewf":  # the seam really switched the reader
            assert "system library" not in summary["tool"]["libewf"]
        elif container == "e01":  # Debian libewf2, a CI dependency
            assert "system library" in summary["tool"]["libewf"], "system libewf missing"
    TIMES[f"{container}/{cell}"] = time.monotonic() - t0
    recs = _records(out)
    assert summary["complete"] is True
    assert summary["totals"]["internal_errors"] == 0, summary["first_internal_error"]
    hashed = sum(r["size"] for r in recs if r["md5"] or r.get("sha256") or r.get("xxh128"))
    assert summary["totals"]["bytes_hashed"] == hashed
    return summary, recs


# --- comparing -----------------------------------------------------------------------------

ALGS = ("md5", "sha1", "sha256")
SKIPPED = "skipped: size-not-in-set"


def key(r: dict, algs: tuple[str, ...], logical: bool = False) -> tuple:
    """The issue's fields, plus what else must not change with the container or an option:
    census kind and signature, the exact matches, and (same bytes) deleted flag and times."""
    where = (r["path"],) if logical else (r["volume_offset"], r["inode"], r["path"],
                                           r["deleted"], r["mtime"], r["crtime"])
    matches = json.dumps([x for x in r["matches"] if x.get("algorithm") != "pdq"],
                         sort_keys=True)
    return where + (r["size"],) + tuple(r.get(a) for a in algs) + (
        r["category"], r["error"], r["kind"], r["signature"], matches)


def compare(m: Matrix, base: list[dict], got: list[dict], container: str, cell: str,
            overrides: dict) -> None:
    algs = tuple(a for a in ALGS if a in got[0]) if got else ALGS
    logical = container == "logical"
    if logical:  # the folder holds the ext4 volume's tree (not lost+found, a directory)
        base = [r for r in base if r["volume_offset"] == m.volumes["ext4"]]
    size_filter = overrides.get("size_filter")
    sizes = {int(line.split(",")[3]) for line in m.caid.read_text().splitlines()[1:]}
    if size_filter:  # skipped: exactly the files the plain scan read whose size is in no set
        ident = (lambda r: r["path"]) if logical else (
            lambda r: (r["volume_offset"], r["inode"], r["path"]))
        skipped = [r for r in got if r["error"] == SKIPPED]
        for r in skipped:
            assert r["size"] not in sizes and r[algs[0]] is None, r["path"]
        gone = {ident(r) for r in skipped}
        assert gone, "the size filter skipped nothing: the cell would prove nothing"
        assert gone == {ident(r) for r in base
                        if r["error"] is None and r["size"] and r["size"] not in sizes}
        got = [r for r in got if ident(r) not in gone]
        base = [r for r in base if ident(r) not in gone]
    # multisets, not sets: a record written twice (a resumed run, say) is a failure too
    want = Counter(key(r, algs, logical) for r in base)
    have = Counter(key(r, algs, logical) for r in got)
    assert have == want, (container, cell, sorted((want - have) + (have - want))[:6])
    read_by_plain = {r["path"] for r in base if r["error"] is None}
    bad = [r for r in got if r["error"] and r["path"] in read_by_plain]
    assert not bad, (container, cell, bad[:3])
    if "xxh128" in (got[0] if got else {}):  # xxhash over the bytes written
        data = {it.path: it.data for it in m.items}
        checked = 0
        for r in got:
            if r["xxh128"] is not None and r["path"] in data:  # (not NTFS's $ files)
                assert r["xxh128"] == xxhash.xxh3_128(data[r["path"]]).hexdigest(), r["path"]
                checked += 1
        assert checked >= len({r["path"] for r in got} & set(data))


@pytest.fixture(scope="session")
def plain_raw(matrix: Matrix, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("matrix-plain") / "raw-plain"
    _, recs = scan_cell(matrix, "raw", "plain", CELLS["plain"], out)
    return recs


def test_plain_raw_scan_against_the_bytes_written(matrix: Matrix, plain_raw: list[dict]) -> None:
    """The reference cell itself is checked against hashlib over the bytes written, the
    generated hash sets' categories and the census kinds the files were made as."""
    every = {it.path: it for it in matrix.items}
    want_cats: dict[str, int] = {}
    for fs, offset in matrix.volumes.items():
        truth = {p: it for p, it in every.items()
                 if fs != "ntfs" or len(it.data) <= NTFS_MAX}
        for it in truth.values():
            want_cats[it.category] = want_cats.get(it.category, 0) + 1
        recs = {r["path"]: r for r in plain_raw if r["volume_offset"] == offset}
        assert set(truth) <= set(recs), (fs, sorted(set(truth) - set(recs))[:5])
        for path, it in truth.items():
            r = recs[path]
            assert r["size"] == len(it.data) and r["error"] is None, (fs, path, r["error"])
            assert not r["deleted"], (fs, path)
            for a in ALGS:
                assert r[a] == hashlib.new(a, it.data).hexdigest(), (fs, path, a)
            assert r["category"] == it.category, (fs, path)
            if it.kind is not None:
                assert (r["kind"], r["signature"]) == (it.kind, it.signature), (fs, path)
        # nothing else with content, but NTFS's own metadata files ($MFT, $Bitmap ...)
        extra = [p for p, r in recs.items() if p not in truth and r["size"]
                 and not (fs == "ntfs" and p.startswith("/$"))]
        assert not extra, (fs, extra[:5])
    cats: dict[str, int] = {}
    for r in plain_raw:
        if r["path"] in every:
            cats[r["category"]] = cats.get(r["category"], 0) + 1
    for cat in ("A", "B", "C", "known-good"):
        assert cats[cat] == want_cats[cat] > 0, cat


@pytest.mark.parametrize("container", CONTAINERS)
def test_matrix_container_by_option(matrix: Matrix, plain_raw: list[dict], container: str,
                                    tmp_path: Path) -> None:
    """Each container crossed with each option singly (and the raw/E01 combined cells)."""
    cells = dict(CELLS)
    if container in ("raw", "e01"):
        cells.update(COMBINED)
    for cell, spec in cells.items():
        overrides, env = spec
        if container == "raw" and cell == "plain":
            continue  # the reference itself
        if container == "logical" and (overrides.get("verify_image") or
                                       "TRIAGE_NO_DIRECT" in env):
            continue  # a folder has no media stream to verify and no direct read path
        summary, recs = scan_cell(matrix, container, cell, spec, tmp_path / cell)
        compare(matrix, plain_raw, recs, container, cell, overrides)
        if overrides.get("verify_image"):
            ver = summary["evidence"][0]["verification"]["status"]
            assert ver == ("verified" if container.startswith("e01") else "no stored hash")
        if overrides.get("pdq") or overrides.get("pdq_sets"):
            check_pdq(matrix, recs, container, cell)
        shutil.rmtree(tmp_path / cell)


PDQ_SEEN: dict[str, tuple] = {}  # path -> (pdq, quality, reason) of the first PDQ cell run


def check_pdq(m: Matrix, recs: list[dict], container: str, cell: str) -> None:
    """Every picture has a PDQ or a reason, and the PDQ of each picture (from the content the
    single read kept) is the same in every container, read path and cell."""
    pictures = [r for r in recs if r["kind"] == "picture"]
    assert pictures and all(r["pdq"] or r["pdq_error"] for r in pictures)
    assert sum(1 for r in pictures if r["pdq"]) >= 8  # the decodable pictures of >= 50x50
    for r in pictures:
        value = (r["pdq"], r["pdq_quality"], r["pdq_error"])
        assert PDQ_SEEN.setdefault(r["path"], value) == value, (container, cell, r["path"])
