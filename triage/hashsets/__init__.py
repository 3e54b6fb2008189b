"""Hash sets: detect a file's format, parse it, keep it in RAM or compile it to a ``.tdb`` index.

Every format is one ``Parser`` in ``FORMATS`` (see ``registry``); ``load_hashset`` returns a
``HashSet`` whatever the source (raw file or compiled index), and ``import_hashsets`` compiles
sources into an index. The layout of the index is described in ``tdb``.
"""

from __future__ import annotations

import importlib
from typing import Any

# Resolved on first use (PEP 562): scan workers import only the model and the index reader,
# not every parser (less start-up time and memory per worker process).
_LAZY = {"Parser": "_base", "import_hashsets": "loader", "load_hashset": "loader",
         "open_hashset": "loader", "HashSet": "model", "FORMATS": "registry"}

__all__ = ["FORMATS", "HashSet", "Parser", "import_hashsets", "load_hashset", "open_hashset"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
    value = getattr(module, "load_hashset" if name == "open_hashset" else name)
    globals()[name] = value
    return value
