"""The tool's version, in its own module so any stage can name it without importing the
``triage`` package (whose ``__init__`` re-exports the run API lazily)."""

__version__ = "0.1.0"
