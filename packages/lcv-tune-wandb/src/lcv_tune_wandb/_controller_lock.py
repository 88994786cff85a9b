"""The lock file that keeps a local W&B sweep to one controller per study."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lcv_config import LcvError


@contextmanager
def controller_lock(workdir: Path, study_name: str) -> Iterator[None]:
    """Hold ``<study>.sweep.lock``: the local engine proposes from one process's view of the runs."""
    lock = workdir / f"{study_name}.sweep.lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid = _pid_in(lock)
            if pid is not None and _alive(pid):
                raise LcvError(
                    f"Study {study_name!r} in {workdir} already has a controller (process {pid}); a "
                    "local W&B sweep has one controller per study. Wait for it, use another study name, or use "
                    f"backend: optuna for many workers. If process {pid} is gone, delete {lock}."
                ) from None
            lock.unlink(missing_ok=True)  # left behind by a controller that died
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _pid_in(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
