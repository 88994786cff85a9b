"""lightning-cv's hook names keep lightning-cv's meaning; lcv's per-fold events are on_fold_start / on_fold_end.

The callbacks here are written as a lightning-cv user writes them: positional ``trainer``, the payload names
lightning-cv passes, no ``**kwargs``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console

from lcv_core import Callback, CrossValidationTrainer
from lcv_core.callbacks.progress import RichProgressBar

N_FOLDS = 5


class EpochHooks(Callback):
    """lightning-cv style: ``on_train_fold_start(trainer)`` / ``on_train_fold_end(trainer)``, around every epoch."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.means: list[float] = []

    def on_train_fold_start(self, trainer):  # type: ignore[no-untyped-def, override]  # lightning-cv's signature
        self.events.append(("train_fold_start", trainer.current_epoch))

    def on_train_fold_end(self, trainer):  # type: ignore[no-untyped-def, override]  # lightning-cv's signature
        self.events.append(("train_fold_end", trainer.current_epoch))
        self.means.append(trainer.epoch_metrics["cv/val_loss_mean"])


class FoldHooks(Callback):
    """lcv's per-fold events, next to the per-epoch ones and the fold loop's own hooks."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_fold_start(self, *, fold: int, module: Any, **kwargs: Any) -> None:
        self.events.append(("fold_start", fold))

    def on_fold_end(self, *, fold: int, module: Any, **kwargs: Any) -> None:
        self.events.append(("fold_end", fold))

    def on_train_fold_start(self, *, epoch: int, **kwargs: Any) -> None:
        self.events.append(("train_fold_start", epoch))

    def on_train_fold_end(self, *, epoch: int, metrics: dict[str, float], **kwargs: Any) -> None:
        self.events.append(("train_fold_end", epoch))

    def on_train_epoch_start_per_fold(self, *, fold: int, epoch: int, **kwargs: Any) -> None:
        self.events.append(("epoch_start_per_fold", (fold, epoch)))

    def on_validation_end_per_fold(self, *, fold: int, epoch: int, **kwargs: Any) -> None:
        self.events.append(("validation_end_per_fold", (fold, epoch)))

    def on_validation_end(self, *, epoch: int, **kwargs: Any) -> None:
        self.events.append(("validation_end", epoch))


@pytest.mark.parametrize("schedule", ["interleaved", "sequential", "vectorized"])
def test_train_fold_hooks_fire_once_per_epoch_and_fold_hooks_once_per_fold(
    data, tiny, trainer_kwargs, schedule: str, capsys: pytest.CaptureFixture[str]
) -> None:
    epochs, folds = EpochHooks(), FoldHooks()
    kwargs = {**trainer_kwargs, "max_epochs": 6, "schedule": schedule}
    result = CrossValidationTrainer(**kwargs, callbacks=[epochs, folds]).fit(tiny, data)
    assert "falls back" not in capsys.readouterr().out, f"{schedule} must run as itself"
    # 6 epochs x 5 folds: lightning-cv's hooks fire 6 times each (not 5, not 30), in epoch order
    assert epochs.events == [(hook, e) for e in range(6) for hook in ("train_fold_start", "train_fold_end")]
    assert epochs.means == pytest.approx(result.curve("val_loss")), "on_train_fold_end sees the epoch's fold mean"
    names = [name for name, _ in folds.events]
    assert [f for n, f in folds.events if n == "fold_start"] == list(range(N_FOLDS))
    assert [f for n, f in folds.events if n == "fold_end"] == list(range(N_FOLDS))
    # every epoch's on_train_fold_end comes after its on_validation_end, which comes after every fold validated
    for epoch in range(6):
        end = folds.events.index(("train_fold_end", epoch))
        assert folds.events.index(("validation_end", epoch)) < end
    if schedule == "interleaved":  # before any fold trains the epoch, after every fold validated it
        for epoch in range(6):
            start = folds.events.index(("train_fold_start", epoch))
            per_fold = [folds.events.index(("epoch_start_per_fold", (f, epoch))) for f in range(N_FOLDS)]
            validated = [folds.events.index(("validation_end_per_fold", (f, epoch))) for f in range(N_FOLDS)]
            assert start < min(per_fold) and max(validated) < folds.events.index(("train_fold_end", epoch))
        assert names.index("fold_start") < names.index("train_fold_start")
        assert len(names) - 1 - names[::-1].index("train_fold_end") < names.index("fold_end")
    if schedule == "sequential":  # every fold trained to its end first; the epochs' hooks fire in the replay
        assert names.index("train_fold_start") > len(names) - 1 - names[::-1].index("fold_end")


class StopAtEpoch(Callback):
    """lightning-cv style: decides in ``on_train_fold_end`` and sets ``trainer.should_stop``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.seen: list[int] = []

    def on_train_fold_end(self, trainer):  # type: ignore[no-untyped-def, override]  # lightning-cv's signature
        self.seen.append(trainer.current_epoch)
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


