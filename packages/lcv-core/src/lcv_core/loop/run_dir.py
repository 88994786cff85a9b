"""Run directories: one per run, named ``<output_dir>/<name>/<timestamp>``."""

from __future__ import annotations

import time
from pathlib import Path


def new_run_dir(output_dir: str, name: str) -> Path:
    """Return a new ``<output_dir>/<name>/<timestamp>`` directory path (not yet created)."""
    base = Path(output_dir) / name / time.strftime("%Y%m%d-%H%M%S")
    path, n = base, 1
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path
