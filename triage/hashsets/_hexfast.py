"""Vectorised hex decoding: turn millions of hex digests into binary keys without a Python loop.

Parsers use it for their common, well-formed rows; any row it flags as invalid goes back through
the per-record path in ``_builder`` so error messages stay exactly the same.
"""

from __future__ import annotations

import binascii

import numpy as np

_LUT = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _LUT[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _LUT[_c] = 10 + _i

HEX_VALUE = _LUT  # byte -> nibble, 255 for "not a hex digit"


_FLAGS = bytes(1 if _LUT[b] != 255 else 0 for b in range(256))
_ONES = np.uint64(0x0101010101010101)


def hex_rows(text: np.ndarray) -> np.ndarray:
    """Which rows of ``(n, L)`` ASCII (L a multiple of 8) are all hex digits.

    ``bytes.translate`` maps digits to 1 at memcpy speed; a row is valid when each of its
    8-byte words reads 0x0101010101010101.
    """
    n, length = text.shape
    if not n:
        return np.ones(0, dtype=bool)
    flags = np.frombuffer(np.ascontiguousarray(text).tobytes().translate(_FLAGS), dtype=np.uint64)
    return (flags.reshape(n, length // 8) == _ONES).all(axis=1)


def decode_rows(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 2w)`` uint8 ASCII hex -> (``S{w}`` keys, bool valid). Invalid rows hold zeros."""
    width = text.shape[1] // 2
    valid = hex_rows(text)
    keys = np.zeros(len(text), dtype=f"S{width}")
    good = text if valid.all() else text[valid]
    if len(good):
        keys[valid] = np.frombuffer(binascii.unhexlify(np.ascontiguousarray(good).tobytes()), dtype=f"S{width}")
    return keys, valid


def decode_valid(text: np.ndarray) -> np.ndarray:
    """``decode_rows`` for rows already known to be hex."""
    width = text.shape[1] // 2
    return np.frombuffer(binascii.unhexlify(np.ascontiguousarray(text).tobytes()), dtype=f"S{width}")


def is_zero(keys: np.ndarray) -> np.ndarray:
    """True where every byte of the key is zero (TSK skips those; they prove nothing).

    numpy compares ``S`` values as NUL-padded strings, so an all-zero key equals ``b""``.
    """
    return keys == np.bytes_(b"")
