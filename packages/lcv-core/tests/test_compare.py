"""Comparing runs: corrected t-test, baycomp, Holm, repeated CV, ``CVResult.compare`` and ``lcv compare``."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import baycomp
import numpy as np
import pytest
from scipy import stats

from lcv_config.cli import main
from lcv_core.results import CVResult, FoldsDifferError, compare_scores, corrected_ttest, holm

# Two models' accuracy on the same 5 folds (A is a little better on 4 of 5) and on 2 repeats of 5 folds.
A5 = [0.951, 0.917, 0.925, 0.944, 0.928]
B5 = [0.944, 0.915, 0.916, 0.941, 0.930]
A10 = A5 + [0.936, 0.931, 0.948, 0.921, 0.940]
B10 = B5 + [0.930, 0.925, 0.941, 0.922, 0.931]


def _hand_corrected_t(a: list[float], b: list[float], k: int, r: int, ratio: float) -> tuple[float, float]:
    """t and two-sided p from the formula: t = mean(d) / sqrt((1/(k·R) + n_test/n_train) · var(d)), df = k·R − 1."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    n = k * r
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1)
    t = mean / math.sqrt((1 / n + ratio) * var)
    return t, 2 * (1 - stats.t.cdf(abs(t), n - 1))


def test_corrected_ttest_matches_the_formula_for_k_fold() -> None:
    result = corrected_ttest(A5, B5)
    t, p = _hand_corrected_t(A5, B5, k=5, r=1, ratio=1 / 4)
    assert result.df == 4
    assert result.t == pytest.approx(t, rel=1e-12)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    assert result.mean == pytest.approx(statistics.fmean(A5) - statistics.fmean(B5))
    # The naive paired t-test over folds divides the variance by k only: same data, a much smaller p-value.
    naive = stats.ttest_rel(A5, B5).pvalue
    assert naive < result.p_value
    assert (round(t, 4), round(p, 4), round(naive, 4)) == (1.31, 0.2604, 0.1209)


def test_corrected_ttest_matches_the_formula_for_repeated_k_fold() -> None:
    result = corrected_ttest(A10, B10, n_repeats=2, test_train_ratio=0.25)
    t, p = _hand_corrected_t(A10, B10, k=5, r=2, ratio=0.25)
    assert result.df == 9
    assert (result.t, result.p_value) == (pytest.approx(t, rel=1e-12), pytest.approx(p, rel=1e-9))
    # n_test/n_train defaults to 1/(k−1) with k the folds per repeat, not per run
    assert corrected_ttest(A10, B10, n_repeats=2).t == pytest.approx(t, rel=1e-12)


def test_corrected_ttest_with_a_constant_difference_and_bad_input() -> None:
    same = corrected_ttest(A5, A5)
    assert same.p_value == 1.0 and math.isnan(same.t)
    shifted = corrected_ttest([x + 0.01 for x in A5], A5)
    assert shifted.p_value == 0.0 and shifted.t == math.inf
    with pytest.raises(Exception, match="do not divide into 3 repeats"):
        corrected_ttest(A10, B10, n_repeats=3)
    with pytest.raises(Exception, match="as many folds on both sides"):
        corrected_ttest(A5, B10)
    with pytest.raises(Exception, match="NaN or infinite"):
        corrected_ttest([math.nan, *A5[1:]], B5)


@pytest.mark.parametrize(("a", "b", "runs"), [(A5, B5, 1), (A10, B10, 2)])
@pytest.mark.parametrize("rope", [0.0, 0.005, 0.01])
def test_bayesian_probabilities_are_baycomps(a: list[float], b: list[float], runs: int, rope: float) -> None:
    c = compare_scores(a, b, mode="max", rope=rope, n_repeats=runs)
    # baycomp tests y − x: with x = B and y = A, "right" is A − B > rope
    expected = baycomp.two_on_single(np.array(b), np.array(a), rope=rope, runs=runs)
    if rope == 0:
        left, right = expected
        equivalent = 0.0
    else:
        left, equivalent, right = expected
    assert (c.p_b_better, c.p_equivalent, c.p_a_better) == pytest.approx((left, equivalent, right), abs=1e-12)
    assert c.p_a_better + c.p_equivalent + c.p_b_better == pytest.approx(1.0)
    # for a loss (lower is better) the same numbers swap sides
    loss = compare_scores(a, b, mode="min", rope=rope, n_repeats=runs)
    assert (loss.p_a_better, loss.p_b_better) == pytest.approx((left, right), abs=1e-12)


def test_bayesian_test_on_the_k_fold_example() -> None:
    c = compare_scores(A5, B5, rope=0.01)
    assert (round(c.p_a_better, 3), round(c.p_equivalent, 3), round(c.p_b_better, 3)) == (0.05, 0.946, 0.004)
    assert "P(A better) = 0.050" in str(c)


def test_holm_against_a_hand_computation() -> None:
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.2]) == pytest.approx([0.2])
    adjusted = holm([0.01, math.nan, 0.02])
    assert math.isnan(adjusted[1]) and adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.02)


# ------------------------------------------------------------------------------------------- CVResult


