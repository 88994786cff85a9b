"""Tune an experiment: each trial applies its parameters to a copy of the config and cross-validates on frozen folds.

The backend (``tune.backend``, a plugin in ``lcv.tuners``) proposes parameters keyed by config path
(``optimizer.cfg.lr``); every trial trains on the same folds (computed once, saved as ``folds.json``), reports the fold
mean of ``trainer.monitor`` after every epoch through :class:`~lcv_core.callbacks.pruning.TunerPruning`, and returns
the best epoch's fold mean. The study's best parameters are written as a ready-to-run ``best.yaml``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lcv_config import ConfigError, ExperimentConfig, LcvError, TrialPruned
from lcv_config.errors import did_you_mean
from lcv_config.loading import dump_config, load_config, validation_error
from lcv_config.protocols import Trial, Tuner
from lcv_config.registry import resolve
from lcv_config.schema import TuneConfig
from lcv_config.space import CategoricalParam, FloatParam, IntParam, active, ordered, parse_space

FOLDS_FILE = "folds.json"
"""The frozen folds every trial trains on, in the study's run directory."""
TRIALS_FILE = "trials.jsonl"
"""One JSON line per trial run on this machine: number, params, value, state, epochs."""
BEST_FILE = "best.yaml"
"""The base config with the best parameters applied."""

_SEED_STRIDE = 104_729  # a prime: worker seeds seed, seed+p, seed+2p... never collide for small seeds


@dataclass
class TuneResult:
    """What :func:`tune` returns."""

    best_params: dict[str, Any]
    """The best trial's parameters, keyed by config path."""
    best_value: float
    """The best trial's objective: the fold mean of ``trainer.monitor`` at its best epoch."""
    best_config: ExperimentConfig
    """The base config with :attr:`best_params` applied (also written as ``best.yaml``)."""
    run_dir: Path
    """The study's run directory: ``folds.json``, ``best.yaml``, ``trials.jsonl``, ``trial_<n>/``."""
    trials: list[dict[str, Any]] = field(default_factory=list)
    """The trials run from this run directory: ``number``, ``params``, ``value``, ``state``, ``epochs``."""
    tuner: Any = None
    """The backend's tuner object (e.g. ``OptunaTuner``, whose ``study`` holds every trial)."""


def worker_seed(seed: int, worker: int) -> int:
    """Return the sampler seed of local worker ``worker``: distinct per worker so workers propose different points."""
    return (seed + worker * _SEED_STRIDE) % (2**31 - 1)


def _config_paths(data: Any, prefix: str = "") -> list[str]:
    if isinstance(data, Mapping):
        out = []
        for k, v in data.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            out.append(key)
            out.extend(_config_paths(v, key))
        return out
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in [f"{prefix}.{i}", *_config_paths(v, f"{prefix}.{i}")]]
    return []


def _set_path(data: dict[str, Any], path: str, value: Any, *, create_leaf: bool) -> None:
    """Set ``path`` (dotted; list items by index) in ``data``; raise ``KeyError(path_prefix)`` where it breaks."""
    parts = path.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise KeyError(where)
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node and not (last and create_leaf):
                raise KeyError(where)
            if last:
                node[part] = value
            else:
                node = node[part]
        else:
            raise KeyError(where)


def _data_of(config: ExperimentConfig) -> dict[str, Any]:
    return copy.deepcopy(config.model_dump())


def check_space_paths(config: ExperimentConfig, space: Mapping[str, Any]) -> None:
    """Check that every key of the search space is a path in the config.

    A conditional parameter (``when``) may add a new keyword to a ``cfg`` mapping (``optimizer.cfg.momentum`` only when
    ``optimizer.name`` is ``SGD``); every other key must already be in the config.

    Raises:
        ConfigError: A key is not in the config; the message suggests the closest paths.
    """
    parsed = parse_space(space)
    data = _data_of(config)
    for key, param in parsed.items():
        new_kwarg = param.when is not None and key.rsplit(".", 2)[-2:-1] == ["cfg"]
        try:
            _set_path(copy.deepcopy(data), key, None, create_leaf=new_kwarg)
        except KeyError as exc:
            valid = _config_paths(data)
            raise ConfigError(
                f"Search-space key '{key}' is not a path in the config ('{exc.args[0]}' does not exist)."
                f"{did_you_mean(key, valid)} Keys are config paths such as 'optimizer.cfg.lr' or 'model.cfg.hidden'; "
                "give the parameter a value in the config first.",
                f"tune.space.{key}",
            ) from None


