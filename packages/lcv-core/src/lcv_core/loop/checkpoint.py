"""What ``last.ckpt`` holds of a fit: the whole trainer state, captured and restored, and the resume checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lcv_config import LcvError
from lcv_core.core.saving import (
    FORMAT,
    VERSION,
    config_dict,
    global_rng_state,
    package_versions,
    plain,
    set_global_rng_state,
)

if TYPE_CHECKING:
    from lcv_core.loop.schedules import Schedule
    from lcv_core.loop.trainer import CrossValidationTrainer


def split_indices(datamodule: Any) -> list[list[list[int]]] | None:
    """Return the datamodule's ``folds`` as ``[[train_idx, val_idx], ...]`` lists, or ``None`` if it has none."""
    folds = getattr(datamodule, "folds", None)
    if folds is None or callable(folds):
        return None
    try:
        return [[[int(i) for i in train], [int(i) for i in val]] for train, val in folds]
    except (TypeError, ValueError):
        return None


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


def trainer_state(trainer: CrossValidationTrainer) -> dict[str, Any]:
    """Return everything ``fit(ckpt_path=...)`` needs to continue ``trainer``'s fit exactly, checkpoint-safe."""
    seen: dict[str, int] = {}
    callbacks = {
        _callback_key(cb, seen): plain(cb.state_dict())
        for cb in [*trainer.callbacks, *trainer.lightning_callbacks]
        if callable(getattr(cb, "state_dict", None))
    }
    loggers = [
        plain(lg.state_dict()) if callable(getattr(lg, "state_dict", None)) else None  # type: ignore[attr-defined]  # checked
        for lg in trainer.fabric.loggers
    ]
    return {
        "format": FORMAT,
        "version": VERSION,
        "folds": [f.state_dict() for f in trainer.folds],
        "callbacks": callbacks,
        "loggers": loggers,
        "rng": global_rng_state(),
        "precision": plain(trainer.fabric.strategy.precision.state_dict()),
        "trainer": trainer.state.state_dict(),
        "best_weights": trainer.state.best.state_dict(),
        "split": trainer.state.split,
        "config": config_dict(trainer.config),
        "experiment_config": trainer.experiment_config_yaml,
        "versions": package_versions(),
    }


def restore_trainer_state(trainer: CrossValidationTrainer, state: Mapping[str, Any]) -> None:
    """Load a checkpoint's state into a trainer whose folds are set up (same models, optimizers, callbacks)."""
    for f, saved in zip(trainer.folds, state["folds"], strict=True):
        f.load_state_dict(saved)
        # Lightning's on_load_checkpoint hooks, per fold, with that fold's part in Lightning's key names
        fold_checkpoint = {"state_dict": saved["model"], "epoch": saved["epoch"], "global_step": saved["global_step"]}
        for callback in trainer.lightning_callbacks:
            callback.on_load_checkpoint(f.view, f.module, fold_checkpoint)
        f.module.on_load_checkpoint(fold_checkpoint)
    seen: dict[str, int] = {}
    for cb in [*trainer.callbacks, *trainer.lightning_callbacks]:
        if callable(getattr(cb, "load_state_dict", None)):
            key = _callback_key(cb, seen)
            if key in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][key])
    for logger, logger_state in zip(trainer.fabric.loggers, state["loggers"], strict=False):
        if logger_state is not None and callable(getattr(logger, "load_state_dict", None)):
            logger.load_state_dict(logger_state)  # type: ignore[attr-defined]  # checked: loggers that have one
    set_global_rng_state(state["rng"])
    if state.get("precision"):
        trainer.fabric.strategy.precision.load_state_dict(state["precision"])
    trainer.state.load_state_dict(state["trainer"])
    trainer.state.best.load_state_dict(state["best_weights"])


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


def check_schedule(state: Mapping[str, Any], path: str, schedule: Schedule) -> None:
    """Refuse to resume a checkpoint written by a schedule of the other kind (fold-major vs epoch-major).

    Raises:
        LcvError: The schedules differ in kind.
    """
    # the schedule that trained the folds: auto's choice when the checkpoint holds one, else the configured one
    saved = str(state.get("trainer", {}).get("schedule") or state["config"].get("schedule"))
    if not schedule.resumes(saved):
        raise LcvError(
            f"Checkpoint {path} was written by schedule={saved!r}; resume it with that schedule, not {schedule.name!r}."
        )
