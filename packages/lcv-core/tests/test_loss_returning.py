"""LossReturningLearner: a NeuroMANCER-style Problem (dict batch in, dict of losses out) trains unchanged."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lcv_config import ExperimentConfig, LcvError, register
from lcv_config.registry import unregister
from lcv_core import CrossValidationTrainer
from lcv_core.configure import learner_factory
from lcv_core.learners import LossReturningLearner


class Problem(nn.Module):
    """As NeuroMANCER's ``Problem``: ``forward(data)`` returns every loss and output, keyed ``<data["name"]>_<key>``."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, data: dict[str, Any]) -> dict[str, torch.Tensor]:
        pred = self.net(data["X"])
        reference = nn.functional.mse_loss(pred, data["Y"])
        smooth = pred.diff(dim=0).pow(2).mean()
        out = {"Y_pred": pred, "reference": reference, "smooth": smooth, "loss": reference + 0.01 * smooth}
        return {f"{data['name']}_{k}": v for k, v in out.items()}


class Samples(Dataset[dict[str, torch.Tensor]]):
    """Dict samples of y = x0 - 2 x1 (NeuroMANCER's datasets are dicts of tensors)."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x, self.y = x, (x[:, :1] - 2 * x[:, 1:])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"X": self.x[i], "Y": self.y[i]}


def dict_folds(n_folds: int = 3, n: int = 120) -> list[tuple[DataLoader[Any], DataLoader[Any]]]:
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    size = n // n_folds
    pairs = []
    for i in range(n_folds):
        val = torch.arange(i * size, (i + 1) * size)
        train = torch.cat([torch.arange(0, i * size), torch.arange((i + 1) * size, n)])
        pairs.append((DataLoader(Samples(x[train]), batch_size=16, shuffle=True), DataLoader(Samples(x[val]), 32)))
    return pairs


def test_a_neuromancer_style_problem_trains_unchanged(trainer_kwargs: dict[str, Any]) -> None:
    """Every scalar the problem returns is logged per stage (``dev_*`` as ``val_*``) and the loss goes down."""
    learner = LossReturningLearner(Problem(), optimizer={"name": "Adam", "cfg": {"lr": 0.02}})
    trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 8, "monitor": "val_loss"})
    result = trainer.fit(learner, dict_folds())
    first, last = result.history[0][0], result.history[0][-1]
    assert {"train_loss", "train_reference", "train_smooth", "val_loss", "val_reference", "val_smooth"} <= set(last)
    assert not any(name.startswith(("dev_", "val_dev", "train_train")) for name in last), sorted(last)
    assert "val_Y_pred" not in last, "only scalars are logged"
    assert last["val_loss"] < 0.5 * first["val_loss"], (first["val_loss"], last["val_loss"])
    assert last["val_loss"] == pytest.approx(last["val_reference"] + 0.01 * last["val_smooth"], rel=1e-4)
    assert result.metric("val_loss").mean == pytest.approx(
        sum(h[result.best_epoch]["val_loss"] for h in result.history) / 3
    )


def test_the_problem_sees_the_stage_name_and_predict_returns_its_dict() -> None:
    seen: list[str] = []

    class Recording(Problem):
        def forward(self, data: dict[str, Any]) -> dict[str, torch.Tensor]:
            seen.append(data["name"])
            return super().forward(data)

    learner = LossReturningLearner(Recording())
    batch = next(iter(dict_folds()[0][1]))
    learner.log = lambda *args, **kwargs: None  # type: ignore[method-assign]  # no trainer attached here
    learner.validation_step(batch, 0)
    out = learner.predict_step(batch, 0)  # Lightning's default: forward(batch)
    assert seen == ["dev", "predict"]
    assert out["predict_Y_pred"].shape == (32, 1)
    assert "name" not in batch, "the user's batch is not modified"


def test_a_configured_loss_key_and_a_plain_module(trainer_kwargs: dict[str, Any]) -> None:
    """A module that returns ``{"total": ..., "mse": ...}`` without stage prefixes: ``loss_key: total``."""

    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 1)

        def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            mse = nn.functional.mse_loss(self.lin(batch["X"]), batch["Y"])
            return {"total": mse, "mse": mse}

    learner = LossReturningLearner(Plain(), loss_key="total", stage_key=None)
    result = CrossValidationTrainer(**trainer_kwargs).fit(learner, dict_folds())
    assert {"train_total", "train_mse", "train_loss", "val_total", "val_loss"} <= set(result.history[0][-1])
    assert result.history[0][-1]["val_loss"] == pytest.approx(result.history[0][-1]["val_total"])


def test_the_learner_from_a_config_by_name_with_the_problem_as_the_model() -> None:
    register("model", "test_problem")(Problem)
    try:
        config = ExperimentConfig.model_validate(
            {
                "learner": {"name": "loss_returning", "cfg": {"loss_key": "loss"}},
                "model": {"name": "test_problem", "cfg": {"hidden": 8}},
                "optimizer": {"name": "SGD", "cfg": {"lr": 0.3}},
            }
        )
        make = learner_factory(config)
        first, second = make(), make()
    finally:
        unregister("model", "test_problem")
    assert isinstance(first, LossReturningLearner) and isinstance(first.model, Problem)
    assert first.model.net[0].out_features == 8
    assert not torch.equal(first.model.net[0].weight, second.model.net[0].weight), "a new problem per fold"
    optimizer = first.configure_optimizers()
    assert type(optimizer).__name__ == "SGD" and optimizer.param_groups[0]["lr"] == 0.3


def test_a_missing_loss_says_which_keys_came_back() -> None:
    learner = LossReturningLearner(Problem(), loss_key="los")
    learner.log = lambda *args, **kwargs: None  # type: ignore[method-assign]
    batch = next(iter(dict_folds()[0][0]))
    with pytest.raises(LcvError, match=r"no 'los'.*Did you mean 'loss'.*Set the learner's loss_key"):
        learner.training_step(batch, 0)
