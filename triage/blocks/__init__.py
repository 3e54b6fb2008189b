"""Sector-hash triage: block sets (``.tbs``), sampling and block scans (issue 17).

One module per concern, imported directly (``triage.blocks.tbs``, ``triage.blocks.digest``...);
nothing is imported here so that reading a set does not pull in the builder.
"""