@pytest.mark.parametrize("schedule", ["interleaved", "sequential", "vectorized"])
def test_should_stop_set_in_on_train_fold_end_stops_after_that_epoch(
    data, tiny, trainer_kwargs, schedule: str, tmp_path: Path
) -> None:
    stop = StopAtEpoch(2)
    run = tmp_path / "run"
    kwargs = {**trainer_kwargs, "max_epochs": 6, "schedule": schedule, "default_root_dir": str(run)}
    trainer = CrossValidationTrainer(**kwargs, callbacks=[stop])
    result = trainer.fit(tiny, data)
    assert stop.seen == [0, 1, 2]
    assert result.n_epochs == 3 and all(len(h) == 3 for h in result.history)
    assert result.stop_reason == "a callback set trainer.should_stop = True in epoch 3"
    assert result.stopped_epoch == 2
    # decided before last.ckpt was written: the checkpoint knows the fit is over (a resume trains nothing more)
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["trainer"]["should_stop"] and state["trainer"]["finished"]
    assert state["trainer"]["stop_reason"] == result.stop_reason


def test_should_stop_false_withdraws_a_stop_of_the_same_epoch(data, tiny, trainer_kwargs) -> None:
    class Veto(Callback):
        def on_train_fold_end(self, trainer):  # type: ignore[no-untyped-def, override]  # lightning-cv's signature
            trainer.should_stop = False

    result = CrossValidationTrainer(
        **{**trainer_kwargs, "max_epochs": 4, "schedule": "interleaved"}, callbacks=[StopAtEpoch(1), Veto()]
    ).fit(tiny, data)
    assert result.n_epochs == 4 and result.stop_reason is None


