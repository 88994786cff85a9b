"""Lightning callbacks in callbacks=: called per fold as lightning.Trainer calls them, refused where lcv has its own."""

from __future__ import annotations

import csv
import inspect
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import (
    BackboneFinetuning,
    BatchSizeFinder,
    EarlyStopping,
    GradientAccumulationScheduler,
    LambdaCallback,
    LearningRateFinder,
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    OnExceptionCheckpoint,
    StochasticWeightAveraging,
    Timer,
)
from lightning.pytorch.callbacks import RichProgressBar as LightningRichProgressBar

from lcv_config import LcvError
from lcv_core import CrossValidationTrainer
from lcv_core.demos import TinyClassifier

# Every hook of lightning.pytorch.Callback a fit can call (not test/predict/sanity-check/checkpoint ones).
FIT_HOOKS = sorted(
    name
    for name, _ in inspect.getmembers(pl.Callback, inspect.isfunction)
    if (name.startswith("on_") or name in ("setup", "teardown"))
    and not name.startswith(("on_test", "on_predict", "on_sanity", "on_save", "on_load", "on_exception"))
)


class Recorder(pl.Callback):
    """Records, per module instance, every fit hook Lightning calls on a callback."""

    def __init__(self) -> None:
        self.calls: dict[int, list[str]] = {}
        self.folds: dict[int, int | None] = {}


def _recording(name: str) -> Any:
    def hook(self: Recorder, trainer: Any, pl_module: Any, *args: Any, **kwargs: Any) -> None:
        self.calls.setdefault(id(pl_module), []).append(name)
        self.folds[id(pl_module)] = getattr(trainer, "fold", None)

    return hook


for _name in FIT_HOOKS:
    setattr(Recorder, _name, _recording(_name))


def test_a_lightning_callback_sees_lightnings_hook_sequence_on_every_fold(data, tiny, trainer_kwargs) -> None:
    lcv_recorder = Recorder()
    modules: list[Any] = []

    def make(fold: int) -> Any:
        modules.append(tiny())
        return modules[-1]

    CrossValidationTrainer(**trainer_kwargs, callbacks=[lcv_recorder]).fit(make, data)
    train, val = data.train_val_dataloaders()[0]
    reference = Recorder()
    module = tiny()
    pl.Trainer(
        max_epochs=trainer_kwargs["max_epochs"],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[reference],
    ).fit(module, train, val)
    expected = reference.calls[id(module)]
    assert "on_train_batch_start" in expected and expected[0] == "setup" and expected[-1] == "teardown"
    assert len(modules) == 5
    for fold, fold_module in enumerate(modules):
        assert lcv_recorder.calls[id(fold_module)] == expected, f"fold {fold}"
        assert lcv_recorder.folds[id(fold_module)] == fold  # the callback got that fold's trainer view


