"""Every hook of lcv_core.Callback fires, in order, with its payload; module hooks fire for their own fold."""

from __future__ import annotations

import inspect
from collections import Counter
from typing import Any

import torch
from lightning.pytorch import LightningModule

from lcv_core import Callback, CrossValidationTrainer

HOOKS = sorted(name for name, _ in inspect.getmembers(Callback, inspect.isfunction) if name.startswith("on_"))


class Recorder(Callback):
    """Records (hook, fold, epoch) for every hook and checks payload types as they arrive."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int | None]] = []
        self.grads_present: list[bool] = []


def _make_recorder_class() -> type[Recorder]:
    def make(name: str) -> Any:
        def hook(self: Recorder, **kwargs: Any) -> None:
            trainer = kwargs["trainer"]
            assert isinstance(trainer, CrossValidationTrainer)
            fold = kwargs.get("fold")
            if name == "on_before_log_metrics" and kwargs["stage"] == "epoch":  # the fold means: no one fold
                assert fold is None and kwargs["optimizer"] is None and kwargs["step"] == kwargs["epoch"]
                assert kwargs["metrics"]["epoch"] == kwargs["epoch"]
                kwargs = {k: v for k, v in kwargs.items() if k not in ("fold", "optimizer")}
                kwargs["metrics"] = {k: v for k, v in kwargs["metrics"].items() if k != "epoch"}
            if "fold" in kwargs:
                assert isinstance(fold, int) and 0 <= fold < 5
            if "epoch" in kwargs:
                assert isinstance(kwargs["epoch"], int)
            if "module" in kwargs:
                assert isinstance(kwargs["module"], LightningModule)
                assert kwargs["module"] is trainer.folds[fold].module if fold is not None else True
            if "metrics" in kwargs:
                assert isinstance(kwargs["metrics"], dict)
                assert all(isinstance(v, float) for v in kwargs["metrics"].values())
            if "loss" in kwargs:
                assert isinstance(kwargs["loss"], torch.Tensor) and kwargs["loss"].requires_grad
            if "optimizer" in kwargs:
                assert isinstance(kwargs["optimizer"], torch.optim.Optimizer)
            if "batch" in kwargs:
                assert isinstance(kwargs["batch"], list) and kwargs["batch"][0].shape[1] == 8
            if name == "on_before_optimizer_step":
                params = list(trainer.folds[fold].module.parameters())
                self.grads_present.append(all(p.grad is not None for p in params))
            self.events.append((name, fold))

        hook.__name__ = name
        return hook

    namespace = {name: make(name) for name in HOOKS if name != "on_exception"}
    return type("FullRecorder", (Recorder,), namespace)


def test_every_hook_fires_in_order_with_its_payload(data, tiny, trainer_kwargs) -> None:
    rec = _make_recorder_class()()
    CrossValidationTrainer(**trainer_kwargs, callbacks=[rec]).fit(tiny, data)
    names = [n for n, _ in rec.events]
    assert set(HOOKS) - {"on_exception"} <= set(names), f"never fired: {set(HOOKS) - set(names)}"
    assert names[0] == "on_train_start" and names[-1] == "on_train_end"
    assert rec.grads_present and all(rec.grads_present)
    counts = Counter(names)
    assert counts["on_train_epoch_start_per_fold"] == 10  # 5 folds × 2 epochs
    assert counts["on_validation_end"] == 2 and counts["on_before_log_metrics"] == 2  # no on_step values: per epoch
    assert counts["on_train_fold_start"] == counts["on_train_fold_end"] == 2  # lightning-cv's: once per epoch
    assert counts["on_fold_start"] == counts["on_fold_end"] == 5
    assert counts["on_train_batch_start_per_fold"] == 5 * 2 * 8  # 120 train samples in batches of 16
    assert counts["on_validation_batch_end_per_fold"] == 5 * 2 * 2
    # within one batch, Lightning's order: zero_grad (first batch of an accumulation window), backward hooks,
    # then the optimizer step, then batch end
    batch = names[names.index("on_train_batch_start_per_fold") : names.index("on_train_batch_end_per_fold") + 1]
    assert batch == [
        "on_train_batch_start_per_fold",
        "on_before_zero_grad",
        "on_before_backward",
        "on_after_backward",
        "on_before_optimizer_step",
        "on_train_batch_end_per_fold",
    ]
    # per fold and epoch: train epoch start < train end < validation start < validation end
    first_fold = [n for n, f in rec.events if f == 0 and n.endswith("_per_fold") and "batch" not in n][:4]
    assert first_fold == [
        "on_train_epoch_start_per_fold",
        "on_train_epoch_end_per_fold",
        "on_validation_start_per_fold",
        "on_validation_end_per_fold",
    ]
    first = names.index
    assert first("on_fold_start") < first("on_train_fold_start") < first("on_train_epoch_start_per_fold")
    assert names.index("on_before_log_metrics") < names.index("on_validation_end") < names.index("on_train_fold_end")
    last = len(names) - 1 - names[::-1].index("on_train_fold_end")
    assert last > len(names) - 1 - names[::-1].index("on_validation_end")
    assert last < names.index("on_fold_end")


def test_on_exception_gets_the_exception(data, tiny, trainer_kwargs) -> None:
    seen: list[BaseException] = []

    class Catch(Callback):
        def on_exception(self, *, exception: BaseException, **kwargs: Any) -> None:
            seen.append(exception)

    class Boom(tiny):  # type: ignore[misc, valid-type]
        def validation_step(self, batch: Any, batch_idx: int) -> None:
            raise RuntimeError("boom in validation")

    try:
        CrossValidationTrainer(**trainer_kwargs, callbacks=[Catch()]).fit(Boom, data)
    except RuntimeError as exc:
        assert seen == [exc]
    else:
        raise AssertionError("fit did not raise")


def test_module_hooks_fire_once_per_fold_and_epoch_for_that_module_only(data, tiny, trainer_kwargs) -> None:
    calls: list[tuple[int, str, int]] = []

    class Hooked(tiny):  # type: ignore[misc, valid-type]
        def __init__(self, fold: int) -> None:
            super().__init__()
            self.fold = fold
            self.epochs = 0

        def _rec(self, name: str) -> None:
            calls.append((self.fold, name, self.epochs))

        def on_fit_start(self) -> None:
            self._rec("on_fit_start")

        def on_fit_end(self) -> None:
            self._rec("on_fit_end")

        def on_train_epoch_start(self) -> None:
            self._rec("on_train_epoch_start")

        def on_train_epoch_end(self) -> None:
            self._rec("on_train_epoch_end")

        def on_validation_epoch_start(self) -> None:
            self._rec("on_validation_epoch_start")

        def on_validation_epoch_end(self) -> None:
            self._rec("on_validation_epoch_end")
            self.epochs += 1

    CrossValidationTrainer(**trainer_kwargs).fit(lambda fold: Hooked(fold), data)
    counts = Counter((fold, name) for fold, name, _ in calls)
    for fold in range(5):
        assert counts[(fold, "on_fit_start")] == 1 and counts[(fold, "on_fit_end")] == 1
        for name in (
            "on_train_epoch_start",
            "on_train_epoch_end",
            "on_validation_epoch_start",
            "on_validation_epoch_end",
        ):
            assert counts[(fold, name)] == 2, (fold, name)
    # Lightning's order: on_train_epoch_end after the epoch's validation
    assert [c for c in calls if c[0] == 3][1:5] == [
        (3, "on_train_epoch_start", 0),
        (3, "on_validation_epoch_start", 0),
        (3, "on_validation_epoch_end", 0),
        (3, "on_train_epoch_end", 1),
    ]


def test_module_batch_and_optimizer_hooks_fire_after_the_callbacks_where_lightning_calls_them(
    data, tiny, trainer_kwargs
) -> None:
    events: list[str] = []

    class Cb(Callback):
        def on_train_batch_start_per_fold(self, **kwargs: Any) -> None:
            events.append("cb:batch_start")

        def on_before_backward(self, **kwargs: Any) -> None:
            events.append("cb:before_backward")

        def on_before_optimizer_step(self, **kwargs: Any) -> None:
            events.append("cb:before_optimizer_step")

    class Hooked(tiny):  # type: ignore[misc, valid-type]
        def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
            events.append(f"train_batch_start:{batch_idx}")

        def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
            events.append(f"train_batch_end:{batch_idx}:{float(outputs) > 0}")

        def on_before_backward(self, loss: torch.Tensor) -> None:
            events.append(f"before_backward:{loss.requires_grad}")

        def on_after_backward(self) -> None:
            events.append(f"after_backward:{self.net[0].weight.grad is not None}")

        def on_before_optimizer_step(self, optimizer: Any) -> None:
            events.append(f"before_optimizer_step:{isinstance(optimizer, torch.optim.Optimizer)}")

        def on_before_zero_grad(self, optimizer: Any) -> None:
            events.append(f"before_zero_grad:{self.net[0].weight.grad is not None}")

        def on_validation_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            events.append(f"val_batch_start:{batch_idx}")

        def on_validation_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            events.append(f"val_batch_end:{batch_idx}")

    kwargs = {**trainer_kwargs, "max_epochs": 1, "limit_train_batches": 1, "limit_val_batches": 1}
    CrossValidationTrainer(**kwargs, callbacks=[Cb()]).fit(Hooked, data)
    # Lightning's order: gradients are zeroed before backward (none yet in the first batch), the step after
    assert events[:10] == [
        "cb:batch_start",
        "train_batch_start:0",
        "before_zero_grad:False",
        "cb:before_backward",
        "before_backward:True",
        "after_backward:True",
        "cb:before_optimizer_step",
        "before_optimizer_step:True",
        "train_batch_end:0:True",
        "val_batch_start:0",
    ]
    assert events[10] == "val_batch_end:0" and len(events) == 5 * 11


def test_on_train_batch_start_returning_minus_one_skips_the_rest_of_the_epoch(data, tiny, trainer_kwargs) -> None:
    class SkipAfterTwo(tiny):  # type: ignore[misc, valid-type]
        def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
            return -1 if batch_idx == 2 else None

    class Count(Callback):
        def __init__(self) -> None:
            self.steps = 0

        def on_before_optimizer_step(self, **kwargs: Any) -> None:
            self.steps += 1

    count = Count()
    CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 2}, callbacks=[count]).fit(SkipAfterTwo, data)
    assert count.steps == 5 * 2 * 2


def test_sequential_schedule_replays_fold_means_to_on_validation_end(data, tiny, trainer_kwargs) -> None:
    seen: list[tuple[int, float, int]] = []

    class Means(Callback):
        def on_validation_end(self, *, trainer: Any, epoch: int, metrics: dict[str, float], **kwargs: Any) -> None:
            seen.append((epoch, metrics["cv/val_loss_mean"], len(trainer.folds[4].history)))

    kwargs = {**trainer_kwargs, "max_epochs": 3}
    interleaved = CrossValidationTrainer(**kwargs, schedule="interleaved").fit(tiny, data)
    CrossValidationTrainer(**kwargs, schedule="sequential", callbacks=[Means()]).fit(tiny, data)
    assert [e for e, _, _ in seen] == [0, 1, 2]
    assert [m for _, m, _ in seen] == interleaved.curve("val_loss")
    assert all(n == 3 for _, _, n in seen), "replayed after the last fold finished"
