"""The ``lcv compare`` command: are two (or more) cross-validated runs on the same folds distinguishable?

The statistics are in `lcv_core.results.compare`; scipy and baycomp are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lcv_core.results.compare import Comparison, RunScores

ROPE_HELP = (
    "half-width of the region of practical equivalence, in the metric's units (default 0.01: one percentage point "
    "of an accuracy-like metric, as Benavoli et al. 2017 use; choose your own for losses)"
)


class CompareCommand:
    """``lcv compare RUN_A RUN_B [RUN_C ...]``: corrected t-test and Bayesian correlated t-test of runs' fold scores.

    ``lcv compare STUDY_DIR`` compares the best trial of a tuning study with the runner-up (``--top N``: the N best),
    so a tuning report can say whether the winner is distinguishable.
    """

    help = (
        "Compare runs validated on the same folds (or a tuning study's best trials): mean difference, corrected "
        "resampled t-test (Nadeau-Bengio) and Bayesian correlated t-test; with more runs, pairwise Holm-adjusted "
        "p-values and a ranking."
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the run directories and the test options."""
        parser.add_argument(
            "runs",
            nargs="+",
            metavar="RUN",
            help="run directories written by `lcv cv` (two or more), or one `lcv tune` run directory: its best trials",
        )
        parser.add_argument(
            "--top",
            type=int,
            default=2,
            help="with a tuning run directory: how many of its best finished trials to compare (default 2: the best "
            "and the runner-up)",
        )
        parser.add_argument(
            "--metric",
            action="append",
            help="metric to compare at each run's best epoch; repeat for several (default: the first run's monitor)",
        )
        parser.add_argument("--rope", type=float, default=0.01, help=ROPE_HELP)
        parser.add_argument(
            "--mode",
            choices=["min", "max"],
            help="whether lower or higher is better (default: the run's mode for its monitor, else min for losses)",
        )
        parser.add_argument(
            "--independent",
            action="store_true",
            help="the runs used different folds on purpose: pair fold i with fold i by number only (less power)",
        )
        parser.add_argument("--alpha", type=float, default=0.05, help="significance level of the ranking (0.05)")
        parser.add_argument("--plot", metavar="FILE", help="write baycomp's posterior plot (one file per pair/metric)")
        parser.add_argument("--json", metavar="FILE", help="also write every comparison as JSON")

    def run(self, args: argparse.Namespace) -> int:
        """Read the runs, check their folds, test every pair and print the tables."""
        from lcv_config import ConfigError
        from lcv_core.results.compare import is_study_dir, study_trials

        study = len(args.runs) == 1 and is_study_dir(args.runs[0])
        if len(args.runs) < 2 and not study:
            raise ConfigError(
                f"lcv compare needs at least two run directories, or one tuning run directory (with trial_<n>/ "
                f"folders), got {args.runs[0]}.",
                "runs",
            )
        if args.rope < 0:
            raise ConfigError(f"--rope must be ≥ 0, got {args.rope}.", "rope")
        if not 0 < args.alpha < 1:
            raise ConfigError(f"--alpha must be between 0 and 1, got {args.alpha}.", "alpha")
        from lcv_core.results.compare import RunScores, compare_runs, ranking

        if study:
            runs = study_trials(args.runs[0], args.top, (args.metric or [None])[0])
            labels = [r.name for r in runs]
            paths = [str(Path(args.runs[0]) / r.name) for r in runs]
        else:
            labels = [chr(ord("A") + i) if len(args.runs) <= 26 else str(i + 1) for i in range(len(args.runs))]
            runs = [RunScores.read(path, label) for path, label in zip(args.runs, labels, strict=True)]
            paths = list(args.runs)
        metrics = args.metric or [runs[0].monitor]
        results = {
            m: compare_runs(runs, m, rope=args.rope, mode=args.mode, independent=args.independent) for m in metrics
        }
        print("\n".join(f"{label} = {path}" for label, path in zip(labels, paths, strict=True)))
        print(_render(runs, results, args.alpha), end="")
        notes = dict.fromkeys(n for cs in results.values() for c in cs for n in c.notes)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if args.plot:
            for path in _plot_all(Path(args.plot), results):
                print(f"posterior plot: {path}", file=sys.stderr)
        if args.json:
            report = {
                "runs": dict(zip(labels, paths, strict=True)),
                "comparisons": [c.to_dict() for cs in results.values() for c in cs],
                "ranking": {m: ranking(runs, cs, args.alpha) for m, cs in results.items() if len(runs) > 2},
            }
            Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
        return 0


