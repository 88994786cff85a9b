"""Every fitted transform: fitted on each fold's training part only, saved without pickle, reused for test."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from lcv_config import LcvError
from lcv_data.datamodule import CrossValDataModule
from lcv_data.sklearn_transform import SklearnTransform
from lcv_data.transforms import PCA, LabelEncode, MinMaxScale, RobustScale, Standardize

FITTED: dict[str, Callable[[], Any]] = {
    "standardize": Standardize,
    "min_max_scale": MinMaxScale,
    "robust_scale": RobustScale,
    "pca": lambda: PCA(n_components=3),
    "sklearn_standard_scaler": lambda: SklearnTransform("StandardScaler"),
    "sklearn_quantile": lambda: SklearnTransform("QuantileTransformer", n_quantiles=20),
}


def _data(seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(60, 5, generator=g) * 3 + 1, torch.arange(60) % 3)


def _state(dm: CrossValDataModule) -> list[str]:
    dm.setup()
    return [json.dumps([t.state_dict() for t in fold], sort_keys=True) for fold in dm.fitted]


def _dm(data: TensorDataset, make: Callable[[], Any]) -> CrossValDataModule:
    return CrossValDataModule(data, splitter="kfold", splitter_kwargs={"n_splits": 3}, fitted_transforms=[make()])


@pytest.mark.parametrize("name", sorted(FITTED))
def test_changing_only_validation_samples_leaves_every_fold_state_unchanged(name: str) -> None:
    data = _data()
    dm = _dm(data, FITTED[name])
    before = _state(dm)
    assert dm.folds is not None
    for k, (_, val_idx) in enumerate(dm.folds):
        X = data.tensors[0].clone()
        X[torch.as_tensor(val_idx)] = X[torch.as_tensor(val_idx)] * 50 + 7
        after = _state(_dm(TensorDataset(X, data.tensors[1]), FITTED[name]))
        assert after[k] == before[k], f"{name}: fold {k}'s state changed with its validation samples"
        assert after[(k + 1) % 3] != before[(k + 1) % 3], f"{name}: fold {(k + 1) % 3} did not see its training data"


@pytest.mark.parametrize("name", sorted(FITTED))
def test_saved_state_restores_the_same_test_batches(name: str, tmp_path: Path) -> None:
    data = _data()
    dm = CrossValDataModule(
        data, splitter="kfold", splitter_kwargs={"n_splits": 3}, holdout=12, fitted_transforms=[FITTED[name]()]
    )
    dm.save_folds(tmp_path / "folds.json")
    assert (tmp_path / "transforms.json").is_file()
    expected = [torch.cat([b[0] for b in loader]) for loader in dm.test_dataloaders()]
    fresh = CrossValDataModule(
        data, splitter="kfold", splitter_kwargs={"n_splits": 3}, holdout=12, fitted_transforms=[FITTED[name]()]
    )
    fresh.load_folds(tmp_path / "folds.json")
    fresh.load_transforms(tmp_path / "transforms.json")
    served = [torch.cat([b[0] for b in loader]) for loader in fresh.test_dataloaders()]
    for a, b in zip(expected, served, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert "pickle" not in (tmp_path / "transforms.json").read_text()


def test_min_max_maps_the_training_range_onto_zero_one() -> None:
    train = torch.tensor([[0.0, 5.0], [10.0, 5.0], [5.0, 5.0]])
    out = MinMaxScale().fit(train).transform(torch.tensor([[10.0, 5.0], [20.0, 6.0]]))
    assert out.tolist() == [[1.0, 0.0], [2.0, 1.0]]  # beyond the training range stays linear; constant -> scale 1


def test_robust_scale_uses_median_and_iqr() -> None:
    train = torch.tensor([[1.0], [2.0], [3.0], [4.0], [100.0]])
    fitted = RobustScale().fit(train)
    assert fitted.median is not None and fitted.median.item() == 3.0
    assert fitted.scale is not None and fitted.scale.item() == 2.0  # q75 4 - q25 2


def test_pca_matches_scikit_learn_up_to_sign() -> None:
    from sklearn.decomposition import PCA as SklearnPCA  # noqa: N811 - ours is imported as PCA

    X = _data().tensors[0]
    ours = PCA(n_components=2).fit(X).transform(X)
    theirs = torch.as_tensor(SklearnPCA(n_components=2).fit_transform(X.numpy()), dtype=torch.float32)
    assert torch.allclose(ours.abs(), theirs.abs(), atol=1e-4)


def test_pca_with_too_many_components_names_the_limit() -> None:
    with pytest.raises(LcvError, match=r"n_components=9 exceeds min\(samples, features\) = 5"):
        PCA(n_components=9).fit(torch.randn(30, 5))


def test_label_encoding_is_fitted_on_training_targets() -> None:
    data = TensorDataset(torch.randn(30, 2), torch.tensor([10, 20, 30] * 10))
    dm = CrossValDataModule(
        data,
        splitter="stratified_kfold",
        splitter_kwargs={"n_splits": 3},
        fitted_transforms=[Standardize(), LabelEncode()],
    )
    train, val = dm.train_val_dataloaders()[0]
    assert {int(y) for b in val for y in b[1]} == {0, 1, 2}
    assert dm.fitted[0][1].n_classes == 3
    with pytest.raises(LcvError, match=r"class 40 was not in the fold's training targets \(seen: 10, 20, 30\)"):
        dm.fitted[0][1].transform(torch.tensor([40]))


def test_sklearn_transform_by_config_name() -> None:
    dm = CrossValDataModule(
        _data(),
        splitter="kfold",
        fitted_transforms=[{"name": "sklearn:MinMaxScaler", "cfg": {"feature_range": [-1, 1]}}],
    )
    x = torch.cat([b[0] for b in dm.train_val_dataloaders()[0][0]])
    assert x.min().item() == pytest.approx(-1.0) and x.max().item() == pytest.approx(1.0)


def test_unknown_sklearn_transformer_suggests_the_closest() -> None:
    with pytest.raises(
        LcvError, match=r"Unknown scikit-learn transformer 'StandardScalar'. Did you mean 'StandardScaler'"
    ):
        SklearnTransform("StandardScalar")


@pytest.mark.parametrize("name", ["min_max_scale", "robust_scale", "pca", "sklearn_standard_scaler"])
def test_nan_names_the_column(name: str) -> None:
    X = torch.randn(20, 4)
    X[5, 2] = float("nan")
    with pytest.raises(LcvError, match="feature column 2 holds NaN or inf"):
        FITTED[name]().fit(X)


def test_loaded_transforms_of_other_kinds_are_an_error(tmp_path: Path) -> None:
    dm = _dm(_data(), Standardize)
    dm.save_transforms(tmp_path / "transforms.json")
    other = _dm(_data(), MinMaxScale)
    with pytest.raises(
        LcvError,
        match=r"fold 0 holds \['lcv_data.transforms.fitted:Standardize'\]; this datamodule fits \['MinMaxScale'\]",
    ):
        other.load_transforms(tmp_path / "transforms.json")


def test_fitted_transforms_are_registered_components() -> None:
    from lcv_config import build

    assert isinstance(build("transform", "standardize"), Standardize)
    assert np.isfinite(Standardize().fit(torch.ones(3, 2)).transform(torch.ones(1, 2)).numpy()).all()


@pytest.mark.parametrize("old_path", ["lcv_data.transforms:Standardize", "lcv_data.sklearn_transform:SklearnTransform"])
def test_transforms_saved_under_the_old_module_paths_still_load(old_path: str, tmp_path: Path) -> None:
    """Runs saved before the transforms moved into ``lcv_data.transforms.*`` keep serving their test batches."""
    make = FITTED["standardize"] if old_path.endswith("Standardize") else FITTED["sklearn_standard_scaler"]
    dm = _dm(_data(), make)
    dm.save_transforms(tmp_path / "transforms.json")
    saved = json.loads((tmp_path / "transforms.json").read_text())
    for fold in saved["folds"]:
        fold[0]["class"] = old_path
    (tmp_path / "transforms.json").write_text(json.dumps(saved))
    fresh = _dm(_data(), make)
    fresh.load_transforms(tmp_path / "transforms.json")
    assert _state(fresh) == _state(dm)
