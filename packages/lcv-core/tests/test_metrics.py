"""Fold metrics: batch-size-weighted epoch values, fold mean and std, CVResult, run-directory files."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lcv_core import Callback, CrossValidationTrainer
from lcv_core.core.statistics import sample_std


class MeanRecorder(Callback):
    def __init__(self) -> None:
        self.metrics: list[dict[str, float]] = []

    def on_validation_end(self, *, epoch: int, metrics: dict[str, float], **kwargs: Any) -> None:
        self.metrics.append(dict(metrics))


def test_fold_mean_and_sample_std_reach_on_validation_end(data, tiny, trainer_kwargs) -> None:
    rec = MeanRecorder()
    result = CrossValidationTrainer(**trainer_kwargs, callbacks=[rec]).fit(tiny, data)
    assert len(rec.metrics) == 2
    for epoch, m in enumerate(rec.metrics):
        per_fold = [m[f"fold_{i}/val_loss"] for i in range(5)]
        assert per_fold == result.fold_values("val_loss", epoch)
        assert m["cv/val_loss_mean"] == pytest.approx(sum(per_fold) / 5)
        mean = sum(per_fold) / 5
        assert m["cv/val_loss_std"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in per_fold) / 4))
        assert "cv/train_loss_mean" in m and "cv/val_acc_std" in m


@pytest.mark.parametrize("offset", [0.0, 1.0, 1e8])
def test_the_fold_std_is_statistics_stdev_to_the_last_digits(offset: float) -> None:
    # the std of every fold metric after every epoch: a cheap two-pass sum, checked against the exact stdlib one,
    # also where the scores sit far from zero (the naive sum-of-squares formula loses every digit at 1e8)
    gen = torch.Generator().manual_seed(0)
    for n in (2, 3, 5, 10):
        for _ in range(50):
            values = [offset + v for v in (torch.rand(n, generator=gen, dtype=torch.float64) * 0.1).tolist()]
            assert sample_std(values) == pytest.approx(statistics.stdev(values), rel=1e-12, abs=0.0)
    assert sample_std([0.5]) == 0.0
    assert sample_std([0.3, 0.3, 0.3]) == 0.0
    assert math.isnan(sample_std([0.1, math.nan, 0.2])) and math.isnan(sample_std([0.1, math.inf]))


def test_cvresult_best_epoch_summary_and_exports(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    result = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3}).fit(tiny(lr=0.5), data)
    curve = [statistics.fmean(h[e]["val_loss"] for h in result.history) for e in range(3)]
    assert result.best_epoch == curve.index(min(curve))
    acc = result.metric("val_acc")
    values = [h[result.best_epoch]["val_acc"] for h in result.history]
    assert acc.per_fold == values
    assert acc.mean == pytest.approx(statistics.fmean(values))
    assert acc.std == pytest.approx(statistics.stdev(values))
    lo, hi = acc.ci95
    assert lo < acc.mean < hi
    assert hi - acc.mean == pytest.approx(2.776445 * acc.std / math.sqrt(5), rel=1e-4)  # t(0.975, df=4)

    doc = json.loads(result.to_json(tmp_path / "m.json"))
    assert json.loads((tmp_path / "m.json").read_text()) == doc
    assert doc["best_epoch"] == result.best_epoch and doc["n_folds"] == 5 and doc["n_epochs"] == 3
    assert doc["summary"]["val_acc"]["per_fold"] == values
    assert doc["history"][2][1]["val_loss"] == result.history[2][1]["val_loss"]

    frame = result.to_frame()
    assert len(frame) == 15 and {"fold", "epoch", "val_loss", "val_acc", "train_loss"} <= set(frame.columns)
    row = frame[(frame.fold == 3) & (frame.epoch == 2)].iloc[0]
    assert row["val_acc"] == result.history[3][2]["val_acc"]

    result.write_csv(tmp_path / "m.csv")
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert len(rows) == 15
    assert float(rows[-1]["val_loss"]) == result.history[4][2]["val_loss"]

    text = result.summary(print_table=False)
    assert "mean ± std" in text
    for v in values:
        assert f"{v:.4f}" in text
    assert str(acc) in text


def test_validation_value_is_weighted_by_batch_size(fold_data, tiny, trainer_kwargs) -> None:
    data = fold_data(val_batch_size=16)  # 30 validation samples per fold: batches of 16 and 14
    seen: dict[int, list[tuple[float, int]]] = {}

    class PerBatch(tiny):  # type: ignore[misc, valid-type]
        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            loss = nn.functional.cross_entropy(self(x), y)
            seen.setdefault(id(self), []).append((float(loss), len(y)))
            self.log("val_loss", loss)

    result = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 1}).fit(PerBatch, data)
    for fold, batches in enumerate(seen.values()):
        assert [n for _, n in batches] == [16, 14]
        by_hand = sum(v * n for v, n in batches) / 30
        assert result.history[fold][0]["val_loss"] == pytest.approx(by_hand, rel=1e-6)
        assert by_hand != pytest.approx(sum(v for v, _ in batches) / 2, rel=1e-6)


def test_log_on_step_log_dict_reduce_fx_and_metric_objects(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    computed: list[float] = []

    class Logging(tiny):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.acc = MulticlassAccuracy(num_classes=3, average="micro")

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = super().training_step(batch, batch_idx)
            self.log("lr_step_only", 0.1, on_step=True, on_epoch=False)
            self.log_dict({"one": 1.0, "batch": float(batch_idx)}, reduce_fx="max")
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.acc.update(self(x), y)
            self.log("val_metric_acc", self.acc)
            self.log("val_count", float(len(y)), reduce_fx="sum")
            super().validation_step(batch, batch_idx)

        def on_validation_epoch_end(self) -> None:
            computed.append(float(self.acc.compute()))  # before the loop computes and resets it

    result = CrossValidationTrainer(**trainer_kwargs, default_root_dir=str(tmp_path)).fit(Logging, data)
    row = result.history[0][1]
    assert "lr_step_only" not in row
    assert row["one"] == 1.0 and row["batch"] == 7.0  # 120 samples / 16 = 8 batches, max index 7
    assert row["val_count"] == 30.0
    # the Metric object is computed per epoch and reset: epoch 2's value is not an average with epoch 1's
    assert result.history[0][0]["val_metric_acc"] == pytest.approx(computed[0])
    assert result.history[0][1]["val_metric_acc"] == pytest.approx(computed[5])
    assert row["val_metric_acc"] == pytest.approx(row["val_acc"], abs=1e-6)
    logged = (tmp_path / "logs" / "csv" / "metrics.csv").read_text()
    assert "fold_0/lr_step_only_step" in logged


def test_run_directory_files_hold_fold_and_cv_keys(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    result = CrossValidationTrainer(**trainer_kwargs, default_root_dir=str(tmp_path)).fit(tiny, data)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["history"] == result.history
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [(r["fold"], r["epoch"]) for r in rows][:3] == [("0", "0"), ("0", "1"), ("1", "0")]
    logger_csv = list(tmp_path.rglob("metrics.csv"))
    logger_file = next(p for p in logger_csv if p != tmp_path / "metrics.csv")
    log_rows = list(csv.DictReader(logger_file.open()))
    epoch_rows = [r for r in log_rows if r.get("cv/val_loss_mean")]
    assert len(epoch_rows) == 2
    assert float(epoch_rows[1]["fold_2/val_loss"]) == pytest.approx(result.history[2][1]["val_loss"])
    assert float(epoch_rows[1]["cv/val_loss_mean"]) == pytest.approx(result.curve("val_loss")[1])


def test_nothing_is_written_without_a_run_directory(data, tiny, trainer_kwargs, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 1}).fit(tiny, data)
    assert list(tmp_path.iterdir()) == []


def test_float_value_and_non_scalar_tensor(data, tiny, trainer_kwargs) -> None:
    class Bad(tiny):  # type: ignore[misc, valid-type]
        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.log("val_vec", torch.ones(3))

    from lcv_config import LcvError

    with pytest.raises(LcvError, match=r"self.log\('val_vec', ...\) needs a scalar; got a tensor of shape \(3,\)"):
        CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 1}).fit(Bad, data)


def test_check_val_every_n_epoch_decides_only_on_validated_epochs(data, tiny, trainer_kwargs) -> None:
    rec = MeanRecorder()
    result = CrossValidationTrainer(
        **{**trainer_kwargs, "max_epochs": 3, "limit_train_batches": 1}, check_val_every_n_epoch=2, callbacks=[rec]
    ).fit(tiny, data)
    assert [("val_loss" in row) for row in result.history[0]] == [False, True, True]  # epoch 2, and the last one
    assert len(rec.metrics) == 2 and all("cv/val_loss_mean" in m for m in rec.metrics)
    assert result.best_epoch in (1, 2)


@pytest.mark.parametrize(
    ("df", "expected"), [(1, 12.706205), (4, 2.776445), (30, 2.042272), (40, 2.021075), (1000, 1.962339)]
)
def test_t_quantile_of_the_95_percent_interval(df: int, expected: float) -> None:
    from lcv_core.results import t975

    assert t975(df) == pytest.approx(expected, abs=2e-6)


def test_long_epochs_reduce_exactly_across_flushes() -> None:
    from lcv_core.core.metric_log import FoldMetricLog

    log = FoldMetricLog()
    log.start("train")
    n = 2 * FoldMetricLog.FLUSH_EVERY + 37  # values are folded into the running sums every FLUSH_EVERY
    values = torch.linspace(0.0, 3.0, n, dtype=torch.float64)
    sizes = [1 + (i % 7) for i in range(n)]
    for value, size in zip(values, sizes, strict=True):
        log.batch_size = size
        log.log("loss", value)
        log.log("worst", value.float(), reduce_fx="max")
        log.log("count", torch.tensor(size), reduce_fx="sum")
    epoch = log.reduce()
    weights = torch.tensor(sizes, dtype=torch.float64)
    assert epoch["loss"] == pytest.approx(float((values * weights).sum() / weights.sum()), rel=1e-6)
    assert epoch["worst"] == pytest.approx(3.0)
    assert epoch["count"] == sum(sizes)


def test_one_metric_logged_with_two_reductions_is_refused(data, tiny, trainer_kwargs) -> None:
    class Mixed(tiny):  # type: ignore[misc, valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("peak", torch.tensor(float(batch_idx)), reduce_fx="max" if batch_idx == 0 else "mean")
            return super().training_step(batch, batch_idx)

    from lcv_config import LcvError

    with pytest.raises(LcvError, match=r"self.log\('peak', ...\) was logged with reduce_fx='max' and then 'mean'"):
        CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 1}).fit(Mixed, data)
