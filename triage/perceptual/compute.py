"""PDQ: Meta's open 256-bit perceptual hash of pictures, computed in the worker (``--pdq``).

For every file whose first bytes say picture (whatever its name), the worker keeps the content of
the single read (``PdqWorker.keep``, handed to the backend's read, which returns the content in
its ``hashing.Read``), decodes it in memory with Pillow (pillow-heif for
HEIC), computes PDQ with ``pdqhash`` and records ``pdq`` (64 hex: the 256 bits of
``pdqhash.compute`` in order, 8 per byte, most significant bit first - python-threatexchange's
convention) and ``pdq_quality`` (0..100; under 50 the hash is not matched). Then it looks the hash
up in the PDQ sets (``perceptual.index``) for near duplicates. The worker's PDQ state (options,
mapped index) is a ``PdqWorker`` the worker holds and passes explicitly: no class attributes.

Bounded, and nothing is ever written:

- pictures are decoded from memory and the pixels dropped at once; never a file, never a cache;
- the size is read from the header before decoding: more than ``MAX_PIXELS`` (Pillow's
  decompression-bomb limit) is refused, under 50 x 50 is skipped;
- a large picture is reduced before hashing by a whole factor that keeps its shorter side at
  512 px or more (JPEGs by libjpeg's DCT scaling while decoding, others by a box filter, close
  to PDQ's own box filters): a 24-megapixel JPEG costs about 0.1 s instead of 1 s, and the hash
  stays within a few bits (measured: <= 6) of the full-size one. Pictures whose shorter side is
  under 1024 px are hashed at full size, bit for bit as ``pdqhash.compute`` on the decoded
  picture (python-threatexchange's ``pdq_from_bytes``);
- files larger than ``MAX_BYTES`` are not decoded;
- any failure (truncated JPEG, bomb, unknown codec) leaves ``pdq`` null with a reason, never
  stops the worker.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from triage.content.census import PICTURE, signature
from triage.content.hashing import Read
from triage.hashsets.pdqsection import open_pdq
from triage.hashsets.vpdqsection import open_vpdq
from triage.perceptual.index import (
    DEFAULT_THRESHOLD,
    MIN_QUALITY,
    PdqIndex,
    PdqIndexGroup,
    to_hex,
)
from triage.perceptual.video import (
    MAX_VIDEO_MATCHES,
    VpdqOptions,
    frame_matches,
    inspect_vpdq,
    is_video,
    match_video,
)
from triage.perceptual.vsets import VpdqIndex
from triage.records import LIMIT, FileRecord

MIN_SIDE = 50  # pictures smaller than 50 x 50 are skipped (PDQ is meaningless there)
MAX_PIXELS = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS: a larger picture is a bomb
MAX_BYTES = 256 << 20  # content kept and decoded for one picture, at most
HASH_SIDE = 512  # larger pictures are box-reduced, the shorter side staying >= 512 px

# Signatures Pillow (with pillow-heif) decodes; camera raw files are pictures but not decoded
DECODABLE = frozenset({"jpeg", "png", "gif", "bmp", "webp", "heic", "avif", "tiff", "ico",
                       "psd", "jp2"})


@dataclass(frozen=True)
class PdqOptions:
    """What the workers need for ``--pdq`` (small and picklable: it goes to every worker)."""

    threshold: int = DEFAULT_THRESHOLD
    index_dir: str | None = None  # compiled PDQ sets (``PdqIndex.save``); None: no sets
    index_files: tuple[str, ...] = ()  # .tdb files whose PDQ section is searched in place
    vpdq: VpdqOptions | None = None  # --vpdq: hash videos' frames too (perceptual.video)


@dataclass
class PdqWorker:
    """One worker process's ``--pdq`` state, made once by ``start`` and passed explicitly to
    the read (``keep``), the inspector (``inspect``) and the matcher (``near_matches``)."""

    options: PdqOptions
    index: PdqIndexGroup | None = None
    frames: list[VpdqIndex] = field(default_factory=list)  # --vpdq-set frame indexes, mapped

    @classmethod
    def start(cls, options: PdqOptions | None) -> PdqWorker | None:
        """Map the PDQ index (``None``: PDQ is off)."""
        if options is None:
            return None
        index = None
        if options.index_dir or options.index_files:
            indexes = [PdqIndex.open(options.index_dir)] if options.index_dir else []
            indexes += [open_pdq(f) for f in options.index_files]
            index = PdqIndexGroup(indexes)
        video = options.vpdq
        frames = [open_vpdq(video.sets_file, by_source=True)] if video and video.sets_file else []
        frames += [open_vpdq(f) for f in (video.index_files if video else ())]
        return cls(options, index, frames)

    def keep(self, head: bytes) -> bool:
        """The read's ``keep`` policy: the whole content of pictures PDQ can decode, and of
        videos with ``--vpdq``."""
        return keep_picture(head) or (self.options.vpdq is not None and is_video(head))

    def inspect(self, record: FileRecord, read: Read,
                beat: Callable[[], None] | None = None) -> None:
        """Inspector (after the census): PDQ of a decodable picture, vPDQ of a video (``beat``:
        the task's heartbeat, called while a video decodes)."""
        inspect_pdq(record, read.content)
        if self.options.vpdq is not None:
            inspect_vpdq(record, read.content, self.options.vpdq, beat)

    def video_matches(self, record: FileRecord) -> list[dict[str, Any]]:
        """``vpdq_matches`` of a hashed video: set videos it matches (``match_video``), then
        frames near a picture of the PDQ sets (``frame_matches``)."""
        video, frames = self.options.vpdq, record.vpdq_hashes
        if video is None or not frames:
            return []
        found = []
        for index in self.frames:  # text sets, then each .tdb: one list, best first, capped
            found += match_video(frames, index, self.options.threshold, video.query_pct,
                                 video.target_pct, video.interval)
        if len(self.frames) > 1:
            found.sort(key=lambda m: (-m["query_pct"], -m["target_pct"], m["distance"]))
            del found[MAX_VIDEO_MATCHES:]
        if self.index is not None:
            found += frame_matches(frames, self.index, self.options.threshold)
        return found

    def near_matches(self, pdq: str | None, quality: int | None) -> list[dict[str, Any]]:
        """``matches`` entries for a picture's PDQ: every PDQ set hash within the threshold,
        the closest per set and category, ``{"hashset", "algorithm": "pdq", "distance",
        "category"}``. Empty when no set was given or the quality is under 50."""
        if self.index is None or pdq is None or quality is None or quality < MIN_QUALITY:
            return []
        return self.index.matches(pdq, self.options.threshold)


def keep_picture(head: bytes) -> bool:
    """The whole content of pictures PDQ can decode."""
    return signature(head) in DECODABLE


_heif: bool | None = None  # pillow-heif registered with Pillow in this process (None: not tried)


def _register_heif() -> bool:
    """Register the HEIC opener once per process (a Pillow plugin: process-wide by nature)."""
    global _heif
    if _heif is None:
        try:
            from pillow_heif import register_heif_opener

            register_heif_opener()
            _heif = True
        except Exception:  # noqa: BLE001 - HEIC is then reported as not decodable
            _heif = False
    return _heif


def compute(data: bytes | bytearray | memoryview) -> tuple[str | None, int | None, str | None]:
    """``(pdq hex, quality, None)`` for a picture's bytes, or ``(None, None, reason)``."""
    import numpy as np
    import pdqhash
    from PIL import Image

    _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's EXIF/bomb warnings: we check ourselves
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width < MIN_SIDE or height < MIN_SIDE:
                    return None, None, f"skipped: {width}x{height} is under {MIN_SIDE}x{MIN_SIDE}"
                if getattr(img, "format", None) == "JPEG":
                    img.draft("RGB", (HASH_SIDE, HASH_SIDE))  # DCT scaling, sides stay >= 512
                    width, height = img.size
                if width * height > MAX_PIXELS:
                    return None, None, (f"{LIMIT}{width}x{height} exceeds the "
                                        f"decompression-bomb limit of {MAX_PIXELS:,} pixels")
                img.seek(0)  # first frame of an animation
                img.load()
                factor = min(width, height) // HASH_SIDE
                small = img
                if factor > 1:
                    if small.mode not in ("L", "RGB", "RGBA", "RGBX", "CMYK", "LA", "I", "F"):
                        small = small.convert("RGB")  # palette, 1-bit ...: reduce needs values
                    small = small.reduce(factor)
                pixels = np.asarray(small.convert("RGB"))
                del small
        bits, quality = pdqhash.compute(pixels)
        del pixels
        return to_hex(bits), int(quality), None
    except Image.DecompressionBombError as e:  # Pillow's pixel limit, which triage keeps
        return None, None, f"{LIMIT}{e}"[:200]
    except Image.UnidentifiedImageError:
        # Pillow's message names the BytesIO's address: a record must not differ between runs
        return None, None, "not decoded: Pillow cannot identify the picture"
    except MemoryError:
        return None, None, "not decoded: out of memory"
    except Exception as e:  # noqa: BLE001 - hostile pictures: a reason, never a crash
        return None, None, f"not decoded: {reason_text(e)}"[:200]


_ADDRESS = re.compile(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>")


def reason_text(e: BaseException) -> str:
    """An exception as a reason that is the same on every run: Pillow names the buffer it was
    given (``cannot identify image file <_io.BytesIO object at 0x7f...>``), and an object
    address would make two scans of the same evidence differ."""
    text = _ADDRESS.sub("", " ".join(str(e).split()))
    return text or type(e).__name__


def _note(record: FileRecord, reason: str | None) -> None:
    """Why a picture has no PDQ, in ``pdq_error`` once the record has that field."""
    try:
        record.pdq_error = reason  # type: ignore[attr-defined]
    except AttributeError:
        pass


def inspect_pdq(record: FileRecord, content: bytes | bytearray | None) -> None:
    """PDQ of a decodable picture from the content its read kept (``--pdq`` is on)."""
    if record.kind != PICTURE:
        return
    sig = record.signature
    if sig not in DECODABLE:
        _note(record, f"not decoded: {sig} pictures are not supported")
        return
    if content is None:
        size = record.size or 0
        _note(record, f"{LIMIT}{size:,} bytes is over the {MAX_BYTES >> 20} MiB limit"
              if size > MAX_BYTES else "not decoded: content not kept")
        return
    if len(content) > MAX_BYTES:
        _note(record, f"{LIMIT}{len(content):,} bytes is over the {MAX_BYTES >> 20} MiB limit")
        return
    if sig == "heic" and not _register_heif():
        _note(record, "not decoded: pillow-heif is not installed")
        return
    record.pdq, record.pdq_quality, reason = compute(content)
    _note(record, reason)
