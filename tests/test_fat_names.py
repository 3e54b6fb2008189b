"""FAT orphan long names: mkfs.fat + mcopy build a volume, then the test edits the 8.3 name of
some entries in place (nothing recomputed), as a tool unaware of long names would. Their long
names then fail the checksum: per Microsoft's FAT specification they are orphans and the file's
name is the 8.3 one. Truth: mtools (``mdir``) and 7-Zip (``7z l``) for the names, hashlib over
the bytes written for the content, dissect.fat (which, like TSK, still shows the long name) for
the content it reads. TSK's own listing (``fls``) shows the orphan long names."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from dissect.fat import fat

from triage.filesystems.fatnames import lfn_checksum, parse_orphans, short_name
from triage.reports import render_all
from triage.reports._escape import unescape
from triage.reports.dfxml import TRIAGE_NS
from triage.run.scan import ScanConfig, run_scan

# path written with mcopy -> content
WRITTEN = {
    "/Long Document Name.txt": b"renamed 8.3 entry\n",
    "/plain.txt": b"short name only\n",
    "/Kept Long Name.bin": b"long name with a valid checksum\n",
    "/Some Folder/Inner Long Name.dat": b"edited inside a folder\n",
    "/Renamed Folder/child file.txt": b"child of a folder whose 8.3 name was edited\n",
}
# 11-byte 8.3 name mtools gives -> what the test writes over it
EDITS = {b"LONGDO~1TXT": b"RENAMED1TXT", b"INNERL~1DAT": b"EDITED  DAT",
         b"RENAME~1   ": b"NEWDIR     "}
# what the names must be afterwards (mtools and 7-Zip agree), with the orphan long name
EXPECTED = {
    "/RENAMED1.TXT": ("/Long Document Name.txt", "Long Document Name.txt"),
    "/plain.txt": ("/plain.txt", None),
    "/Kept Long Name.bin": ("/Kept Long Name.bin", None),
    "/Some Folder/EDITED.DAT": ("/Some Folder/Inner Long Name.dat", "Inner Long Name.dat"),
    "/NEWDIR/child file.txt": ("/Renamed Folder/child file.txt", None),
}


def _need(*tools: str) -> None:
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"{t} not installed")


def _build(tmp_path: Path, mkfs: list[str], size_kib: int) -> Path:
    image = tmp_path / "fat.img"
    subprocess.run(["mkfs.fat", *mkfs, "-C", str(image), str(size_kib)], check=True,
                   capture_output=True)
    src = tmp_path / "src"
    for path, body in WRITTEN.items():
        p = src / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body)
    for top in sorted({p.split("/")[1] for p in WRITTEN}):
        subprocess.run(["mcopy", "-s", "-i", str(image), str(src / top), "::/"], check=True,
                       capture_output=True)
    data = bytearray(image.read_bytes())
    for old, new in EDITS.items():
        at = data.find(old)
        assert at > 0 and data.find(old, at + 1) == -1, old
        data[at:at + 11] = new
    image.write_bytes(bytes(data))
    return image


def _mtools_files(image: Path) -> set[str]:
    out = subprocess.run(["mdir", "-/", "-b", "-i", str(image), "::/"], check=True,
                         capture_output=True, text=True).stdout
    return {line.removeprefix("::") for line in out.splitlines()
            if line.startswith("::/") and not line.endswith("/")}


def _7z_files(image: Path) -> set[str]:
    out = subprocess.run(["7z", "l", "-slt", str(image)], check=True, capture_output=True,
                         text=True).stdout
    files = set()
    for block in out.split("\n\n"):
        fields = dict(line.split(" = ", 1) for line in block.splitlines() if " = " in line)
        if "Path" in fields and fields.get("Folder") == "-":
            files.add("/" + fields["Path"])
    return files


def _dissect_md5s(image: Path) -> list[str]:
    with open(image, "rb") as fh:
        fs = fat.FATFS(fh)
        found = []

        def walk(d) -> None:
            for e in d.iterdir():
                if e.name in (".", ".."):
                    continue
                if e.is_directory():
                    walk(e)
                else:
                    found.append(hashlib.md5(e.open().read()).hexdigest())

        walk(fs.root)
    return sorted(found)


@pytest.mark.parametrize("mkfs,size_kib", [([], 2048), (["-F", "32"], 34000),
                                           (["-S", "4096"], 16384)],
                         ids=["fat12", "fat32", "4k-sectors"])
def test_orphan_long_names_use_the_83_name(tmp_path: Path, mkfs: list[str],
                                           size_kib: int) -> None:
    _need("mkfs.fat", "mcopy", "mdir", "7z")
    image = _build(tmp_path, mkfs, size_kib)
    assert _mtools_files(image) == set(EXPECTED)
    assert _7z_files(image) == set(EXPECTED)
    # TSK (and so pytsk3) still takes the orphan long names: the case triage must correct
    fls = subprocess.run(["fls", "-r", "-p", str(image)], check=True, capture_output=True,
                         text=True).stdout
    assert "Long Document Name.txt" in fls and "RENAMED1.TXT" not in fls

    outcome = run_scan(ScanConfig(evidence=[str(image)], out=tmp_path / "run", workers=2))
    recs = [json.loads(line) for line in (outcome.out / "files.jsonl").open()]
    got = {r["path"]: r for r in recs}
    assert set(got) == set(EXPECTED)
    for path, (written, orphan) in EXPECTED.items():
        r = got[path]
        assert r["orphan_long_name"] == orphan, path
        assert r["md5"] == hashlib.md5(WRITTEN[written]).hexdigest(), path
        assert r["size"] == len(WRITTEN[written]) and r["error"] is None, path
    assert sorted(r["md5"] for r in recs) == _dissect_md5s(image)
    assert outcome.summary["totals"]["errors"] == 0

    render_all(outcome.out)
    root = ET.parse(outcome.out / "files.dfxml").getroot()
    notes = {unescape(el.text or "") for el in root.iter(f"{{{TRIAGE_NS}}}orphan_long_name")}
    assert notes == {"Long Document Name.txt", "Inner Long Name.dat"}


def test_checksum_and_short_name_by_the_specification() -> None:
    """The specification's worked rules, independent of any image."""
    # checksum of "FILENAMETXT" computed by hand with the specification's rotate-and-add
    s = 0
    for b in b"FILENAMETXT":
        s = ((s >> 1) | ((s & 1) << 7)) + b & 0xFF
    assert lfn_checksum(b"FILENAMETXT") == s
    entry = bytearray(b"FOO     BAR" + bytes(21))
    assert short_name(bytes(entry)) == "FOO.BAR"
    entry[12] = 0x08 | 0x10  # NT lower-case base and extension
    assert short_name(bytes(entry)) == "foo.bar"
    entry[0] = 0x05  # a name really starting with 0xE5
    assert short_name(bytes(entry)).encode("ascii", "surrogateescape")[0] == 0xE5
    # an LFN entry with a matching checksum is not an orphan; one with another checksum is
    short = b"LONGNA~1TXT"
    lfn = bytearray(32)
    lfn[0] = 0x41
    lfn[1:11] = "Longn".encode("utf-16-le")
    lfn[11] = 0x0F
    lfn[13] = lfn_checksum(short)
    lfn[14:26] = "ame.tx".encode("utf-16-le")
    lfn[28:32] = "t\x00".encode("utf-16-le")
    good = bytes(lfn) + short + bytes(21)
    assert parse_orphans(good) == {}
    assert parse_orphans(bytes(lfn) + b"OTHERNAMTXT" + bytes(21)) == {
        1: ("OTHERNAM.TXT", "Longname.txt")}
    deleted = bytes([0xE5]) + good[1:32] + bytes([0xE5]) + b"THERNAMTXT" + bytes(21)
    assert parse_orphans(deleted) == {}  # deleted entries cannot be checked