def _history(scores: list[float]) -> list[list[dict[str, float]]]:
    return [[{"val_acc": s - 0.1, "val_loss": 1.0}, {"val_acc": s, "val_loss": 0.5}] for s in scores]


def _write_folds(path: Path, n_folds: int, n: int = 100, shift: int = 0, splitter: str | None = None) -> None:
    """Write a folds.json in lcv-data's format: fold i validates on a contiguous block; ``shift`` moves fold 1's."""
    size = n // n_folds
    folds = []
    for i in range(n_folds):
        start = (i * size + (shift if i == 1 else 0)) % n
        val = [(start + j) % n for j in range(size)]
        folds.append({"train": [j for j in range(n) if j not in set(val)], "val": val})
    data = {"splitter": splitter or f"KFold(n_splits={n_folds})", "n_samples": n, "folds": folds, "test": None}
    path.mkdir(parents=True, exist_ok=True)
    (path / "folds.json").write_text(json.dumps(data), encoding="utf-8")


def test_cvresult_compare_on_the_same_folds(tmp_path: Path) -> None:
    for name in ("a", "b"):
        _write_folds(tmp_path / name, 5)
    a = CVResult(_history(A5), monitor="val_acc", mode="max", run_dir=tmp_path / "a")
    b = CVResult(_history(B5), monitor="val_acc", mode="max", run_dir=tmp_path / "b")
    c = a.compare(b)
    t, p = _hand_corrected_t(A5, B5, k=5, r=1, ratio=0.25)
    assert c.metric == "val_acc" and c.mode == "max"
    assert (c.difference, c.t, c.p_value) == pytest.approx((statistics.fmean(A5) - statistics.fmean(B5), t, p))
    assert c.p_a_better == pytest.approx(compare_scores(A5, B5).p_a_better)
    assert c.p_equivalent > 0.9  # within ±0.01 accuracy
    assert a.compare(b, rope=0.0).p_equivalent == 0.0


def test_cvresult_compare_refuses_different_folds_and_names_them(tmp_path: Path) -> None:
    _write_folds(tmp_path / "a", 5)
    _write_folds(tmp_path / "b", 5, shift=3)  # fold 1 validates on rows 23..42 instead of 20..39
    a = CVResult(_history(A5), monitor="val_acc", mode="max", run_dir=tmp_path / "a")
    b = CVResult(_history(B5), monitor="val_acc", mode="max", run_dir=tmp_path / "b")
    with pytest.raises(FoldsDifferError, match=r"folds: fold 1 differs.*pass independent=True"):
        a.compare(b)
    c = a.compare(b, independent=True)
    assert c.independent and c.p_value == pytest.approx(corrected_ttest(A5, B5).p_value)


def test_cvresult_compare_without_recorded_folds_says_so() -> None:
    a = CVResult(_history(A5), monitor="val_loss", mode="min")
    b = CVResult(_history(B5), monitor="val_loss", mode="min")
    c = a.compare(b, metric="val_acc")
    assert c.mode == "max"  # not the monitor: an accuracy is better high
    assert any("could not be checked" in n for n in c.notes)


def test_repeated_cv_result_knows_the_repeat_of_every_fold(tmp_path: Path) -> None:
    result = CVResult(_history(A10), monitor="val_acc", mode="max", n_repeats=2)
    assert result.repeats == [0] * 5 + [1] * 5
    acc = result.metric("val_acc")
    means = [statistics.fmean(A5), statistics.fmean(A10[5:])]
    assert acc.mean == pytest.approx(statistics.fmean(A10))
    assert acc.repeat_means == pytest.approx(means)
    assert acc.between_repeat_std == pytest.approx(statistics.stdev(means))
    pooled = math.sqrt((statistics.variance(A5) + statistics.variance(A10[5:])) / 2)
    assert acc.within_repeat_std == pytest.approx(pooled)
    summary = result.to_dict()["summary"]["val_acc"]
    assert result.to_dict()["n_repeats"] == 2
    assert summary["between_repeat_std"] == pytest.approx(statistics.stdev(means))
    text = result.summary(print_table=False)
    assert "2×5-fold CV" in text and "repeat 0 mean" in text and "repeat 1 mean" in text
    assert "std between repeats" in text and f"{statistics.stdev(means):.4f}" in text
    assert "std within repeats" in text and f"{pooled:.4f}" in text

    # the repeats can come from the run directory's folds.json, as lcv-data writes it for RepeatedKFold
    _write_folds(tmp_path, 10, splitter="RepeatedKFold(n_repeats=2, n_splits=5, random_state=0)")
    from_file = CVResult(_history(A10), monitor="val_acc", mode="max", run_dir=tmp_path)
    assert from_file.repeats == result.repeats
    assert from_file.compare(CVResult(_history(B10), "val_acc", "max", n_repeats=2)).ttest.df == 9


def test_one_repeat_keeps_the_plain_summary() -> None:
    result = CVResult(_history(A5), monitor="val_acc", mode="max")
    assert result.repeats == [0] * 5
    assert "between_repeat_std" not in result.to_dict()["summary"]["val_acc"]
    assert "repeat" not in result.summary(print_table=False)
    with pytest.raises(Exception, match="do not divide into n_repeats=2"):
        _ = CVResult(_history(A5), monitor="val_acc", n_repeats=2).repeats


