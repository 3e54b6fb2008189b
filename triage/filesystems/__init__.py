"""Stage 3, file systems: what each volume is (``discovery``, for every command; ``info`` for
``triage info``), the walk to records with fls semantics (``walk``, ``fatnames``, ``ntfs_raw``,
``allocated``) and the backends that read and hash file content (``backends``: tsk, apfs,
logical, encrypted probers). Imports ``evidence`` and ``content``."""
