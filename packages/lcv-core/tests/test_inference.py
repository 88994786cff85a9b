"""predict / test with fold ensembles, out-of-fold predictions and refit, on real modules and loaders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import LightningModule
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lcv_config import LcvError
from lcv_core.inference import out_of_fold_predictions, predict, refit, test
from lcv_core.results import CVResult
from lcv_core.trainer import CrossValidationTrainer


class Constant(LightningModule):
    """Always predicts class ``label`` (logits 10 for it, 0 elsewhere); its test_step logs accuracy."""

    def __init__(self, label: int, n_classes: int = 3) -> None:
        super().__init__()
        self.label = label
        self.n_classes = n_classes
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.n_classes, device=x.device)
        out[:, self.label] = 1.0
        return out * self.scale

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("test_acc", (self(x).argmax(dim=1) == y).float().mean())


def _labelled(labels: list[int], batch_size: int = 7) -> DataLoader[Any]:
    y = torch.tensor(labels)
    return DataLoader(TensorDataset(torch.randn(len(labels), 4), y), batch_size=batch_size)


# 30 samples: 15 of class 0, 10 of class 1, 5 of class 2
LABELS = [0] * 15 + [1] * 10 + [2] * 5


def test_predict_mean_and_vote_ensembles() -> None:
    models = [Constant(0), Constant(1), Constant(1)]
    loader = _labelled(LABELS)
    mean = predict(models, loader, ensemble="mean")
    assert len(mean.per_fold) == 3 and mean.per_fold[0].shape == (30, 3)
    assert torch.allclose(mean.ensemble[0], torch.tensor([10 / 3, 20 / 3, 0.0]))
    vote = predict(models, loader, ensemble="vote")
    assert vote.method == "vote" and vote.ensemble.tolist() == [1] * 30
    assert predict(models, loader, ensemble=None).ensemble is None


def test_predict_uses_predict_step_when_defined() -> None:
    class Probabilities(Constant):
        def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return self(batch[0]).softmax(dim=1)

    out = predict([Probabilities(2), Probabilities(2)], _labelled(LABELS), ensemble="mean")
    assert torch.allclose(out.ensemble.sum(dim=1), torch.ones(30))
    assert out.ensemble.argmax(dim=1).tolist() == [2] * 30


def test_unknown_ensemble_is_an_error() -> None:
    with pytest.raises(LcvError, match=r"ensemble='votes'.*Did you mean 'vote'.*'mean', 'vote' or None"):
        predict([Constant(0)], _labelled(LABELS), ensemble="votes")  # type: ignore[arg-type]


def test_vote_on_regression_outputs_is_an_error() -> None:
    class Regressor(Constant):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, 0] * self.scale

    with pytest.raises(LcvError, match=r"ensemble='vote' needs class scores.*ensemble='mean'"):
        predict([Regressor(0), Regressor(0)], _labelled(LABELS), ensemble="vote")


def test_test_reports_fold_metrics_mean_std_and_the_ensemble() -> None:
    # batches of 7 leave a last batch of 2: accuracies must be weighted by batch size to be exact
    result = test([Constant(0), Constant(1), Constant(1)], _labelled(LABELS, batch_size=7))
    assert [round(m["test_acc"], 6) for m in result.per_fold] == [0.5, round(1 / 3, 6), round(1 / 3, 6)]
    summary = result.metrics["test_acc"]
    assert summary.mean == pytest.approx((0.5 + 2 / 3) / 3)
    assert summary.std == pytest.approx(torch.tensor([0.5, 1 / 3, 1 / 3]).std().item())
    # the ensemble votes class 1 everywhere (2 folds of 3): right on the 10 samples of class 1
    assert result.ensemble == {"acc": pytest.approx(1 / 3), "acc_vote": pytest.approx(1 / 3)}
    assert "test_acc 0.3889 ± 0.0962" in str(result)


def test_test_needs_a_test_step() -> None:
    class NoTest(LightningModule):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(LcvError, match="NoTest does not define test_step"):
        test([NoTest()], _labelled(LABELS))


def test_a_result_without_models_is_an_error() -> None:
    with pytest.raises(LcvError, match=r"result.models is empty.*trainer.folds"):
        predict(CVResult(history=[[{}]], monitor="val_loss"), _labelled(LABELS))


class FoldId(Constant):
    """Predicts its fold number for every sample (one output per sample)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0],), float(self.label)) * self.scale / 10


