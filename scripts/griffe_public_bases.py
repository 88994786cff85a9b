"""A griffe extension for the API pages: drop private base classes (``_Strict``) from "Bases:".

mkdocs.yml loads it (``extensions: [scripts/griffe_public_bases.py]``); public bases stay listed.
"""

from __future__ import annotations

from typing import Any

import griffe


class PublicBases(griffe.Extension):
    """Remove every base class whose own name starts with an underscore."""

    def on_class_instance(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        """Filter the bases of ``cls`` once griffe has built it."""
        cls.bases = [base for base in cls.bases if not str(base).rsplit(".", 1)[-1].startswith("_")]
