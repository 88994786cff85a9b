"""Use the fold models after a fit: predict and test with the fold ensemble, out-of-fold predictions, refit.

Every function takes a :class:`~lcv_core.results.CVResult` (its ``models``: each fold's module at its best
epoch) or a list of LightningModules, runs in eval mode under ``torch.no_grad`` on each module's device, and
leaves the modules as it found them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.fabric import Fabric
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch import LightningModule
from torch import nn

from lcv_config import LcvError
from lcv_config.errors import did_you_mean
from lcv_core._logging import FoldMetricLog, batch_size_of
from lcv_core._models import ModelSpec, make_fold_model
from lcv_core._optim import configure_optimizers
from lcv_core.results import CVResult, MetricSummary

EnsembleMethod = Literal["mean", "vote"]
_ENSEMBLES = ("mean", "vote")


@dataclass
class PredictResult:
    """What :func:`predict` returns: each fold's outputs and, unless disabled, the fold ensemble."""

    per_fold: list[Any]
    """Each fold model's outputs over the whole loader (batches concatenated along the first dimension)."""
    ensemble: Any = None
    """The ensemble of the fold outputs: their mean (``"mean"``) or the majority label (``"vote"``)."""
    method: str | None = None
    """How the ensemble was formed: ``"mean"``, ``"vote"`` or ``None`` (no ensemble)."""


@dataclass
class TestResult:
    """What :func:`test` returns: each fold's test metrics, their mean ± std, and the ensemble's scores."""

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


# -- helpers -----------------------------------------------------------------------------------------


def _models(result_or_models: CVResult | Sequence[nn.Module] | nn.Module) -> list[nn.Module]:
    if isinstance(result_or_models, CVResult):
        if not result_or_models.models:
            raise LcvError(
                "This CVResult holds no fold models (result.models is empty); pass the fold models themselves, "
                "e.g. [fold.module for fold in trainer.folds], or load them from the run's checkpoints."
            )
        models = list(result_or_models.models)
    elif isinstance(result_or_models, nn.Module):
        models = [result_or_models]
    else:
        models = list(result_or_models)
    if not models:
        raise LcvError("No models given: pass a CVResult with models or a non-empty list of LightningModules.")
    for i, m in enumerate(models):
        if not isinstance(m, nn.Module):
            raise LcvError(f"Model {i} is a {type(m).__name__}, not a torch Module (LightningModule expected).")
    return models


def _device(module: nn.Module) -> torch.device:
    for param in module.parameters():
        return param.device
    for buffer in module.buffers():
        return buffer.device
    return torch.device("cpu")


def _overrides(module: nn.Module, name: str) -> bool:
    return isinstance(module, LightningModule) and getattr(type(module), name) is not getattr(LightningModule, name)


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def _inputs(batch: Any) -> Any:
    """The model inputs of a batch: ``x`` of an ``(x, y)`` pair or a one-element sequence, else the batch."""
    if isinstance(batch, (list, tuple)) and 1 <= len(batch) <= 2:
        return batch[0]
    return batch


def _forward(module: nn.Module, batch: Any, batch_idx: int) -> Any:
    if _overrides(module, "predict_step"):
        return module.predict_step(batch, batch_idx)  # type: ignore[operator]  # checked by _overrides
    return module(_inputs(batch))


def _concat(outputs: list[Any]) -> Any:
    """Join per-batch outputs: tensors along dim 0, dicts per key; anything else stays a list."""
    if outputs and all(isinstance(o, torch.Tensor) for o in outputs):
        return torch.cat([o.reshape(1) if o.ndim == 0 else o for o in outputs])
    if outputs and all(isinstance(o, Mapping) for o in outputs):
        return {k: _concat([o[k] for o in outputs]) for k in outputs[0]}
    return outputs


def _run_predict(module: nn.Module, dataloader: Any) -> Any:
    device = _device(module)
    outputs = []
    with _eval_mode(module):
        for batch_idx, batch in enumerate(dataloader):
            out = _forward(module, move_data_to_device(batch, device), batch_idx)
            outputs.append(move_data_to_device(out, torch.device("cpu")))
    return _concat(outputs)


def _ensemble(per_fold: list[Any], method: str) -> torch.Tensor:
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


def _check_method(ensemble: str | None) -> None:
    if ensemble is not None and ensemble not in _ENSEMBLES:
        raise LcvError(
            f"ensemble={ensemble!r} is not a fold ensemble.{did_you_mean(str(ensemble), _ENSEMBLES)} "
            "Expected 'mean', 'vote' or None."
        )


# -- predict / test ----------------------------------------------------------------------------------


