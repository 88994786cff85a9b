"""Rebuild fold models from checkpoints alone, with the experiment config embedded in them.

``lcv test`` and ``lcv predict`` rebuild their models here and ``lcv cv --resume`` reads its checkpoint here; torch
is imported only when a checkpoint is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lcv_core.cli.holdout import FIT_HEADER


class LoadedModels:
    """Fold models rebuilt from checkpoints: the embedded config, each model with its fold index, the run dir."""

    def __init__(self, config: Any, models: list[Any], folds: list[int], run_dir: Path | None, single: bool) -> None:
        self.config = config
        self.models = models
        self.folds = folds
        self.run_dir = run_dir
        self.single = single
        """Whether the checkpoints come from ``lcv fit`` (one model, holdout validation)."""


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read a fold-weights file or a full lcv checkpoint; one clear error for anything else."""
    from lcv_core.core import saving

    def unreadable(exc: Exception) -> str:
        return (
            f"{path} is not an lcv checkpoint: torch.load cannot read it ({type(exc).__name__}). Pass a "
            "fold_<i>.ckpt file written by ModelCheckpoint, a last.ckpt, an epoch folder or a run directory."
        )

    def foreign(state: Any) -> str:
        fmt = state.get("format") if isinstance(state, dict) else None
        return (
            f"{path} is not an lcv checkpoint (expected format 'lcv-fold-weights' or 'lcv-checkpoint', found "
            f"{fmt!r}). Pass a fold_<i>.ckpt file written by ModelCheckpoint, a last.ckpt or a run directory."
        )

    return saving.read(path, ("lcv-fold-weights", saving.FORMAT), unreadable, foreign)


def _checkpoint_files(target: Path) -> list[Path]:
    from lcv_config import LcvError

    if not target.exists():
        raise LcvError(
            f"{target} does not exist; pass a fold_<i>.ckpt file, an epoch folder of them, a last.ckpt or a run "
            "directory (runs/<name>/<timestamp>)."
        )
    if target.is_file():
        return [target]
    fold_files = sorted(target.glob("fold_*.ckpt"), key=lambda p: int(p.stem[5:]) if p.stem[5:].isdigit() else 0)
    if fold_files:
        return fold_files
    for candidate in (target / "checkpoints" / "last.ckpt", target / "last.ckpt"):
        if candidate.is_file():
            return [candidate]
    raise LcvError(
        f"{target} holds no checkpoint: expected fold_<i>.ckpt files (an epoch folder), checkpoints/last.ckpt "
        "(a run directory) or last.ckpt."
    )


def _best_states(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Each fold's weights at the best epoch of a trainer checkpoint (its last weights when none was recorded)."""
    best = state.get("best_weights") or {}
    if best.get("states"):
        return list(best["states"])
    per_epoch, epoch = best.get("per_epoch") or [], best.get("epoch")
    if per_epoch and all(per_epoch) and epoch is not None:
        return [fold[min(int(epoch), len(fold) - 1)] for fold in per_epoch]
    return [fold["model"] for fold in state["folds"]]


def _run_dir_of(files: list[Path]) -> Path | None:
    for parent in files[0].resolve().parents[:3]:
        if (parent / "config.yaml").is_file() and (parent / "checkpoints").is_dir():
            return parent
    return None


def load_models(target: str | Path, overrides: list[str] | None = None) -> LoadedModels:
    """Rebuild the fold models from checkpoints alone, with the experiment config embedded in them.

    Args:
        target: A ``fold_<i>.ckpt`` file, an epoch folder of them (a fold ensemble), a ``last.ckpt`` (every
            fold at its best epoch) or a run directory (its ``checkpoints/last.ckpt``).
        overrides: ``key=value`` overrides applied to the embedded config.

    Raises:
        LcvError: The path is missing, not an lcv checkpoint, or a checkpoint has no embedded config.
    """
    from lcv_config import LcvError, load_config
    from lcv_config.loading import parse_yaml

    files = _checkpoint_files(Path(target))
    pairs: list[tuple[int, dict[str, Any]]] = []
    text: str | None = None
    for path in files:
        state = read_checkpoint(path)
        embedded = state.get("experiment_config")
        if not isinstance(embedded, str) or not embedded.strip():
            raise LcvError(
                f"{path} has no embedded experiment config, so the model cannot be rebuilt from it alone (it was "
                "written by a trainer not built from a config, or by an older lcv-core). Train with "
                "`lcv cv CONFIG` or `lcv fit CONFIG`, or build the model in Python and load state['state_dict']."
            )
        text = text or embedded
        if state["format"] == "lcv-fold-weights":
            pairs.append((int(state.get("fold", len(pairs))), state["state_dict"]))
        else:
            pairs += list(enumerate(_best_states(state)))
    assert text is not None  # noqa: S101  # one file at least, each with a config
    config = load_config((), overrides or [], base=parse_yaml(text))
    from lcv_core.configure import learner_factory

    factory = learner_factory(config)
    models = []
    for _fold, weights in pairs:
        model = factory()
        model.load_state_dict(weights)
        model.eval()
        models.append(model)
    return LoadedModels(config, models, [f for f, _ in pairs], _run_dir_of(files), text.startswith(FIT_HEADER))
