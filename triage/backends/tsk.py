"""The Sleuth Kit backend: every file system pytsk3 opens."""

from __future__ import annotations

from typing import Any

import pytsk3

from triage.backends import VolumeRef, register
from triage.evidence import open_image
from triage.records import ReadTarget
from triage.hashing import hash_content
from triage.walk import list_directory, root_dir


class TskBackend:
    def open(self, ref: VolumeRef) -> Any:
        return pytsk3.FS_Info(open_image(ref.evidence), offset=ref.offset)

    @staticmethod
    def location(fs: Any, target: ReadTarget) -> int | None:
        """Byte offset (within the volume) of the file's first data run, for physical order."""
        try:
            f = fs.open_meta(inode=target.addr)
            for attr in f:
                info = attr.info
                if target.attr_type is not None and (int(info.type), int(info.id)) != (
                        target.attr_type, target.attr_id):
                    continue
                for run in attr:
                    if not int(run.flags) & 0x03:  # not sparse or filler
                        return int(run.addr) * int(fs.info.block_size)
                return None
        except OSError:
            return None
        return None

    root = staticmethod(root_dir)
    list_directory = staticmethod(list_directory)
    hash_content = staticmethod(hash_content)


register("tsk", TskBackend())
