"""Shared fixtures.

The public corpus lives in ``../shared/corpus`` beside the repository (or ``$TRIAGE_CORPUS``);
its gzipped images are unpacked once per session with the corpus' own ``unpack.py``. Tests that
need it skip cleanly when it is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTIMAGES = REPO / "testimages"


def corpus_source() -> Path | None:
    env = os.environ.get("TRIAGE_CORPUS")
    candidate = Path(env) if env else REPO.parent / "shared" / "corpus"
    return candidate if (candidate / "index.json").is_file() else None


def corpus_index() -> list[dict]:
    src = corpus_source()
    return json.loads((src / "index.json").read_text()) if src else []


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = corpus_source()
    if src is None:
        pytest.skip("public corpus ../shared/corpus not present")
    dest = tmp_path_factory.mktemp("corpus")
    subprocess.run([sys.executable, str(src / "unpack.py"), str(dest)], check=True,
                   capture_output=True)
    return dest


def needs_tool(name: str) -> None:
    if shutil.which(name) is None:
        pytest.skip(f"{name} not installed")
