"""Nested cross-validation of a tuned experiment: tune inside each outer fold, score on rows no inner step saw.

For outer fold ``j`` the config gets ``data.outer: {splitter, cfg, fold: j}``; the datamodule (lcv-data's
``cross_val``) then serves only the outer training rows as inner folds and the outer test rows as its test data.
``outer_<j>/`` is a complete ``lcv tune`` run of that config (same backend, pruning on the inner fold mean, workers,
storage); the best config is then trained again on the inner folds (``final: ensemble``; plus one model refitted on
all outer training rows with ``final: refit``) and scored on the outer test rows. ``non_nested/`` holds the usual
tuning on all the data, whose best fold mean is the optimistic estimate reported beside the nested one.

Every step ends with a file written atomically (``tuned.json``, ``outer_result.json``, ``nested.json``), so a run
killed at any point continues where it stopped: finished steps are read back, a study continues with the trials it
had left, a half-trained final step starts again.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lcv_config import ConfigError, ExperimentConfig, LcvError
from lcv_config.loading import dump_config, load_config
from lcv_config.schema import NestedConfig, OuterConfig, TuneConfig
from lcv_core.tuning.objective import FOLDS_FILE, TRIALS_FILE
from lcv_core.tuning.params import check_space

NESTED_FILE = "nested.json"
"""The nested run's report, written last."""
OUTER_RESULT_FILE = "outer_result.json"
"""One outer fold's result: best parameters, inner estimate, outer test score."""
TUNED_FILE = "tuned.json"
"""Written when a part's study has finished: its best parameters and inner fold mean."""
OUTER_SPLITS_FILE = "outer_folds.json"
"""The outer folds' training and test indices."""
REPORT_FILE = "report.txt"
"""The printed report."""


@dataclass
class OuterFoldResult:
    """What one outer fold found and scored."""

    fold: int
    """The outer fold's number."""
    best_params: dict[str, Any]
    """The parameters the inner tuning chose, keyed by config path."""
    inner_value: float
    """The chosen trial's inner fold mean of ``trainer.monitor`` (the tuning's own, optimistic, estimate)."""
    score: float
    """The outer test score of the test counterpart of the monitor (``val_loss`` → ``test_loss``)."""
    metric: str
    """The name of ``score`` (``test_loss``)."""
    test_metrics: dict[str, float]
    """Every metric the final models logged on the outer test rows (mean over inner fold models, or the refit)."""
    ensemble: dict[str, float]
    """Scores of the inner fold models' ensemble on the outer test rows (``acc``, ``acc_vote`` or ``mse``, ``mae``)."""
    n_train: int
    """Outer training rows (split into the inner folds)."""
    n_test: int
    """Outer test rows."""
    final: str
    """``ensemble``: the score is the inner fold models' mean; ``refit``: one model refitted on the training rows."""
    trials: int
    """Trials that finished (complete or pruned) in this outer fold's study."""
    run_dir: str
    """The outer fold's ``lcv tune`` run directory."""


