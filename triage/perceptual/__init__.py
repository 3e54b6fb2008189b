"""Perceptual hashing (PDQ), in one place.

- ``compute``: PDQ of a picture in the worker (decode in memory, bounded), the worker's
  ``PdqWorker`` state (options, mapped index), passed explicitly to the read and the matcher;
- ``sets``: PDQ set files (plain list, CSV, VICS) parsed with the exact readers' own rules
  (``hashsets.vics.check_media``, ``hashsets.csvsets``), so a media's categories agree;
- ``index``: the exact multi-index near-duplicate search (``PdqIndex``), the arrays a compiled
  ``.tdb`` also carries (``hashsets.pdqsection``);
- ``sources``: which PDQ sets a scan searches (``--pdq-set``, the PDQ of ``--hashset`` sets).

May import: ``errors``, ``categories``, ``census``, ``hashing``, ``records``, ``hashsets``.
Imported by: the worker (``tasks``, ``inspect``, ``results`` for typing), ``scan``, the CLI,
and ``hashsets.pdqsection``/``tdbheader`` (``index``, ``sets`` only: no circle).
"""