def test_lightnings_learning_rate_monitor_logs_every_folds_rate(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    kwargs = {**trainer_kwargs, "default_root_dir": str(tmp_path)}
    CrossValidationTrainer(**kwargs, callbacks=[LearningRateMonitor(logging_interval="epoch")]).fit(tiny, data)
    with (tmp_path / "logs" / "csv" / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    for fold in range(5):
        values = [float(r[f"fold_{fold}/lr-SGD"]) for r in rows if r.get(f"fold_{fold}/lr-SGD")]
        assert values == [0.1, 0.1]  # one per epoch, the module's SGD lr


def test_lambda_callback_runs_per_fold(data, tiny, trainer_kwargs) -> None:
    seen: list[tuple[int, int]] = []
    callback = LambdaCallback(
        on_train_epoch_end=lambda trainer, module: seen.append((trainer.fold, module.current_epoch))
    )
    CrossValidationTrainer(**trainer_kwargs, callbacks=[callback]).fit(tiny, data)
    assert seen == [(fold, epoch) for epoch in range(2) for fold in range(5)]


@pytest.mark.parametrize(
    ("callback", "instead"),
    [
        (EarlyStopping(monitor="val_loss"), "lcv_core.EarlyStopping"),
        (ModelCheckpoint(monitor="val_loss"), "lcv_core.ModelCheckpoint"),
        (LightningRichProgressBar(), "enable_progress_bar"),
        (BatchSizeFinder(), r"lcv_core\.scale_batch_size"),
        (LearningRateFinder(), r"lcv_core\.lr_find"),
        (OnExceptionCheckpoint(dirpath="."), r"last\.ckpt"),
    ],
)
def test_lightning_callbacks_with_a_fold_mean_counterpart_are_refused(callback: Any, instead: str) -> None:
    with pytest.raises(LcvError, match=rf"callbacks\[1\] is Lightning's {type(callback).__name__}.*{instead}"):
        CrossValidationTrainer(callbacks=[LearningRateMonitor(), callback], enable_progress_bar=False)


def test_an_object_that_is_no_callback_is_refused_with_its_position() -> None:
    with pytest.raises(LcvError, match=r"callbacks\[0\] is a int \(3\), which is not a callback"):
        CrossValidationTrainer(callbacks=[3], enable_progress_bar=False)


def test_an_error_in_a_lightning_callback_reaches_the_user_as_it_is(data, tiny, trainer_kwargs) -> None:
    seen: list[BaseException] = []

    class Failing(pl.Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            raise ValueError("broken on purpose")

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            seen.append(exception)

    with pytest.raises(ValueError, match="broken on purpose"):
        CrossValidationTrainer(**trainer_kwargs, callbacks=[Failing()]).fit(tiny, data)
    assert len(seen) == 1 and isinstance(seen[0], ValueError)


def test_a_module_can_deep_copy_itself_in_a_callback(data, tiny, trainer_kwargs) -> None:
    import copy

    copies: list[Any] = []

    class Snapshot(pl.Callback):
        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            copies.append(copy.deepcopy(pl_module))

    CrossValidationTrainer(**trainer_kwargs, callbacks=[Snapshot()]).fit(tiny, data)
    assert len(copies) == 5
    x = torch.randn(3, 8)
    assert copies[0](x).shape == (3, 3)


class WithBackbone(TinyClassifier):
    """A classifier whose first layer is the ``backbone`` BackboneFinetuning freezes, then releases."""

    @property
    def backbone(self) -> Any:
        return self.net[0]


def test_lightnings_built_in_callbacks_run_per_fold(data, trainer_kwargs, capsys) -> None:
    timer = Timer(duration="00:00:10:00")
    swa = StochasticWeightAveraging(swa_lrs=0.01, swa_epoch_start=1)
    frozen: list[bool] = []
    probe = LambdaCallback(
        on_train_epoch_start=lambda trainer, module: frozen.append(module.net[0].weight.requires_grad)
    )
    accumulation = GradientAccumulationScheduler(scheduling={0: 1, 1: 2})
    callbacks = [timer, ModelSummary(max_depth=2), swa, BackboneFinetuning(unfreeze_backbone_at_epoch=1), probe]
    trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3}, callbacks=[*callbacks, accumulation])
    trainer.fit(WithBackbone, data)
    assert timer.time_elapsed("train") > 0
    assert frozen == [False] * 5 + [True] * 10  # the backbone trains from epoch 1 on, in every fold
    assert [f.global_step for f in trainer.folds] == [8 + 4 + 4] * 5  # 8 batches, then 2 per step


def test_checkpoint_hooks_run_per_fold_when_saving_and_resuming(data, trainer_kwargs, tmp_path: Path) -> None:
    from lcv_core import ModelCheckpoint

    class Hooks(pl.Callback):
        def __init__(self) -> None:
            self.saved: list[int] = []
            self.loaded: list[tuple[int, int]] = []

        def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
            checkpoint["seen_by_callback"] = trainer.fold
            self.saved.append(trainer.fold)

        def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
            self.loaded.append((trainer.fold, checkpoint["epoch"]))

    kwargs = {**trainer_kwargs, "default_root_dir": str(tmp_path)}
    hooks = Hooks()
    result = CrossValidationTrainer(**kwargs, callbacks=[hooks, ModelCheckpoint()]).fit(TinyClassifier, data)
    assert sorted(set(hooks.saved)) == [0, 1, 2, 3, 4]  # every fold checkpoint written went through the hook
    for fold, path in enumerate(result.checkpoints["best"]):
        assert torch.load(path, weights_only=True)["seen_by_callback"] == fold
    resumed = Hooks()
    CrossValidationTrainer(**{**kwargs, "max_epochs": 3}, callbacks=[resumed]).fit(
        TinyClassifier, data, ckpt_path="last"
    )
    assert resumed.loaded == [(fold, 1) for fold in range(5)]  # each fold's state after epoch 2 (0-based 1)
