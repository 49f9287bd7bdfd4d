"""Credential formats, request signing and wire messages: shared by gate and hub, no I/O."""

# The one place the release is numbered: pyproject.toml reads it, gates report it to the hub.
__version__ = "0.1.0"
