"""The terminal the command line writes to, in its own module so every command module can
reach it without importing the module that registers the commands (no import circle).

``main(argv, env)`` sets ``current``; tests pass their own ``Environment`` instead of patching
``sys.stdout``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Environment:
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    interactive: bool = field(default_factory=lambda: sys.stderr.isatty())


current = Environment()
