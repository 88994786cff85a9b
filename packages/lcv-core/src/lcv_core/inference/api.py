"""Use the fold models after a fit: predict and test with the fold ensemble, out-of-fold predictions, refit.

Every function takes a [`CVResult`][lcv_core.CVResult] (its ``models``: each fold's module at its best
epoch) or a list of LightningModules, runs in eval mode under ``torch.no_grad`` on each module's device, and
leaves the modules as it found them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch import LightningModule
from torch import nn

from lcv_config import LcvError
from lcv_core.core.metric_log import FoldMetricLog, batch_size_of
from lcv_core.inference.ensemble import EnsembleMethod as EnsembleMethod
from lcv_core.inference.ensemble import check_method, combine_folds, ensemble_scores
from lcv_core.inference.fold_predict import eval_mode, models_of, module_device, overrides, run_predict
from lcv_core.inference.refit_model import refit as refit
from lcv_core.results.cv_result import CVResult, MetricSummary


@dataclass
class PredictResult:
    """What [`predict()`][lcv_core.predict] returns: each fold's outputs and, unless disabled, the fold ensemble."""

    per_fold: list[Any]
    """Each fold model's outputs over the whole loader (batches concatenated along the first dimension)."""
    ensemble: Any = None
    """The ensemble of the fold outputs: their mean (``"mean"``) or the majority label (``"vote"``)."""
    method: str | None = None
    """How the ensemble was formed: ``"mean"``, ``"vote"`` or ``None`` (no ensemble)."""


@dataclass
class TestResult:
    """What [`test()`][lcv_core.test] returns: each fold's test metrics, their mean ± std, and the ensemble's scores."""

    per_fold: list[dict[str, float]]
    """Per fold, every metric its ``test_step`` logged, reduced over the loader."""
    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    """Per metric logged by every fold, the fold values with mean, std and 95% interval."""
    ensemble: dict[str, float] = field(default_factory=dict)
    """Scores of the fold ensemble (``acc`` and ``acc_vote`` for classification, ``mse`` and ``mae`` for
    regression), when batches are ``(x, y)`` pairs; empty otherwise."""

    __test__ = False  # not a pytest test class despite the name

    def __str__(self) -> str:
        parts = [f"{name} {summary}" for name, summary in self.metrics.items()]
        parts += [f"ensemble {name} {value:.4f}" for name, value in self.ensemble.items()]
        return ", ".join(parts)


# -- predict / test ----------------------------------------------------------------------------------


def predict(
    result_or_models: CVResult | Sequence[nn.Module], dataloader: Any, ensemble: EnsembleMethod | None = "mean"
) -> PredictResult:
    """Run every fold's model over ``dataloader`` and combine their outputs.

    Each model's ``predict_step(batch, batch_idx)`` is used when it defines one; otherwise its forward is
    called on the inputs (``x`` of an ``(x, y)`` batch, else the whole batch).

    Args:
        result_or_models: A [`CVResult`][lcv_core.CVResult] with ``models``, or the fold models.
        dataloader: The batches to predict (any iterable; batches are moved to each model's device).
        ensemble: ``"mean"``: the mean of the fold outputs; ``"vote"``: the majority label over folds (argmax
            of scores; a tie goes to the smallest label); ``None``: no ensemble.

    Returns:
        Each fold's outputs on the CPU and the ensemble.
    """
    check_method(ensemble)
    per_fold = [run_predict(m, dataloader) for m in models_of(result_or_models)]
    combined = combine_folds(per_fold, ensemble) if ensemble is not None else None
    return PredictResult(per_fold=per_fold, ensemble=combined, method=ensemble)


@contextmanager
def _intercept_log(module: nn.Module, log: FoldMetricLog) -> Iterator[None]:
    # Replace self.log/self.log_dict on the instance, and put back whatever the instance had (the trainer's
    # fold log, or nothing) afterwards.
    saved = {name: module.__dict__[name] for name in ("log", "log_dict") if name in module.__dict__}
    setattr(module, "log", log.log)  # noqa: B010  # module may be any nn.Module here; same keywords as Lightning's
    setattr(module, "log_dict", log.log_dict)  # noqa: B010
    try:
        yield
    finally:
        for name in ("log", "log_dict"):
            if name in saved:
                setattr(module, name, saved[name])
            else:
                delattr(module, name)


def _classification_target(batch: Any) -> torch.Tensor | None:
    if isinstance(batch, (list, tuple)) and len(batch) == 2 and isinstance(batch[1], torch.Tensor):
        return batch[1]
    return None


def _check_testable(module: nn.Module) -> LightningModule:
    if not overrides(module, "test_step"):
        raise LcvError(f"{type(module).__name__} does not define test_step(); test() runs each fold's test_step.")
    assert isinstance(module, LightningModule)  # noqa: S101  # guaranteed by overrides, narrows for mypy
    return module


