"""Save and load the whole cross-validation state, atomically, in a form ``torch.load(weights_only=True)`` reads.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only (NumPy arrays become lists), so
loading it never unpickles arbitrary objects.
"""

from __future__ import annotations

import os
import random
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
VERSION = 1
"""The layout version of the checkpoint dict."""
_PACKAGES = ("lcv-core", "lcv-config", "torch", "lightning")


def package_versions() -> dict[str, str]:
    """Return the installed versions of the packages a checkpoint depends on."""
    out: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def plain(value: Any) -> Any:
    """Return ``value`` with NumPy arrays and scalars turned into lists and numbers, recursively."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value) if isinstance(value, list) else tuple(plain(v) for v in value)
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


def global_rng_state() -> dict[str, Any]:
    """Return the global torch, NumPy and Python random states in checkpoint-safe form."""
    return {"torch": torch.get_rng_state(), "numpy": plain(np.random.get_state()), "python": random.getstate()}


def set_global_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the global random states saved by :func:`global_rng_state`."""
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


def split_indices(datamodule: Any) -> list[list[list[int]]] | None:
    """Return the datamodule's ``folds`` as ``[[train_idx, val_idx], ...]`` lists, or ``None`` if it has none."""
    folds = getattr(datamodule, "folds", None)
    if folds is None or callable(folds):
        return None
    try:
        return [[[int(i) for i in train], [int(i) for i in val]] for train, val in folds]
    except (TypeError, ValueError):
        return None


