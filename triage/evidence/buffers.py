"""What a reader hands back and the one place it becomes ``bytes`` (the reader boundary).

Here, in the evidence stage, because readers (containers, direct EWF) produce these buffers and
every later stage (``content.hashing``) consumes only ``bytes``.
"""

from __future__ import annotations

import mmap

# What a reader may hand back: pytsk3, pread and the libyal bindings return ``bytes``, the system
# libewf's direct reads a ``bytearray`` (``ewf_native.Handle.read_into_new``); a future reader
# might return a ``memoryview`` or an ``mmap``. Only ``as_bytes`` may see these types.
Buffer = bytes | bytearray | memoryview | mmap.mmap


def as_bytes(data: Buffer) -> bytes:
    """The reader boundary: every buffer a reader returns becomes immutable ``bytes`` here,
    once, before the content stage sees it. Why: the content stage (census signatures in
    set/dict lookups, PDQ, hash sets, C extensions) is written for ``bytes``; a mutable
    ``bytearray`` is unhashable (``head[4:8] in {...}`` raised TypeError on every EWF file
    read directly - issue 13) and a ``memoryview`` has no ``startswith``. Costs one memcpy of
    the non-bytes buffers (~50 us per MiB, 2% of hashing it); ``bytes`` pass through as is."""
    # not bytes(data): bytes(42) is 42 zero bytes, a reader's wrong return must raise instead
    return data if data.__class__ is bytes else memoryview(data).tobytes()
