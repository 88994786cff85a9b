"""An unchanged LightningModule: every configure_optimizers shape, schedulers, dict outputs, manual optimization."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lcv_core import Callback, CrossValidationTrainer

SGD = torch.optim.SGD


def _step_lr(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.StepLR:
    return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)


SHAPES = {
    "optimizer": lambda p: SGD(p, lr=0.1),
    "list": lambda p: [SGD(p, lr=0.1)],
    "dict_epoch": lambda p: (o := SGD(p, lr=0.1)) and {"optimizer": o, "lr_scheduler": _step_lr(o)},
    "dict_step": lambda p: (
        (o := SGD(p, lr=0.1))
        and {"optimizer": o, "lr_scheduler": {"scheduler": _step_lr(o), "interval": "step", "frequency": 4}}
    ),
    "dict_epoch_freq2": lambda p: (
        (o := SGD(p, lr=0.1))
        and {"optimizer": o, "lr_scheduler": {"scheduler": _step_lr(o), "interval": "epoch", "frequency": 2}}
    ),
    "two_lists": lambda p: (o := SGD(p, lr=0.1)) and ([o], [_step_lr(o)]),
}
# lr after 3 epochs of 8 batches: halved per epoch, per 4 steps, or every second epoch
EXPECTED_LR = {
    "optimizer": 0.1,
    "list": 0.1,
    "dict_epoch": 0.1 / 8,
    "dict_step": 0.1 / 2**6,
    "dict_epoch_freq2": 0.1 / 2,
    "two_lists": 0.1 / 8,
}


class LRRecorder(Callback):
    def __init__(self) -> None:
        self.lr: dict[tuple[int, int], float] = {}

    def on_train_epoch_start_per_fold(self, *, fold: int, epoch: int, trainer: Any, **kwargs: Any) -> None:
        self.lr[(fold, epoch)] = trainer.folds[fold].optimizers[0].param_groups[0]["lr"]

    def on_train_end(self, *, trainer: Any, **kwargs: Any) -> None:
        for f in trainer.folds:
            self.lr[(f.index, -1)] = f.optimizers[0].param_groups[0]["lr"]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_configure_optimizers_shapes(data, tiny, trainer_kwargs, shape: str) -> None:
    class Shaped(tiny):  # type: ignore[misc, valid-type]
        def configure_optimizers(self) -> Any:
            return SHAPES[shape](self.parameters())

    rec = LRRecorder()
    result = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3}, callbacks=[rec]).fit(Shaped, data)
    assert all(lr == pytest.approx(EXPECTED_LR[shape]) for (f, e), lr in rec.lr.items() if e == -1)
    assert result.n_epochs == 3
    if shape == "dict_epoch":
        assert [rec.lr[(2, e)] for e in range(3)] == pytest.approx([0.1, 0.05, 0.025])


def _plateau_module(tiny: type, monitor: str, seen: list[Any]) -> type:
    class Plateau(tiny):  # type: ignore[misc, valid-type]
        def configure_optimizers(self) -> Any:
            opt = SGD(self.parameters(), lr=0.1)
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
            original = sched.step

            def step(metrics: Any, *args: Any, **kwargs: Any) -> None:
                seen.append(metrics)
                original(metrics, *args, **kwargs)

            sched.step = step  # type: ignore[method-assign]
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": monitor}}

    return Plateau


@pytest.mark.parametrize("monitor", ["val_loss", "cv/val_loss_mean"])
def test_reduce_on_plateau_steps_with_the_metric_value(data, tiny, trainer_kwargs, monitor: str) -> None:
    seen: list[Any] = []
    result = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3}).fit(
        _plateau_module(tiny, monitor, seen), data
    )
    assert len(seen) == 15  # 5 folds × 3 epochs
    if monitor == "val_loss":
        expected = [result.history[f][e]["val_loss"] for e in range(3) for f in range(5)]
    else:
        expected = [result.curve("val_loss")[e] for e in range(3) for _ in range(5)]
    assert seen == pytest.approx(expected)
    assert all(v not in (0, 1, 2) for v in seen)  # not the epoch number (lightning-cv's bug)


def test_reduce_on_plateau_on_an_unlogged_metric_is_refused(data, tiny, trainer_kwargs) -> None:
    from lcv_config import LcvError

    with pytest.raises(LcvError, match="monitors 'val_los', which was not logged. Logged: .*val_loss"):
        CrossValidationTrainer(**trainer_kwargs).fit(_plateau_module(tiny, "val_los", []), data)


def test_training_step_dict_reaches_callbacks_as_outputs(data, tiny, trainer_kwargs) -> None:
    class DictOut(tiny):  # type: ignore[misc, valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = super().training_step(batch, batch_idx)
            return {"loss": loss, "n": len(batch[1]), "logits": self(batch[0]).detach()}

    seen: list[Any] = []

    class Out(Callback):
        def on_train_batch_end_per_fold(self, *, outputs: Any, **kwargs: Any) -> None:
            seen.append(outputs)

    result = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 1}, callbacks=[Out()]).fit(DictOut, data)
    assert seen[0]["n"] == 16 and seen[7]["n"] == 8  # 120 = 7 × 16 + 8
    assert seen[0]["logits"].shape == (16, 3)
    assert not seen[0]["loss"].requires_grad, "callbacks get the loss detached, as in Lightning (no graph kept alive)"
    assert result.history[0][0]["train_loss"] > 0


def test_manual_optimization_trains(data, tiny, trainer_kwargs) -> None:
    class Manual(tiny):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__(lr=0.5, dropout=0.0)
            self.automatic_optimization = False

        def configure_optimizers(self) -> Any:
            opt = SGD(self.parameters(), lr=self.lr)
            return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)]

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            opt = self.optimizers()
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self(x), y)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
            self.log("train_loss", loss)
            return loss

        def on_train_epoch_end(self) -> None:
            self.lr_schedulers().step()  # with manual optimization the module steps its scheduler, once

    rec = LRRecorder()
    result = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3}, callbacks=[rec]).fit(Manual, data)
    assert [rec.lr[(1, e)] for e in range(3)] == pytest.approx([0.5, 0.45, 0.405])  # not stepped twice by the loop
    train = result.curve("train_loss")
    assert train[2] < train[0] * 0.8
    assert result.curve("val_loss")[2] < result.curve("val_loss")[0]


def test_two_optimizers_need_manual_optimization(data, tiny, trainer_kwargs) -> None:
    from lcv_config import LcvError

    class Two(tiny):  # type: ignore[misc, valid-type]
        def configure_optimizers(self) -> Any:
            return [SGD(self.net[0].parameters(), lr=0.1), SGD(self.net[3].parameters(), lr=0.1)]

    with pytest.raises(LcvError, match="returns 2 optimizers with automatic optimization"):
        CrossValidationTrainer(**trainer_kwargs).fit(Two, data)


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_gradient_clipping_bounds_the_gradients(data, tiny, trainer_kwargs, algorithm: str) -> None:
    norms: list[float] = []

    class RecordingSGD(torch.optim.SGD):
        """Records the gradients the step is taken with (after clipping, whatever calls it)."""

        def step(self, closure: Any = None) -> Any:
            grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
            if algorithm == "norm":
                norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
            else:
                norms.append(max(float(g.abs().max()) for g in grads))
            return super().step(closure)

    class Clipped(tiny):  # type: ignore[misc, valid-type]
        def configure_optimizers(self) -> Any:
            return RecordingSGD(self.parameters(), lr=self.lr)

    CrossValidationTrainer(
        **{**trainer_kwargs, "max_epochs": 1},
        gradient_clip_val=1e-3,
        gradient_clip_algorithm=algorithm,
    ).fit(Clipped, data)
    assert len(norms) == 40 and max(norms) <= 1e-3 * 1.0001


def test_accumulate_grad_batches_steps_less_often(data, tiny, trainer_kwargs) -> None:
    steps: list[int] = []

    class Steps(Callback):
        def on_before_optimizer_step(self, *, fold: int, **kwargs: Any) -> None:
            steps.append(fold)

    CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 1}, callbacks=[Steps()], accumulate_grad_batches=3).fit(
        tiny, data
    )
    assert steps.count(0) == 3  # 8 batches: steps after batches 3, 6 and the last one
