"""Writing results: files.jsonl as the scan goes, summary.json atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from triage.errors import OutputError, UsageError

__all__ = ["OutputError", "prepare_out_dir", "write_json_atomic"]  # OutputError: old home


def prepare_out_dir(out: Path, force: bool, evidence: list[str] = ()) -> None:
    """Create the output folder; an existing non-empty one is refused unless ``force``, and
    one inside a folder given as evidence always (the scan would read its own output)."""
    resolved = out.resolve()
    for e in evidence:
        if os.path.isdir(e) and resolved.is_relative_to(Path(e).resolve()):
            raise UsageError(f"--out {out}: inside the evidence folder {e}; choose another place")
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a directory")
        if any(out.iterdir()) and not force:
            raise UsageError(f"--out {out}: folder exists and is not empty (use --force to reuse it)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"--out {out}: cannot create ({e.strerror})") from None


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write via a temporary file and rename, so a reader never sees half a summary."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        # names from the evidence or argv may carry undecodable bytes (lone surrogates)
        with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror})") from None
