"""Line-oriented hash lists: md5sum/sha1sum/sha256sum output, hashdeep files, TSK ``.idx``."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from triage.hashsets._base import MAX_LINE, first_line, head_text, numbered_lines, open_text
from triage.hashsets._builder import HashSetBuilder, parse_size, shorten
from triage.hashsets._hexfast import decode_valid

# GNU form (optionally "\"-escaped) or a bare hash: 32/40/64 hex digits, then whitespace or end.
_GNU_LINE = re.compile(r"\\?(?:[0-9a-f]{64}|[0-9a-f]{40}|[0-9a-f]{32})(?:[ \t]|$)", re.IGNORECASE)
# BSD / --tag form: "MD5 (name) = hex". The tag itself is validated separately.
_BSD_TAG = re.compile(r"([A-Za-z][A-Za-z0-9-]*) \(")
_BSD_LINE = re.compile(r"(?:MD5|SHA-?1|SHA-?256) \(.*\) = [0-9a-f]+\s*$", re.IGNORECASE)
_BSD_ALGORITHMS = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256"}


def _significant_lines(text: str) -> list[str]:
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


class Md5sumParser:
    """``md5sum``-family output, BSD ``--tag`` lines and bare one-hash-per-line lists."""

    id = "md5sum"
    description = "md5sum/sha1sum/sha256sum lines (GNU or BSD tag form) or one hash per line"

    def detect(self, head: bytes, path: Path) -> bool:
        text = head_text(head)
        if text is None:
            return False
        lines = _significant_lines(text)
        if not lines:
            return False
        return bool(_GNU_LINE.match(lines[0]) or _BSD_LINE.match(lines[0]))

    def parse(self, path: Path, builder: HashSetBuilder) -> None:
        with open(path, "rb") as raw:
            head = raw.read(64 * 1024)
        plain_lf = not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and (
            b"\n" in head or b"\r" not in head
        )
        if plain_lf:  # UTF-8/ASCII with LF or CRLF: the vectorised reader (millions of lines/s)
            _FastLines(path, builder, self._line).run()
            return
        with open_text(path) as stream:
            for lineno, line in numbered_lines(stream, builder):
                line = line.strip()
                if line and not line.startswith("#"):
                    self._line(builder, lineno, line)

    @staticmethod
    def _line(builder: HashSetBuilder, lineno: int, line: str) -> None:
        tag = _BSD_TAG.match(line)
        if tag:
            algorithm = _BSD_ALGORITHMS.get(tag.group(1).upper().replace("-", ""))
            if algorithm is None:
                builder.malformed(lineno, f"unsupported algorithm {shorten(tag.group(1))}")
                return
            # The name may itself contain ") = ", so the digest follows the last one.
            cut = line.rfind(") = ")
            if cut < 0:
                builder.malformed(lineno, f"BSD-style line without ') = ': {shorten(line)}")
                return
            builder.add(lineno, [(algorithm, line[cut + 4 :])])
            return
        if line.startswith("\\"):  # GNU escapes names with "\" or newline this way
            line = line[1:]
        fields = line.split(None, 1)
        builder.add(lineno, [(None, fields[0] if fields else None)], missing="no hash after '\\'")


_CHUNK = 8 * 1024 * 1024
_WINDOW = 65  # the longest digest (64) plus the character after it
_DIGEST_ALGORITHMS = ((32, "md5"), (40, "sha1"), (64, "sha256"))
_HEX_FLAGS = bytes(1 if chr(b) in "0123456789abcdefABCDEF" else 0 for b in range(256))
_ONES = np.uint64(0x0101010101010101)


class _FastLines:
    """md5sum lines straight from bytes with numpy; any line it is not sure of goes to ``slow``.

    A line is taken fast when it starts with 32/40/64 hex digits followed by a space, a tab or
    the end of the line; comments and blank lines are skipped; everything else (BSD tags, ``\\``
    escapes, bad hex, leading blanks) is decoded and handed to the reference parser with its
    line number, so results and messages are exactly those of the slow path.
    """

    def __init__(self, path: Path, builder: HashSetBuilder, slow) -> None:
        self.path, self.builder, self.slow = path, builder, slow
        self.lineno = 0

    def run(self) -> None:
        carry = b""
        skipping = False  # inside an over-long line: drop bytes up to its end
        with open(self.path, "rb") as stream:
            if stream.read(3) != codecs.BOM_UTF8:
                stream.seek(0)
            while block := stream.read(_CHUNK):
                if skipping:
                    end = block.find(b"\n")
                    if end < 0:
                        continue
                    block, skipping = block[end + 1 :], False
                cut = block.rfind(b"\n")
                if cut < 0:
                    carry += block
                    if len(carry) > MAX_LINE:
                        self.lineno += 1
                        self.builder.malformed(self.lineno, f"line {self.lineno} is longer than {MAX_LINE} characters")
                        carry, skipping = b"", True
                    continue
                self._lines(carry + block[: cut + 1])
                carry = block[cut + 1 :]
            if carry and not skipping:
                self._lines(carry + b"\n")

    def _lines(self, data: bytes) -> None:
        data += bytes(_WINDOW)  # room for the windows of the last lines
        padded = np.frombuffer(data, dtype=np.uint8)
        text = padded[:-_WINDOW]
        ends = np.flatnonzero(text == 10)
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        lengths = ends - starts
        lengths -= (lengths > 0) & (text[np.maximum(ends - 1, 0)] == 13)  # CRLF
        # 1 for a hex digit (bytes.translate runs at memcpy speed), then each line's first 64
        # flags read as eight 64-bit words: "the first L bytes are hex" is L/8 word compares
        flags = np.frombuffer(data.translate(_HEX_FLAGS), dtype=np.uint8)
        words = np.ascontiguousarray(sliding_window_view(flags, 64)[starts]).view(np.uint64)
        full = words == _ONES
        good = np.zeros(len(starts), dtype=bool)
        prefix = np.ones(len(starts), dtype=bool)
        done = 0
        for hex_length, algorithm in _DIGEST_ALGORITHMS:
            for word in range(done, hex_length // 8):
                prefix &= full[:, word]
            done = hex_length // 8
            after = padded[starts + hex_length]
            take = prefix & (lengths <= MAX_LINE)
            take &= (lengths == hex_length) | (((after == 32) | (after == 9)) & (lengths > hex_length))
            if take.any():
                rows = sliding_window_view(padded, hex_length)[starts[take]]
                self.builder.add_keys(algorithm, decode_valid(rows))
                good |= take
        skip = good | (lengths == 0) | (padded[starts] == ord("#"))
        for row in np.flatnonzero(~skip).tolist():
            lineno = self.lineno + row + 1
            if lengths[row] > MAX_LINE:
                self.builder.malformed(lineno, f"line {lineno} is longer than {MAX_LINE} characters")
                continue
            start = int(starts[row])
            line = data[start : start + int(lengths[row])].decode("utf-8", "replace").strip()
            if line and not line.startswith("#"):
                self.slow(self.builder, lineno, line)
        self.lineno += len(ends)


# hashdeep algorithm names; unsupported ones (tiger, whirlpool) are read past, not loaded.
_HASHDEEP_ALGORITHMS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256"}


class HashdeepParser:
    """hashdeep / md5deep ``-c`` audit files: ``%%%% size,<algs>,filename`` then CSV-ish lines."""

    id = "hashdeep"
    description = "hashdeep file (%%%% HASHDEEP-1.0)"

    def detect(self, head: bytes, path: Path) -> bool:
        text = head_text(head)
        return text is not None and first_line(text).strip().upper() == "%%%% HASHDEEP-1.0"

    def parse(self, path: Path, builder: HashSetBuilder) -> None:
        columns: list[str] | None = None
        with open_text(path) as stream:
            for lineno, line in numbered_lines(stream, builder):
                if not line.strip():
                    continue
                if line.startswith("%%%%"):
                    columns = self._header(builder, lineno, line[4:].strip(), columns)
                elif line.startswith("#"):
                    continue
                elif columns is None:
                    builder.malformed(lineno, "data line before the '%%%% size,...' header")
                else:
                    self._line(builder, lineno, line, columns)

    @staticmethod
    def _header(
        builder: HashSetBuilder, lineno: int, body: str, columns: list[str] | None
    ) -> list[str] | None:
        if body.upper().startswith("HASHDEEP-"):
            return columns
        names = [name.strip().lower() for name in body.split(",")]
        if len(names) < 3 or names[0] != "size" or names[-1] != "filename":
            raise builder.fail(lineno, f"unrecognised hashdeep header {shorten(body)}")
        if not any(name in _HASHDEEP_ALGORITHMS for name in names[1:-1]):
            raise builder.fail(lineno, f"no md5, sha1 or sha256 column in {shorten(body)}")
        return names

    @staticmethod
    def _line(builder: HashSetBuilder, lineno: int, line: str, columns: list[str]) -> None:
        # Split only len(columns)-1 times: the file name is last and may contain commas.
        fields = line.split(",", len(columns) - 1)
        if len(fields) < len(columns):
            builder.malformed(
                lineno, f"expected {len(columns)} comma-separated fields: {shorten(line)}"
            )
            return
        try:
            size = parse_size(fields[0])
        except ValueError:
            builder.malformed(lineno, f"size {shorten(fields[0])} is not a number")
            return
        if size is None:
            builder.malformed(lineno, "empty size field")
            return
        hashes = []
        for name, value in zip(columns[1:-1], fields[1:-1]):
            if not value.strip():
                builder.malformed(lineno, f"empty {name} field")
                return
            if name in _HASHDEEP_ALGORITHMS:
                hashes.append((_HASHDEEP_ALGORITHMS[name], value))
        builder.add(lineno, hashes, None, size)


_IDX_HEADER = re.compile(r"0{40}[01]\|")


class TskIdxParser:
    """The Sleuth Kit's text index (``<db>-md5.idx``): sorted ``HEX|offset`` lines, usable alone."""

    id = "tsk-idx"
    description = "TSK hash index .idx (line 1 '00000000000000000000000000000000000000000|<type>')"

    def detect(self, head: bytes, path: Path) -> bool:
        text = head_text(head)
        return text is not None and bool(_IDX_HEADER.match(first_line(text)))

    def parse(self, path: Path, builder: HashSetBuilder) -> None:
        with open_text(path) as stream:
            for lineno, line in numbered_lines(stream, builder):
                if not line.strip() or _IDX_HEADER.match(line):
                    continue  # the header lines (type, database name) sort first
                digest, bar, _ = line.partition("|")
                if not bar:
                    builder.malformed(lineno, f"expected 'HASH|offset': {shorten(line)}")
                    continue
                builder.add(lineno, [(None, digest)])
