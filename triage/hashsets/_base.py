"""What every parser shares: the Parser protocol, BOM-aware text opening and bounded line reading."""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO, BinaryIO, Protocol

from triage.hashsets._builder import HashSetBuilder

HEAD_SIZE = 16 * 1024  # detection looks at this much of the file
MAX_LINE = 64 * 1024  # characters; longer lines are malformed, so one bad line cannot eat memory

_EOL = re.compile(r"\r\n|\r|\n")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class Parser(Protocol):
    """One hash-set format. ``detect`` must be cheap and never raise.

    A parser may also set ``default_kind`` ("known-good" for NSRL-style reference sets); the
    loader reads it with ``getattr`` and falls back to "known-bad".
    """

    id: str
    description: str

    def detect(self, head: bytes, path: Path) -> bool: ...

    def parse(self, path: Path, builder: HashSetBuilder) -> None: ...


@lru_cache(maxsize=4)
def head_text(head: bytes) -> str | None:
    """The start of the file as text (BOM removed), or None when it looks binary."""
    if head.startswith(codecs.BOM_UTF8):
        text = head[len(codecs.BOM_UTF8) :].decode("utf-8", "replace")
    elif head.startswith(_UTF16_BOMS):
        text = head.decode("utf-16", "replace")
    else:
        text = head.decode("utf-8", "replace")
    if "\x00" in text or text.count("\ufffd") > len(text) // 10 + 2:
        return None
    return text


def first_line(text: str) -> str:
    """Line 1, whatever the line ending (LF, CRLF or old-Mac CR)."""
    return _EOL.split(text, 1)[0]


def text_stream(raw: BinaryIO, *, newline: str | None) -> IO[str]:
    """Wrap a binary stream as text, choosing the codec from its BOM (UTF-8 when there is none).

    Undecodable bytes become U+FFFD rather than an exception: they nearly always sit in file
    names we do not use, and a damaged hex field still fails hex validation.
    """
    start = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
    if start.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif start.startswith(_UTF16_BOMS):
        encoding = "utf-16"
    else:
        encoding = "utf-8"
    return io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline=newline)


def open_text(path: Path, *, newline: str | None = None) -> IO[str]:
    return text_stream(open(path, "rb"), newline=newline)


class LineTooLong(Exception):
    def __init__(self, lineno: int) -> None:
        super().__init__(f"line {lineno} is longer than {MAX_LINE} characters")
        self.lineno = lineno


class Lines:
    """Iterate a text stream's lines with a length cap; ``lineno`` is the last line returned.

    An over-long line is reported as ``LineTooLong`` as soon as the cap is reached: nothing
    past it is read, so a strict parser refuses a 4 GiB line (a zip bomb) after 64 KiB. Only if
    iteration continues (``--lenient``; ``csv.reader`` re-raises it and can be called again) is
    the rest of that line read past, in ``limit``-sized pieces.
    """

    def __init__(self, stream: IO[str], limit: int = MAX_LINE) -> None:
        self._stream = stream
        self._limit = limit
        self._inside_long = False  # the last line was cut at the cap: its rest comes first
        self.lineno = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._inside_long:
            self._inside_long = False
            while (more := self._stream.readline(self._limit)) and not more.endswith(("\n", "\r")):
                pass
        line = self._stream.readline(self._limit)
        if not line:
            raise StopIteration
        self.lineno += 1
        if len(line) >= self._limit and not line.endswith(("\n", "\r")):
            self._inside_long = True
            raise LineTooLong(self.lineno)
        return line


def numbered_lines(stream: IO[str], builder: HashSetBuilder) -> Iterator[tuple[int, str]]:
    """``(line number, line without EOL)``; over-long lines go to ``builder.malformed``."""
    lines = Lines(stream)
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except LineTooLong as exc:
            builder.malformed(exc.lineno, str(exc))
            continue
        yield lines.lineno, line.rstrip("\r\n")
