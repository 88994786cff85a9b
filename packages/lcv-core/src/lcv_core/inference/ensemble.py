"""Combine the fold models' outputs into one prediction (mean or majority vote), and score that ensemble."""

from __future__ import annotations

from typing import Any, Literal

import torch

from lcv_config import LcvError
from lcv_config.errors import did_you_mean

EnsembleMethod = Literal["mean", "vote"]
_ENSEMBLES = ("mean", "vote")


def combine_folds(per_fold: list[Any], method: str) -> torch.Tensor:
    """Return the fold ensemble of per-fold output tensors: their mean, or the majority label (``vote``)."""
    if not all(isinstance(o, torch.Tensor) for o in per_fold):
        kinds = ", ".join(sorted({type(o).__name__ for o in per_fold}))
        raise LcvError(
            f"ensemble={method!r} needs each fold's outputs as one tensor; predict_step returned {kinds}. "
            "Return a tensor from predict_step, or pass ensemble=None and combine the folds yourself."
        )
    shapes = {tuple(o.shape) for o in per_fold}
    if len(shapes) > 1:
        raise LcvError(f"ensemble={method!r}: the folds' outputs differ in shape: {sorted(shapes)}.")
    stacked = torch.stack(per_fold)
    if method == "mean":
        return stacked.float().mean(dim=0)
    labels = _labels(stacked)
    return torch.mode(labels, dim=0).values


def _labels(outputs: torch.Tensor) -> torch.Tensor:
    """Class labels of per-fold outputs ``(folds, n, ...)``: argmax of scores, or the values when already labels."""
    if outputs.is_floating_point():
        if outputs.ndim < 3:
            raise LcvError(
                "ensemble='vote' needs class scores of shape (n, classes) or integer labels; the folds returned "
                f"floats of shape {tuple(outputs.shape[1:])}. Use ensemble='mean' for regression outputs."
            )
        return outputs.argmax(dim=-1)
    return outputs.long()


def check_method(ensemble: str | None) -> None:
    """Raise [`LcvError`][lcv_config.LcvError] unless ``ensemble`` is ``mean``, ``vote`` or ``None``."""
    if ensemble is not None and ensemble not in _ENSEMBLES:
        raise LcvError(
            f"ensemble={ensemble!r} is not a fold ensemble.{did_you_mean(str(ensemble), _ENSEMBLES)} "
            "Expected 'mean', 'vote' or None."
        )


def ensemble_scores(per_fold: list[list[Any]], targets: torch.Tensor) -> dict[str, float]:
    """Score the fold ensemble against ``targets``: accuracies for class scores, ``mse``/``mae`` for floats."""
    try:
        stacked = torch.stack([torch.cat(o) for o in per_fold]).float()  # (folds, n, ...)
    except (RuntimeError, TypeError):
        return {}  # outputs of different shapes across folds: nothing the ensemble could score
    if not targets.is_floating_point() and stacked.ndim == 3 and stacked.shape[1] == targets.shape[0]:
        probs = stacked.softmax(dim=-1).mean(dim=0)
        votes = torch.mode(stacked.argmax(dim=-1), dim=0).values
        return {
            "acc": float((probs.argmax(dim=-1) == targets).float().mean()),
            "acc_vote": float((votes == targets).float().mean()),
        }
    mean = stacked.mean(dim=0)
    if targets.is_floating_point() and mean.numel() == targets.numel():
        diff = mean.reshape(targets.shape) - targets
        return {"mse": float((diff**2).mean()), "mae": float(diff.abs().mean())}
    return {}
