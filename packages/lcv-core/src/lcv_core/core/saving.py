"""Save and load the whole cross-validation state, atomically, in a form ``torch.load(weights_only=True)`` reads.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only (NumPy arrays become lists), so
loading it never unpickles arbitrary objects.
"""

from __future__ import annotations

import array
import errno
import functools
import os
import random
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lcv_config import LcvError

FORMAT = "lcv-checkpoint"
"""The value of the ``format`` key that marks a file as an lcv checkpoint."""
VERSION = 2
"""The layout version of the checkpoint dict (2: long int lists packed by `pack()`; version 1 files still load)."""
_READS = (1, 2)
_PACKAGES = ("lcv-core", "lcv-config", "torch", "lightning")
_TMP_TAG = "lcvtmp"
_TMP_NAME = re.compile(rf"\..+\.{_TMP_TAG}-(?P<pid>\d+)-\w+(?:\.tmp)?")
_LEGACY_FILE = re.compile(r"\..+\.\w{8}\.tmp")  # tempfile.mkstemp's names before lcvtmp-<pid>
_LEGACY_DIR = re.compile(r"\..+\.\w{8}")  # tempfile.mkdtemp's names before lcvtmp-<pid>


def package_versions() -> dict[str, str]:
    """Return the installed versions of the packages a checkpoint depends on (read once per process)."""
    return dict(_package_versions())


@functools.cache
def _package_versions() -> tuple[tuple[str, str], ...]:
    # reading a distribution's metadata parses its METADATA file (~1 ms each); last.ckpt asks after every epoch
    out: list[tuple[str, str]] = []
    for name in _PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return tuple(out)


_SCALARS = frozenset((int, float, str, bool, type(None)))


def plain(value: Any) -> Any:
    """Return ``value`` with NumPy arrays and scalars turned into lists and numbers, recursively (always a copy)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if all(type(v) in _SCALARS for v in value):  # random states: hundreds of ints, nothing to convert
            return list(value) if isinstance(value, list) else tuple(value)
        return [plain(v) for v in value] if isinstance(value, list) else tuple(plain(v) for v in value)
    return value


def config_dict(config: Any) -> dict[str, Any]:
    """Return a trainer config as a checkpoint-safe dict (objects such as callbacks become their ``repr``)."""
    out: dict[str, Any] = {}
    for key, value in config.model_dump().items():
        out[key] = value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)
    return out


def cpu_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of a ``state_dict`` with every tensor detached, cloned and on the CPU."""
    return {k: v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v for k, v in state.items()}