def test_resumed_epochs_do_not_fire_the_epoch_hooks_again(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    run = str(tmp_path / "run")
    base = {**trainer_kwargs, "schedule": "interleaved", "default_root_dir": run}
    CrossValidationTrainer(**{**base, "max_epochs": 3}).fit(tiny, data)
    epochs, folds = EpochHooks(), FoldHooks()
    resumed = CrossValidationTrainer(**{**base, "max_epochs": 5}, callbacks=[epochs, folds])
    resumed.fit(tiny, data, ckpt_path="last")
    assert epochs.events == [(hook, e) for e in (3, 4) for hook in ("train_fold_start", "train_fold_end")]
    assert [f for n, f in folds.events if n == "fold_start"] == list(range(N_FOLDS)), "each fold set up again"


class LearningRateMonitor(Callback):
    """lightning-cv's LearningRateMonitor, with the one line lcv needs: the per-epoch call has no optimizer."""

    def on_before_log_metrics(self, trainer, metrics, optimizer):  # type: ignore[no-untyped-def, override]
        if optimizer is None:  # lcv's per-epoch call, with the fold means: no single optimizer
            return
        metrics["lr"] = optimizer.param_groups[0]["lr"]


class LogCalls(Callback):
    """Records every ``on_before_log_metrics`` call with lcv's full payload."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def on_before_log_metrics(
        self,
        *,
        metrics: dict[str, Any],
        fold: int | None,
        epoch: int,
        step: int,
        stage: str,
        optimizer: Any,
        **kwargs: Any,
    ) -> None:
        self.calls.append(
            {"fold": fold, "epoch": epoch, "step": step, "stage": stage, "keys": sorted(metrics), "opt": optimizer}
        )
        if stage == "epoch":
            metrics["cv/n_logging_calls"] = float(len(self.calls))


def test_on_before_log_metrics_fires_before_every_logging_call_and_its_changes_are_logged(
    data, tiny, trainer_kwargs, tmp_path: Path
) -> None:
    class StepLogging(tiny):  # type: ignore[misc, valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self(x), y)
            self.log("train_loss", loss, on_step=True)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.cross_entropy(self(x), y), on_step=True)

    run = tmp_path / "run"
    calls, lr = LogCalls(), LearningRateMonitor()
    kwargs = {**trainer_kwargs, "max_epochs": 2, "schedule": "interleaved", "default_root_dir": str(run)}
    trainer = CrossValidationTrainer(**kwargs, callbacks=[calls, lr])
    trainer.fit(StepLogging, data, model_kwargs={"lr": 0.25})
    train = [c for c in calls.calls if c["stage"] == "train"]
    val = [c for c in calls.calls if c["stage"] == "val"]
    per_epoch = [c for c in calls.calls if c["stage"] == "epoch"]
    # one call per logger hand-over: every optimizer step of every fold (8 batches x 2 epochs), the validation
    # steps of each fold and epoch (logged at the fold's step), and one per epoch with the fold means
    assert len(train) == N_FOLDS * 2 * 8 and len(val) == N_FOLDS * 2 and len(per_epoch) == 2
    for c in train + val:
        assert c["keys"] == [f"fold_{c['fold']}/{'train' if c['stage'] == 'train' else 'val'}_loss_step"]
        assert c["opt"] is trainer.folds[c["fold"]].optimizers[0]
    assert [c["step"] for c in train if c["fold"] == 3] == list(range(16))
    assert [(c["fold"], c["epoch"], c["opt"]) for c in per_epoch] == [(None, 0, None), (None, 1, None)]
    assert "cv/val_loss_mean" in per_epoch[0]["keys"] and "epoch" in per_epoch[0]["keys"]
    # what the callbacks added is what the CSV logger wrote: lr on every per-step row, the count on the epoch rows
    with (run / "logs" / "csv" / "metrics.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    lr_rows = [r for r in rows if r.get("lr")]
    assert len(lr_rows) == len(train) + len(val) and {float(r["lr"]) for r in lr_rows} == {0.25}
    counted = [float(r["cv/n_logging_calls"]) for r in rows if r.get("cv/n_logging_calls")]
    assert counted == [calls.calls.index(per_epoch[0]) + 1, calls.calls.index(per_epoch[1]) + 1]


def _plain_bar() -> tuple[RichProgressBar, io.StringIO]:
    out = io.StringIO()
    return RichProgressBar(console=Console(file=out, force_terminal=False, force_interactive=False)), out


@pytest.mark.parametrize("schedule", ["interleaved", "sequential", "vectorized"])
def test_progress_keeps_one_line_of_fold_means_per_epoch(data, tiny, trainer_kwargs, schedule: str) -> None:
    bar, out = _plain_bar()
    kwargs = {**trainer_kwargs, "max_epochs": 3, "schedule": schedule}
    result = CrossValidationTrainer(**kwargs, callbacks=[bar]).fit(tiny, data)
    assert [line.split("  ")[0] for line in bar.lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert out.getvalue().splitlines() == bar.lines
    mean = result.curve("val_loss")[2]
    assert f"val_loss {mean:.4f} ± " in bar.lines[2]


def test_progress_keeps_the_line_of_an_epoch_whose_end_raised(data, tiny, trainer_kwargs) -> None:
    class Prune(Callback):  # as TunerPruning: raises in on_validation_end, before on_train_fold_end
        def on_validation_end(self, *, epoch: int, **kwargs: Any) -> None:
            if epoch == 1:
                raise RuntimeError("pruned after epoch 2")

    bar, out = _plain_bar()
    kwargs = {**trainer_kwargs, "max_epochs": 4, "schedule": "interleaved"}
    with pytest.raises(RuntimeError, match="pruned"):
        CrossValidationTrainer(**kwargs, callbacks=[Prune(), bar]).fit(tiny, data)
    assert [line.split("  ")[0] for line in bar.lines] == ["epoch 1/4", "epoch 2/4"]
    assert out.getvalue().splitlines() == bar.lines
