"""The command line (a thin typer layer over the stages): ``main`` is the console script
``triage = "triage.cli:main"`` and ``python -m triage``; the commands live in ``main.py``,
``hashset.py``, ``blockset.py``, ``info.py``, ``report.py``, ``sample.py``; the terminal they
write to in ``env.py``."""

from triage.cli.env import Environment
from triage.cli.main import app, main

__all__ = ["Environment", "app", "main"]
