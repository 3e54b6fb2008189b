"""Encrypted volumes: recognised and reported, never scanned as "no files, no hits".

Runs as the last prober, only for volumes TSK could not open ("no-filesystem"; volumes found
all-zero stay "empty"). Headers first (BitLocker, LUKS1/2, FileVault 2 on CoreStorage), then
content: a volume whose sampled data is indistinguishable from random (entropy >= 7.99 bits per
byte and incompressible) has no file system anyone can read without a key - VeraCrypt/TrueCrypt
volumes have no header at all, so this is the only sign they leave.
"""

from __future__ import annotations

import math
import struct
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from triage.filesystems.backends.base import PROBERS, Probed
from triage.evidence.containers import EvidenceSpec

SAMPLE = 1 << 20  # bytes per entropy sample
SAMPLES = 4  # spread evenly over the volume
MIN_SAMPLE = 64 << 10  # below this the entropy estimate is too noisy to call
ENTROPY_MIN = 7.99  # bits per byte; 1 MiB of random bytes measures ~7.9998
INCOMPRESSIBLE = 0.99  # zlib output / input: repeated or structured data compresses

BITLOCKER_GUID = uuid.UUID("4967d63b-2e29-4ad8-8399-f6a339e3d001")  # Windows 7 and later


@dataclass
class Encryption:
    scheme: str  # "BitLocker", "LUKS2", "FileVault 2", "unknown (high entropy)"
    notes: list[str] = field(default_factory=list)

    @property
    def error(self) -> str:
        return f"encrypted ({self.scheme}), not scanned"


def _read(img: Any, offset: int, length: int) -> bytes:
    try:
        size = img.get_size()
        length = max(0, min(length, size - offset))
        return img.read(offset, length) if length else b""
    except OSError:
        return b""


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()


def from_header(head: bytes) -> Encryption | None:
    """The scheme named by the volume's first sector, or None."""
    if head[3:11] == b"-FVE-FS-":
        win7 = len(head) >= 176 and uuid.UUID(bytes_le=head[160:176]) == BITLOCKER_GUID
        version = "(Windows 7 or later)" if win7 else "(Windows Vista format)"
        return Encryption("BitLocker", [f"BitLocker {version}"])
    if head[:6] == b"LUKS\xba\xbe" and len(head) >= 208:
        version = struct.unpack(">H", head[6:8])[0]
        if version == 1:
            return Encryption("LUKS1", [(f"LUKS1 {_text(head[8:40])}-{_text(head[40:72])}, "
                                        f"UUID {_text(head[168:208])}")])
        label = _text(head[24:72])
        return Encryption(f"LUKS{version}",
                          [f"LUKS{version} UUID {_text(head[168:208])}"
                           + (f", label '{label}'" if label else "")])
    if corestorage_encrypted(head):
        return Encryption("FileVault 2", ["Apple CoreStorage physical volume, AES-XTS"])
    return None


def bitlocker_to_go(head: bytes) -> bool:
    """A BitLocker To Go volume: a readable FAT "discovery volume" (OEM MSWIN4.1) that only
    holds the reader program; TSK opens it, the data behind it stays encrypted."""
    return (head[3:11] == b"MSWIN4.1" and len(head) >= 440
            and uuid.UUID(bytes_le=head[424:440]) == BITLOCKER_GUID)


def is_corestorage(head: bytes) -> bool:
    """Apple CoreStorage physical volume header: "CS" at 88, version 1, block type 0x10."""
    if len(head) < 512 or head[88:90] != b"CS":
        return False
    version, block_type = struct.unpack("<HH", head[8:12])
    return version == 1 and block_type == 0x10 and struct.unpack("<I", head[90:94])[0] == 1


def corestorage_encrypted(head: bytes) -> bool:
    """FileVault 2: key data size 16 and cipher 2 (AES-XTS) at 168/172 (as util-linux blkid)."""
    return is_corestorage(head) and struct.unpack("<II", head[168:176]) == (16, 2)


def entropy(data: bytes) -> float:
    """Shannon entropy of the byte histogram, bits per byte."""
    n = len(data)
    if not n:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())


def looks_random(img: Any, offset: int, length: int) -> tuple[bool, float]:
    """(every sample random-looking, lowest entropy seen). Samples are spread evenly so a
    partly written volume (data followed by zeros) is not called encrypted."""
    span = min(length, max(0, img.get_size() - offset))
    if span < MIN_SAMPLE:
        return False, 0.0
    size = min(SAMPLE, span)
    count = 1 if span <= size else SAMPLES
    step = (span - size) // max(1, count - 1)
    lowest = 8.0
    for i in range(count):
        data = _read(img, offset + i * step, size)
        if len(data) < MIN_SAMPLE:
            return False, 0.0
        h = entropy(data)
        lowest = min(lowest, h)
        if h < ENTROPY_MIN or len(zlib.compress(data, 1)) < INCOMPRESSIBLE * len(data):
            return False, lowest
    return True, lowest


def detect(img: Any, offset: int, length: int) -> Encryption | None:
    """The encryption of the volume at ``offset``, or None (reads a few MiB, hashes nothing)."""
    found = from_header(_read(img, offset, 512))
    if found:
        return found
    random_like, h = looks_random(img, offset, length)
    if random_like:
        return Encryption("VeraCrypt-like or wiped: random data, indistinguishable from encryption or wiping", [
            (f"no file system and no known header; sampled data looks random ({h:.4f} bits per "
            "byte, incompressible): VeraCrypt/TrueCrypt-like, or wiped with random data")])
    return None


CORESTORAGE = ("Apple CoreStorage volume (Fusion Drive or unencrypted logical volume group): "
               "not supported, not scanned")
TO_GO_NOTE = ("BitLocker To Go: the readable FAT is only the discovery volume (the reader "
              "program); the data is encrypted and not scanned")


def probe_encryption(img: Any, spec: EvidenceSpec, volume: Any) -> Probed | None:
    """An encrypted volume TSK could not open (or an unsupported CoreStorage one); never finds
    a file system."""
    if img is None or volume.status != "no-filesystem":
        return None
    enc = detect(img, volume.offset, volume.length)
    if enc is not None:
        return Probed("encrypted", enc.error, None, enc.scheme, tuple(enc.notes))
    if is_corestorage(_read(img, volume.offset, 512)):
        return Probed(None, CORESTORAGE)
    return None


PROBERS.append(probe_encryption)
