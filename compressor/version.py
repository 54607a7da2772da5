"""The project's version: pyproject.toml, `compress --version` and exported files' provenance read it here."""

__version__ = "0.1.0"
