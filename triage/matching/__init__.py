"""Stage 4, matching: the category vocabulary (``categories``) and exact matching against the
hash-set index (``exact``). Same stage as ``triage.hashsets`` (the sets) and
``triage.perceptual`` (PDQ near matches); imports earlier stages only."""
