"""The ``lcv cv``, ``fit``, ``tune``, ``test`` and ``predict`` commands (``lcv.commands`` plugins).

Each command validates its config before torch is imported; the heavy modules are imported inside ``run``.
"""