def cpu_tree(value: Any) -> Any:
    """Return ``value`` with every tensor in it (in dicts, lists, tuples) detached and on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu")
    if isinstance(value, Mapping):
        return {k: cpu_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_tree(v) for v in value)
    return value


def snapshot(value: Any, clone: bool = True) -> Any:
    """Return a copy of ``value`` that later training cannot change: new containers, tensors cloned onto the CPU.

    A checkpoint written in the background is taken with this at the end of the epoch it holds (optimizer states and
    random states are updated in place by the next epoch). ``clone=False`` copies the containers only, for tensors
    nothing changes in place.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True) if clone else value
    if isinstance(value, Mapping):
        return {k: snapshot(v, clone) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if set(map(type, value)) <= _SCALARS:  # random states: hundreds of ints, nothing to clone
            return list(value) if isinstance(value, list) else value
        return (
            [snapshot(v, clone) for v in value] if isinstance(value, list) else tuple(snapshot(v, clone) for v in value)
        )
    return value


_INTS = "__lcv_ints__"
_PACK_MIN = 64


def pack(value: Any) -> Any:
    """Return ``value`` with every list or tuple of at least 64 ints stored as one int64 tensor (`unpack()` reverts).

    ``torch.save`` pays a Python call per pickled object; random states (624 ints per generator) and fold indices
    cost it about 1 µs an int, which is most of ``last.ckpt``'s time for a small model. As a tensor they cost
    nothing. The packed form is ``{"__lcv_ints__": tensor, "tuple": bool}``, still read by ``weights_only=True``.
    """
    if isinstance(value, Mapping):
        return {k: pack(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) >= _PACK_MIN and set(map(type, value)) == {int}:  # not bools: unpacked they would be ints
            try:
                ints = torch.frombuffer(array.array("q", value), dtype=torch.int64)
            except OverflowError:  # beyond int64: kept as a list
                pass
            else:
                return {_INTS: ints, "tuple": isinstance(value, tuple)}
        return [pack(v) for v in value] if isinstance(value, list) else tuple(pack(v) for v in value)
    return value


def unpack(value: Any) -> Any:
    """Undo `pack()`: packed int tensors become lists (or tuples) of ints again."""
    if isinstance(value, Mapping):
        if _INTS in value and isinstance(value[_INTS], torch.Tensor):
            ints = value[_INTS].tolist()
            return tuple(ints) if value.get("tuple") else ints
        return {k: unpack(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unpack(v) for v in value]
    if isinstance(value, tuple):
        return tuple(unpack(v) for v in value)
    return value


def global_rng_state() -> dict[str, Any]:
    """Return the global torch, NumPy and Python random states in checkpoint-safe form."""
    return {"torch": torch.get_rng_state(), "numpy": plain(np.random.get_state()), "python": random.getstate()}


def set_global_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the global random states saved by `global_rng_state()`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(numpy_state(state["numpy"]))
    random.setstate(python_state(state["python"]))


def numpy_state(state: Any) -> Any:
    """Turn a NumPy ``RandomState`` state read from a checkpoint back into the tuple NumPy expects."""
    name, keys, pos, has_gauss, gauss = state
    return (name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(gauss))


def python_state(state: Any) -> Any:
    """Turn a ``random.getstate()`` value read from a checkpoint back into tuples."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def temp_prefix(name: str) -> str:
    """The prefix of a temporary file or folder written before it is renamed to ``name``: hidden, with this pid.

    [`remove_leftovers()`][lcv_core.core.saving.remove_leftovers] removes those whose process is gone.
    """
    return f".{name}.{_TMP_TAG}-{os.getpid()}-"


def save(state: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then ``os.replace``.

    Raises:
        OSError: The disk is full, the folder is not writable, or another system error; the message names the file,
            says the previous file at ``path`` is unchanged, and how to continue.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            torch.save(dict(state), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        cause = _os_error(exc)
        if cause is not None:
            raise _write_error(cause, path) from exc
        raise
    return path


def _os_error(exc: BaseException) -> OSError | None:
    """The ``OSError`` behind ``exc`` (torch wraps a failed write of its zip writer in a ``RuntimeError``)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _write_error(cause: OSError, path: Path) -> OSError:
    if cause.errno == errno.ENOSPC:
        why, fix = "the disk is full", f"free space on the disk that holds {path.parent}"
    elif cause.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why, fix = "permission denied", f"make {path.parent} writable"
    else:
        why, fix = cause.strerror or str(cause), f"fix the problem with {path.parent}"
    kept = f"the previous {path.name} is unchanged" if path.exists() else f"no earlier {path.name} existed"
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else "RUN_DIR"
    message = (
        f"Cannot write checkpoint {path}: {why}. Nothing was half-written ({kept}). {fix[0].upper()}{fix[1:]}, "
        f"then continue the run from its last complete last.ckpt with `lcv cv --resume {run_dir}` "
        "(Python: trainer.fit(..., ckpt_path=...))."
    )
    return OSError(cause.errno, message)


def remove_leftovers(directory: str | Path) -> list[Path]:
    """Remove the temporary checkpoint files and folders a killed process left in ``directory``; return them.

    These are hidden entries named by [`temp_prefix()`][lcv_core.core.saving.temp_prefix] whose process is no longer
    running on this host (``.last.ckpt.lcvtmp-<pid>-<random>.tmp``, ``.epoch=3.lcvtmp-<pid>-<random>/``), and the
    unnamed temporary files and folders of earlier lcv-core versions (``.last.ckpt.<random>.tmp``,
    ``.epoch=3.<random>/``). Anything else is left alone.
    """
    directory = Path(directory)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        match = _TMP_NAME.fullmatch(entry.name)
        if match is not None:
            if _pid_running(int(match["pid"])):
                continue
        elif not (_LEGACY_FILE.fullmatch(entry.name) and entry.is_file()) and not (
            _LEGACY_DIR.fullmatch(entry.name) and entry.is_dir()
        ):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def read(
    path: Path, formats: Collection[str], unreadable: Callable[[Exception], str], foreign: Callable[[Any], str]
) -> dict[str, Any]:
    """Read a dict whose ``format`` is one of ``formats`` with ``torch.load(weights_only=True)``, onto the CPU.

    Int lists that `pack()` stored as tensors are lists again.

    Args:
        path: The file to read.
        formats: The accepted values of the ``format`` key.
        unreadable: The error message for a file torch cannot read, given torch's exception.
        foreign: The error message for a file that holds anything else, given what it holds.

    Raises:
        LcvError: The file cannot be read or holds something else; the message is the caller's.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for bad files
        raise LcvError(unreadable(exc)) from exc
    if not isinstance(state, dict) or state.get("format") not in formats:
        raise LcvError(foreign(state))
    return unpack(state)  # type: ignore[no-any-return]  # a dict stays a dict


def load(path: str | Path) -> dict[str, Any]:
    """Read an lcv checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        LcvError: The file is missing, truncated or corrupt, or not an lcv checkpoint; the message names the path.
    """
    path = Path(path)
    if not path.is_file():
        raise LcvError(f"Checkpoint {path} does not exist; pass the path of a .ckpt file or 'last'.")

    def unreadable(exc: Exception) -> str:
        return (
            f"Checkpoint {path} cannot be read: it is truncated or corrupt ({type(exc).__name__}: {exc}). "
            "Resume from another checkpoint or start a new run."
        )

    def foreign(state: Any) -> str:
        keys = ", ".join(sorted(map(str, state))[:8]) if isinstance(state, dict) else type(state).__name__
        return (
            f"{path} is not an lcv checkpoint (expected a dict with format={FORMAT!r}; found {keys}). "
            "Per-fold model files (fold_<i>.ckpt) hold weights only; resume from last.ckpt."
        )

    state = read(path, (FORMAT,), unreadable, foreign)
    if state.get("version") not in _READS:
        reads = ", ".join(map(str, _READS))
        raise LcvError(f"Checkpoint {path} has layout version {state.get('version')}; this lcv-core reads {reads}.")
    return state