def predict(
    result_or_models: CVResult | Sequence[nn.Module], dataloader: Any, ensemble: EnsembleMethod | None = "mean"
) -> PredictResult:
    """Run every fold's model over ``dataloader`` and combine their outputs.

    Each model's ``predict_step(batch, batch_idx)`` is used when it defines one; otherwise its forward is
    called on the inputs (``x`` of an ``(x, y)`` batch, else the whole batch).

    Args:
        result_or_models: A :class:`CVResult` with ``models``, or the fold models.
        dataloader: The batches to predict (any iterable; batches are moved to each model's device).
        ensemble: ``"mean"``: the mean of the fold outputs; ``"vote"``: the majority label over folds (argmax
            of scores; a tie goes to the smallest label); ``None``: no ensemble.

    Returns:
        Each fold's outputs on the CPU and the ensemble.
    """
    _check_method(ensemble)
    per_fold = [_run_predict(m, dataloader) for m in _models(result_or_models)]
    combined = _ensemble(per_fold, ensemble) if ensemble is not None else None
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
    if not _overrides(module, "test_step"):
        raise LcvError(f"{type(module).__name__} does not define test_step(); test() runs each fold's test_step.")
    assert isinstance(module, LightningModule)  # noqa: S101  # guaranteed by _overrides, narrows for mypy
    return module


def _ensemble_scores(per_fold: list[list[Any]], targets: torch.Tensor) -> dict[str, float]:
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


def test(result_or_models: CVResult | Sequence[nn.Module], dataloader: Any) -> TestResult:
    """Run every fold's ``test_step`` over ``dataloader`` and summarise the logged metrics over folds.

    Values the modules log with ``self.log`` are reduced over the loader as in validation (weighted by batch
    size). When batches are ``(x, y)`` pairs, the fold ensemble is scored too: for integer targets and 2-D
    scores, ``acc`` (argmax of the mean softmax) and ``acc_vote`` (majority vote); for float targets, ``mse``
    and ``mae`` of the mean output.

    Args:
        result_or_models: A :class:`CVResult` with ``models``, or the fold models.
        dataloader: The test batches; iterated once, every fold model scoring each batch.

    Returns:
        Per-fold metrics, a :class:`MetricSummary` (mean ± std, 95% interval) per metric, and the ensemble's scores.

    Raises:
        LcvError: A model does not define ``test_step``.
    """
    models = [_check_testable(m) for m in _models(result_or_models)]
    devices = [_device(m) for m in models]
    logs = [FoldMetricLog() for _ in models]
    targets: list[torch.Tensor] = []
    outputs: list[list[torch.Tensor]] = [[] for _ in models]
    scorable = True
    with ExitStack() as stack:
        for module, log in zip(models, logs, strict=True):
            stack.enter_context(_eval_mode(module))
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
    ensemble = _ensemble_scores(outputs, torch.cat(targets)) if scorable and targets else {}
    return TestResult(per_fold=per_fold, metrics=summaries, ensemble=ensemble)


test.__test__ = False  # type: ignore[attr-defined]  # so pytest does not collect it where a test module imports it


# -- out-of-fold predictions -------------------------------------------------------------------------


def out_of_fold_predictions(
    models: CVResult | Sequence[nn.Module],
    val_loaders: Sequence[Any],
    val_indices: Sequence[Sequence[int]],
    n_samples: int,
) -> torch.Tensor:
    """Return every sample's prediction from the fold model that did not train on it, in dataset order.

    Samples held out by several folds (repeated splitters such as ``RepeatedKFold``) get the **mean** of
    those folds' predictions. Samples no fold held out (``ShuffleSplit`` with a small ``test_size``) are
    **NaN**.

    Args:
        models: The fold models (or a :class:`CVResult` with ``models``), in fold order.
        val_loaders: Each fold's validation loader, unshuffled.
        val_indices: Per fold, the dataset indices in the order its validation loader yields them.
        n_samples: The dataset's size.

    Returns:
        A float tensor of shape ``(n_samples, *output_shape)`` on the CPU.

    Raises:
        LcvError: The numbers of models, loaders and index lists differ; a fold's predictions do not match its
            index count; an index is outside ``[0, n_samples)``.
    """
    fold_models = _models(models)
    if not len(fold_models) == len(val_loaders) == len(val_indices):
        raise LcvError(
            f"out_of_fold_predictions: got {len(fold_models)} models, {len(val_loaders)} validation loaders and "
            f"{len(val_indices)} index lists; pass one of each per fold."
        )
    total: torch.Tensor | None = None
    counts = torch.zeros(n_samples)
    for fold, (model, loader, indices) in enumerate(zip(fold_models, val_loaders, val_indices, strict=True)):
        out = _run_predict(model, loader)
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
    assert total is not None  # noqa: S101  # at least one fold, checked by _models
    shape = (n_samples,) + (1,) * (total.ndim - 1)
    return total / counts.reshape(shape).where(counts.reshape(shape) > 0, torch.tensor(float("nan")))