# ------------------------------------------------------------------------------------------- lcv compare


_RUNS: dict[str, Path] = {}


@pytest.fixture
def two_runs(
    tmp_path_factory: pytest.TempPathFactory, fold_data: Any, tiny: Any, trainer_kwargs: dict[str, Any]
) -> tuple[Path, Path]:
    """Two real 5-fold runs of the tiny model (SGD lr 0.1 and 0.5) on the same folds, with their folds.json.

    Trained once per session (the conftest fixtures are function-scoped, so the runs are cached here).
    """
    from lcv_core.trainer import CrossValidationTrainer

    if not _RUNS:
        root = tmp_path_factory.mktemp("runs")
        for name, lr in (("slow", 0.1), ("fast", 0.5)):
            run_dir = root / name
            data = fold_data()
            trainer = CrossValidationTrainer(**{**trainer_kwargs, "default_root_dir": str(run_dir)})
            trainer.fit(tiny, data, model_kwargs={"lr": lr})
            folds = [{"train": tr, "val": va} for tr, va in zip(data.train_indices, data.val_indices, strict=True)]
            folds_json = {"splitter": "KFold(n_splits=5)", "n_samples": 150, "folds": folds, "test": None}
            (run_dir / "folds.json").write_text(json.dumps(folds_json), encoding="utf-8")
            _RUNS[name] = run_dir
    return _RUNS["slow"], _RUNS["fast"]


def test_lcv_compare_prints_the_table(two_runs: tuple[Path, Path], tmp_path: Path, capsys: Any) -> None:
    slow, fast = two_runs
    plot = tmp_path / "posterior.png"
    out_json = tmp_path / "compare.json"
    code = main(["compare", str(slow), str(fast), "--metric", "val_acc", "--plot", str(plot), "--json", str(out_json)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"A = {slow}" in out and f"B = {fast}" in out
    for header in ("mean A", "A − B", "t (df)", "P(A better)", "P(equiv.)", "P(B better)", "val_acc (max)"):
        assert header in out
    report = json.loads(out_json.read_text(encoding="utf-8"))
    (c,) = report["comparisons"]
    metrics = [json.loads((d / "metrics.json").read_text(encoding="utf-8")) for d in two_runs]
    a, b = (m["summary"]["val_acc"]["per_fold"] for m in metrics)
    t, p = _hand_corrected_t(a, b, k=5, r=1, ratio=30 / 120)
    assert (c["corrected_t"], c["p_value"], c["df"]) == (pytest.approx(t), pytest.approx(p), 4)
    assert f"{c['difference']:+.4f}" in out and f"{p:.4f}" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lcv_compare_defaults_to_the_monitor_and_ranks_three_runs(two_runs: tuple[Path, Path], capsys: Any) -> None:
    slow, fast = two_runs
    assert main(["compare", str(slow), str(fast), str(slow)]) == 0
    out = capsys.readouterr().out
    assert "val_loss (min): every pair" in out and "p Holm" in out
    assert "ranking by mean" in out and "A vs C" in out


def test_lcv_compare_on_different_folds_exits_2_naming_them(
    two_runs: tuple[Path, Path], tmp_path: Path, capsys: Any
) -> None:
    slow, fast = two_runs
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "metrics.json").write_bytes((fast / "metrics.json").read_bytes())
    folds = json.loads((fast / "folds.json").read_text(encoding="utf-8"))
    folds["folds"][3]["val"][0], folds["folds"][3]["train"][0] = (
        folds["folds"][3]["train"][0],
        folds["folds"][3]["val"][0],
    )
    (moved / "folds.json").write_text(json.dumps(folds), encoding="utf-8")
    assert main(["compare", str(slow), str(moved)]) == 2
    err = capsys.readouterr().err
    assert "A and B were validated on different folds: fold 3 differs" in err and "--independent" in err
    assert main(["compare", str(slow), str(moved), "--independent"]) == 0


def test_lcv_compare_bad_input_exits_2(two_runs: tuple[Path, Path], tmp_path: Path, capsys: Any) -> None:
    slow, _ = two_runs
    assert main(["compare", str(slow)]) == 2
    assert "at least two run directories" in capsys.readouterr().err
    assert main(["compare", str(slow), str(tmp_path)]) == 2
    assert "has no metrics.json" in capsys.readouterr().err
    assert main(["compare", str(slow), str(slow), "--metric", "val_f1"]) == 2
    assert "has no metric 'val_f1'; it has: train_loss, val_acc, val_loss" in capsys.readouterr().err


def test_a_folds_file_in_another_format_means_one_repeat(tmp_path: Path) -> None:
    (tmp_path / "folds.json").write_text('{"splits": "my own format"}', encoding="utf-8")
    result = CVResult(_history(A5), monitor="val_acc", mode="max", run_dir=tmp_path)
    assert result.repeats == [0] * 5 and result.to_dict()["n_repeats"] == 1
