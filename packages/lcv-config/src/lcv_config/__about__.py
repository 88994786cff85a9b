"""The version of lcv-config."""

__version__ = "0.1.0"