def apply_params(config: ExperimentConfig, params: Mapping[str, Any]) -> ExperimentConfig:
    """Return a validated copy of ``config`` with each ``params`` value set at its config path.

    Raises:
        ConfigError: A path is not in the config, or the result is not a valid config (message names the path).
    """
    data = _data_of(config)
    for key, value in params.items():
        try:
            _set_path(data, key, value, create_leaf=key.rsplit(".", 2)[-2:-1] == ["cfg"])
        except KeyError as exc:
            raise ConfigError(
                f"Cannot apply parameter '{key}': '{exc.args[0]}' is not in the config.", f"tune.space.{key}"
            ) from None
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        err = validation_error(exc, data)
        raise ConfigError(f"{err.message} (with the trial parameters {dict(params)!r})", err.path) from None


def _probe(space: Mapping[str, FloatParam | IntParam | CategoricalParam]) -> list[dict[str, Any]]:
    """Return parameter sets at the edges of the space (low ends, then high ends), to validate before any trial."""
    probes = []
    for end in (0, -1):
        chosen: dict[str, Any] = {}
        for key in ordered(space):
            p = space[key]
            if active(p, chosen):
                chosen[key] = p.choices[end] if isinstance(p, CategoricalParam) else (p.low, p.high)[end]
        probes.append(chosen)
    return probes


def make_tuner(
    config: ExperimentConfig,
    workdir: str | Path,
    *,
    storage: str | None = None,
    study: str | None = None,
    worker: int = 0,
) -> Tuner:
    """Build the tuner ``tune.backend`` names (an ``lcv.tuners`` plugin, a registered name or a dotted path).

    The backend gets the config's tuning settings; building it creates (or joins) the study.

    Raises:
        ConfigError: An unknown backend (with suggestions) or invalid tuning settings.
    """
    tune_cfg = config.tune or TuneConfig()
    backend = resolve("tuner", tune_cfg.backend, "tune.backend")
    direction = tune_cfg.direction or ("minimize" if config.trainer.mode == "min" else "maximize")
    tuner: Tuner = backend(
        space=tune_cfg.space,
        direction=direction,
        study=study or tune_cfg.study,
        storage=storage or tune_cfg.storage,
        workdir=Path(workdir),
        sampler=tune_cfg.sampler.model_dump() if tune_cfg.sampler is not None else None,
        pruner=tune_cfg.pruner.model_dump() if tune_cfg.pruner is not None else None,
        seed=worker_seed(config.seed, worker),
        **tune_cfg.options,
    )
    return tuner


def _check(config: ExperimentConfig) -> dict[str, FloatParam | IntParam | CategoricalParam]:
    if config.tune is None or not config.tune.space:
        raise ConfigError(
            "Nothing to tune: the config has no 'tune.space'. Add e.g.\n"
            "tune:\n  space:\n    optimizer.cfg.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}",
            "tune.space",
        )
    space = parse_space(config.tune.space)
    check_space_paths(config, config.tune.space)
    for probe in _probe(space):
        apply_params(config, probe)
    return space


def _freeze_folds(config: ExperimentConfig, run_dir: Path) -> Path | None:
    """Compute the folds once and save them in the run directory; ``None`` if the datamodule cannot save folds."""
    from lcv_core.configure import build_datamodule

    path = run_dir / FOLDS_FILE
    if path.exists():
        return path  # joining an existing run directory: keep its folds
    datamodule = build_datamodule(config)
    if not hasattr(datamodule, "save_folds"):
        return None
    if hasattr(datamodule, "setup"):
        datamodule.setup("fit")
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    datamodule.save_folds(tmp)
    tmp.replace(path)
    return path


