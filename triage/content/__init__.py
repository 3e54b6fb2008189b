"""Stage 2, content: what is computed from a file's bytes, read once — digests (``hashing``:
a read returns a ``Read``) and the signature census (``census``). Imports ``evidence`` only
(the reader boundary); file-system backends call it while they read."""
