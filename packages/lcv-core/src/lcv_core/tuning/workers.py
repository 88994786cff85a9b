"""Tuning workers: the backend tuner each builds (with its own seed), one worker's trials, local worker processes."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from lcv_config import ExperimentConfig, LcvError
from lcv_config.loading import dump_config, load_config
from lcv_config.protocols import Tuner
from lcv_config.registry import resolve
from lcv_config.schema import TuneConfig
from lcv_core.tuning.objective import TrialObjective, freeze_folds
from lcv_core.tuning.params import check_space

_SEED_STRIDE = 104_729  # a prime: worker seeds seed, seed+p, seed+2p... never collide for small seeds


def worker_seed(seed: int, worker: int) -> int:
    """Return the sampler seed of local worker ``worker``: distinct per worker so workers propose different points."""
    return (seed + worker * _SEED_STRIDE) % (2**31 - 1)


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


def split_trials(n_trials: int | None, workers: int) -> list[int | None]:
    """Split ``n_trials`` among ``workers`` as evenly as possible (``None``, no limit, for each when not given)."""
    if n_trials is None:
        return [None] * workers
    return [n_trials // workers + (1 if i < n_trials % workers else 0) for i in range(workers)]


def prepare_run_dir(config: ExperimentConfig, run_dir: Path) -> Path | None:
    """Create the run directory with the base ``config.yaml`` and the frozen folds; return the folds file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists():
        (run_dir / "config.yaml").write_text(dump_config(config), encoding="utf-8")
    return freeze_folds(config, run_dir)


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
    check_space(config)
    folds = prepare_run_dir(config, run_dir)
    tuner = make_tuner(config, run_dir, storage=storage, study=study, worker=worker)
    if n_trials is None or n_trials > 0:
        tuner.optimize(TrialObjective(config, run_dir, folds, worker), n_trials=n_trials, timeout=timeout)
    return tuner


def worker_command(
    config_path: Path,
    run_dir: Path,
    worker: int,
    n: int | None,
    timeout: float | None,
    storage: str | None,
    study: str | None,
) -> list[str]:
    """Return the command line of local worker process ``worker`` (runs `worker_main()`)."""
    code = "import sys; from lcv_core.tuning.workers import worker_main; sys.exit(worker_main(sys.argv[1:]))"
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


def worker_main(argv: Sequence[str]) -> int:
    """Entry of a local worker process started by `tune()` with ``workers > 1``."""
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