class _Objective:
    """One trial: apply the parameters, cross-validate on the frozen folds, report the fold mean every epoch."""

    def __init__(self, config: ExperimentConfig, run_dir: Path, folds: Path | None, worker: int) -> None:
        self.config = config
        self.run_dir = run_dir
        self.folds = folds
        self.worker = worker

    def __call__(self, trial: Trial) -> float:
        from lcv_core.callbacks.pruning import TunerPruning
        from lcv_core.configure import configure_all

        params = dict(trial.params)
        trial_dir = self.run_dir / f"trial_{trial.number}"
        record: dict[str, Any] = {"number": trial.number, "params": params, "worker": self.worker}
        pruning = TunerPruning(trial, monitor=self.config.trainer.monitor, mode=self.config.trainer.mode)
        try:
            cfg = apply_params(self.config, params)
            cfg.trainer.callbacks = [*(cfg.trainer.callbacks or []), pruning]
            trainer, factory, datamodule = configure_all(cfg, run_dir=trial_dir)
            if self.folds is not None and hasattr(datamodule, "load_folds"):
                datamodule.load_folds(self.folds)
            trial_dir.mkdir(parents=True, exist_ok=True)
            (trial_dir / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
            result = trainer.fit(factory, datamodule)
            summary = result.metric(self.config.trainer.monitor)
            value = summary.mean
            trial.set_user_attr("per_fold", [v if math.isfinite(v) else None for v in summary.per_fold])
            trial.set_user_attr("std", summary.std if math.isfinite(summary.std) else None)
            trial.set_user_attr("best_epoch", result.best_epoch)
            record.update(value=value, state="COMPLETE" if math.isfinite(value) else "FAIL")
            return float(value)
        except TrialPruned:
            record.update(value=pruning.means[-1] if pruning.means else None, state="PRUNED")
            raise
        except BaseException as exc:
            record.update(value=None, state="FAIL", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            record["epochs"] = len(pruning.means)
            self._append(record)

    def _append(self, record: dict[str, Any]) -> None:
        value = record.get("value")
        if isinstance(value, float) and not math.isfinite(value):
            record["value"] = None
        with (self.run_dir / TRIALS_FILE).open("a", encoding="utf-8") as fh:  # one short append per line
            fh.write(json.dumps(record, default=str) + "\n")


def read_trials(run_dir: str | Path) -> list[dict[str, Any]]:
    """Return the trial records of a run directory (``trials.jsonl``), sorted by trial number."""
    path = Path(run_dir) / TRIALS_FILE
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return sorted(rows, key=lambda r: int(r["number"]))


def _split_trials(n_trials: int | None, workers: int) -> list[int | None]:
    if n_trials is None:
        return [None] * workers
    return [n_trials // workers + (1 if i < n_trials % workers else 0) for i in range(workers)]


def _prepare(config: ExperimentConfig, run_dir: Path) -> Path | None:
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists():
        (run_dir / "config.yaml").write_text(dump_config(config), encoding="utf-8")
    return _freeze_folds(config, run_dir)


def run_worker(
    config: ExperimentConfig,
    run_dir: str | Path,
    *,
    worker: int = 0,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    study: str | None = None,
) -> Tuner:
    """Run trials of one worker on an existing (or new) study in ``run_dir``; return its tuner."""
    run_dir = Path(run_dir)
    _check(config)
    folds = _prepare(config, run_dir)
    tuner = make_tuner(config, run_dir, storage=storage, study=study, worker=worker)
    if n_trials is None or n_trials > 0:
        tuner.optimize(_Objective(config, run_dir, folds, worker), n_trials=n_trials, timeout=timeout)
    return tuner


def _worker_command(
    config_path: Path,
    run_dir: Path,
    worker: int,
    n: int | None,
    timeout: float | None,
    storage: str | None,
    study: str | None,
) -> list[str]:
    code = "import sys; from lcv_core.tuning import _worker_main; sys.exit(_worker_main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, str(config_path), "--run-dir", str(run_dir), "--worker", str(worker)]
    if n is not None:
        cmd += ["--n-trials", str(n)]
    if timeout is not None:
        cmd += ["--timeout", str(timeout)]
    if storage is not None:
        cmd += ["--storage", storage]
    if study is not None:
        cmd += ["--study", study]
    return cmd


def _worker_main(argv: Sequence[str]) -> int:
    """Entry of a local worker process started by :func:`tune` with ``workers > 1``."""
    import argparse

    parser = argparse.ArgumentParser(prog="lcv tune --worker")
    parser.add_argument("config")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--n-trials", type=int)
    parser.add_argument("--timeout", type=float)
    parser.add_argument("--storage")
    parser.add_argument("--study")
    args = parser.parse_args(list(argv))
    try:
        config = load_config(args.config)
        run_worker(
            config,
            args.run_dir,
            worker=args.worker,
            n_trials=args.n_trials,
            timeout=args.timeout,
            storage=args.storage,
            study=args.study,
        )
    except LcvError as exc:
        print(f"lcv tune worker {args.worker}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def tune(
    config: ExperimentConfig | str | Path,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    workers: int = 1,
    storage: str | None = None,
    study: str | None = None,
    run_dir: str | Path | None = None,
    print_summary: bool = True,
) -> TuneResult:
    """Tune the experiment ``config`` describes; write ``best.yaml`` and print a summary table.

    Args:
        config: An experiment config (or a config file) with a ``tune`` section.
        n_trials: Trials to run in all (split among local workers); default ``tune.n_trials``.
        timeout: Time budget in seconds per worker; default ``tune.timeout``.
        workers: Local worker processes sharing one study; the study is created once before any starts.
        storage: Study storage URL (default ``tune.storage``, else a SQLite ``study.db`` in the run directory).
        study: Study name (default ``tune.study``, else the backend's default); machines sharing a storage and a
            study name work on one study.
        run_dir: The study's run directory; default ``<output_dir>/<name>/<timestamp>``.
        print_summary: Print the table of trials.

    Raises:
        ConfigError: No search space, a space key not in the config, a trial config that is invalid, bad settings.
        LcvError: A worker process failed, or no trial finished.
    """
    if not isinstance(config, ExperimentConfig):
        config = load_config(config)
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}.", "workers")
    tune_cfg = config.tune or TuneConfig()
    n_trials = n_trials if n_trials is not None else tune_cfg.n_trials
    timeout = timeout if timeout is not None else tune_cfg.timeout
    if n_trials is None and timeout is None:
        raise ConfigError(
            "Tuning needs a budget: give n_trials (--n-trials, tune.n_trials) or timeout (--timeout, tune.timeout).",
            "tune.n_trials",
        )
    _check(config)
    if run_dir is None:
        from lcv_core.commands import new_run_dir

        run_dir = new_run_dir(config.output_dir, config.name)
    run_dir = Path(run_dir)
    if workers == 1:
        tuner = run_worker(config, run_dir, n_trials=n_trials, timeout=timeout, storage=storage, study=study)
    else:
        _prepare(config, run_dir)
        tuner = make_tuner(config, run_dir, storage=storage, study=study)  # creates the study once, before workers
        config_path = run_dir / "config.yaml"
        procs = [
            subprocess.Popen(_worker_command(config_path, run_dir, i, n, timeout, storage, study))
            for i, n in enumerate(_split_trials(n_trials, workers))
        ]
        codes = [p.wait() for p in procs]
        failed = [i for i, c in enumerate(codes) if c != 0]
        if failed:
            raise LcvError(
                f"Tuning worker(s) {', '.join(map(str, failed))} of {workers} exited with code(s) "
                f"{', '.join(str(codes[i]) for i in failed)}; see their output above."
            )
    trials = read_trials(run_dir)
    try:
        best_params, best_value = tuner.best_params, tuner.best_value
    except Exception as exc:  # every backend has its own "no best yet" error
        if print_summary:
            print_table(trials, {}, None, run_dir)
        states = ", ".join(f"{r['number']}: {r['state']}" for r in trials) or "none ran"
        raise LcvError(
            f"No trial finished, so there is no best config and no {BEST_FILE} ({exc}). Trials: {states}."
        ) from None
    best_config = apply_params(config, best_params)
    (run_dir / BEST_FILE).write_text(dump_config(best_config), encoding="utf-8")
    if print_summary:
        print_table(trials, best_params, best_value, run_dir)
    return TuneResult(best_params, best_value, best_config, run_dir, trials, tuner)


def print_table(
    trials: list[dict[str, Any]], best_params: Mapping[str, Any], best_value: float | None, run_dir: Path
) -> None:
    """Print one row per trial (trial, params, value, state, epochs) and where the best config was written."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="lcv tune", title_justify="left", show_edge=False)
    for column in ("trial", "params", "value", "state", "epochs"):
        table.add_column(column, overflow="fold")
    for row in trials:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in row.get("params", {}).items())
        value = row.get("value")
        table.add_row(
            str(row["number"]), params, "-" if value is None else f"{value:.4g}", row["state"], str(row.get("epochs"))
        )
    console = Console(highlight=False)
    console.print(table)
    if best_value is None:
        return
    best = ", ".join(f"{k}={_fmt(v)}" for k, v in best_params.items())
    console.print(f"best value {best_value:.4g} with {best}")
    console.print(f"best config: {run_dir / BEST_FILE}")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
