"""Compare cross-validated runs scored on the same folds: the corrected resampled t-test and the Bayesian test.

Fold scores of one run are correlated (any two folds share most of their training data), so a plain t-test over
folds underestimates the variance of the mean and finds differences that are not there. Two tests that account for
it:

- the **corrected resampled t-test** (Nadeau & Bengio 2003; Bouckaert & Frank 2004 for R×k repeated CV): the
  variance of the mean fold difference is ``(1/(k·R) + n_test/n_train)·s²`` instead of ``s²/(k·R)``, with
  ``k·R − 1`` degrees of freedom; the p-value comes from ``scipy.stats.t``;
- the **Bayesian correlated t-test** (Benavoli et al. 2017), computed by ``baycomp``: the posterior probabilities
  that A is better, that the two are practically equivalent (their difference lies within ``±rope``), and that B is
  better.

With more than two runs every pair is tested and the p-values are adjusted with Holm's step-down method.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcv_config import LcvError

DEFAULT_ROPE = 0.01
"""Half-width of the region of practical equivalence: one percentage point of an accuracy-like metric."""

_LOWER_IS_BETTER = re.compile(r"loss|error|mse|mae|rmse|nll|perplexity", re.IGNORECASE)


class FoldsDifferError(LcvError):
    """Two runs were validated on different folds, so their fold scores cannot be paired."""


@dataclass(frozen=True)
class FoldSplit:
    """The folds of one run as ``folds.json`` records them: each fold's training and validation indices."""

    splitter: str
    """The splitter's repr (``StratifiedKFold(n_splits=5, random_state=0, shuffle=True)``)."""
    n_samples: int
    """The size of the dataset the folds index."""
    folds: list[tuple[list[int], list[int]]]
    """Per fold, the training and the validation indices."""

    @classmethod
    def read(cls, path: str | Path) -> FoldSplit:
        """Read a ``folds.json`` written by a datamodule's ``save_folds`` (lcv-data's format)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            folds = [(list(f["train"]), list(f["val"])) for f in data["folds"]]
            return cls(str(data.get("splitter", "")), int(data.get("n_samples", -1)), folds)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LcvError(f"Cannot read the folds of {path}: {exc}.") from exc

    @property
    def n_repeats(self) -> int:
        """How many times the splitter repeated its k folds (``n_repeats=`` of a repeated splitter, else 1)."""
        match = re.search(r"\bn_repeats=(\d+)", self.splitter)
        r = int(match.group(1)) if match else 1
        return r if r >= 1 and len(self.folds) % r == 0 else 1

    @property
    def test_train_ratio(self) -> float:
        """The mean validation size over the mean training size: ``n_test/n_train`` of the variance correction."""
        n_train = statistics.fmean(len(tr) for tr, _ in self.folds)
        n_test = statistics.fmean(len(va) for _, va in self.folds)
        return n_test / n_train

    def differing_folds(self, other: FoldSplit) -> list[int]:
        """Return the folds (0-based) whose training or validation indices differ from ``other``'s."""
        n = max(len(self.folds), len(other.folds))
        return [
            i
            for i in range(n)
            if i >= len(self.folds)
            or i >= len(other.folds)
            or sorted(self.folds[i][1]) != sorted(other.folds[i][1])
            or sorted(self.folds[i][0]) != sorted(other.folds[i][0])
        ]


