"""Run directories: one run per directory, named ``<output_dir>/<name>/<timestamp>``, locked while the run lives.

[`create_run_dir()`][lcv_core.loop.run_dir.create_run_dir] makes a new directory atomically (``mkdir`` without
``exist_ok``, retried with a ``-1``, ``-2``... suffix), so two runs started in the same second never share one.
[`RunLock`][lcv_core.loop.run_dir.RunLock] holds ``<run dir>/.lock`` for the run's lifetime: an exclusive
``flock`` on it (released by the kernel when the process dies, also on SIGKILL) and the owner's pid, host, start
time and command written in it, so a second process on the same directory is refused with a message naming the
owner. A lock file left by a killed run is stale (no process holds the ``flock``; where ``flock`` is missing, its
pid is dead on this host) and is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from lcv_config import ConfigError, LcvError

try:
    import fcntl
except ImportError:  # Windows: an exclusively created file with a pid check instead
    fcntl = None  # type: ignore[assignment]  # checked before every use
_HAS_FLOCK: bool = fcntl is not None

LOCK_FILE = ".lock"
"""The lock file inside a run directory; it exists only while a run holds the directory (or after a kill)."""
_MAX_SUFFIX = 10_000
_HELD: dict[Path, RunLock] = {}
"""The run directories this process holds, by resolved path: a fit inside ``lcv cv`` reuses the command's lock."""
_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "JSM_NAMESPACE_RANK")
RUN_DIR_VARIABLE = "LCV_RUN_DIR"
"""The environment variable in which the first process of a command names its run directory; the processes Fabric
starts on the same machine (``devices > 1``) inherit it and follow that directory."""


class RunDirectoryBusyError(LcvError):
    """Another process holds the run directory (the command exits 2 with the owner named)."""


def _check_name(name: str) -> None:
    parts = Path(name).parts
    if Path(name).is_absolute() or ".." in parts or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ConfigError(
            f"name {name!r} must be a plain run name: no '..', no absolute path and no control characters "
            "(it becomes a folder under output_dir). Use e.g. name: digits or name: project/digits.",
            "name",
        )


