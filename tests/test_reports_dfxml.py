"""files.dfxml parses back, and every fileobject says what its files.jsonl record says."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from test_reports_support import (
    HOSTILE_NAMES,
    fake_run,
    jsonl_line,
    record,
    records_of,
    scanned_run,
    summary_of,
)

from triage.records import raw_path
from triage.reports import render_all
from triage.reports._escape import unescape
from triage.reports.dfxml import DFXML_NS, TRIAGE_NS

__all__ = ["scanned_run"]
D, T = f"{{{DFXML_NS}}}", f"{{{TRIAGE_NS}}}"


def text(el: ET.Element, tag: str) -> str | None:
    found = el.find(tag)
    return None if found is None else (found.text or "")


def as_record(fo: ET.Element, algorithms: list[str]) -> dict[str, Any]:
    """Rebuild a files.jsonl record from a fileobject, by the rules docs/reports.md gives."""
    alloc_inode, alloc_name = text(fo, D + "alloc_inode"), text(fo, D + "alloc_name")
    inode = text(fo, T + "inode") or text(fo, D + "inode")
    size = text(fo, D + "filesize")
    r: dict[str, Any] = {
        "evidence": unescape(text(fo, T + "evidence") or ""),
        "volume_offset": int(text(fo, T + "volume_offset") or -1),
        "fs_type": text(fo, T + "fs_type"),
        "path": "/" + unescape(text(fo, D + "filename") or ""),
        "path_bytes": None,
        "orphan_long_name": unescape(text(fo, T + "orphan_long_name") or "") or None,
        "inode": inode,
        "size": None if size is None else int(size),
        "deleted": not (alloc_inode == "1" and alloc_name == "1"),
        "orphan": text(fo, D + "orphan") == "1",
        "realloc": alloc_inode == "1" and alloc_name == "0",
    }
    for t in ("mtime", "atime", "ctime", "crtime"):
        r[t] = text(fo, D + t)
    digests = {h.get("type"): h.text for h in fo.iter() if h.tag in (D + "hashdigest",
                                                                     T + "hashdigest")}
    for a in algorithms:
        r[a] = digests.get(a)
    mismatch = text(fo, T + "extension_mismatch")
    pdq = fo.find(T + "pdq")
    r.update(kind=text(fo, T + "kind"), signature=text(fo, T + "signature"),
             extension_mismatch=None if mismatch is None else mismatch == "1",
             pdq=None if pdq is None else pdq.text,
             pdq_quality=None if pdq is None or pdq.get("quality") is None
             else int(pdq.get("quality", "0")),
             pdq_error=text(fo, T + "pdq_error"),
             pdq_distance=None if text(fo, T + "pdq_distance") is None
             else int(text(fo, T + "pdq_distance")))
    r["category"] = text(fo, T + "category")
    r["matches"] = [{k: int(v) if k == "distance" else v for k, v in m.attrib.items()}
                    for m in fo.findall(T + "match")]
    r["error"] = text(fo, T + "error")
    vpdq = fo.find(T + "vpdq")  # --vpdq (a video's ranges are in files.jsonl only)
    r.update(vpdq_frames=None if vpdq is None else int(vpdq.get("frames", "0")),
             vpdq_duration=None if vpdq is None or vpdq.get("duration") is None
             else float(vpdq.get("duration", "0")),
             vpdq_error=text(fo, T + "vpdq_error"),
             vpdq_matches=[dict(m.attrib) for m in fo.findall(T + "video_match")] or None)
    try:
        r["path"].encode("utf-8")
    except UnicodeEncodeError:  # a name that is not UTF-8: as files.jsonl holds it
        raw = raw_path(r["path"])
        r["path"] = raw.decode("utf-8", "replace")
        r["path_bytes"] = base64.b64encode(raw).decode("ascii")
    return r


def parse(run: Path) -> ET.Element:
    return ET.parse(run / "files.dfxml").getroot()


def test_real_run_round_trips(scanned_run: Path) -> None:
    root = parse(scanned_run)
    summary = summary_of(scanned_run)
    algs = summary["options"]["algorithms"]
    assert root.tag == D + "dfxml" and root.get("version")
    assert text(root, f"{D}creator/{D}program") == "triage"
    assert text(root, f"{D}metadata/{T}case") == "CASE-<1>"
    images = [e.text for e in root.findall(f"{D}source/{D}image_filename")]
    assert images == [ev["path"] for ev in summary["evidence"]]
    volumes = root.findall(D + "volume")
    assert len(volumes) == sum(len(ev.get("volumes") or []) for ev in summary["evidence"])
    assert any(text(v, T + "status") == "no-filesystem" for v in volumes)
    objects = root.findall(D + "fileobject")
    records = records_of(scanned_run)
    assert len(objects) == len(records)
    for fo, r in zip(objects, records):
        assert as_record(fo, algs) == r
        assert text(fo, D + "name_type") == "r" and int(text(fo, D + "partition") or 0) >= 1


def test_hostile_names_stay_well_formed(tmp_path: Path) -> None:
    recs = [record(name, "A", i) for i, name in enumerate(HOSTILE_NAMES, 1)]
    recs += [record("/deleted", "unknown", 90, deleted=True),
             record("/realloc", "known-good", 91, deleted=True, realloc=True),
             record("/orphan", None, 92, deleted=True, orphan=True, size=None, inode="77"),
             record("/ads:stream", "C", 93, inode="40-128-4", fs_type="ntfs"),
             record("/pic.txt", "A", 94, kind="picture", signature="jpeg",
                    extension_mismatch=True, pdq="ab" * 32, pdq_quality=87),
             record("/doc.pdf", "unknown", 95, kind="document", signature="pdf",
                    extension_mismatch=False)]
    run = fake_run(tmp_path / "run", recs)
    render_all(run, ["dfxml"])
    objects = parse(run).findall(D + "fileobject")
    assert len(objects) == len(recs)
    for fo, r in zip(objects, recs):
        # as files.jsonl holds the record (a name that is not UTF-8 gets path_bytes)
        assert as_record(fo, ["md5", "sha1", "sha256"]) == json.loads(jsonl_line(r))


def test_alloc_flags(tmp_path: Path) -> None:
    recs = [record("/live", "A", 1), record("/del", "A", 2, deleted=True),
            record("/re", "A", 3, deleted=True, realloc=True)]
    run = fake_run(tmp_path / "run", recs)
    render_all(run, ["dfxml"])
    got = [(text(fo, D + "unalloc"), text(fo, D + "alloc_inode"), text(fo, D + "alloc_name"))
           for fo in parse(run).findall(D + "fileobject")]
    assert got == [(None, "1", "1"), ("1", "0", None), (None, "1", "0")]
