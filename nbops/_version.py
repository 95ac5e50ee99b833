"""The installed nbops version."""

__version__ = "0.1.0"
