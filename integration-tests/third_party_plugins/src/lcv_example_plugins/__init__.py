"""Example third-party lcv plugins: one of every kind, each passing lcv-config's conformance suite."""

__version__ = "0.1.0"
