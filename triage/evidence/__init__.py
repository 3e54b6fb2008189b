"""Stage 1, evidence: any container → one read-only byte stream (``containers``, ``ewf_native``),
what a reader hands back (``buffers``), partitions and sector size (``volumes``), what the
evidence is, checked on resume (``identity``). Imports nothing of triage but ``errors``/``records``."""
