"""Fitted transforms see only their fold's training data: no statistic of validation data leaks."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from lcv_config import FittedTransform, LcvError, build
from lcv_data import CrossValDataModule, Standardize


def _statistics(dataset: TensorDataset) -> list[tuple[torch.Tensor, torch.Tensor]]:
    dm = CrossValDataModule(
        dataset,
        splitter="stratified_kfold",
        splitter_kwargs={"n_splits": 5, "shuffle": True},
        fitted_transforms=[Standardize()],
    )
    dm.setup("fit")
    return [(fold[0].mean, fold[0].std) for fold in dm.fitted]


def _with_scaled(dataset: TensorDataset, indices: torch.Tensor, factor: float) -> TensorDataset:
    X = dataset.tensors[0].clone()
    X[indices] *= factor
    return TensorDataset(X, dataset.tensors[1])


def test_changing_validation_samples_leaves_the_fold_statistics_unchanged(digits: TensorDataset) -> None:
    """Multiplying fold k's validation inputs by 100 changes no statistic of fold k; changing training ones does."""
    dm = CrossValDataModule(digits, splitter="stratified_kfold", splitter_kwargs={"n_splits": 5, "shuffle": True})
    dm.setup("fit")
    assert dm.folds is not None
    before = _statistics(digits)
    for k, (train_idx, val_idx) in enumerate(dm.folds):
        after_val = _statistics(_with_scaled(digits, torch.as_tensor(val_idx), 100.0))
        assert torch.equal(after_val[k][0], before[k][0]), f"fold {k}: validation data leaked into the mean"
        assert torch.equal(after_val[k][1], before[k][1]), f"fold {k}: validation data leaked into the std"
        other = (k + 1) % 5  # the changed samples are training data of every other fold
        assert not torch.equal(after_val[other][0], before[other][0])
        after_train = _statistics(_with_scaled(digits, torch.as_tensor(train_idx[:50]), 100.0))
        assert not torch.equal(after_train[k][0], before[k][0]), f"fold {k}: training data did not reach the mean"
        assert not torch.equal(after_train[k][1], before[k][1])


def test_validation_batches_use_the_training_statistics(digits: TensorDataset) -> None:
    """A validation sample is scaled with its fold's training mean and std, not with validation statistics."""
    dm = CrossValDataModule(
        digits, splitter="kfold", splitter_kwargs={"n_splits": 5}, fitted_transforms=[Standardize()]
    )
    _, val = dm.train_val_dataloaders()[2]
    assert dm.folds is not None
    fitted = dm.fitted[2][0]
    served = torch.cat([b[0] for b in val])
    expected = (digits.tensors[0][torch.as_tensor(dm.folds[2][1])] - fitted.mean) / fitted.std
    assert torch.allclose(served, expected)


def test_nan_in_a_column_names_the_column() -> None:
    X = torch.randn(20, 5)
    X[3, 2] = float("nan")
    with pytest.raises(LcvError, match="feature column 2 holds NaN or inf"):
        Standardize().fit(X)


def test_inf_in_a_column_names_the_column() -> None:
    X = torch.randn(20, 5)
    X[7, 4] = float("inf")
    with pytest.raises(LcvError, match="feature column 4 holds NaN or inf"):
        Standardize().fit(X)


def test_nan_in_the_dataset_fails_at_setup_naming_the_column() -> None:
    X = torch.randn(40, 3)
    X[:, 1] = float("nan")
    dm = CrossValDataModule(X=X, y=torch.arange(40) % 2, fitted_transforms=[Standardize()])
    with pytest.raises(LcvError, match="feature column 1"):
        dm.setup("fit")


def test_constant_training_feature_keeps_scale_one() -> None:
    """A feature constant in training is only centred: a validation value 3 above stays 3, no blow-up."""
    train = torch.randn(50, 3)
    train[:, 1] = 4.0
    fitted = Standardize().fit(train)
    assert fitted.std is not None and fitted.std[1] == 1.0
    out = fitted.transform(torch.tensor([[0.0, 7.0, 0.0]]))
    assert out[0, 1] == pytest.approx(3.0)
    assert torch.isfinite(out).all()


def test_standardized_training_data_has_zero_mean_unit_std() -> None:
    train = torch.randn(200, 4) * torch.tensor([1.0, 10.0, 0.1, 3.0]) + 5
    out = Standardize().fit(train).transform(train)
    assert torch.allclose(out.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(out.std(0, unbiased=False), torch.ones(4), atol=1e-4)


def test_transform_before_fit_is_an_error() -> None:
    with pytest.raises(LcvError, match="before fit"):
        Standardize().transform(torch.zeros(2, 2))


def test_fit_on_no_samples_is_an_error() -> None:
    with pytest.raises(LcvError, match="no training samples"):
        Standardize().fit(torch.zeros(0, 3))


def test_state_dict_holds_the_fitted_statistics() -> None:
    fitted = Standardize().fit(torch.tensor([[1.0, 2.0], [3.0, 2.0]]))
    state = fitted.state_dict()
    assert state == {"mean": {"shape": [2], "values": [2.0, 2.0]}, "std": {"shape": [2], "values": [1.0, 1.0]}}
    assert Standardize().state_dict() == {}


def test_standardize_is_a_registered_fitted_transform() -> None:
    transform = build("transform", "standardize")
    assert isinstance(transform, Standardize)
    assert isinstance(transform, FittedTransform)
