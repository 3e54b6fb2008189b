"""One reversible escaping for every name that leaves the lab in a derived report.

File names are hostile input: they may hold newlines, control characters, bidi overrides that
disguise an extension, or bytes that are not UTF-8 (held as lone surrogates U+DC80..U+DCFF,
Python's ``surrogateescape``: ``files.jsonl`` keeps them in ``path_bytes`` and the report reader
restores them, see ``triage.records.record_path``). CSV, HTML and DFXML show the same
escaped text, and ``unescape`` gives back the exact raw bytes:

* ``\\``  -> ``\\\\``
* an undecodable byte 0xHH (HH >= 80)  -> ``\\xHH``
* a control character U+0000..U+001F, U+007F -> ``\\n``, ``\\r``, ``\\t`` or ``\\xHH`` (HH < 80)
* C1 controls, other lone surrogates, bidi/line/paragraph separators, BOM, U+FFFE/U+FFFF
  -> ``\\uHHHH``

Everything else (accents, CJK, emoji) stays as it is.
"""

from __future__ import annotations

import re

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
# what must never reach a reader unescaped (see module docstring)
_NEEDS = re.compile(
    "[\\\\\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff\ufffe\uffff]"
)
_BACK = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|([nrt\\]))")
_BACK_SHORT = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}


def _one(m: re.Match[str]) -> str:
    c = m.group(0)
    if c in _SHORT:
        return _SHORT[c]
    o = ord(c)
    if o < 0x80:
        return f"\\x{o:02x}"
    if 0xDC80 <= o <= 0xDCFF:  # surrogateescape'd raw byte
        return f"\\x{o - 0xDC00:02x}"
    return f"\\u{o:04x}"


def escape(text: str | None) -> str:
    """Printable, single-line, reversible form of ``text`` ('' for None)."""
    if not text:
        return ""
    return _NEEDS.sub(_one, text)


def _back(m: re.Match[str]) -> str:
    if m.group(1):
        o = int(m.group(1), 16)
        return chr(o) if o < 0x80 else chr(0xDC00 + o)
    if m.group(2):
        return chr(int(m.group(2), 16))
    return _BACK_SHORT[m.group(3)]


def unescape(text: str) -> str:
    """Inverse of ``escape``: the exact name (lone surrogates for raw bytes, as ``record_path``)."""
    return _BACK.sub(_back, text)


def raw_bytes(text: str) -> bytes:
    """The on-disk bytes of a name given in escaped form."""
    return unescape(text).encode("utf-8", "surrogateescape")


# what json.dumps(ensure_ascii=False) leaves raw that a terminal would act on (it escapes the
# ASCII controls and the backslash itself)
_JSON_NEEDS = re.compile("[\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff\ufffe\uffff]")


def json_safe(text: str) -> str:
    """JSON text for a terminal: bidi overrides, C1 controls and the like as ``\\uXXXX`` (still
    the same JSON value), every other character as it is."""
    return _JSON_NEEDS.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