# -- refit -------------------------------------------------------------------------------------------


def _save_atomically(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def refit(
    model: ModelSpec,
    dataloader: Any,
    epochs: int | CVResult,
    seed: int = 0,
    path: str | Path | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    accelerator: str = "cpu",
    precision: Any = "32-true",
) -> LightningModule:
    """Train one model on all the data for the best epoch count of the cross-validation, and save it.

    The loop is Lightning's automatic optimization (``training_step``, backward, ``optimizer.step``, schedulers
    stepped per step or epoch); with ``automatic_optimization = False`` the module steps itself.
    ``self.log`` calls are collected and the last epoch's values are kept in ``module.refit_metrics``.

    Args:
        model: A LightningModule class (built with ``model_kwargs``), a factory, or an instance (copied), as for
            ``CrossValidationTrainer.fit``; a factory that accepts ``fold`` gets ``fold=0``.
        dataloader: All training batches.
        epochs: The number of epochs, or a :class:`CVResult` whose best epoch count (``best_epoch + 1``) is used.
        seed: Seeds the model's initialisation and the training stream.
        path: Where to save the trained ``state_dict`` (written atomically); not saved when ``None``.
        model_kwargs: Keyword arguments for a model class or factory.
        accelerator: Fabric's accelerator (``cpu``, ``cuda``, ``auto``).
        precision: Fabric's precision (``32-true``, ``bf16-mixed``, ...).

    Returns:
        The trained module, in eval mode.

    Raises:
        LcvError: ``epochs`` is below 1, or a ``ReduceLROnPlateau`` monitors a metric the training step does not log.
    """
    n_epochs = epochs.best_epoch + 1 if isinstance(epochs, CVResult) else int(epochs)
    if n_epochs < 1:
        raise LcvError(f"refit(epochs={epochs!r}): train for at least 1 epoch.")
    fabric = Fabric(accelerator=accelerator, devices=1, precision=precision)
    fabric.seed_everything(seed, verbose=False)
    module = make_fold_model(model, 0, seed, model_kwargs)
    optimizers, schedulers = configure_optimizers(module)
    _, *fab_optimizers = fabric.setup(module, *optimizers)
    if module in fabric._callbacks:
        fabric._callbacks.remove(module)
    log = FoldMetricLog()
    module.log = log.log  # type: ignore[method-assign]
    module.log_dict = log.log_dict  # type: ignore[method-assign, assignment]  # same keywords as Lightning's
    step = 0
    metrics: dict[str, float] = {}
    module.train()
    module.on_fit_start()
    for _ in range(n_epochs):
        log.start("train")
        module.on_train_epoch_start()
        for batch_idx, batch in enumerate(dataloader):
            batch = fabric.to_device(batch)
            log.batch_size = max(1, batch_size_of(batch))
            with fabric.strategy.precision.forward_context():
                out = module.training_step(batch, batch_idx)
            if not module.automatic_optimization:
                continue
            loss = out["loss"] if isinstance(out, Mapping) else out
            if loss is None:
                continue
            fabric.backward(loss)
            fab_optimizers[0].step()
            fab_optimizers[0].zero_grad(set_to_none=True)
            step += 1
            for sched in schedulers:
                if sched.interval == "step" and step % sched.frequency == 0:
                    sched.scheduler.step()  # type: ignore[call-arg]
        module.on_train_epoch_end()
        metrics = log.reduce()
        if module.automatic_optimization:
            _step_epoch_schedulers(schedulers, metrics)
    module.on_fit_end()
    for name in ("log", "log_dict"):
        delattr(module, name)
    setattr(module, "refit_metrics", metrics)  # noqa: B010  # nn.Module's typed __setattr__ only takes tensors
    module.eval()
    if path is not None:
        _save_atomically(module.state_dict(), Path(path))
    return module


def _step_epoch_schedulers(schedulers: list[Any], metrics: dict[str, float]) -> None:
    for sched in schedulers:
        if sched.interval != "epoch":
            continue
        if sched.reduce_on_plateau:
            name = (sched.monitor or "").removeprefix("cv/").removesuffix("_mean")
            if name not in metrics:
                raise LcvError(
                    f"refit: ReduceLROnPlateau monitors '{sched.monitor}', which training_step does not log "
                    f"(refit has no validation). Logged: {', '.join(sorted(metrics)) or '(nothing)'}."
                )
            sched.scheduler.step(metrics[name])
        else:
            sched.scheduler.step()
