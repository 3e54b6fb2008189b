"""Category profiles: which label a category code stands for, per scheme (TOML, user-editable).

Codes stay as the sources write them ("1", "A", ...): a profile only names them for display.
The numeric codes of several schemes (UK CAID, Project VIC "Default") are not public, so the
mapping lives in a file the examiner can edit or replace rather than in code. Shipped defaults:
``us`` (Project VIC US, 0-4, as Autopsy names them) and ``uk`` (UK legal categories A/B/C).

A profile file::

    name = "lab"
    description = "our numbering"
    [labels]
    "1" = "Category A"
    "2" = "Category B"
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triage.errors import UsageError

US = """
name = "us"
description = "Project VIC, US profile"
[labels]
"0" = "Non-Pertinent"
"1" = "Child Abuse Material (CAM)"
"2" = "Child Exploitive (Non-CAM) / Age Difficult"
"3" = "CGI/Animation - Child Exploitive"
"4" = "Comparison Images"
"""

UK = """
name = "uk"
description = "UK legal categories (Sentencing Council, 2014)"
[labels]
"A" = "Category A: penetrative sexual activity, sexual activity with an animal, or sadism"
"B" = "Category B: non-penetrative sexual activity"
"C" = "Category C: other indecent images"
"""

SHIPPED = {"us": US, "uk": UK}


@dataclass(frozen=True)
class Profile:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    description: str = ""
    source: str = "shipped"  # "shipped" or the file it came from

    def label(self, code: str) -> str:
        return self.labels.get(code, code)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "labels": self.labels, "source": self.source}

    @classmethod
    def from_json(cls, data: Any) -> Profile | None:
        if not isinstance(data, dict) or not isinstance(data.get("labels"), dict):
            return None
        labels = {str(k): str(v) for k, v in data["labels"].items()}
        return cls(str(data.get("name", "")), labels, str(data.get("description", "")), str(data.get("source", "")))


def user_profile_dir() -> Path:
    """Where a user's own profiles live; ``<dir>/us.toml`` overrides the shipped ``us``."""
    base = os.environ.get("TRIAGE_PROFILE_DIR")
    if base:
        return Path(base)
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config) / "triage" / "profiles"


def load_profile(spec: str) -> Profile:
    """A profile by name (user dir first, then shipped) or by path to a TOML file."""
    if spec in SHIPPED or (spec.isidentifier() and not spec.endswith(".toml")):
        user = user_profile_dir() / f"{spec}.toml"
        if user.is_file():
            return _parse(user.read_bytes(), str(user))
        if spec in SHIPPED:
            return _parse(SHIPPED[spec].encode(), "shipped")
        raise UsageError(f"unknown category profile {spec!r} (shipped: {', '.join(SHIPPED)}; or a .toml file)")
    path = Path(spec)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"category profile {spec}: {exc.strerror or exc}") from None
    return _parse(data, str(path))


def _parse(data: bytes, source: str) -> Profile:
    where = "shipped profile" if source == "shipped" else f"category profile {source}"
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{where}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where}: {exc}") from None
    labels = doc.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise UsageError(f"{where}: needs a [labels] table mapping category codes to labels")
    bad = [k for k, v in labels.items() if not isinstance(v, str)]
    if bad:
        raise UsageError(f"{where}: label of category {bad[0]!r} is not a string")
    name = doc.get("name", Path(source).stem)
    description = doc.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise UsageError(f"{where}: name and description must be strings")
    return Profile(name, dict(labels), description, source)


def guess_profile(vics_profiles: list[str], categories: list[str | None]) -> Profile | None:
    """A default for ``import`` without ``--profile``: the VICS URL's region, or A/B/C -> uk."""
    regions = {p.upper() for p in vics_profiles}
    if regions == {"US"}:
        return load_profile("us")
    if regions == {"UK"}:
        return load_profile("uk")
    codes = {c for c in categories if c is not None}
    if codes and codes <= {"A", "B", "C"}:
        return load_profile("uk")
    return None
