"""The fold loop: lockstep order, schedules, per-fold random streams, reproducibility, mixed precision."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lcv_core import Callback, CrossValidationTrainer


class OrderRecorder(Callback):
    def __init__(self) -> None:
        self.order: list[tuple[int, int]] = []

    def on_train_epoch_start_per_fold(self, *, fold: int, epoch: int, **kwargs: Any) -> None:
        self.order.append((epoch, fold))


def test_interleaved_is_epoch_major_and_sequential_fold_major(data, tiny, trainer_kwargs) -> None:
    rec_i, rec_s = OrderRecorder(), OrderRecorder()
    res_i = CrossValidationTrainer(**trainer_kwargs, callbacks=[rec_i]).fit(tiny, data)
    res_s = CrossValidationTrainer(**trainer_kwargs, callbacks=[rec_s], schedule="sequential").fit(tiny, data)
    assert rec_i.order == [(e, f) for e in range(2) for f in range(5)]
    assert rec_s.order == [(e, f) for f in range(5) for e in range(2)]
    # Each fold has its own random stream (shuffling and dropout), so the schedule does not change the numbers.
    assert res_i.history == res_s.history
    assert res_i.history[0][1]["val_loss"] != res_i.history[1][1]["val_loss"]


def test_same_seed_reproduces_and_other_seed_differs(data, tiny, trainer_kwargs) -> None:
    a = CrossValidationTrainer(**trainer_kwargs).fit(tiny, data)
    b = CrossValidationTrainer(**trainer_kwargs).fit(tiny, data)
    c = CrossValidationTrainer(**{**trainer_kwargs, "seed": 1}).fit(tiny, data)
    assert a.history == b.history
    assert all(ha[-1]["val_loss"] != hc[-1]["val_loss"] for ha, hc in zip(a.history, c.history, strict=True))


class InitRecorder(Callback):
    def __init__(self) -> None:
        self.weights: dict[int, torch.Tensor] = {}

    def on_fold_start(self, *, fold: int, module: Any, **kwargs: Any) -> None:
        self.weights[fold] = module.net[0].weight.detach().clone()


def test_class_gives_each_fold_its_own_init_and_instance_is_copied(data, tiny, trainer_kwargs) -> None:
    kwargs = {**trainer_kwargs, "max_epochs": 1}
    rec = InitRecorder()
    CrossValidationTrainer(**kwargs, callbacks=[rec]).fit(tiny, data)
    assert not torch.equal(rec.weights[0], rec.weights[1])
    assert len({tuple(w.flatten().tolist()) for w in rec.weights.values()}) == 5

    instance = tiny()
    before = instance.net[0].weight.detach().clone()
    rec = InitRecorder()
    CrossValidationTrainer(**kwargs, callbacks=[rec]).fit(instance, data)
    assert all(torch.equal(w, before) for w in rec.weights.values())
    assert torch.equal(instance.net[0].weight, before), "the user's instance must not be trained in place"


def test_bf16_mixed_autocasts_training_and_validation_steps(data, tiny, trainer_kwargs) -> None:
    seen: dict[str, torch.dtype] = {}

    class Recording(tiny):  # type: ignore[misc, valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            seen["train"] = self.net[0](batch[0]).dtype
            return super().training_step(batch, batch_idx)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            seen["val"] = self.net[0](batch[0]).dtype
            super().validation_step(batch, batch_idx)

    result = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 1}, precision="bf16-mixed").fit(Recording, data)
    assert seen == {"train": torch.bfloat16, "val": torch.bfloat16}
    assert result.metric("val_loss").mean < 2.0


def test_training_learns_the_problem(data, tiny, trainer_kwargs) -> None:
    result = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3}).fit(tiny(lr=0.5, dropout=0.0), data)
    curve = result.curve("val_loss")
    assert curve[-1] < curve[0]
    assert result.metric("val_acc").mean > 0.5


@pytest.mark.parametrize("schedule", ["interleaved", "sequential"])
def test_limit_batches_caps_the_batches_of_each_fold(data, tiny, trainer_kwargs, schedule: str) -> None:
    class Counter(Callback):
        def __init__(self) -> None:
            self.train = 0
            self.val = 0

        def on_train_batch_end_per_fold(self, **kwargs: Any) -> None:
            self.train += 1

        def on_validation_batch_end_per_fold(self, **kwargs: Any) -> None:
            self.val += 1

    counter = Counter()
    CrossValidationTrainer(
        **{**trainer_kwargs, "max_epochs": 1},
        callbacks=[counter],
        limit_train_batches=3,
        limit_val_batches=1,
        schedule=schedule,
    ).fit(tiny, data)
    assert (counter.train, counter.val) == (5 * 3, 5 * 1)


@pytest.mark.parametrize("schedule", ["interleaved", "vectorized"])
def test_logging_reads_values_back_once_per_fold_stage_not_every_step(
    fold_data, tiny, trainer_kwargs, monkeypatch, schedule
) -> None:
    reads = {"n": 0}
    for method in ("item", "tolist", "cpu", "__float__"):
        original = getattr(torch.Tensor, method)

        def counted(self: torch.Tensor, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            reads["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, counted)
    counts = []
    for n in (200, 400):  # 25, then 50 training batches per fold and epoch
        reads["n"] = 0
        result = CrossValidationTrainer(**trainer_kwargs, schedule=schedule).fit(
            tiny, fold_data(n_folds=2, n=n, batch_size=4)
        )
        assert result.history[0][-1]["train_loss"] > 0  # every epoch's values arrived
        counts.append(reads["n"])
    # a value logged every step is accumulated on the device and read back once per fold and stage:
    # twice the steps, not one host read more
    assert counts[0] == counts[1], counts