def _render(runs: list[RunScores], results: dict[str, list[Comparison]], alpha: float) -> str:
    """Return the tables: one row per metric for two runs; per metric a pairwise table and a ranking for more."""
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), record=True, highlight=False, width=160)
    if len(runs) == 2:
        console.print(_two_runs_table(runs[0].name, runs[1].name, [cs[0] for cs in results.values()]))
    else:
        for comparisons in results.values():
            for table in _several_runs_tables(runs, comparisons, alpha):
                console.print(table)
    return console.export_text()


def _caption(c: Comparison) -> str:
    k = c.n_folds // c.n_repeats
    scheme = f"{k}-fold CV" if c.n_repeats == 1 else f"{c.n_repeats}×{k}-fold CV"
    pairing = "independent runs paired by fold number" if c.independent else "paired by fold"
    return (
        f"{scheme}, {pairing}. p: corrected resampled t-test, two-sided, variance × (1/{c.n_folds} + "
        f"{c.test_train_ratio:.3g}) (Nadeau-Bengio). P: Bayesian correlated t-test (baycomp), rope ±{c.rope:g}."
    )


def _cells(c: Comparison) -> list[str]:
    return [
        f"{c.mean_a:.4f}",
        f"{c.mean_b:.4f}",
        f"{c.difference:+.4f}",
        f"{c.t:.3f} ({c.ttest.df})",
        _p(c.p_value),
        f"{c.p_a_better:.3f}",
        f"{c.p_equivalent:.3f}",
        f"{c.p_b_better:.3f}",
    ]


def _two_runs_table(a: str, b: str, comparisons: list[Comparison]) -> Any:
    from rich.table import Table

    table = Table(title=f"lcv compare: {a} vs {b}", caption=_caption(comparisons[0]))
    table.add_column("metric")
    for header in (
        f"mean {a}",
        f"mean {b}",
        f"{a} − {b}",
        "t (df)",
        "p",
        f"P({a} better)",
        "P(equiv.)",
        f"P({b} better)",
    ):
        table.add_column(header, justify="right")
    for c in comparisons:
        table.add_row(f"{c.metric} ({c.mode})", *_cells(c))
    return table


def _several_runs_tables(runs: list[RunScores], comparisons: list[Comparison], alpha: float) -> list[Any]:
    from rich.table import Table

    from lcv_core.core.statistics import sample_std
    from lcv_core.results.compare import ranking

    metric, mode = comparisons[0].metric, comparisons[0].mode
    pairs = Table(title=f"{metric} ({mode}): every pair, first − second", caption=_caption(comparisons[0]))
    pairs.add_column("first vs second")
    for name in (
        "mean 1st",
        "mean 2nd",
        "1st − 2nd",
        "t (df)",
        "p",
        "p Holm",
        "P(1st better)",
        "P(equiv.)",
        "P(2nd better)",
    ):
        pairs.add_column(name, justify="right")
    for c in comparisons:
        cells = _cells(c)
        cells[5:5] = [_p(c.p_holm if c.p_holm is not None else c.p_value)]
        pairs.add_row(f"{c.names[0]} vs {c.names[1]}", *cells)
    rank = Table(title=f"{metric}: ranking by mean, best first", caption=f"beats: Holm-adjusted p < {alpha:g}")
    for name in ("rank", "run", "mean ± std", "beats"):
        rank.add_column(name, justify="left" if name == "beats" else "right")
    for row in ranking(runs, comparisons, alpha):
        std = sample_std(next(r for r in runs if r.name == row["run"]).scores(metric))
        rank.add_row(str(row["rank"]), row["run"], f"{row['mean']:.4f} ± {std:.4f}", ", ".join(row["beats"]) or "—")
    return [pairs, rank]


def _plot_all(path: Path, results: dict[str, list[Comparison]]) -> list[Path]:
    """Write one posterior plot per compared pair and metric; a single one goes to ``path`` itself."""
    comparisons = [c for cs in results.values() for c in cs]
    if len(comparisons) == 1:
        return [comparisons[0].plot(path)]
    suffix = path.suffix or ".png"
    return [c.plot(path.with_name(f"{path.stem}-{c.metric}-{c.names[0]}-vs-{c.names[1]}{suffix}")) for c in comparisons]


def _p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"
