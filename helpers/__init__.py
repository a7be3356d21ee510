"""Emergent-misalignment course kit: the helpers the notebooks import."""

__version__ = "0.1.0"
