"""``scan --blockset``: every block of every medium hashed once, beside the file walk.

Decision (measured in benchmarks/sampling.py, docs/sampling.md): one sequential pass over each
medium on a thread of the scan's main process, started with the walk and joined after it. The
walk reads files through TSK in worker processes; this pass reads the media in 4 MiB chunks
(``posix_fadvise`` sequential) and hashes a window of block size at every 512-byte offset, so
file data at any cluster alignment, unallocated space, slack and space outside any volume are
all covered. It does read the media a second time: the file walk's reads are scattered per
file and cannot be reused block-aligned without rewriting the hash workers; on an image in the
page cache the second pass costs CPU only. Hits are mapped to files afterwards (``locate``) and
written into the matching records of files.jsonl as ``block_matches``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from triage.blocks.locate import locate
from triage.blocks.media import Media
from triage.blocks.plan import ALIGN
from triage.errors import TriageError

CHUNK = 4 << 20
SMALL = 64 << 10  # retry size after a failed chunk read
MAX_HITS = 1_000_000  # hit blocks kept for mapping per run (all are counted)
MAX_LISTED = 10_000  # files / unowned runs listed in summary.json


class BlockScan(threading.Thread):
    """The whole-media pass; ``result()`` after ``join()``."""

    def __init__(self, evidence: list[str], blockset_path: str) -> None:
        super().__init__(name="block-scan", daemon=True)
        from triage.blocks.tbs import BlockSet

        self.evidence = evidence
        self.blockset = BlockSet.open(blockset_path)  # a bad set is exit 2 before the scan
        self.verification = self.blockset.verification()  # its data, checked beside the pass
        self.error: BaseException | None = None
        self.hits: list[list[tuple[int, int]]] = []
        self.stats = {"bytes_read": 0, "windows_hashed": 0, "hit_blocks": 0,
                      "read_errors": 0, "bytes_unread": 0, "not_read": [],
                      "elapsed_seconds": 0.0, "cpu_seconds": 0.0}
        self.stop = False

    def run(self) -> None:
        t0, c0 = time.monotonic(), time.thread_time()
        try:
            for path in self.evidence:
                if os.path.isdir(path):
                    self.hits.append([])
                    continue
                try:
                    self.hits.append(self._one(path))
                except TriageError as e:  # the scan reports the evidence itself (exit 3)
                    self.stats["not_read"].append(str(e))
                    self.hits.append([])
        except BaseException as e:  # noqa: BLE001 - handed to the scan: never "complete"
            self.error = e
        self.stats["elapsed_seconds"] = round(time.monotonic() - t0, 3)
        self.stats["cpu_seconds"] = round(time.thread_time() - c0, 3)

    def _one(self, path: str) -> list[tuple[int, int]]:
        from triage.blocks.digest import hash_blocks

        media = Media(path)
        if media._fd is not None:
            try:
                os.posix_fadvise(media._fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            except OSError:
                pass
        hits: list[tuple[int, int]] = []
        try:
            off = 0
            while off < media.size and not self.stop:
                self._piece(media, off, CHUNK, hits, hash_blocks)
                off += CHUNK
            if hits:
                owners = locate(media.img, media.spec, [h[0] for h in hits])
                return [(o, e, owners[o]) for o, e in hits]  # type: ignore[misc]
            return []
        finally:
            media.close()

    def _piece(self, media: Media, off: int, size: int, hits: list, hash_blocks: Any) -> None:
        """Hash the windows starting in [off, off+size); a failed read is retried in 64 KiB
        pieces so one bad sector costs 64 KiB, not the chunk (counted in read_errors)."""
        bs = self.blockset
        B = bs.block_size
        try:
            data = media.read(off, size + B - ALIGN)
        except OSError:
            if size > SMALL:
                for sub in range(off, min(off + size, media.size), SMALL):
                    self._piece(media, sub, SMALL, hits, hash_blocks)
            else:
                self.stats["read_errors"] += 1
                self.stats["bytes_unread"] += min(size, media.size - off)
            return
        self.stats["bytes_read"] += min(len(data), size)
        keys = hash_blocks(data, B, bs.digest, step=ALIGN)
        keys = keys[: size // ALIGN]  # windows starting past the piece belong to the next
        self.stats["windows_hashed"] += len(keys)
        if len(keys):
            found = bs.lookup(keys)
            for j in np.flatnonzero(found >= 0):
                self.stats["hit_blocks"] += 1
                if len(hits) < MAX_HITS:
                    hits.append((off + int(j) * ALIGN, int(found[j])))

    def result(self, out: Path) -> dict[str, Any]:
        """summary.json's ``block_scan`` section; adds ``block_matches`` to files.jsonl."""
        bs = self.blockset
        files: dict[tuple, dict[str, Any]] = {}
        per_record: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        unowned: list[dict[str, Any]] = []
        for path, hits in zip(self.evidence, self.hits):
            for off, entry, owner in hits:  # type: ignore[misc]
                for ref in bs.refs(entry)[:8]:
                    rf = ref.file
                    if owner.where == "file":
                        key = (path, owner.volume_offset, owner.inode, owner.path, rf.md5)
                        f = files.get(key)
                        if f is None:
                            f = files[key] = {
                                "evidence": path, "volume_offset": owner.volume_offset,
                                "path": owner.path, "inode": owner.inode,
                                "deleted": owner.deleted, "blocks": 0,
                                "reference": {"md5": rf.md5, "sha1": rf.sha1,
                                              "name": rf.name, "size": rf.size},
                                "category": rf.category, "set": bs.name,
                                "first_device_offset": off}
                        f["blocks"] += 1
                    else:
                        last = unowned[-1] if unowned else None
                        if (last and last["evidence"] == path and last["where"] == owner.where
                                and last["reference"]["md5"] == rf.md5
                                and last["end"] >= off - bs.block_size):
                            last["blocks"] += 1
                            last["end"] = off
                        else:
                            unowned.append({"evidence": path, "device_offset": off, "end": off,
                                            "where": owner.where,
                                            "volume_offset": owner.volume_offset,
                                            "blocks": 1, "category": rf.category,
                                            "set": bs.name,
                                            "reference": {"md5": rf.md5, "sha1": rf.sha1,
                                                          "name": rf.name, "size": rf.size},
                                            "reference_block_offset": ref.offset})
        for f in files.values():
            per_record[(f["evidence"], f["volume_offset"], f["inode"], f["path"])].append(
                {"set": f["set"], "category": f["category"], "blocks": f["blocks"],
                 "reference": f["reference"]})
        if per_record:
            _annotate(out / "files.jsonl", per_record)
        flist = sorted(files.values(), key=lambda f: (f["evidence"], f["first_device_offset"]))
        return {"blockset": {"path": str(bs.path), "name": bs.name, "digest": bs.digest,
                             "block_size": bs.block_size, "blocks": bs.n_blocks},
                **self.stats, "files": flist[:MAX_LISTED], "files_total": len(flist),
                "unowned": unowned[:MAX_LISTED], "unowned_total": len(unowned),
                "hits_truncated": self.stats["hit_blocks"] > MAX_HITS}

    def close(self) -> None:
        self.blockset.close()


def _annotate(path: Path, matches: dict[tuple, list[dict[str, Any]]]) -> None:
    """Rewrite files.jsonl (beside it, then rename) with ``block_matches`` on the records
    that own matching blocks; every other line is copied byte for byte."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        for line in src:
            if b'"path"' in line:
                rec = json.loads(line)
                key = (rec.get("evidence"), rec.get("volume_offset"), rec.get("inode"),
                       rec.get("path"))
                if key in matches:
                    rec["block_matches"] = matches[key]
                    line = (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8")
            dst.write(line)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, path)
