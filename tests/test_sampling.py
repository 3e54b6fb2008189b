"""Sector-hash triage (issue 17): ``triage sample`` and ``triage scan --blockset``.

Truth comes from outside the tool: reference files are random bytes written here (hashlib),
planted with mke2fs -d / debugfs, mtools and ntfscp, and where each file's data lies comes
from debugfs (``blocks``) and TSK's ``istat`` — never from triage. Block sets are built by
``triage blockset build``. The statistical test compares, over many seeds, the observed
detection rate with the rate ``plan.py`` predicts (exact binomial test at alpha = 0.001).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from triage.blocks.plan import log_miss, log_miss_lgamma, make_plan, reads_needed

B = 4096
TOOLS = ("mke2fs", "debugfs", "mkfs.fat", "mcopy", "mdel", "mkntfs", "ntfscp", "istat", "fls",
         "sfdisk")
need_tools = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                reason="needs e2fsprogs, dosfstools, mtools, ntfs-3g, sleuthkit")
ALPHA = 0.001  # significance of the binomial tests


def triage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "triage", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


def run(*cmd: str, stdin: str | None = None) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, input=stdin).stdout


def payload(seed: int, size: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def build_set(refdir: Path, out: Path, *extra: str) -> Path:
    r = triage("blockset", "build", str(refdir), "--out", str(out), "--category", "A", *extra)
    assert r.returncode == 0, r.stderr
    return out


# -- truth: where each block of a file lies (debugfs, istat) ----------------------------------

def istat_units(img: Path, offset: int, inode: str, ntfs: bool) -> list[int]:
    """Sector (FAT) or cluster (NTFS) addresses of a file's $DATA, in file order, from istat."""
    text = run("istat", "-o", str(offset // 512), str(img), inode)
    if ntfs:
        text = text[text.index("Type: $DATA"):]
        text = text[text.index("\n") + 1:]
        text = text.split("\n\n")[0].split("Type:")[0]
    else:
        text = text[text.index("Sectors:") + len("Sectors:"):]
    return [int(x) for x in re.findall(r"\d+", text)]


def inode_of(img: Path, offset: int, name: str) -> str:
    for line in run("fls", "-r", "-p", "-o", str(offset // 512), str(img)).splitlines():
        meta, _, path = line.partition("\t")
        if path == name:
            return meta.split()[-1].rstrip(":").split("-")[0]
    raise AssertionError(f"{name} not in fls")


def block_offsets(units: list[int], unit: int, base: int, size: int) -> list[int | None]:
    """Device offset of each whole B-byte block of a file stored in those units; None when the
    block is split across two fragments (no device window holds it)."""
    per = B // unit
    out: list[int | None] = []
    for k in range(size // B):
        u = units[k * per:(k + 1) * per]
        contiguous = all(b - a == 1 for a, b in zip(u, u[1:]))
        out.append(base + u[0] * unit if contiguous else None)
    return out


# -- images -----------------------------------------------------------------------------------

def refs(tmp: Path) -> dict[str, bytes]:
    d = tmp / "refs"
    d.mkdir(exist_ok=True)
    files = {"alpha.bin": payload(1, 24 * 1024 + 100), "beta.bin": payload(2, 40 * 1024),
             "gamma.bin": payload(3, 64 * 1024 + 7), "delta.bin": payload(4, 32 * 1024)}
    for n, data in files.items():
        (d / n).write_bytes(data)
    return files


def fat_image(tmp: Path, files: dict[str, bytes], cluster_sectors: int, part_sector: int
              ) -> tuple[Path, int, dict[str, tuple[list[int | None], bool]]]:
    """FAT16 at an odd sector with ``cluster_sectors`` * 512 B clusters: alpha and beta
    allocated, gamma fragmented (written into a hole and beyond), delta deleted (mdel)."""
    fs, d = tmp / f"fat{cluster_sectors}.fs", tmp / f"fat{cluster_sectors}.dd"
    fs.write_bytes(b"")
    os.truncate(fs, 16 << 20)
    run("mkfs.fat", "-F", "16", "-s", str(cluster_sectors), "-S", "512", str(fs))
    for name in ("alpha.bin", "hole.bin", "beta.bin", "delta.bin"):
        src = tmp / "refs" / name if name != "hole.bin" else tmp / "hole.bin"
        if name == "hole.bin":
            src.write_bytes(payload(99, 8 * 1024 + 512))  # an odd number of 1 and 2 KiB clusters
        run("mcopy", "-i", str(fs), str(src), f"::/{name}")
    run("mdel", "-i", str(fs), "::/hole.bin")
    run("mcopy", "-i", str(fs), str(tmp / "refs" / "gamma.bin"), "::/gamma.bin")
    return _disk(tmp, fs, d, part_sector, "6", files, ntfs=False, delete=["delta.bin"])


def _disk(tmp: Path, fs: Path, d: Path, part_sector: int, ptype: str, files: dict[str, bytes],
          ntfs: bool, delete: list[str]) -> tuple[Path, int, dict]:
    """Put ``fs`` in an MBR disk at ``part_sector``; truth read before deleting."""
    size = fs.stat().st_size
    d.write_bytes(b"")
    os.truncate(d, part_sector * 512 + size + (1 << 20))
    run("sfdisk", "-q", str(d), stdin=f"start={part_sector}, size={size // 512}, type={ptype}\n")
    with open(d, "r+b") as out, open(fs, "rb") as src:
        out.seek(part_sector * 512)
        shutil.copyfileobj(src, out)
    base = part_sector * 512
    unit = (int(re.search(r"Cluster Size: (\d+)", run("fsstat", "-o", str(part_sector), str(d)))
                .group(1)) if ntfs else 512)
    truth = {}
    for name, data in files.items():
        units = istat_units(d, base, inode_of(d, base, name), ntfs)
        truth[name] = (block_offsets(units, unit, base, len(data)), name in delete)
    for name in delete:  # metadata gone, content stays (mdel on the partition's own bytes)
        run("mdel", "-i", f"{d}@@{base}", f"::/{name}")
    return d, base, truth


def ext4_image(tmp: Path, files: dict[str, bytes], part_sector: int = 63
               ) -> tuple[Path, int, dict]:
    """ext4 (4 KiB blocks) made with mke2fs -d at sector 63 (not 4 KiB-aligned on the disk);
    delta deleted with debugfs (ext4 zeroes its extents: only the block scan finds it)."""
    fs, d = tmp / "ext4.fs", tmp / "ext4.dd"
    run("mke2fs", "-q", "-t", "ext4", "-b", "4096", "-d", str(tmp / "refs"), str(fs), "8M")
    size = fs.stat().st_size
    truth = {}
    base = part_sector * 512
    for name, data in files.items():
        blocks = [int(x) for x in run("debugfs", "-R", f"blocks /{name}", str(fs)).split()]
        truth[name] = (block_offsets(blocks, B, base, len(data)), name == "delta.bin")
    run("debugfs", "-w", "-R", "rm /delta.bin", str(fs))
    d.write_bytes(b"")
    os.truncate(d, base + size + (1 << 20))
    run("sfdisk", "-q", str(d), stdin=f"start={part_sector}, size={size // 512}, type=83\n")
    with open(d, "r+b") as out, open(fs, "rb") as src:
        out.seek(base)
        shutil.copyfileobj(src, out)
    return d, base, truth


def ntfs_image(tmp: Path, files: dict[str, bytes], cluster: int) -> tuple[Path, int, dict]:
    fs, d = tmp / f"ntfs{cluster}.fs", tmp / f"ntfs{cluster}.dd"
    fs.write_bytes(b"")
    os.truncate(fs, 16 << 20)
    run("mkntfs", "-q", "-F", "-c", str(cluster), "-s", "512", "-p", "2049", str(fs))
    for name in files:
        run("ntfscp", "-q", str(fs), str(tmp / "refs" / name), name)
    return _disk(tmp, fs, d, 2049, "7", files, ntfs=True, delete=[])


# -- plan math ----------------------------------------------------------------------------------

def test_plan_matches_exact_combinatorics():
    """The log1p product equals C(S-k, n)/C(S, n) computed exactly, and the lgamma form."""
    for S, k in ((50, 3), (200, 17), (1000, 1)):
        for n in (1, 5, S // 3, S - k, S - k + 1):
            exact = math.comb(S - k, n) / math.comb(S, n) if n <= S - k else 0.0
            got = math.exp(log_miss(S, k, n))
            assert got == pytest.approx(exact, rel=1e-9, abs=1e-300)
            if n <= S - k:
                assert log_miss_lgamma(S, k, n) == pytest.approx(math.log(exact), rel=1e-6, abs=1e-9)
        n = reads_needed(S, k, 0.9)
        assert 1 - math.comb(S - k, n) / math.comb(S, n) >= 0.9
        assert n == 1 or 1 - math.comb(S - k, n - 1) / math.comb(S, n - 1) < 0.9


def test_plan_one_terabyte_and_two_to_the_forty():
    p = make_plan(10**12, 4096, 0.99, 20)
    assert 215_000 < p.reads < 225_000 and p.achieved() >= 0.99  # the issue's ~220,000
    big = make_plan(2**40 * 4096, 4096, 0.999, 20, read_blocks=4)  # N = 2^40 blocks
    assert big.media_blocks == 2**40 and big.achieved() >= 0.999
    # larger reads never weaken the promise: k = ceil(m/R) slots, S = N/R
    assert make_plan(10**12, 4096, 0.99, 20, 16).achieved() >= 0.99


# -- full block scan: every planted block where the truth says ------------------------------------

def _scan(img: Path, tbs: Path, out: Path) -> dict:
    r = triage("scan", str(img), "--blockset", str(tbs), "--out", str(out), "--quiet",
               "--workers", "1")
    assert r.returncode == 1, r.stderr
    return json.loads((out / "summary.json").read_text())


def _check_block_scan(summary: dict, truth: dict, files: dict[str, bytes], base: int) -> None:
    bscan = summary["block_scan"]
    got_files = {f["reference"]["md5"]: f for f in bscan["files"]}
    import hashlib

    for name, (offsets, deleted) in truth.items():
        md5 = hashlib.md5(files[name]).hexdigest()
        whole = [o for o in offsets if o is not None]
        owned = got_files.get(md5)
        if owned is not None:
            assert owned["blocks"] == len(whole), name
            assert owned["first_device_offset"] == min(whole), name
            assert owned["deleted"] == deleted, name
            assert owned["path"] == f"/{name}" or deleted, name
        else:  # found only as blocks no file holds (ext4 deleted: extents zeroed)
            assert deleted, f"{name}: allocated file not found by the block scan"
            runs = [u for u in bscan["unowned"] if u["reference"]["md5"] == md5]
            assert runs and sum(u["blocks"] for u in runs) == len(whole), name
            assert runs[0]["device_offset"] == min(whole) and runs[0]["where"] == "unallocated"
    # and nothing else: no block of the set reported where no planted block lies
    assert bscan["hit_blocks"] == sum(len([o for o in offs if o is not None])
                                      for offs, _ in truth.values())


@need_tools
@pytest.mark.parametrize("cluster_sectors", [2, 4])
def test_block_scan_fat16_small_clusters_odd_sector(tmp_path, cluster_sectors):
    files = refs(tmp_path)
    tbs = build_set(tmp_path / "refs", tmp_path / "set.tbs")
    img, base, truth = fat_image(tmp_path, files, cluster_sectors, part_sector=2047)
    assert any(o is None for o in truth["gamma.bin"][0]), \
        "gamma must be fragmented with a block split across the fragments"
    s = _scan(img, tbs, tmp_path / "out")
    _check_block_scan(s, truth, files, base)
    lines = [json.loads(x) for x in (tmp_path / "out" / "files.jsonl").read_text().splitlines()]
    alpha = next(r for r in lines if r["path"] == "/alpha.bin")
    assert alpha["block_matches"][0]["blocks"] == len(files["alpha.bin"]) // B
    assert not any("block_matches" in r for r in lines if r["path"].endswith("hole.bin"))
    import jsonschema

    from triage.reports.schema import file_schema, summary_schema

    for rec in lines:
        jsonschema.validate(rec, file_schema(s["options"]["algorithms"]))
    jsonschema.validate(s, summary_schema())
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Block matches" in html and "/alpha.bin" in html and "delta.bin" in html


@need_tools
def test_block_scan_ext4_odd_sector_deleted(tmp_path):
    files = refs(tmp_path)
    tbs = build_set(tmp_path / "refs", tmp_path / "set.tbs")
    img, base, truth = ext4_image(tmp_path, files)
    assert base % B, "the partition must not be 4 KiB-aligned on the disk"
    _check_block_scan(_scan(img, tbs, tmp_path / "out"), truth, files, base)


@need_tools
@pytest.mark.parametrize("cluster", [1024, 2048])
def test_block_scan_ntfs_small_clusters(tmp_path, cluster):
    files = refs(tmp_path)
    tbs = build_set(tmp_path / "refs", tmp_path / "set.tbs")
    img, base, truth = ntfs_image(tmp_path, files, cluster)
    _check_block_scan(_scan(img, tbs, tmp_path / "out"), truth, files, base)


# -- sample: hits mapped back, then-scan, containers --------------------------------------------

@need_tools
def test_sample_maps_hits_to_files_fat_1k(tmp_path):
    files = refs(tmp_path)
    tbs = build_set(tmp_path / "refs", tmp_path / "set.tbs")
    img, base, truth = fat_image(tmp_path, files, 2, part_sector=2047)
    # tiny min-mib and high confidence on a 17 MiB disk: the plan reads most of it
    r = triage("sample", str(img), "--blockset", str(tbs), "--min-mib", "0.02",
               "--confidence", "0.999999", "--seed", "5", "--read-kib", "4",
               "--out", str(tmp_path / "s"), "--then-scan")
    assert r.returncode == 1, r.stderr
    s = json.loads((tmp_path / "s" / "summary.json").read_text())
    m = s["sampling"]["media"][0]
    assert m["hit_blocks"] >= 1 and "some was found" in m["statement"]
    where = {o: name for name, (offs, _) in truth.items() for o in offs if o is not None}
    for h in m["hits"]:
        name = where[h["device_offset"]]  # every hit is a planted block, at the right offset
        assert h["reference_files"][0]["name"].endswith(name)
        o = h["owner"]
        assert o["where"] == "file" and o["volume_offset"] == base
        assert o["file_offset"] == h["reference_files"][0]["block_offset"]
        if name == "alpha.bin":
            assert o["path"] == "/alpha.bin" and not o["deleted"]
            assert h["confirmed"].startswith("confirmed by a whole-file hash")
    assert s["then_scan"]["scan_exit_code"] == 1
    assert s["then_scan"]["known_bad_files"] >= 3  # alpha, beta, gamma by whole-file hash
    html = (tmp_path / "s" / "report.html").read_text()
    assert "Sampling" in html and "none was found" not in html


@need_tools
def test_sample_same_answer_through_containers(tmp_path):
    """qcow2 and VHD of the same disk: the same seed reads the same blocks, finds the same."""
    files = refs(tmp_path)
    tbs = build_set(tmp_path / "refs", tmp_path / "set.tbs")
    img, _, _ = fat_image(tmp_path, files, 4, part_sector=2047)
    results = []
    for fmt, path in (("raw", img), ("qcow2", tmp_path / "d.qcow2"), ("vpc", tmp_path / "d.vhd"),
                      ("ewf", tmp_path / "d.E01")):
        if fmt == "ewf":
            run("ewfacquire", "-u", "-q", "-t", str(tmp_path / "d"), "-f", "encase6",
                "-c", "fast", str(img))
        elif fmt != "raw":
            run("qemu-img", "convert", "-O", fmt, *(["-o", "subformat=fixed"] if fmt == "vpc"
                                                    else []), str(img), str(path))
        r = triage("sample", str(path), "--blockset", str(tbs), "--min-mib", "0.05",
                   "--confidence", "0.99", "--seed", "11", "--read-kib", "4", "--json",
                   "--out", str(tmp_path / f"s-{fmt}"))
        assert r.returncode in (0, 1), r.stderr
        m = json.loads(r.stdout)["sampling"]["media"][0]
        results.append((m["offsets_sha256"], [h["device_offset"] for h in m["hits"]],
                        r.returncode))
    assert results[0][0] == results[1][0] == results[3][0]  # same media size, same draw
    assert results[0][1:] == results[1][1:] == results[3][1:]
    assert results[2][2] in (0, 1)  # a VHD's size is rounded: another draw, still works


# -- statistical honesty -------------------------------------------------------------------------

def _planted(tmp: Path, n_blocks: int, placement: str, media_blocks: int = 1024):
    """A raw medium of media_blocks * 4 KiB holding n_blocks blocks of one reference file,
    placed 'runs' (contiguous, aligned to 16 KiB), 'scattered' or 'odd' (at 512-byte
    misalignment), plus innocent random data elsewhere; the set from the reference file."""
    refdir = tmp / "refs"
    refdir.mkdir()
    ref = payload(7, n_blocks * B)
    (refdir / "ref.bin").write_bytes(ref)
    tbs = build_set(refdir, tmp / "set.tbs")
    media = bytearray(payload(8, media_blocks * B))  # innocent bytes, in no set
    rng = np.random.default_rng(3)
    if placement == "runs":
        starts = [int(s) * 4 * B for s in rng.choice(media_blocks // 4 - 1, n_blocks // 4,
                                                    replace=False)]
        for i, s in enumerate(starts):
            media[s:s + 4 * B] = ref[i * 4 * B:(i + 1) * 4 * B]
    else:
        slots = rng.choice(media_blocks - 1, n_blocks, replace=False)
        shift = 1536 if placement == "odd" else 0
        for i, s in enumerate(sorted(int(x) for x in slots)):
            media[s * B + shift:s * B + shift + B] = ref[i * B:(i + 1) * B]
    img = tmp / "media.dd"
    img.write_bytes(bytes(media))
    return img, tbs


def _detections(img: Path, tbs: Path, seeds: int, min_mib: float, confidence: float,
                read_blocks: int) -> tuple[int, float]:
    from triage.blocks.media import Media
    from triage.blocks.sample import sample_media
    from triage.blocks.tbs import BlockSet

    bs, media = BlockSet.open(tbs), Media(str(img))
    try:
        plan = make_plan(media.size, B, confidence, min_mib, read_blocks)
        found = sum(sample_media(media, bs, plan, seed).hit_blocks > 0 for seed in range(seeds))
        return found, plan.achieved()
    finally:
        media.close()
        bs.close()


@pytest.mark.parametrize("placement,read_blocks", [("scattered", 1), ("odd", 1), ("runs", 4)])
def test_detection_rate_equals_prediction(tmp_path, placement, read_blocks):
    """Exactly min-mib of material, placed so the bound is tight (any placement for one-block
    reads; whole slots for 16 KiB reads): observed rate over 300 seeds agrees with 1-P(miss)
    (two-sided exact binomial test, alpha 0.001). A wrong formula (say binomial with
    replacement, or R independent draws per read) is off by more than the test allows."""
    from scipy.stats import binomtest

    n_blocks = 8
    img, tbs = _planted(tmp_path, n_blocks, placement)
    seeds = 300
    found, p = _detections(img, tbs, seeds, n_blocks * B / 2**20, 0.6, read_blocks)
    assert 0.6 <= p < 0.7
    assert binomtest(found, seeds, p).pvalue > ALPHA, (found, seeds, p)


def test_scattered_material_with_long_reads_is_found_at_least_as_often(tmp_path):
    """The bound for 16 KiB reads assumes the worst placement: scattered material is found
    more often, never less (one-sided binomial test)."""
    from scipy.stats import binomtest

    img, tbs = _planted(tmp_path, 8, "scattered")
    found, p = _detections(img, tbs, 200, 8 * B / 2**20, 0.6, 4)
    assert binomtest(found, 200, p, alternative="less").pvalue > ALPHA, (found, p)


def test_clean_media_never_hits(tmp_path):
    img, tbs = _planted(tmp_path, 8, "scattered")
    clean = tmp_path / "clean.dd"
    clean.write_bytes(payload(8, 1024 * B))  # the same innocent bytes, nothing planted
    found, _ = _detections(clean, tbs, 50, 8 * B / 2**20, 0.999, 1)
    assert found == 0
    r = triage("scan", str(clean), "--blockset", str(tbs), "--out", str(tmp_path / "o"),
               "--quiet", "--workers", "1")
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["block_scan"]["hit_blocks"] == 0
    # random bytes, no file system (they look encrypted): the volume is reported not examined
    # file by file, and the exit code says so
    assert [v["status"] for e in summary["evidence"] for v in e["volumes"]] == ["encrypted"]
    assert r.returncode == 4, r.stderr


def test_exclude_removes_blocks_shared_with_innocent_files(tmp_path):
    refdir, inno = tmp_path / "refs", tmp_path / "innocent"
    refdir.mkdir()
    inno.mkdir()
    shared = payload(20, 8 * B)
    (refdir / "ref.bin").write_bytes(payload(21, 8 * B) + shared)
    (inno / "os.dll").write_bytes(shared)
    tbs = build_set(refdir, tmp_path / "set.tbs", "--exclude", str(inno))
    img = tmp_path / "m.dd"
    img.write_bytes(payload(22, 64 * B) + shared + payload(23, 64 * B))
    r = triage("sample", str(img), "--blockset", str(tbs), "--min-mib", "0.03",
               "--confidence", "0.999999", "--seed", "1", "--out", str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr + r.stdout


# -- bad input -----------------------------------------------------------------------------------

@pytest.fixture
def small(tmp_path):
    img, tbs = _planted(tmp_path, 8, "scattered", media_blocks=256)
    return tmp_path, img, tbs


def _one_line_error(r: subprocess.CompletedProcess, code: int, words: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and words in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_bad_blockset(small, damage):
    tmp, img, tbs = small
    bad = tmp / "bad.tbs"
    data = tbs.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(4096))
    for cmd in (["sample", str(img)], ["scan", str(img), "--quiet"]):
        r = triage(*cmd, "--blockset", str(bad), "--out", str(tmp / f"o-{damage}-{cmd[0]}"))
        _one_line_error(r, 2, "bad.tbs")


def test_altered_blockset_data_invalidates_sample_and_scan(small):
    """One byte changed in the data sections (header untouched): the set's SHA-256 check,
    run beside the work, makes the run invalid (exit 2) whatever was or was not found."""
    from triage.blocks.tbs import BlockSet

    tmp, img, tbs = small
    with BlockSet.open(tbs) as bs:
        end = bs._data_end
    data = bytearray(tbs.read_bytes())
    data[end - 1] ^= 0xFF
    bad = tmp / "altered.tbs"
    bad.write_bytes(bytes(data))
    r = triage("sample", str(img), "--blockset", str(bad), "--min-mib", "0.03", "--seed", "3",
               "--out", str(tmp / "s"))
    assert r.returncode == 2, r.stderr
    assert "altered.tbs" in r.stderr and "invalid" in r.stderr and "Traceback" not in r.stderr
    info = json.loads((tmp / "s" / "summary.json").read_text())["blockset"]
    assert info["verification"]["status"] == "failed"
    assert info["verification"]["sections_sha256_computed"] != \
        info["verification"]["sections_sha256_recorded"]
    r = triage("scan", str(img), "--blockset", str(bad), "--out", str(tmp / "o"), "--quiet")
    assert r.returncode == 2, r.stderr
    summary = json.loads((tmp / "o" / "summary.json").read_text())
    assert summary["complete"] is False and any("altered.tbs" in x for x in summary["invalid"])
    assert summary["block_scan"]["verification"]["status"] == "failed"
    r = triage("scan", str(img), "--blockset", str(tbs), "--out", str(tmp / "ok"), "--quiet")
    assert r.returncode == 1, r.stderr
    summary = json.loads((tmp / "ok" / "summary.json").read_text())
    assert summary["invalid"] == [] and summary["block_scan"]["verification"]["status"] == \
        "verified"


def test_blockset_of_another_block_size(small):
    tmp, img, _ = small
    (tmp / "r8").mkdir()
    (tmp / "r8" / "x.bin").write_bytes(payload(30, 64 * 1024))
    tbs8 = build_set(tmp / "r8", tmp / "s8.tbs", "--block-size", "8192")
    r = triage("sample", str(img), "--blockset", str(tbs8), "--read-kib", "4",
               "--min-mib", "0.05", "--out", str(tmp / "o"))
    _one_line_error(r, 2, "multiple of the set's block size")
    r = triage("sample", str(img), "--blockset", str(tbs8), "--min-mib", "0.05", "--json",
               "--out", str(tmp / "o2"))  # auto: reads of at least one 8 KiB block
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sampling"]["media"][0]["block_size"] == 8192


@pytest.mark.parametrize("confidence", ["0", "1", "1.5", "-0.1"])
def test_confidence_outside_open_interval(small, confidence):
    tmp, img, tbs = small
    r = triage("sample", str(img), "--blockset", str(tbs), "--confidence", confidence,
               "--out", str(tmp / "o"))
    _one_line_error(r, 2, "--confidence")


def test_min_mib_larger_than_media(small):
    tmp, img, _ = small
    (tmp / "rbig").mkdir()
    (tmp / "rbig" / "big.bin").write_bytes(payload(31, 3 * 2**20))
    tbs = build_set(tmp / "rbig", tmp / "big.tbs")
    r = triage("sample", str(img), "--blockset", str(tbs), "--min-mib", "2",
               "--out", str(tmp / "o"))
    _one_line_error(r, 2, "more than the media holds")
    assert not (tmp / "o").exists()  # a usage error writes nothing


def test_min_mib_larger_than_the_set(small):
    tmp, img, tbs = small  # the set holds 32 KiB of distinct blocks
    r = triage("sample", str(img), "--blockset", str(tbs), "--min-mib", "0.5",
               "--out", str(tmp / "o"))
    _one_line_error(r, 2, "more than the block set holds")


def test_unreadable_region_lowers_confidence(small):
    """Reads in a failing region are counted, the achieved confidence is computed from the
    reads that succeeded and said in the statement; no crash, exit 4 (no hit)."""
    tmp, img, _ = small
    (tmp / "r2").mkdir()
    (tmp / "r2" / "other.bin").write_bytes(payload(40, 64 * 1024))  # not on the media
    tbs = build_set(tmp / "r2", tmp / "other.tbs")
    r = triage("sample", str(img), "--blockset", str(tbs), "--min-mib", "0.03",
               "--confidence", "0.99", "--seed", "3", "--json", "--out", str(tmp / "o"),
               env={"TRIAGE_MEDIA_BAD": f"0-{128 * B}"})
    assert r.returncode == 4, r.stderr
    m = json.loads(r.stdout)["sampling"]["media"][0]
    assert m["read_errors"] > 0 and m["reads_ok"] + m["read_errors"] == m["reads"]
    assert m["confidence_achieved"] < 0.99
    assert "reads failed" in m["statement"] and "Traceback" not in r.stderr


def test_block_scan_unreadable_region_is_counted(small):
    """A failing region costs its 64 KiB pieces, is counted, and makes exit 4 (no hit);
    planted blocks elsewhere are still found (exit 1)."""
    tmp, img, tbs = small
    clean = tmp / "clean.dd"
    clean.write_bytes(payload(8, 256 * B))
    bad = {"TRIAGE_MEDIA_BAD": f"{100 * 1024}-{101 * 1024}"}
    r = triage("scan", str(clean), "--blockset", str(tbs), "--out", str(tmp / "o"), "--quiet",
               "--workers", "1", env=bad)
    s = json.loads((tmp / "o" / "summary.json").read_text())["block_scan"]
    assert r.returncode == 4, r.stderr
    assert s["read_errors"] >= 1 and s["bytes_unread"] == 64 * 1024, s
    assert s["bytes_read"] + s["bytes_unread"] == clean.stat().st_size
    r = triage("scan", str(img), "--blockset", str(tbs), "--out", str(tmp / "o2"), "--quiet",
               "--workers", "1", env=bad)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr


@need_tools
def test_block_scan_interrupted_then_resumed(tmp_path):
    """SIGINT while a worker hangs on one file: exit 130, no block_scan in the partial
    summary; --resume keeps --blockset, runs the pass again and annotates old and new records."""
    import signal
    import time

    files = refs(tmp_path)
    tbs = build_set(tmp_path / "refs", tmp_path / "set.tbs")
    img, base, truth = fat_image(tmp_path, files, 2, part_sector=2047)
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "triage", "scan", str(img), "--blockset", str(tbs),
                          "--out", str(out), "--quiet", "--workers", "1"],
                         env={**os.environ, "TRIAGE_FAULT_INJECT": "hang:/gamma.bin"},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "files.jsonl").exists():
        time.sleep(0.05)  # the scan has started (the worker then hangs on gamma.bin)
    time.sleep(2)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    partial = json.loads((out / "summary.json").read_text())
    assert partial["complete"] is False and "block_scan" not in partial
    r = triage("scan", "--resume", str(out), "--quiet")
    assert r.returncode == 1, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] and s["options"]["blockset"] == str(tbs)
    _check_block_scan(s, truth, files, base)
    lines = [json.loads(x) for x in (out / "files.jsonl").read_text().splitlines()]
    for name in ("alpha.bin", "beta.bin", "gamma.bin"):
        rec = next(r for r in lines if r["path"] == f"/{name}")
        assert rec.get("block_matches"), name
