"""The `table` dataset source: a CSV, TSV or Parquet file named in a config, with its checks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lcv_config import ConfigError, DataConfig, LcvError, build
from lcv_config.testing import DatasetContract
from lcv_data import CrossValDataModule, TableDataset

pd = pytest.importorskip("pandas")
needs_pyarrow = pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed")


@pytest.fixture
def frame() -> Any:
    """60 patients from 6 hospitals: two numeric features, a text outcome (15 sick), a risk band to stratify by."""
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame(
        {
            "age": rng.integers(20, 80, n),
            "bmi": rng.normal(25, 4, n).round(1),
            "hospital": [f"h{i % 6}" for i in range(n)],
            "band": [("low", "mid", "high")[(i + i // 6) % 3] for i in range(n)],  # every hospital has every band
            "outcome": ["sick" if i % 4 == 0 else "well" for i in range(n)],
        }
    )


@pytest.fixture
def csv(tmp_path: Path, frame: Any) -> Path:
    path = tmp_path / "patients.csv"
    frame.to_csv(path, index=False)
    return path


def table(path: Path | str, **cfg: Any) -> Any:
    return build("dataset", {"name": "table", "cfg": {"path": str(path), **cfg}}, "data.dataset")


def test_a_csv_becomes_float32_features_and_label_encoded_classes(csv: Path, frame: Any) -> None:
    dataset = table(csv, target="outcome", groups="hospital", labels="band")
    assert isinstance(dataset, TableDataset)
    X, y = dataset.tensors
    # every column but target, groups and labels is a feature, in file order
    assert dataset.feature_names == ["age", "bmi"]
    assert X.dtype == torch.float32 and X.shape == (60, 2)
    np.testing.assert_allclose(X.numpy(), frame[["age", "bmi"]].to_numpy(dtype=np.float32))
    # text classes become 0..n-1 in sorted order, like iris's int64 targets; the names are kept
    assert y.dtype == torch.int64
    assert dataset.classes == ["sick", "well"]
    assert y.tolist() == [0 if o == "sick" else 1 for o in frame["outcome"]]
    assert dataset.groups.tolist() == frame["hospital"].tolist()
    assert dataset.labels.tolist() == frame["band"].tolist()
    assert dataset.path == csv.resolve()


def test_listed_features_keep_their_order(csv: Path) -> None:
    dataset = table(csv, features=["bmi", "age"], target="outcome")
    assert dataset.feature_names == ["bmi", "age"]
    assert dataset.tensors[0][0, 0].item() == pytest.approx(dataset.frame["bmi"][0])


def test_groups_from_the_table_keep_each_hospital_in_one_fold(csv: Path) -> None:
    config = DataConfig(
        dataset={
            "name": "table",
            "cfg": {"path": str(csv), "target": "outcome", "groups": "hospital", "labels": "band"},
        },
        splitter={"name": "group_kfold", "cfg": {"n_splits": 3}},
    )
    dm = CrossValDataModule.from_config(config)
    dm.setup()
    hospitals = np.asarray(dm.groups)
    for train, val in dm.folds:  # type: ignore[union-attr]
        assert not set(hospitals[train]) & set(hospitals[val])
    assert sorted(h for _, val in dm.folds for h in set(hospitals[val])) == [f"h{i}" for i in range(6)]  # type: ignore[union-attr]


def test_a_labels_column_stratifies_instead_of_the_target(csv: Path) -> None:
    config = DataConfig(
        dataset={
            "name": "table",
            "cfg": {"path": str(csv), "features": ["age"], "target": "outcome", "labels": "band"},
        },
        splitter={"name": "stratified_kfold", "cfg": {"n_splits": 4, "shuffle": True}},
    )
    dm = CrossValDataModule.from_config(config)
    dm.setup()
    assert dm.labels is not None and set(dm.labels.tolist()) == {"low", "mid", "high"}
    for _, val in dm.folds:  # type: ignore[union-attr]
        counts = np.unique(dm.labels[val], return_counts=True)[1]
        assert counts.tolist() == [5, 5, 5]  # 20 per band over 4 folds


def test_data_groups_may_name_any_column_of_the_table(csv: Path) -> None:
    config = DataConfig(
        dataset={"name": "table", "cfg": {"path": str(csv), "features": ["age", "bmi"], "target": "outcome"}},
        splitter={"name": "group_kfold", "cfg": {"n_splits": 3}},
        groups="hospital",
    )
    dm = CrossValDataModule.from_config(config)
    dm.setup()
    assert dm.groups is not None and len(set(dm.groups.tolist())) == 6


def test_without_a_target_samples_are_features_only(csv: Path) -> None:
    dataset = table(csv, features=["age", "bmi"])
    assert len(dataset.tensors) == 1 and dataset.classes is None


def test_numeric_targets_are_classes_when_integers_and_values_when_floats(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 4.0], "k": [2, 0, 1, 2], "v": [0.5, 1.5, 2.5, 3.0], "c": [1.0, 0.0, 1.0, 0.0]}
    ).to_csv(path, index=False)
    k = table(path, features=["x"], target="k")
    assert k.tensors[1].dtype == torch.int64 and k.tensors[1].tolist() == [2, 0, 1, 2] and k.classes is None
    v = table(path, features=["x"], target="v")
    assert v.tensors[1].dtype == torch.float32
    assert table(path, features=["x"], target="k", task="regression").tensors[1].dtype == torch.float32
    c = table(path, features=["x"], target="c", task="classification").tensors[1]
    assert c.dtype == torch.int64 and c.tolist() == [1, 0, 1, 0]
    with pytest.raises(ConfigError, match=r"fractional numbers \(e.g. 0.5\); use task: regression"):
        table(path, features=["x"], target="v", task="classification")


def test_given_classes_fix_the_codes_for_a_second_table(tmp_path: Path) -> None:
    path = tmp_path / "test.csv"
    pd.DataFrame({"x": [1, 2], "y": ["well", "well"]}).to_csv(path, index=False)
    dataset = table(path, target="y", classes=["sick", "well"])
    assert dataset.tensors[1].tolist() == [1, 1] and dataset.classes == ["sick", "well"]
    with pytest.raises(ConfigError, match=r"values that are not in classes: well\. classes: a, b") as info:
        table(path, target="y", classes=["a", "b"])
    assert info.value.path == "data.dataset.cfg.classes"


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("p.tsv", {"sep": "\t"}),
        ("p.csv.gz", {}),
        ("p.tsv.bz2", {"sep": "\t"}),
    ],
)
def test_the_format_comes_from_the_suffix(tmp_path: Path, frame: Any, name: str, kwargs: dict[str, Any]) -> None:
    path = tmp_path / name
    frame.to_csv(path, index=False, **kwargs)
    dataset = table(path, target="outcome", features=["age", "bmi"])
    assert len(dataset) == 60 and dataset.classes == ["sick", "well"]


def test_an_unknown_suffix_needs_format(tmp_path: Path, frame: Any) -> None:
    path = tmp_path / "patients.txt"
    frame.to_csv(path, index=False, sep=";")
    with pytest.raises(ConfigError, match=r"Cannot tell the format of 'patients.txt'") as info:
        table(path, target="outcome")
    assert info.value.path == "data.dataset.cfg.format"
    dataset = table(path, target="outcome", features=["age"], format="csv", read_options={"sep": ";"})
    assert len(dataset) == 60
    with pytest.raises(ConfigError, match=r"Unknown table format 'xlsx'. Formats: csv, tsv, parquet"):
        table(path, format="xlsx")


@needs_pyarrow
def test_parquet_reads_like_csv(tmp_path: Path, frame: Any, csv: Path) -> None:
    path = tmp_path / "patients.parquet"
    frame.to_parquet(path)
    from_parquet = table(path, target="outcome", groups="hospital", labels="band")
    from_csv = table(csv, target="outcome", groups="hospital", labels="band")
    for a, b in zip(from_parquet.tensors, from_csv.tensors, strict=True):
        assert torch.equal(a, b)
    assert from_parquet.classes == from_csv.classes


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path, frame: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "patients.parquet"
    path.write_bytes(b"PAR1")  # never read: the engine is missing
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    monkeypatch.setitem(sys.modules, "fastparquet", None)
    with pytest.raises(LcvError, match=r"needs pyarrow, which is not installed: pip install 'lcv-data\[parquet\]'"):
        table(path, target="outcome")


def test_without_pandas_the_error_names_the_extra(csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(LcvError, match=r"pip install 'lcv-data\[pandas\]'"):
        table(csv, target="outcome")


def test_a_relative_path_is_relative_to_the_working_directory(
    csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert len(table("patients.csv", target="outcome", features=["age"])) == 60
    monkeypatch.chdir(tmp_path.parent)
    with pytest.raises(ConfigError, match=r"No file 'patients.csv' \(relative to the working directory .*not from the"):
        table("patients.csv", target="outcome")


# -- each check, with the key it names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cfg", "key", "message"),
    [
        ({"features": ["age", "bmii"]}, "features", r"no column 'bmii' \(did you mean 'bmi'\?\)\. Columns: age, bmi, "),
        (
            {"features": ["agge", "bmii"]},
            "features",
            r"no columns 'agge' \(did you mean 'age'\?\), 'bmii' \(did you mean 'bmi'\?\)",
        ),
        ({"target": "outcom"}, "target", r"no column 'outcom' \(did you mean 'outcome'\?\)"),
        ({"target": "outcome", "groups": "hospitl"}, "groups", r"no column 'hospitl' \(did you mean 'hospital'\?\)"),
        ({"target": "outcome", "labels": "bnd"}, "labels", r"no column 'bnd' \(did you mean 'band'\?\)"),
        ({"target": "outcome", "features": ["age", "outcome"]}, "features", r"target 'outcome' is also listed"),
        ({"target": "outcome", "features": ["age", "age"]}, "features", r"lists age more than once"),
        ({"target": "outcome", "features": []}, "features", r"no column left to use as a feature"),
    ],
)
def test_a_wrong_column_names_the_key_and_the_closest_columns(
    csv: Path, cfg: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        table(csv, **cfg)
    assert info.value.path == f"data.dataset.cfg.{key}"
    assert f"(at data.dataset.cfg.{key})" in str(info.value)


def test_a_misspelt_argument_gets_the_valid_ones(csv: Path) -> None:
    with pytest.raises(ConfigError, match=r"Unknown argument 'featurs'.*Did you mean 'features'\?") as info:
        table(csv, featurs=["age"])
    assert info.value.path == "data.dataset.cfg.featurs"


def test_a_text_feature_is_refused_with_its_column(csv: Path) -> None:
    with pytest.raises(ConfigError, match=r"Features must be numbers.*'hospital' \((object|str), e.g. 'h0'\)") as info:
        table(csv, target="outcome", features=["age", "hospital"])
    assert info.value.path == "data.dataset.cfg.features"
    assert "'age'" not in str(info.value)


def test_a_placeholder_in_a_numeric_column_is_named_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text("age,y\n31,a\n?,b\n40,a\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'age' holds 1 values that are not numbers, e.g. '\?'.*na_values: \['\?'\]"):
        table(path, target="y")
    assert len(table(path, target="y", read_options={"na_values": ["?"]}, drop_missing=True)) == 2


def test_rows_with_missing_values_are_counted_and_refused(tmp_path: Path, frame: Any) -> None:
    frame = frame.astype({"age": float})
    frame.loc[[3, 7], "bmi"] = np.nan
    frame.loc[9, "age"] = np.inf
    frame.loc[11, "hospital"] = None
    frame.loc[12, "outcome"] = None
    path = tmp_path / "gaps.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ConfigError, match=r"4 of 60 rows of gaps.csv have a missing or infinite value") as info:
        table(path, target="outcome", features=["age", "bmi"])  # hospital (row 11) is not used
    assert "(age: 1, bmi: 2, outcome: 1; rows 3, 7, 9, 12," in str(info.value)
    assert "drop_missing: true" in str(info.value) and info.value.path == "data.dataset.cfg"
    with pytest.warns(UserWarning, match=r"5 of 60 rows .*left out \(drop_missing: true\)"):
        dataset = table(path, target="outcome", groups="hospital", labels="band", drop_missing=True)
    assert len(dataset) == 55 and len(dataset.groups) == 55
    assert torch.isfinite(dataset.tensors[0]).all()


def test_an_unreadable_file_names_the_path_key(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_text("not parquet", encoding="utf-8")
    with pytest.raises((ConfigError, LcvError), match=r"broken.parquet"):
        table(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"Cannot read empty.csv as csv: EmptyDataError") as info:
        table(empty)
    assert info.value.path == "data.dataset.cfg.path"


def test_table_is_registered_as_a_dataset_source() -> None:
    from lcv_config import DATAMODULES, list_plugins

    assert "table" in [plugin.name for plugin in list_plugins(DATAMODULES)]


class TestTableDatasetContract(DatasetContract):
    """The table source passes the conformance suite every dataset source passes."""

    @pytest.fixture(autouse=True)
    def _file(self, csv: Path) -> None:
        self.path = csv

    def make_dataset(self) -> Any:
        return table(self.path, target="outcome", groups="hospital", labels="band")