def test_oem_bytes_in_83_names_are_kept_exactly(tmp_path: Path) -> None:
    """8.3 names hold OEM code-page bytes (0x80+). TSK shows each as '^', so two files whose
    names differ only there get the same path; triage keeps the exact bytes (path_bytes).
    Truth: the bytes written, and mtools, which decodes them with code page 850."""
    _need("mkfs.fat", "mcopy", "mdir")
    image = tmp_path / "oem.img"
    subprocess.run(["mkfs.fat", "-C", str(image), "2048"], check=True, capture_output=True)
    bodies = {b"CAFA    TXT": b"first\n", b"CAFB    TXT": b"second\n"}
    for short, body in bodies.items():
        src = tmp_path / (short[:4].decode() + ".TXT")
        src.write_bytes(body)
        subprocess.run(["mcopy", "-i", str(image), str(src), "::/"], check=True,
                       capture_output=True)
    data = bytearray(image.read_bytes())
    written = {}
    for (short, body), oem in zip(bodies.items(), (0x82, 0x83)):
        at = data.find(short)
        data[at + 3] = oem  # 'A'/'B' -> e acute / a circumflex in code pages 437 and 850
        written[b"/CAF" + bytes([oem]) + b".TXT"] = body
    image.write_bytes(bytes(data))
    fls = subprocess.run(["fls", str(image)], check=True, capture_output=True, text=True).stdout
    assert fls.count("CAF^.TXT") == 2  # TSK: the same name twice
    mdir = subprocess.run(["mdir", "-b", "-i", str(image), "::/"], check=True,
                          capture_output=True).stdout.decode("utf-8").split()
    assert sorted(mdir) == sorted("::" + raw.decode("cp850") for raw in written)

    outcome = run_scan(ScanConfig(evidence=[str(image)], out=tmp_path / "run", workers=1))
    recs = [json.loads(line) for line in (outcome.out / "files.jsonl").open()]
    got = {base64.b64decode(r["path_bytes"]): r for r in recs}
    assert set(got) == set(written)
    for raw, r in got.items():
        assert r["md5"] == hashlib.md5(written[raw]).hexdigest()
        assert r["path"] == raw.decode("utf-8", "replace") and r["orphan_long_name"] is None