def test_out_of_fold_predictions_are_in_dataset_order() -> None:
    x = torch.randn(9, 4)
    val_indices = [[8, 2, 5], [0, 7, 3], [4, 1, 6]]
    loaders = [DataLoader(TensorDataset(x[idx]), batch_size=2) for idx in val_indices]
    oof = out_of_fold_predictions([FoldId(0), FoldId(1), FoldId(2)], loaders, val_indices, n_samples=9)
    assert oof.tolist() == [1, 2, 0, 1, 2, 0, 2, 1, 0]


def test_out_of_fold_repeated_samples_are_averaged_and_missing_ones_are_nan() -> None:
    x = torch.randn(4, 4)
    val_indices = [[0, 1], [1, 2]]  # sample 1 in both folds, sample 3 in none
    loaders = [DataLoader(TensorDataset(x[idx]), batch_size=2) for idx in val_indices]
    oof = out_of_fold_predictions([FoldId(2), FoldId(4)], loaders, val_indices, n_samples=4)
    assert oof[:3].tolist() == [2.0, 3.0, 4.0] and torch.isnan(oof[3])


def test_out_of_fold_count_mismatch_names_the_fold() -> None:
    x = torch.randn(4, 4)
    loaders = [DataLoader(TensorDataset(x[:2])), DataLoader(TensorDataset(x[2:]))]
    with pytest.raises(LcvError, match="fold 1 predicted 2 samples but its val_indices has 1"):
        out_of_fold_predictions([FoldId(0), FoldId(1)], loaders, [[0, 1], [2]], n_samples=4)


def test_fit_then_predict_test_and_oof(data, tiny, trainer_kwargs) -> None:
    class WithTest(tiny):  # type: ignore[misc, valid-type]
        def test_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("test_acc", (self(x).argmax(dim=1) == y).float().mean())

    trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3})
    result = trainer.fit(WithTest, data)
    if not result.models:
        result.models = [f.module for f in trainer.folds]
    loader = DataLoader(data.dataset, batch_size=32)
    # a shuffled loader: the folds' outputs must still line up with the targets, sample by sample
    tested = test(result, DataLoader(data.dataset, batch_size=32, shuffle=True))
    assert len(tested.per_fold) == 5 and 0.0 <= tested.metrics["test_acc"].mean <= 1.0
    predicted = predict(result, loader, ensemble="vote")
    labels = data.dataset.tensors[1]
    assert tested.ensemble["acc_vote"] == pytest.approx((predicted.ensemble == labels).float().mean().item())
    val_loaders = [va for _, va in data.train_val_dataloaders()]
    oof = out_of_fold_predictions(result, val_loaders, data.val_indices, n_samples=len(data.dataset))
    # sample 0 is validated by fold 0, sample 149 by fold 4
    assert torch.allclose(oof[0], predicted.per_fold[0][0]) and torch.allclose(oof[149], predicted.per_fold[4][149])


def test_refit_trains_on_all_data_and_saves(data, tiny, tmp_path: Path) -> None:
    loader = DataLoader(data.dataset, batch_size=16, shuffle=True)
    result = CVResult(history=[[{"val_loss": 1.0}, {"val_loss": 0.5}, {"val_loss": 0.7}]], monitor="val_loss")
    path = tmp_path / "refit" / "model.pt"
    model = refit(tiny, loader, epochs=result, seed=3, path=path)  # best epoch 2 → 2 epochs
    assert not model.training and path.is_file()
    again = refit(tiny, loader, epochs=2, seed=3)
    fresh = tiny()
    fresh.load_state_dict(torch.load(path, weights_only=True))
    for a, b, c in zip(model.parameters(), again.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    untrained = refit(tiny, loader, epochs=1, seed=3)
    assert model.refit_metrics["train_loss"] < untrained.refit_metrics["train_loss"]


def test_refit_needs_an_epoch(tiny, data) -> None:
    with pytest.raises(LcvError, match=r"refit\(epochs=0\): train for at least 1 epoch"):
        refit(tiny, DataLoader(data.dataset), epochs=0)
