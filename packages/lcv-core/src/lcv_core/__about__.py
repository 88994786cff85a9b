"""The version of lcv-core."""

__version__ = "0.1.0"