@dataclass
class NestedResult:
    """What [`nested_tune()`][lcv_core.nested_tune] returns and writes as ``nested.json``."""

    outer: list[OuterFoldResult]
    """One result per outer fold, in fold order."""
    monitor: str
    """The tuned metric (``trainer.monitor``)."""
    mode: str
    """``min`` or ``max``."""
    metric: str
    """The outer test metric of the nested estimate."""
    non_nested: float | None
    """The best fold mean of a tuning on all the data (``None`` when ``tune.nested.non_nested`` is off)."""
    non_nested_params: dict[str, Any] | None
    """The parameters that tuning on all the data chose."""
    run_dir: Path
    """The nested run directory."""
    problems: list[str] = field(default_factory=list)
    """Studies that did not run as asked (fewer trials finished); the estimate is from what finished."""

    @property
    def estimate(self) -> Any:
        """The nested estimate: the outer folds' scores as a ``MetricSummary`` (mean, std, 95% interval)."""
        from lcv_core.results.cv_result import MetricSummary

        return MetricSummary(self.metric, [r.score for r in self.outer])

    @property
    def difference(self) -> float | None:
        """Nested mean minus the non-nested estimate (a selection-optimistic non-nested estimate makes it worse)."""
        return None if self.non_nested is None else self.estimate.mean - self.non_nested

    @property
    def stability(self) -> dict[str, dict[str, Any]]:
        """Per tuned parameter, how much the choice varies across outer folds.

        ``values`` (per outer fold), ``distinct`` (number of different values), ``mode`` and ``mode_share`` (the
        most chosen value and the share of outer folds that chose it); for numbers also ``min``, ``max`` and
        ``spread`` (max / min for positive numbers, else max - min).
        """
        keys = sorted({k for r in self.outer for k in r.best_params})
        out: dict[str, dict[str, Any]] = {}
        for key in keys:
            values = [r.best_params.get(key) for r in self.outer]
            counts = Counter(json.dumps(v, sort_keys=True) for v in values)
            label, n = counts.most_common(1)[0]
            row: dict[str, Any] = {
                "values": values,
                "distinct": len(counts),
                "mode": json.loads(label),
                "mode_share": n / len(values),
            }
            numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if numbers and len(numbers) == len(values):
                low, high = min(numbers), max(numbers)
                row.update(min=low, max=high, spread=high / low if low > 0 else high - low)
            out[key] = row
        return out

    @property
    def ensemble(self) -> dict[str, Any]:
        """Per ensemble score every outer fold has (``acc``...), its outer folds' values as a ``MetricSummary``."""
        from lcv_core.results.cv_result import MetricSummary

        names = sorted(set.intersection(*(set(r.ensemble) for r in self.outer))) if self.outer else []
        return {n: MetricSummary(n, [r.ensemble[n] for r in self.outer]) for n in names}

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form written as ``nested.json``."""
        est = self.estimate
        ci = est.ci95
        return {
            "monitor": self.monitor,
            "mode": self.mode,
            "metric": self.metric,
            "nested": {"mean": est.mean, "std": est.std, "ci95": list(ci), "per_outer_fold": est.per_fold},
            "inner_mean": statistics.fmean(r.inner_value for r in self.outer),
            "ensemble": {
                n: {"mean": m.mean, "std": m.std, "per_outer_fold": m.per_fold} for n, m in self.ensemble.items()
            },
            "non_nested": self.non_nested,
            "non_nested_params": self.non_nested_params,
            "difference": self.difference,
            "stability": self.stability,
            "outer": [asdict(r) for r in self.outer],
            "problems": self.problems,
        }

    def report(self) -> str:
        """Return the printed report: one row per outer fold, the estimates side by side, parameter stability."""
        lines = [f"nested cross-validation: {len(self.outer)} outer folds, tuned on {self.monitor} ({self.mode})"]
        params = sorted({k for r in self.outer for k in r.best_params})
        head = ["outer", "train", "test", "trials", f"inner {self.monitor}", self.metric, *params]
        rows = [
            [
                str(r.fold),
                str(r.n_train),
                str(r.n_test),
                str(r.trials),
                f"{r.inner_value:.4f}",
                f"{r.score:.4f}",
                *(_fmt(r.best_params.get(k, "-")) for k in params),
            ]
            for r in self.outer
        ]
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
        lines.append("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
        lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
        est = self.estimate
        low, high = est.ci95
        lines.append(
            f"nested estimate     {self.metric} {est.mean:.4f} ± {est.std:.4f} (95% CI {low:.4f} .. {high:.4f}, "
            f"{len(self.outer)} outer folds)"
        )
        for name, summary in self.ensemble.items():
            lines.append(
                f"fold ensemble       {name} {summary.mean:.4f} ± {summary.std:.4f}  (inner fold models' ensemble)"
            )
        inner = statistics.fmean(r.inner_value for r in self.outer)
        lines.append(f"inner best (mean)   {self.monitor} {inner:.4f}  (each outer fold's tuning, on its own folds)")
        if self.non_nested is not None and self.difference is not None:
            worse = self.difference > 0 if self.mode == "min" else self.difference < 0
            lines.append(
                f"non-nested estimate {self.monitor} {self.non_nested:.4f}  (best fold mean of tuning on all data)"
            )
            lines.append(
                f"difference          {self.difference:+.4f}  (nested − non-nested: the nested estimate is "
                f"{'worse' if worse else 'not worse'}; the non-nested one reuses its validation folds for selection)"
            )
        for key, row in self.stability.items():
            extra = f", range {_fmt(row['min'])} .. {_fmt(row['max'])}" if "min" in row else ""
            lines.append(
                f"stability {key}: {row['distinct']} distinct value(s) over {len(self.outer)} outer folds, "
                f"{_fmt(row['mode'])} chosen by {row['mode_share']:.0%}{extra}"
            )
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines)


def nested_tune(
    config: ExperimentConfig | str | Path,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    workers: int = 1,
    storage: str | None = None,
    study: str | None = None,
    run_dir: str | Path | None = None,
    print_report: bool = True,
) -> NestedResult:
    """Run nested cross-validation: tune in every outer fold, score its best config on the outer test rows.

    The outer folds come from ``tune.nested`` (``splitter``, ``cfg``; default 5 stratified folds), the inner folds
    from ``data.splitter``. Each outer fold is an ``lcv tune`` run in ``outer_<j>/`` with the same budget, workers
    and storage (with a storage URL, each outer fold gets its own study, ``<study>-outer<j>``). Running it again on
    the same ``run_dir`` continues a run that was stopped.

    Args:
        config: An experiment config (or a config file) with a ``tune`` section; ``data.datamodule`` must split
            outer folds (lcv-data's ``cross_val``).
        n_trials: Trials per outer fold (and for the non-nested tuning); default ``tune.n_trials``.
        timeout: Time budget in seconds per study; default ``tune.timeout``.
        workers: Local worker processes per study, as in `tune`.
        storage: Study storage URL (default: a SQLite file in each study's directory).
        study: Study name prefix when a storage is shared.
        run_dir: The nested run directory; default ``<output_dir>/<name>/<timestamp>``.
        print_report: Print each study's table and the nested report.

    Raises:
        ConfigError: No search space or budget, a holdout or ``data.outer`` in the config, a datamodule that cannot
            split outer folds, or a run directory that holds a nested run of another config.
        LcvError: A study in which no trial finished.
    """
    if not isinstance(config, ExperimentConfig):
        config = load_config(config)
    tune_cfg = config.tune or TuneConfig()
    nested = tune_cfg.nested or NestedConfig()
    n_trials = n_trials if n_trials is not None else tune_cfg.n_trials
    timeout = timeout if timeout is not None else tune_cfg.timeout
    if n_trials is None and timeout is None:
        raise ConfigError(
            "Tuning needs a budget: give n_trials (--n-trials, tune.n_trials) or timeout (--timeout, tune.timeout).",
            "tune.n_trials",
        )
    _check_nestable(config)
    check_space(config)
    if run_dir is None:
        from lcv_core.loop.run_dir import create_run_dir

        run_dir = create_run_dir(config.output_dir, config.name)
    run_dir = Path(run_dir)
    _claim_config(config, run_dir)
    splits = _outer_splits(config, nested, run_dir)
    storage = storage or tune_cfg.storage
    base_study = study or tune_cfg.study or "lcv"
    problems: list[str] = []
    outer: list[OuterFoldResult] = []
    for j, (train, test) in enumerate(splits):
        fold_dir = run_dir / f"outer_{j}"
        done = fold_dir / OUTER_RESULT_FILE
        if done.is_file():
            outer.append(OuterFoldResult(**json.loads(done.read_text(encoding="utf-8"))))
            continue
        if print_report:
            print(f"outer fold {j + 1}/{len(splits)}: tuning on {len(train)} rows, testing on {len(test)} rows")
        cfg = config.model_copy(deep=True)
        cfg.data.outer = OuterConfig(splitter=nested.splitter, cfg=dict(nested.cfg), fold=j)
        assert cfg.tune is not None  # noqa: S101  # check_space refused a config without one
        cfg.tune.nested = None  # outer_<j>/config.yaml is a plain `lcv tune` config
        part_study = f"{base_study}-outer{j}" if storage else study
        tuned = _tune_part(cfg, fold_dir, n_trials, timeout, workers, storage, part_study, problems, print_report)
        _check_outer_folds(fold_dir / FOLDS_FILE, train, test, j)
        scored = _score_outer(cfg, tuned, fold_dir, nested.final, j, len(train), len(test))
        _write_json(done, asdict(scored))
        outer.append(scored)
    non_nested = non_nested_params = None
    if nested.non_nested:
        cfg = config.model_copy(deep=True)
        assert cfg.tune is not None  # noqa: S101
        cfg.tune.nested = None
        part_study = f"{base_study}-all" if storage else study
        tuned = _tune_part(
            cfg, run_dir / "non_nested", n_trials, timeout, workers, storage, part_study, problems, print_report
        )
        non_nested, non_nested_params = tuned["value"], tuned["params"]
    result = NestedResult(
        outer=outer,
        monitor=config.trainer.monitor,
        mode=config.trainer.mode,
        metric=outer[0].metric,
        non_nested=non_nested,
        non_nested_params=non_nested_params,
        run_dir=run_dir,
        problems=problems,
    )
    text = result.report()
    (run_dir / REPORT_FILE).write_text(text + "\n", encoding="utf-8")
    _write_json(run_dir / NESTED_FILE, result.to_dict())
    if print_report:
        print(text)
    return result


def read_nested(run_dir: str | Path) -> dict[str, Any]:
    """Return a nested run's ``nested.json``."""
    return dict(json.loads((Path(run_dir) / NESTED_FILE).read_text(encoding="utf-8")))


# ---------------------------------------------------------------------------------------------- steps


def _check_nestable(config: ExperimentConfig) -> None:
    data = config.data
    if data.outer is not None:
        raise ConfigError(
            "data.outer is set by lcv tune --nested for each outer fold; remove it from the config (the outer "
            "folds are tune.nested's).",
            "data.outer",
        )
    for key in ("holdout", "test_dataset"):
        if getattr(data, key) is not None:
            raise ConfigError(
                f"Nested cross-validation tests on the outer folds' test rows; data.{key} would be a second test "
                f"set. Remove data.{key}, or tune without --nested.",
                f"data.{key}",
            )


def _claim_config(config: ExperimentConfig, run_dir: Path) -> None:
    """Write the nested run's config; refuse a run directory that holds a nested run of another config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.yaml"
    text = dump_config(config)
    if path.is_file():
        if path.read_text(encoding="utf-8") != text:
            raise ConfigError(
                f"{run_dir} holds a nested run of another config ({path}); resume it with that config or choose "
                "another --run-dir.",
                "run_dir",
            )
        return
    _write_text(path, text)


def _outer_splits(config: ExperimentConfig, nested: NestedConfig, run_dir: Path) -> list[tuple[list[int], list[int]]]:
    """Return every outer fold's ``(train, test)`` indices (computed once, kept in ``outer_folds.json``)."""
    path = run_dir / OUTER_SPLITS_FILE
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        return [(f["train"], f["test"]) for f in data["folds"]]
    from lcv_core.configure import build_datamodule

    datamodule = build_datamodule(config)
    if not callable(getattr(datamodule, "outer_folds", None)):
        raise ConfigError(
            f"Nested cross-validation needs a datamodule that splits outer folds (lcv-data's cross_val); "
            f"{type(datamodule).__name__} has no outer_folds(). Use data.datamodule: cross_val.",
            "data.datamodule",
        )
    folds = datamodule.outer_folds(nested.splitter, dict(nested.cfg))
    splits = [(f.train_indices.tolist(), f.test_indices.tolist()) for f in folds]
    if len(splits) < 2:
        raise ConfigError(f"tune.nested makes {len(splits)} outer fold(s); give at least 2.", "tune.nested.cfg")
    _write_json(
        path, {"splitter": nested.splitter, "cfg": nested.cfg, "folds": [{"train": a, "test": b} for a, b in splits]}
    )
    return splits


def _finished_trials(part_dir: Path) -> int:
    """Count the trials of a study directory that finished (complete or pruned); a line cut by a kill is skipped."""
    path = part_dir / TRIALS_FILE
    if not path.is_file():
        return 0
    n = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            n += json.loads(line).get("state") in ("COMPLETE", "PRUNED")
        except (json.JSONDecodeError, AttributeError):
            continue
    return n


def _tune_part(
    config: ExperimentConfig,
    part_dir: Path,
    n_trials: int | None,
    timeout: float | None,
    workers: int,
    storage: str | None,
    study: str | None,
    problems: list[str],
    print_summary: bool,
) -> dict[str, Any]:
    """Tune ``config`` in ``part_dir`` (continuing its study with the trials left); return ``tuned.json``'s content."""
    from lcv_core.tuning.runner import tune

    done = part_dir / TUNED_FILE
    if done.is_file():
        return dict(json.loads(done.read_text(encoding="utf-8")))
    left = None if n_trials is None else max(0, n_trials - _finished_trials(part_dir))
    result = tune(
        config,
        n_trials=left,
        timeout=timeout,
        workers=workers if left is None or left >= workers else max(1, left),
        storage=storage,
        study=study,
        run_dir=part_dir,
        print_summary=print_summary,
    )
    finished = _finished_trials(part_dir)
    if n_trials is not None and finished < n_trials:
        problems.append(f"{part_dir.name}: {finished} of {n_trials} trials finished")
    tuned = {"params": result.best_params, "value": float(result.best_value), "trials": finished}
    _write_json(done, tuned)
    return tuned


def _check_outer_folds(folds_file: Path, train: list[int], test: list[int], j: int) -> None:
    """Refuse inner folds that touch the outer test rows, or test data other than them.

    A datamodule that ignored ``data.outer`` would tune on every row; this stops it before anything is scored.
    """
    data = json.loads(folds_file.read_text(encoding="utf-8"))
    inner = {int(i) for fold in data.get("folds", []) for part in ("train", "val") for i in fold[part]}
    if sorted(data.get("test") or []) != sorted(test) or not inner <= set(train):
        raise LcvError(
            f"outer fold {j}: the datamodule's folds ({folds_file}) do not keep the outer test rows out (their test "
            "part is not the outer fold's test rows, or an inner fold holds one of them); the datamodule does not "
            "honour data.outer. Use data.datamodule: cross_val."
        )


def _score_outer(
    config: ExperimentConfig, tuned: dict[str, Any], fold_dir: Path, final: str, j: int, n_train: int, n_test: int
) -> OuterFoldResult:
    """Train the best config on the outer training rows and score it on the outer test rows."""
    from lcv_core.configure import configure_all
    from lcv_core.tuning.params import apply_params

    best = apply_params(config, tuned["params"])
    final_dir = fold_dir / "final"
    shutil.rmtree(final_dir, ignore_errors=True)  # a final step a kill interrupted starts again
    trainer, factory, datamodule = configure_all(best, run_dir=final_dir)
    datamodule.load_folds(fold_dir / FOLDS_FILE)  # the very folds every trial trained on
    final_dir.mkdir(parents=True, exist_ok=True)
    (final_dir / "config.yaml").write_text(dump_config(best), encoding="utf-8")
    cv = trainer.fit(factory, datamodule)
    metric = _test_metric(config.trainer.monitor)
    per_fold, ensemble = _score_fold_models(cv.models, datamodule.test_dataloaders())
    if final == "refit":
        test_metrics = _score_refit(best, factory, cv.best_epoch + 1, fold_dir, final_dir)
    else:
        names = sorted(set.intersection(*(set(m) for m in per_fold)))
        test_metrics = {n: statistics.fmean(m[n] for m in per_fold) for n in names}
    if metric not in test_metrics:
        raise LcvError(
            f"outer fold {j}: the models logged no {metric} on the outer test rows (trainer.monitor is "
            f"{config.trainer.monitor}); logged: {', '.join(sorted(test_metrics)) or 'nothing'}. Log {metric} in "
            "test_step."
        )
    _write_json(final_dir / "test_metrics.json", {"per_fold": per_fold, "ensemble": ensemble, "final": test_metrics})
    return OuterFoldResult(
        fold=j,
        best_params=dict(tuned["params"]),
        inner_value=float(tuned["value"]),
        score=float(test_metrics[metric]),
        metric=metric,
        test_metrics=test_metrics,
        ensemble=ensemble,
        n_train=n_train,
        n_test=n_test,
        final=final,
        trials=int(tuned.get("trials", 0)),
        run_dir=str(fold_dir),
    )


def _test_metric(monitor: str) -> str:
    """The test counterpart of the monitor: ``val_loss`` and ``cv/val_loss_mean`` → ``test_loss``."""
    name = monitor.removeprefix("cv/").removesuffix("_mean")
    return "test_" + name.removeprefix("val_")


def _score_fold_models(models: list[Any], loaders: list[Any]) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Score each inner fold model on the outer test rows with its own fold's loader, and the fold ensemble."""
    import torch

    from lcv_core.inference.api import test
    from lcv_core.inference.ensemble import ensemble_scores
    from lcv_core.inference.fold_predict import batch_inputs

    if not models:
        raise LcvError("The final cross-validation kept no fold models to score on the outer test rows.")
    per_fold = [test([m], loader).per_fold[0] for m, loader in zip(models, loaders, strict=True)]
    outputs: list[list[Any]] = []
    targets: list[Any] = []
    for model, loader in zip(models, loaders, strict=True):
        outs, ys = [], []
        with torch.no_grad():
            for batch in loader:
                outs.append(model(batch_inputs(batch)).cpu())
                if isinstance(batch, (list, tuple)) and len(batch) == 2:
                    ys.append(batch[1].cpu())
        outputs.append(outs)
        targets.append(torch.cat(ys) if ys else None)
    same = all(t is not None and torch.equal(t, targets[0]) for t in targets)
    ensemble = ensemble_scores(outputs, targets[0]) if len(outputs) > 1 and same else {}
    return per_fold, ensemble


def _score_refit(
    best: ExperimentConfig, factory: Any, epochs: int, fold_dir: Path, final_dir: Path
) -> dict[str, float]:
    """Refit one model on all outer training rows for the best epoch count; return its outer test metrics."""
    from lcv_core.configure import build_datamodule
    from lcv_core.inference.api import refit, test

    datamodule = build_datamodule(best)
    folds = json.loads((fold_dir / FOLDS_FILE).read_text(encoding="utf-8"))
    pool = sorted({int(i) for fold in folds["folds"] for part in ("train", "val") for i in fold[part]})
    folds["folds"] = [{"train": pool, "val": []}]  # one fold: every outer training row, no validation
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / FOLDS_FILE
        path.write_text(json.dumps(folds), encoding="utf-8")
        datamodule.load_folds(path)
    datamodule.setup("fit")  # fits the fitted transforms on all outer training rows
    train_loader = datamodule.train_val_dataloaders()[0][0]
    accelerator = "cpu" if best.trainer.accelerator == "cpu" else "auto"
    precision = best.trainer.precision if best.trainer.precision is not None else "32-true"
    module = refit(
        factory,
        train_loader,
        epochs,
        seed=best.trainer.seed if best.trainer.seed is not None else best.seed,
        path=final_dir / "refit.pt",
        accelerator=accelerator,
        precision=precision,
    )
    return dict(test([module], datamodule.test_dataloader(0)).per_fold[0])


# ---------------------------------------------------------------------------------------------- files


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_text(path, json.dumps(data, indent=2, default=str))


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
