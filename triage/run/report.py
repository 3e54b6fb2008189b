"""Writing results: files.jsonl as the scan goes, summary.json atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from triage.errors import OutputError
from triage.records import strict_json

__all__ = ["OutputError", "write_json_atomic"]  # OutputError: old home


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write via a temporary file and rename, so a reader never sees half a summary."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        # names from the evidence or argv may carry undecodable bytes (lone surrogates): strict
        # UTF-8 JSON all the same, a path's exact bytes in path_bytes beside it
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(strict_json(data), fh, indent=2, ensure_ascii=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)  # no stray half summary beside the last good one
        except OSError:
            pass
        raise OutputError(f"{path}: cannot write ({e.strerror})") from None
