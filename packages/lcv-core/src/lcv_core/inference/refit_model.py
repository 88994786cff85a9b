"""Refit: train one model on all the data for the cross-validation's best epoch count, and save it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric import Fabric
from lightning.pytorch import LightningModule

from lcv_config import LcvError
from lcv_core.core.fold_models import ModelSpec, make_fold_model
from lcv_core.core.lightning_compat import forget_callback
from lcv_core.core.metric_log import FoldMetricLog, batch_size_of
from lcv_core.core.optimizers import configure_optimizers
from lcv_core.results.cv_result import CVResult


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
        epochs: The number of epochs, or a [`CVResult`][lcv_core.CVResult] whose best epoch count (``best_epoch + 1``)
            is used.
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
    forget_callback(fabric, module)
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