def save(state: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(dict(state), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read(
    path: Path, formats: Collection[str], unreadable: Callable[[Exception], str], foreign: Callable[[Any], str]
) -> dict[str, Any]:
    """Read a dict whose ``format`` is one of ``formats`` with ``torch.load(weights_only=True)``, onto the CPU.

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
    return state


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
    if state.get("version") != VERSION:
        raise LcvError(f"Checkpoint {path} has layout version {state.get('version')}; this lcv-core reads {VERSION}.")
    return state


def check_compatible(state: Mapping[str, Any], path: str | Path, n_folds: int, split: Any) -> None:
    """Refuse a checkpoint whose folds differ from the current datamodule's.

    Raises:
        LcvError: The fold count or the fold indices differ.
    """
    saved = len(state["folds"])
    if saved != n_folds:
        raise LcvError(
            f"Checkpoint {path} holds {saved} folds but the datamodule now gives {n_folds}; resume with the "
            "datamodule (splitter, n_splits, seed) of the checkpointed run."
        )
    saved_split = state.get("split")
    if saved_split is not None and split is not None and saved_split != split:
        differ = [i for i, (a, b) in enumerate(zip(saved_split, split, strict=True)) if a != b]
        raise LcvError(
            f"Checkpoint {path} was trained on other fold indices than the datamodule's (folds {differ} differ); "
            "resuming would leak validation samples into training. Use the splitter and seed of the checkpointed run."
        )


def _callback_key(callback: Any, seen: dict[str, int]) -> str:
    key = getattr(callback, "state_key", None) or type(callback).__name__
    seen[key] = seen.get(key, 0) + 1
    return key if seen[key] == 1 else f"{key}#{seen[key]}"


def trainer_state(trainer: Any) -> dict[str, Any]:
    """Collect everything a resumed fit needs from a :class:`~lcv_core.CrossValidationTrainer`."""
    folds = [
        {
            "index": f.index,
            "model": cpu_state(f.module.state_dict()),
            "optimizers": [opt.state_dict() for opt in f.optimizers],
            "schedulers": [s.scheduler.state_dict() for s in f.schedulers],
            "epoch": len(f.history) - 1,
            "global_step": f.global_step,
            "history": [dict(row) for row in f.history],
            "stopped": f.stopped,
            "rng": plain(f.rng.state_dict()),
        }
        for f in trainer.folds
    ]
    seen: dict[str, int] = {}
    callbacks = {
        _callback_key(cb, seen): plain(cb.state_dict())
        for cb in trainer.callbacks
        if callable(getattr(cb, "state_dict", None))
    }
    loggers = [
        plain(lg.state_dict()) if callable(getattr(lg, "state_dict", None)) else None for lg in trainer.fabric.loggers
    ]
    return {
        "format": FORMAT,
        "version": VERSION,
        "folds": folds,
        "callbacks": callbacks,
        "loggers": loggers,
        "rng": global_rng_state(),
        "precision": plain(trainer.fabric.strategy.precision.state_dict()),
        "trainer": {
            "current_epoch": trainer.current_epoch,
            "should_stop": trainer.should_stop,
            "stop_reason": trainer.stop_reason,
            "finished": trainer._finished,
            "epoch_metrics": dict(trainer.epoch_metrics),
            "monitor_checked": trainer._monitor_checked,
            "checkpoint_paths": plain(trainer.checkpoint_paths),
        },
        "best_weights": trainer._best.state_dict(),
        "split": trainer._split,
        "config": config_dict(trainer.config),
        "experiment_config": getattr(trainer, "experiment_config_yaml", None),
        "versions": package_versions(),
    }


def restore_trainer_state(trainer: Any, state: Mapping[str, Any]) -> None:
    """Load a checkpoint's state into a trainer whose folds are set up (same models, optimizers, callbacks)."""
    for f, saved in zip(trainer.folds, state["folds"], strict=True):
        f.module.load_state_dict(saved["model"])
        for opt, opt_state in zip(f.optimizers, saved["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        for sched, sched_state in zip(f.schedulers, saved["schedulers"], strict=True):
            sched.scheduler.load_state_dict(sched_state)
        f.history = [dict(row) for row in saved["history"]]
        f.global_step = int(saved["global_step"])
        f.stopped = bool(saved["stopped"])
        f.rng.load_state_dict(saved["rng"])
    seen: dict[str, int] = {}
    for cb in trainer.callbacks:
        if callable(getattr(cb, "load_state_dict", None)):
            key = _callback_key(cb, seen)
            if key in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][key])
    for logger, logger_state in zip(trainer.fabric.loggers, state["loggers"], strict=False):
        if logger_state is not None and callable(getattr(logger, "load_state_dict", None)):
            logger.load_state_dict(logger_state)
    set_global_rng_state(state["rng"])
    if state.get("precision"):
        trainer.fabric.strategy.precision.load_state_dict(state["precision"])
    t = state["trainer"]
    trainer.current_epoch = int(t["current_epoch"])
    trainer.should_stop, trainer.stop_reason = bool(t["should_stop"]), t["stop_reason"]
    trainer._finished = bool(t["finished"])
    trainer.epoch_metrics = dict(t["epoch_metrics"])
    trainer._monitor_checked = bool(t["monitor_checked"])
    trainer.checkpoint_paths = dict(t["checkpoint_paths"])
    trainer._best.load_state_dict(state["best_weights"])


def resolve_path(ckpt_path: str | Path, run_dir: Path | None) -> Path:
    """Return the file ``ckpt_path`` names: ``"last"`` is ``<run_dir>/checkpoints/last.ckpt``.

    Raises:
        LcvError: ``"last"`` without a run directory.
    """
    if str(ckpt_path) != "last":
        return Path(ckpt_path)
    if run_dir is None:
        raise LcvError("ckpt_path='last' needs default_root_dir (where checkpoints/last.ckpt is); pass a path.")
    return run_dir / "checkpoints" / "last.ckpt"


def check_schedule(state: Mapping[str, Any], path: str, schedule: str) -> None:
    """Refuse to resume a sequential checkpoint with an epoch-major schedule, or the reverse.

    Raises:
        LcvError: The schedules differ in kind.
    """
    saved = state["config"].get("schedule")
    if (saved == "sequential") != (schedule == "sequential"):
        raise LcvError(
            f"Checkpoint {path} was written by schedule={saved!r}; resume it with that schedule, not {schedule!r}."
        )