def repeats_of(n_folds: int, n_repeats: int) -> list[int]:
    """Return the repeat (0-based) of each of ``n_folds`` folds that a repeated splitter yields repeat by repeat."""
    k = n_folds // n_repeats
    return [i // k for i in range(n_folds)]


def check_same_folds(
    a: FoldSplit | None, b: FoldSplit | None, names: tuple[str, str], fix: str = "pass --independent"
) -> list[str]:
    """Raise `FoldsDifferError` naming the differing folds when ``a`` and ``b`` differ.

    Returns:
        Notes for the report: what could not be checked because a run has no recorded folds.
    """
    if a is None or b is None:
        missing = " and ".join(n for n, s in zip(names, (a, b), strict=True) if s is None)
        return [f"{missing} recorded no folds (folds.json): the folds could not be checked to be the same."]
    problems = []
    if a.n_samples != b.n_samples:
        problems.append(f"{names[0]} split {a.n_samples} samples, {names[1]} {b.n_samples}")
    if len(a.folds) != len(b.folds):
        problems.append(f"{names[0]} has {len(a.folds)} folds, {names[1]} {len(b.folds)}")
    differing = a.differing_folds(b)
    if differing:
        listed = ", ".join(str(i) for i in differing)
        problems.append(f"folds {listed} differ" if len(differing) > 1 else f"fold {listed} differs")
    if not problems:
        return []
    splitters = "" if a.splitter == b.splitter else f" ({names[0]}: {a.splitter}; {names[1]}: {b.splitter})"
    raise FoldsDifferError(
        f"{names[0]} and {names[1]} were validated on different folds: {'; '.join(problems)}{splitters}. The paired "
        f"tests compare fold i of one run with fold i of the other. Rerun one with the other's splitter, seed and "
        f"data, or {fix} if the runs are independent (a valid but less powerful comparison)."
    )


@dataclass(frozen=True)
class CorrectedTTest:
    """The corrected resampled t-test of the mean fold difference."""

    mean: float
    """The mean of the per-fold differences A − B."""
    se: float
    """The corrected standard error of that mean: ``sqrt((1/(k·R) + n_test/n_train)·s²)``."""
    t: float
    """The t statistic ``mean/se``."""
    df: int
    """Degrees of freedom, ``k·R − 1``."""
    p_value: float
    """The two-sided p-value from Student's t with ``df`` degrees of freedom."""


def corrected_ttest(
    a: Sequence[float], b: Sequence[float], *, n_repeats: int = 1, test_train_ratio: float | None = None
) -> CorrectedTTest:
    """Run the corrected resampled t-test on paired fold scores (Nadeau & Bengio 2003; Bouckaert & Frank 2004).

    Args:
        a: Run A's score on each fold, repeat by repeat.
        b: Run B's score on the same folds.
        n_repeats: R of R×k repeated cross-validation.
        test_train_ratio: ``n_test/n_train``; default ``1/(k−1)``, exact for k-fold.
    """
    from scipy import stats

    n = _check_pair(a, b, n_repeats)
    k = n // n_repeats
    ratio = 1 / (k - 1) if test_train_ratio is None else test_train_ratio
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean = statistics.fmean(d)
    var = statistics.variance(d) * (1 / n + ratio)
    if var == 0:  # every fold differs by the same amount: no spread to test against
        return CorrectedTTest(
            mean, 0.0, math.nan if mean == 0 else math.copysign(math.inf, mean), n - 1, float(mean == 0)
        )
    se = math.sqrt(var)
    t = mean / se
    return CorrectedTTest(mean, se, t, n - 1, float(2 * stats.t.sf(abs(t), n - 1)))


def bayesian_ttest(
    a: Sequence[float], b: Sequence[float], *, rope: float = DEFAULT_ROPE, n_repeats: int = 1
) -> tuple[float, float, float]:
    """Return baycomp's correlated t-test posterior ``P(A − B < −rope), P(|A − B| ≤ rope), P(A − B > rope)``."""
    import numpy as np

    baycomp = _baycomp()
    _check_pair(a, b, n_repeats)
    # baycomp tests y − x: pass B as x and A as y so that "right" means A − B > rope
    probs = baycomp.two_on_single(np.asarray(b, dtype=float), np.asarray(a, dtype=float), rope=rope, runs=n_repeats)
    if rope == 0:
        left, right = probs
        return float(left), 0.0, float(right)
    left, equivalent, right = probs
    return float(left), float(equivalent), float(right)


def holm(p_values: Sequence[float]) -> list[float]:
    """Return Holm's step-down adjusted p-values, in the input order (NaN stays NaN and is not counted)."""
    order = sorted((i for i, p in enumerate(p_values) if not math.isnan(p)), key=lambda i: p_values[i])
    m = len(order)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def lower_is_better(metric: str, monitor: str | None = None, mode: str | None = None) -> bool:
    """Guess a metric's direction: the run's ``mode`` for its monitor, else ``min`` for losses and errors."""
    if monitor is not None and metric == monitor and mode in ("min", "max"):
        return mode == "min"
    return bool(_LOWER_IS_BETTER.search(metric))


@dataclass
class Comparison:
    """Run A against run B on one metric: the mean difference, the corrected t-test and the Bayesian test."""

    metric: str
    names: tuple[str, str]
    """The two runs' labels, A first."""
    mode: str
    """``max`` or ``min``: which direction of the metric is better."""
    scores: tuple[list[float], list[float]]
    """Each run's per-fold scores, in fold order."""
    ttest: CorrectedTTest
    rope: float
    """Half-width of the region of practical equivalence, in the metric's units."""
    p_a_better: float
    """Posterior probability that A is better by more than ``rope``."""
    p_equivalent: float
    """Posterior probability that the difference lies within ``±rope``."""
    p_b_better: float
    """Posterior probability that B is better by more than ``rope``."""
    n_repeats: int = 1
    test_train_ratio: float = 0.25
    independent: bool = False
    """Whether the runs were declared independent (different folds): paired by fold number only."""
    p_holm: float | None = None
    """The Holm-adjusted p-value when this pair is one of several compared at once."""
    notes: list[str] = field(default_factory=list)

    @property
    def mean_a(self) -> float:
        """Run A's mean over folds."""
        return statistics.fmean(self.scores[0])

    @property
    def mean_b(self) -> float:
        """Run B's mean over folds."""
        return statistics.fmean(self.scores[1])

    @property
    def difference(self) -> float:
        """The mean difference A − B."""
        return self.ttest.mean

    @property
    def t(self) -> float:
        """The corrected t statistic."""
        return self.ttest.t

    @property
    def p_value(self) -> float:
        """The corrected t-test's two-sided p-value."""
        return self.ttest.p_value

    @property
    def n_folds(self) -> int:
        """k·R: the number of paired fold scores."""
        return len(self.scores[0])

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of the comparison."""
        return {
            "metric": self.metric,
            "a": self.names[0],
            "b": self.names[1],
            "mode": self.mode,
            "mean_a": self.mean_a,
            "mean_b": self.mean_b,
            "difference": self.difference,
            "corrected_t": self.t,
            "df": self.ttest.df,
            "p_value": self.p_value,
            "p_holm": self.p_holm,
            "rope": self.rope,
            "p_a_better": self.p_a_better,
            "p_equivalent": self.p_equivalent,
            "p_b_better": self.p_b_better,
            "n_folds": self.n_folds,
            "n_repeats": self.n_repeats,
            "test_train_ratio": self.test_train_ratio,
            "independent": self.independent,
            "notes": self.notes,
        }

    def __str__(self) -> str:
        a, b = self.names
        return (
            f"{self.metric}: {a} − {b} = {self.difference:+.4f} ({self.mean_a:.4f} vs {self.mean_b:.4f}); corrected "
            f"t({self.ttest.df}) = {self.t:.3f}, p = {self.p_value:.3g}; P({a} better) = {self.p_a_better:.3f}, "
            f"P(equivalent, ±{self.rope:g}) = {self.p_equivalent:.3f}, P({b} better) = {self.p_b_better:.3f}"
        )

    def plot(self, path: str | Path) -> Path:
        """Write baycomp's plot of the posterior of A − B, with the rope marked, as an image file."""
        import matplotlib.pyplot as plt
        import numpy as np

        a, b = self.names
        posterior = _baycomp().CorrelatedTTest(
            np.asarray(self.scores[1], dtype=float),
            np.asarray(self.scores[0], dtype=float),
            rope=self.rope,
            runs=self.n_repeats,
            names=(b, a),
        )
        fig = posterior.plot((b, a))
        try:
            fig.axes[0].set_xlabel(f"{self.metric}: {a} − {b} (mean {self.mean_a:.4f} vs {self.mean_b:.4f})")
            fig.axes[0].set_title(
                f"P({a} better) {self.p_a_better:.3f}  P(equiv.) {self.p_equivalent:.3f}  "
                f"P({b} better) {self.p_b_better:.3f}",
                fontsize=10,
            )
            out = Path(path)
            out.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(out, dpi=100, bbox_inches="tight")
        finally:
            plt.close(fig)
        return out


def compare_scores(
    a: Sequence[float],
    b: Sequence[float],
    *,
    metric: str = "score",
    names: tuple[str, str] = ("A", "B"),
    mode: str = "max",
    rope: float = DEFAULT_ROPE,
    n_repeats: int = 1,
    test_train_ratio: float | None = None,
    independent: bool = False,
) -> Comparison:
    """Compare two runs' paired per-fold scores of one metric with both tests.

    Args:
        a: Run A's score on each fold, repeat by repeat.
        b: Run B's score on the same folds.
        metric: The metric's name, for the report.
        names: Labels of A and B.
        mode: ``max`` when a higher score is better, ``min`` when lower is.
        rope: Half-width of the region of practical equivalence, in the metric's units.
        n_repeats: R of R×k repeated cross-validation (folds ordered repeat by repeat).
        test_train_ratio: ``n_test/n_train`` of the folds; default ``1/(k−1)``.
        independent: The runs used different folds; fold i of A is paired with fold i of B only by number.

    Raises:
        LcvError: The runs have different numbers of folds, the folds do not divide into ``n_repeats``, a score is
            not finite, ``mode`` is neither ``min`` nor ``max`` or ``rope`` is negative.
    """
    if mode not in ("min", "max"):
        raise LcvError(f"mode must be 'min' or 'max', got {mode!r}.")
    if rope < 0 or not math.isfinite(rope):
        raise LcvError(f"rope must be a finite number ≥ 0, got {rope!r}.")
    n = _check_pair(a, b, n_repeats)
    k = n // n_repeats
    ratio = 1 / (k - 1) if test_train_ratio is None else test_train_ratio
    ttest = corrected_ttest(a, b, n_repeats=n_repeats, test_train_ratio=ratio)
    left, equivalent, right = bayesian_ttest(a, b, rope=rope, n_repeats=n_repeats)
    a_better, b_better = (left, right) if mode == "min" else (right, left)
    notes = []
    if abs(ratio * (k - 1) - 1) > 0.01:
        notes.append(
            f"n_test/n_train is {ratio:.3f} on these folds; baycomp's correlated t-test assumes k-fold's 1/(k−1) = "
            f"{1 / (k - 1):.3f}, so its probabilities are {'over' if ratio > 1 / (k - 1) else 'under'}confident."
        )
    return Comparison(
        metric=metric,
        names=names,
        mode=mode,
        scores=([float(x) for x in a], [float(y) for y in b]),
        ttest=ttest,
        rope=rope,
        p_a_better=a_better,
        p_equivalent=equivalent,
        p_b_better=b_better,
        n_repeats=n_repeats,
        test_train_ratio=ratio,
        independent=independent,
        notes=notes,
    )


@dataclass
class RunScores:
    """What comparing needs from one run: its per-fold scores at the best epoch, direction and folds."""

    name: str
    """The run's label in reports."""
    per_fold: dict[str, list[float]]
    """Each metric's score on each fold at the best epoch."""
    monitor: str | None = None
    mode: str | None = None
    n_repeats: int = 1
    folds: FoldSplit | None = None
    """The recorded folds, when the run wrote ``folds.json``."""

    @classmethod
    def read(cls, run_dir: str | Path, name: str | None = None) -> RunScores:
        """Read a run directory's ``metrics.json`` (and ``folds.json`` when present).

        Raises:
            LcvError: The directory has no readable ``metrics.json``.
        """
        path = Path(run_dir)
        if path.is_file() and path.name == "metrics.json":
            path = path.parent
        metrics = path / "metrics.json"
        if not metrics.is_file():
            raise LcvError(
                f"{run_dir} has no metrics.json: pass the run directory an `lcv cv` run wrote (a run that is still "
                "training or that failed has none yet)."
            )
        try:
            data = json.loads(metrics.read_text(encoding="utf-8"))
            per_fold = {n: [float(v) for v in s["per_fold"]] for n, s in data["summary"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise LcvError(f"Cannot read {metrics}: {exc}.") from exc
        folds = FoldSplit.read(path / "folds.json") if (path / "folds.json").is_file() else None
        n_repeats = int(data.get("n_repeats") or (folds.n_repeats if folds is not None else 1))
        return cls(
            str(run_dir) if name is None else name, per_fold, data.get("monitor"), data.get("mode"), n_repeats, folds
        )

    def scores(self, metric: str) -> list[float]:
        """Return the per-fold scores of ``metric``; an unknown name is an error listing the known ones."""
        if metric not in self.per_fold:
            raise LcvError(
                f"{self.name} has no metric {metric!r}; it has: {', '.join(sorted(self.per_fold)) or 'none'}."
            )
        return self.per_fold[metric]


def is_study_dir(path: str | Path) -> bool:
    """Whether ``path`` is a tuning study's run directory (``trial_<n>/`` folders, no ``metrics.json`` of its own)."""
    path = Path(path)
    return path.is_dir() and not (path / "metrics.json").is_file() and any(path.glob("trial_*/"))


def study_trials(study_dir: str | Path, top: int = 2, metric: str | None = None) -> list[RunScores]:
    """Return the ``top`` best finished trials of a tuning study's run directory, best first, ready to compare.

    A finished trial is a ``trial_<n>/`` folder with a ``metrics.json`` whose ``metric`` (default: its monitor) is
    finite; pruned and failed trials have none and are left out. Trials are ranked by the fold mean of ``metric``
    in the direction of its mode, as the study ranked them; the study's ``folds.json`` stands for every trial's
    folds (they all trained on it). Each run is named ``trial_<n>``.

    Raises:
        LcvError: ``top`` below 2, or fewer than ``top`` finished trials.
    """
    if top < 2:
        raise LcvError(f"--top must be at least 2 (the best trial and the runner-up), got {top}.")
    root = Path(study_dir)
    folds = FoldSplit.read(root / "folds.json") if (root / "folds.json").is_file() else None
    ranked: list[tuple[float, int, RunScores]] = []
    for trial_dir in root.glob("trial_*/"):
        number = trial_dir.name.removeprefix("trial_")
        if not number.isdigit() or not (trial_dir / "metrics.json").is_file():
            continue
        run = RunScores.read(trial_dir, trial_dir.name)
        name = metric or run.monitor
        if name is None or name not in run.per_fold:
            continue
        mean = statistics.fmean(run.per_fold[name])
        if not math.isfinite(mean):
            continue
        if folds is not None and run.folds is None:
            run.folds = folds
        sign = 1.0 if lower_is_better(name, run.monitor, run.mode) else -1.0
        ranked.append((sign * mean, int(number), run))
    if len(ranked) < top:
        raise LcvError(
            f"{study_dir} has {len(ranked)} finished trial(s) with a metrics.json; comparing the top {top} needs "
            f"{top} (pruned and failed trials have no scores)."
        )
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [run for _, _, run in ranked[:top]]


def compare_runs(
    runs: Sequence[RunScores],
    metric: str | None = None,
    *,
    rope: float = DEFAULT_ROPE,
    mode: str | None = None,
    independent: bool = False,
    fix: str = "pass --independent",
) -> list[Comparison]:
    """Compare every pair of runs on one metric (default: the first run's monitor).

    With more than two runs each comparison carries its Holm-adjusted p-value over all pairs.

    Raises:
        FoldsDifferError: Two runs were validated on different folds and ``independent`` is false.
        LcvError: Fewer than two runs, a metric a run lacks, different numbers of folds or repeats.
    """
    if len(runs) < 2:
        raise LcvError(f"Comparing needs at least two runs, got {len(runs)}.")
    first = runs[0]
    name = metric or first.monitor
    if name is None:
        raise LcvError(f"{first.name} names no monitor; choose the metric to compare.")
    direction = mode or ("min" if lower_is_better(name, first.monitor, first.mode) else "max")
    notes = []
    for other in runs[1:]:
        if other.n_repeats != first.n_repeats:
            raise LcvError(
                f"{first.name} ran {first.n_repeats} repeat(s) of its folds, {other.name} {other.n_repeats}: "
                "only runs on the same folds can be paired."
            )
        if independent:
            if len(first.scores(name)) != len(other.scores(name)):
                raise LcvError(
                    f"{first.name} has {len(first.scores(name))} folds, {other.name} {len(other.scores(name))}: "
                    "even independent runs are paired fold by fold here, so they need as many folds."
                )
        else:
            notes += check_same_folds(first.folds, other.folds, (first.name, other.name), fix)
    comparisons = []
    for a, b in itertools.combinations(runs, 2):
        ratio = a.folds.test_train_ratio if a.folds is not None else None
        c = compare_scores(
            a.scores(name),
            b.scores(name),
            metric=name,
            names=(a.name, b.name),
            mode=direction,
            rope=rope,
            n_repeats=a.n_repeats,
            test_train_ratio=ratio,
            independent=independent,
        )
        c.notes[:0] = notes
        comparisons.append(c)
    if len(comparisons) > 1:
        for c, p in zip(comparisons, holm([c.p_value for c in comparisons]), strict=True):
            c.p_holm = p
    return comparisons


def ranking(runs: Sequence[RunScores], comparisons: Sequence[Comparison], alpha: float = 0.05) -> list[dict[str, Any]]:
    """Rank runs by their mean (best first) and list, per run, the runs it beats at Holm-adjusted ``alpha``."""
    if not comparisons:
        return []
    metric, mode = comparisons[0].metric, comparisons[0].mode
    means = {r.name: statistics.fmean(r.scores(metric)) for r in runs}
    order = sorted(means, key=lambda n: means[n], reverse=mode == "max")
    beats: dict[str, list[str]] = {n: [] for n in order}
    for c in comparisons:
        p = c.p_holm if c.p_holm is not None else c.p_value
        if p < alpha:
            a, b = c.names
            better_a = (c.difference > 0) == (mode == "max")
            beats[a if better_a else b].append(b if better_a else a)
    return [
        {"rank": i + 1, "run": n, "mean": means[n], "beats": sorted(beats[n], key=order.index)}
        for i, n in enumerate(order)
    ]


def _check_pair(a: Sequence[float], b: Sequence[float], n_repeats: int) -> int:
    n = len(a)
    if len(b) != n:
        raise LcvError(f"Paired fold scores need as many folds on both sides, got {n} and {len(b)}.")
    if n_repeats < 1 or n % n_repeats:
        raise LcvError(f"{n} fold scores do not divide into {n_repeats} repeats of equal size.")
    if n // n_repeats < 2:
        raise LcvError(f"The corrected tests need at least 2 folds per repeat, got {n // n_repeats}.")
    if not all(math.isfinite(x) for x in [*a, *b]):
        raise LcvError("A fold score is NaN or infinite; the tests need finite scores on every fold.")
    return n


def _baycomp() -> Any:
    try:
        import baycomp  # type: ignore[import-untyped]  # baycomp ships no type information
    except ImportError as exc:  # pragma: no cover - a declared dependency of lcv-core
        raise ImportError("The Bayesian correlated t-test needs baycomp: pip install baycomp") from exc
    return baycomp
