"""``triage sample --then-scan``: after a block hit, confirm with whole-file hashes.

First the files that own hit blocks are hashed in full (MD5 through TSK, in this process) and
compared with the MD5 of the reference files their blocks came from: equal means the whole
reference file is there ("confirmed by a whole-file hash"); otherwise the hit stays "block
evidence, not confirmed by a whole-file hash" (a partial copy, an edited file, or a block
shared with another file). Then the full scan runs into OUT/scan with ``--blockset`` and a hash
set made of the hit reference files' digests and categories (OUT/then-scan-set.csv), so every
copy of those files anywhere is found and categorised by its own whole-file hash.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import pytsk3

from triage.blocks.media import Media
from triage.reports.html_blocks import UNCONFIRMED

SET_NAME = "then-scan-set.csv"


def _file_md5(img: Any, volume_offset: int, inode: str) -> str | None:
    """MD5 of one file's content (the stream the inode string names), None if unreadable."""
    try:
        fs = pytsk3.FS_Info(img, offset=volume_offset)
        parts = [int(x) for x in inode.split("-")]
        f = fs.open_meta(inode=parts[0])
        size = int(f.info.meta.size)
        h, off = hashlib.md5(usedforsecurity=False), 0
        while off < size:
            n = min(1 << 20, size - off)
            if len(parts) == 3:
                data = f.read_random(off, n, parts[1], parts[2])
            else:
                data = f.read_random(off, n)
            if not data:
                return None
            h.update(data)
            off += len(data)
        return h.hexdigest()
    except (OSError, ValueError, RuntimeError):
        return None


def confirm_owners(evidence: list[str], media_entries: list[dict[str, Any]]) -> int:
    """Hash every file owning a hit block, first; mark each hit ``confirmed`` or not. Returns
    the number of confirmed files."""
    confirmed = 0
    for path, entry in zip(evidence, media_entries):
        owned: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for h in entry["hits"]:
            o = h.get("owner") or {}
            if o.get("where") == "file":
                owned.setdefault((o["volume_offset"], o["inode"]), []).append(h)
            else:
                h["confirmed"] = UNCONFIRMED
        if not owned:
            continue
        media = Media(path)
        try:
            for (vol, inode), hits in owned.items():
                md5 = _file_md5(media.img, vol, inode)
                refs = {r["md5"]: r for h in hits for r in h["reference_files"]}
                if md5 is not None and md5 in refs:
                    confirmed += 1
                    words = (f"confirmed by a whole-file hash: MD5 {md5} is the reference file "
                             f"{refs[md5]['name']} [{refs[md5]['category']}]")
                else:
                    words = UNCONFIRMED + (" (the file's MD5 differs from every reference file "
                                           "its blocks came from)" if md5 else
                                           " (the file could not be read in full)")
                for h in hits:
                    h["confirmed"] = words
                    h["owner_md5"] = md5
        finally:
            media.close()
    return confirmed


def confirm_and_scan(evidence: list[str], blockset: str, media_entries: list[dict[str, Any]],
                     out: Path) -> dict[str, Any]:
    """Owners first, then the full scan with --blockset into OUT/scan."""
    from triage.config import ScanConfig
    from triage.run.scan import run_scan

    confirmed = confirm_owners(evidence, media_entries)
    refs: dict[str, dict[str, Any]] = {}
    for entry in media_entries:
        for h in entry["hits"]:
            for r in h["reference_files"]:
                refs[r["md5"]] = r
    set_path = out / SET_NAME
    with open(set_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["md5", "sha1", "size", "category"])
        for r in refs.values():
            w.writerow([r["md5"], r["sha1"], r["size"], r.get("category") or "known-bad"])
    scan_out = out / "scan"
    outcome = run_scan(ScanConfig(evidence=list(evidence), hashsets=[str(set_path)],
                                  out=scan_out, blockset=blockset, force=True,
                                  argv=["triage", "scan", *evidence, "--hashset", str(set_path),
                                        "--blockset", blockset, "--out", str(scan_out)]))
    return {"owners_confirmed": confirmed, "scan_out": str(scan_out),
            "scan_exit_code": int(outcome.exit_code), "hashset": str(set_path),
            "known_bad_files": outcome.summary["totals"]["known_bad_files"]}
