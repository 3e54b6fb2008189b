"""The Sleuth Kit backend: every file system pytsk3 opens."""

from __future__ import annotations

from typing import Any

import pytsk3

from triage.backends import VolumeRef, register
from triage.evidence import open_image
from triage.hashing import hash_content
from triage.walk import list_directory, root_dir


class TskBackend:
    def open(self, ref: VolumeRef) -> Any:
        return pytsk3.FS_Info(open_image(ref.evidence), offset=ref.offset)

    root = staticmethod(root_dir)
    list_directory = staticmethod(list_directory)
    hash_content = staticmethod(hash_content)


register("tsk", TskBackend())
