"""Vectorised hex decoding: turn millions of hex digests into binary keys without a Python loop.

Parsers use it for their common, well-formed rows; any row it flags as invalid goes back through
the per-record path in ``_builder`` so error messages stay exactly the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_LUT = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _LUT[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _LUT[_c] = 10 + _i

HEX_VALUE = _LUT  # byte -> nibble, 255 for "not a hex digit"


def decode_rows(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 2w)`` uint8 ASCII hex -> (``S{w}`` keys, bool valid). Invalid rows hold garbage."""
    nibbles = _LUT[text]
    valid = (nibbles != 255).all(axis=1)
    high = nibbles[:, 0::2] << 4
    high |= nibbles[:, 1::2]
    width = text.shape[1] // 2
    keys = np.ascontiguousarray(high).view(f"S{width}").reshape(-1)
    return keys, valid


def decode_strings(values: Sequence[str], hex_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Strings that all have ``hex_length`` characters -> (keys, valid).

    Non-ASCII characters become '?', which is not hex, so such rows are simply invalid.
    """
    data = "".join(values).encode("ascii", "replace")
    text = np.frombuffer(data, dtype=np.uint8).reshape(-1, hex_length)
    return decode_rows(text)


def is_zero(keys: np.ndarray) -> np.ndarray:
    """True where every byte of the key is zero (TSK skips those; they prove nothing)."""
    width = keys.dtype.itemsize
    return ~keys.view(np.uint8).reshape(-1, width).any(axis=1)
