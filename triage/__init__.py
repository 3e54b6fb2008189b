"""triage: fast forensic triage of disk images against known-file hash sets.

The library API (``triage.scan.run_scan``) is what the CLI uses; lab scripts may import it too.
"""

__version__ = "0.1.0"
