"""An on-disk external sort for file records, so ``--order`` never holds a device's worth of
records in memory: sorted runs are written as the walk goes, then merged lazily."""

from __future__ import annotations

import heapq
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from triage.records import FileRecord, record_from_state, record_state

RUN_RECORDS = 100_000

PICTURE_VIDEO_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .gif .bmp .webp .heic .heif .tif .tiff .dng .cr2 .nef .arw "
    ".mp4 .m4v .mov .3gp .avi .mkv .webm .wmv .asf .mpg .mpeg .ts .flv".split())


def order_key(order: str, record: FileRecord) -> list[Any]:
    """Sort key of a record for ``--order``; records without a location go last."""
    if order == "smallest":
        return [record.size or 0]
    if order == "pictures-first":
        ext = os.path.splitext(record.path)[1].lower()
        return [0 if ext in PICTURE_VIDEO_EXTENSIONS else 1, record.size or 0]
    if order == "physical":
        loc = record.location
        return [0, loc] if loc is not None else [1, 0]
    raise ValueError(order)


class SortedSpool:
    def __init__(self, folder: Path, order: str) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix=".triage-sort-", dir=folder))
        self._order = order
        self._pending: list[tuple[list[Any], int, dict[str, Any]]] = []
        self._runs: list[Path] = []
        self.count = 0

    def add(self, volume: int, record: FileRecord) -> None:
        self._pending.append((order_key(self._order, record), volume, record_state(record)))
        self.count += 1
        if len(self._pending) >= RUN_RECORDS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        self._pending.sort(key=lambda x: x[0])
        path = self._dir / f"run{len(self._runs):05d}.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for item in self._pending:
                fh.write(json.dumps(item) + "\n")  # ASCII: names may hold lone surrogates
        self._runs.append(path)
        self._pending = []

    def __iter__(self) -> Iterator[tuple[int, FileRecord]]:
        self._flush()

        def read(path: Path) -> Iterator[tuple[list[Any], int, dict[str, Any]]]:
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    yield json.loads(line)

        for _, volume, state in heapq.merge(*(read(p) for p in self._runs), key=lambda x: x[0]):
            yield volume, record_from_state(state)

    def close(self) -> None:
        for p in self._runs:
            p.unlink(missing_ok=True)
        try:
            self._dir.rmdir()
        except OSError:
            pass
