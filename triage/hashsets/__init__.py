"""Hash sets: detect a file's format, parse it, keep it in RAM or compile it to a ``.tdb`` index.

Every format is one ``Parser`` in ``FORMATS`` (see ``registry``); ``load_hashset`` returns a
``HashSet`` whatever the source (raw file or compiled index), and ``import_hashsets`` compiles
sources into an index. The layout of the index is described in ``tdb``.
"""

from __future__ import annotations

from triage.hashsets._base import Parser
from triage.hashsets.loader import import_hashsets, load_hashset
from triage.hashsets.model import HashSet
from triage.hashsets.registry import FORMATS

open_hashset = load_hashset  # the name reads better for a compiled index

__all__ = ["FORMATS", "HashSet", "Parser", "import_hashsets", "load_hashset", "open_hashset"]