def _missing_ancestors(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first (what ``mkdir(parents=True)`` creates)."""
    missing = []
    for p in (path, *path.parents):
        if p.exists():
            break
        missing.append(p)
    return missing


def create_run_dir(output_dir: str | Path, name: str) -> Path:
    """Create and return a new ``<output_dir>/<name>/<timestamp>`` directory, never one that already exists.

    Raises:
        ConfigError: ``name`` would escape ``output_dir`` or holds control characters; ``output_dir`` is a file.
    """
    _check_name(name)
    parent = Path(output_dir) / name
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise ConfigError(
            f"Cannot create the run directory under {parent}: {exc.strerror or exc} (a file stands in the way). "
            "Set output_dir to a folder.",
            "output_dir",
        ) from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(_MAX_SUFFIX):
        path = parent / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            path.mkdir()  # atomic: exactly one process creates it
        except FileExistsError:
            continue
        return path
    raise LcvError(f"Cannot create a new run directory in {parent}: {_MAX_SUFFIX} runs started this second.")


def new_run_dir(output_dir: str, name: str) -> Path:
    """Create and return a new ``<output_dir>/<name>/<timestamp>`` directory (see `create_run_dir`)."""
    return create_run_dir(output_dir, name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return False
    return True


def _read_owner(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(owner: dict[str, Any]) -> str:
    if not owner:
        return "another process (its lock file is being written)"
    text = f"pid {owner.get('pid')} on host {owner.get('host')}"
    if owner.get("started"):
        text += f", started {owner['started']}"
    if owner.get("command"):
        text += f": {owner['command']}"
    return text


class RunLock:
    """The lock of one run directory, held from [`acquire()`][lcv_core.loop.run_dir.RunLock.acquire] to `release()`.

    Use it as a context manager around everything the run writes. ``stale`` holds the owner of a stale lock that
    was taken over (a killed run), else ``None``.
    """

    def __init__(self, run_dir: Path, fd: int | None, stale: dict[str, Any] | None) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCK_FILE
        self.stale = stale
        self.writes = fd is not None
        """Whether this process writes the run directory: false for the other processes of a multi-process job
        (see `for_command()`), which neither lock nor write it."""
        self.created: list[Path] = []
        """The directories this run created, deepest first: [`discard()`][lcv_core.loop.run_dir.RunLock.discard]
        removes them if they are still empty."""
        self._fd: int | None = fd

    @classmethod
    def new(cls, output_dir: str | Path, name: str) -> RunLock:
        """Create a new ``<output_dir>/<name>/<timestamp>`` directory (see `create_run_dir`) and lock it."""
        missing = _missing_ancestors(Path(output_dir) / name)
        lock = cls.acquire(create_run_dir(output_dir, name))
        lock.created = [lock.run_dir, *missing]
        return lock

    @classmethod
    def claim(cls, run_dir: str | Path) -> RunLock:
        """Lock ``run_dir``, creating it (and its parents) if needed."""
        missing = _missing_ancestors(Path(run_dir))
        lock = cls.acquire(run_dir)
        lock.created = missing
        return lock

    @classmethod
    def follow(cls, run_dir: str | Path) -> RunLock:
        """Name ``run_dir`` for a process that is not the first of its job: nothing is created, locked or written."""
        return cls(Path(run_dir), None, None)

    @classmethod
    def for_command(cls, run_dir: str | Path | None, output_dir: str | Path, name: str) -> RunLock:
        """Lock the run directory of a command: ``run_dir`` (``--run-dir``), or a new one under ``output_dir``.

        Only the first process of a job (see `is_first_process`) creates and locks it, and names it in
        ``LCV_RUN_DIR`` for the processes Fabric starts on its machine. The other processes (ranks > 0 started by
        Fabric, ``torchrun`` or ``srun``, maybe on other machines that do not share its filesystem) follow it: they
        train, but write nothing, since rank 0 writes the whole run. Without ``--run-dir`` a process on another
        machine cannot know rank 0's timestamp, so it names its own; nothing is written there.

        Raises:
            RunDirectoryBusyError: Another live process holds ``run_dir``.
            ConfigError: ``run_dir`` or ``output_dir`` cannot be created.
        """
        if not is_first_process():
            inherited = os.environ.get(RUN_DIR_VARIABLE)
            stamp = Path(output_dir) / name / time.strftime("%Y%m%d-%H%M%S")
            return cls.follow(run_dir or inherited or stamp)
        lock = cls.claim(run_dir) if run_dir else cls.new(output_dir, name)
        os.environ[RUN_DIR_VARIABLE] = str(lock.run_dir)
        return lock

    @classmethod
    def acquire(cls, run_dir: str | Path) -> RunLock:
        """Create ``run_dir`` if needed and lock it for this process.

        Raises:
            RunDirectoryBusyError: Another live process holds it; the message names that process.
            ConfigError: ``run_dir`` cannot be created (a file stands in the way).
        """
        run_dir = Path(run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise ConfigError(
                f"Cannot use {run_dir} as the run directory: {exc.strerror or exc} (a file stands in the way).",
                "run_dir",
            ) from None
        path = run_dir / LOCK_FILE
        for _ in range(20):
            fd, stale = _flock(path) if _HAS_FLOCK else _exclusive(path)
            if fd is not None:
                owner = {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "command": " ".join(["lcv", *sys.argv[1:]])[:500],
                }
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps(owner).encode())
                os.fsync(fd)
                lock = cls(run_dir, fd, stale)
                _HELD[run_dir.resolve()] = lock
                return lock
            time.sleep(0.05)  # the lock file was replaced between open and lock: look again
        raise _busy(path)

    def release(self) -> None:
        """Remove the lock file and release the lock (idempotent)."""
        if self._fd is None:
            return
        if _HELD.get(self.run_dir.resolve()) is self:
            del _HELD[self.run_dir.resolve()]
        try:
            self.path.unlink(missing_ok=True)  # before unlocking: a waiter that locks the old file sees it is gone
        finally:
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        """Release the lock and remove the directories this run created, where nothing was written in them.

        For a run refused before it wrote anything (a bad config, a resume that does not fit): no trace is left.
        """
        self.release()
        for path in self.created:
            try:
                path.rmdir()
            except OSError:
                break  # not empty (or gone): the ones above it are not empty either

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def is_first_process() -> bool:
    """Whether this process is the first of its job, read from the environment before any launch.

    The processes a launcher starts (Lightning's for ``devices > 1``, torchrun, SLURM's ``srun``) carry a non-zero
    rank in one of ``RANK``, ``SLURM_PROCID``, ``LOCAL_RANK``, ``NODE_RANK``, ``GROUP_RANK``; only the first process
    locks and writes the run directory.
    """
    return all(os.environ.get(name, "0") in ("", "0") for name in _RANK_VARIABLES)


def hold_run_dir(run_dir: str | Path) -> RunLock | None:
    """Lock ``run_dir`` for a fit started from Python; ``None`` when this process holds it already (``lcv cv``).

    Says so on stderr when a killed run's lock was taken over, and removes the temporary checkpoint files a killed
    run left behind, as ``lcv cv`` does.

    Raises:
        RunDirectoryBusyError: Another live process holds the directory; the message names it.
    """
    if Path(run_dir).resolve() in _HELD:
        return None
    lock = RunLock.claim(run_dir)  # `discard()` removes what it created if the fit is refused before writing
    start_run(lock)
    return lock


def start_run(lock: RunLock) -> None:
    """Say when a killed run's lock was taken over; remove the temporary files a killed run left in checkpoints/.

    A no-op on the processes that follow another's run directory (`RunLock.follow`): rank 0 may be writing there.
    """
    if not lock.writes:
        return
    from lcv_core.core.saving import remove_leftovers  # imports torch: not before a bad config is refused

    if lock.stale:
        print(
            f"lcv: note: took over the lock of {lock.run_dir} from a run that is gone (pid {lock.stale.get('pid')} "
            f"on {lock.stale.get('host')})",
            file=sys.stderr,
        )
    remove_leftovers(lock.run_dir / "checkpoints")


def _busy(path: Path) -> RunDirectoryBusyError:
    return RunDirectoryBusyError(
        f"The run directory {path.parent} is in use by {_describe(_read_owner(path))}. One run per directory: wait "
        f"for it to finish or pass another --run-dir. If that process is gone (a run on another machine that died), "
        f"delete {path}."
    )


def _flock(path: Path) -> tuple[int | None, dict[str, Any] | None]:
    """Lock ``path`` with ``flock``; ``(None, None)`` when the file was replaced meanwhile (try again)."""
    assert fcntl is not None  # noqa: S101  # only called where fcntl exists
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _busy(path) from None
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        same = False
    if not same:  # the owner released (unlinked) it between our open and our lock
        os.close(fd)
        return None, None
    previous = _read_owner(path)
    return fd, previous or None


def _exclusive(path: Path) -> tuple[int | None, dict[str, Any] | None]:
    """Create ``path`` exclusively; take over a lock whose pid is dead on this host."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), None
    except FileExistsError:
        owner = _read_owner(path)
    pid = owner.get("pid")
    if owner.get("host") == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid):
        path.unlink(missing_ok=True)
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), owner
        except FileExistsError:
            return None, None
    if not owner:
        return None, None  # being written: look again
    raise _busy(path)


__all__ = [
    "LOCK_FILE",
    "RUN_DIR_VARIABLE",
    "RunDirectoryBusyError",
    "RunLock",
    "create_run_dir",
    "hold_run_dir",
    "is_first_process",
    "new_run_dir",
    "start_run",
]