def test(result_or_models: CVResult | Sequence[nn.Module], dataloader: Any) -> TestResult:
    """Run every fold's ``test_step`` over ``dataloader`` and summarise the logged metrics over folds.

    Values the modules log with ``self.log`` are reduced over the loader as in validation (weighted by batch
    size). When batches are ``(x, y)`` pairs, the fold ensemble is scored too: for integer targets and 2-D
    scores, ``acc`` (argmax of the mean softmax) and ``acc_vote`` (majority vote); for float targets, ``mse``
    and ``mae`` of the mean output.

    Args:
        result_or_models: A [`CVResult`][lcv_core.CVResult] with ``models``, or the fold models.
        dataloader: The test batches; iterated once, every fold model scoring each batch.

    Returns:
        Per-fold metrics, a [`MetricSummary`][lcv_core.MetricSummary] (mean ± std, 95% interval) per metric, and the
        ensemble's scores.

    Raises:
        LcvError: A model does not define ``test_step``.
    """
    models = [_check_testable(m) for m in models_of(result_or_models)]
    devices = [module_device(m) for m in models]
    logs = [FoldMetricLog() for _ in models]
    targets: list[torch.Tensor] = []
    outputs: list[list[torch.Tensor]] = [[] for _ in models]
    scorable = True
    with ExitStack() as stack:
        for module, log in zip(models, logs, strict=True):
            stack.enter_context(eval_mode(module))
            stack.enter_context(_intercept_log(module, log))
            log.start("test")
            module.on_test_epoch_start()
        # One pass over the loader, every fold on every batch: the folds' outputs line up sample by sample
        # even when the loader shuffles, and a one-shot iterable works.
        for batch_idx, batch in enumerate(dataloader):
            target = _classification_target(batch)
            scorable = scorable and target is not None
            if scorable and target is not None:
                targets.append(target.cpu())
            for module, log, device, outs in zip(models, logs, devices, outputs, strict=True):
                moved = move_data_to_device(batch, device)
                log.batch_size = max(1, batch_size_of(moved))
                module.test_step(moved, batch_idx)
                if scorable:
                    outs.append(module(moved[0]).cpu())
        for module in models:
            module.on_test_epoch_end()
        per_fold = [log.reduce() for log in logs]
    common = sorted(set.intersection(*(set(m) for m in per_fold))) if per_fold else []
    summaries = {n: MetricSummary(n, [m[n] for m in per_fold]) for n in common}
    ensemble = ensemble_scores(outputs, torch.cat(targets)) if scorable and targets else {}
    return TestResult(per_fold=per_fold, metrics=summaries, ensemble=ensemble)


test.__test__ = False  # type: ignore[attr-defined]  # so pytest does not collect it where a test module imports it


# -- out-of-fold predictions -------------------------------------------------------------------------


def out_of_fold_predictions(
    models: CVResult | Sequence[nn.Module],
    val_loaders: Sequence[Any],
    val_indices: Sequence[Sequence[int]],
    n_samples: int,
    *,
    outputs: Sequence[Any] | None = None,
) -> torch.Tensor:
    """Return every sample's prediction from the fold model that did not train on it, in dataset order.

    Samples held out by several folds (repeated splitters such as ``RepeatedKFold``) get the **mean** of
    those folds' predictions. Samples no fold held out (``ShuffleSplit`` with a small ``test_size``) are
    **NaN**.

    Args:
        models: The fold models (or a [`CVResult`][lcv_core.CVResult] with ``models``), in fold order.
        val_loaders: Each fold's validation loader, unshuffled.
        val_indices: Per fold, the dataset indices in the order its validation loader yields them.
        n_samples: The dataset's size.
        outputs: Each fold's predictions over its validation loader, when they are already computed (the models
            are then not run; ``schedule="parallel"`` computes each fold's on the process that trained it).

    Returns:
        A float tensor of shape ``(n_samples, *output_shape)`` on the CPU.

    Raises:
        LcvError: The numbers of models, loaders and index lists differ; a fold's predictions do not match its
            index count; an index is outside ``[0, n_samples)``.
    """
    fold_models = models_of(models)
    if not len(fold_models) == len(val_loaders) == len(val_indices):
        raise LcvError(
            f"out_of_fold_predictions: got {len(fold_models)} models, {len(val_loaders)} validation loaders and "
            f"{len(val_indices)} index lists; pass one of each per fold."
        )
    total: torch.Tensor | None = None
    counts = torch.zeros(n_samples)
    if outputs is not None and len(outputs) != len(fold_models):
        raise LcvError(f"out_of_fold_predictions: got {len(outputs)} outputs for {len(fold_models)} folds.")
    for fold, (model, loader, indices) in enumerate(zip(fold_models, val_loaders, val_indices, strict=True)):
        out = run_predict(model, loader) if outputs is None else outputs[fold]
        if not isinstance(out, torch.Tensor):
            raise LcvError(
                f"out_of_fold_predictions: fold {fold}'s predict_step returned {type(out).__name__}; a tensor "
                "with one row per sample is needed."
            )
        index = torch.as_tensor(list(indices), dtype=torch.long)
        if out.shape[0] != index.numel():
            raise LcvError(
                f"out_of_fold_predictions: fold {fold} predicted {out.shape[0]} samples but its val_indices has "
                f"{index.numel()}; pass the indices in the order the (unshuffled) validation loader yields them."
            )
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n_samples):
            bad = int(index.max()) if int(index.max()) >= n_samples else int(index.min())
            raise LcvError(f"out_of_fold_predictions: fold {fold} holds index {bad}, outside [0, {n_samples}).")
        if total is None:
            total = torch.zeros((n_samples, *out.shape[1:]))
        total.index_add_(0, index, out.float())
        counts.index_add_(0, index, torch.ones(index.numel()))
    assert total is not None  # noqa: S101  # at least one fold, checked by models_of
    shape = (n_samples,) + (1,) * (total.ndim - 1)
    return total / counts.reshape(shape).where(counts.reshape(shape) > 0, torch.tensor(float("nan")))
