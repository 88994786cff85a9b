"""The ``lcv cv`` command. Heavy imports happen inside ``run`` so that ``lcv --help`` stays fast."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def new_run_dir(output_dir: str, name: str) -> Path:
    """Return a new ``<output_dir>/<name>/<timestamp>`` directory path (not yet created)."""
    base = Path(output_dir) / name / time.strftime("%Y%m%d-%H%M%S")
    path, n = base, 1
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path


class CvCommand:
    """``lcv cv CONFIG... [key=value ...]``: run a k-fold cross-validation from config files."""

    help = "Cross-validate the experiment a config describes; print per-fold scores with mean ± std."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add config files, overrides and the run directory option."""
        parser.add_argument("config", nargs="+", help="config files (YAML/TOML/JSON), then key=value overrides")
        parser.add_argument("--run-dir", help="write the run here instead of runs/<name>/<timestamp>/")

    def run(self, args: argparse.Namespace) -> int:
        """Validate and build everything, create the run directory, train, print the summary."""
        from lcv_config import load_config
        from lcv_config.cli import installed_lcv_packages
        from lcv_config.loading import dump_config, split_arguments

        files, overrides = split_arguments(args.config)
        config = load_config(files, overrides)  # bad input exits 2 here, before torch is imported
        from lcv_core.configure import configure_all

        run_dir = Path(args.run_dir) if args.run_dir else new_run_dir(config.output_dir, config.name)
        trainer, factory, datamodule = configure_all(config, run_dir=run_dir)
        if hasattr(datamodule, "setup"):
            datamodule.setup("fit")  # computes the folds: bad splits fail here, before anything is written
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_config(config), encoding="utf-8")
        (run_dir / "versions.json").write_text(json.dumps(dict(installed_lcv_packages()), indent=2), encoding="utf-8")
        if hasattr(datamodule, "save_folds"):
            datamodule.save_folds(run_dir / "folds.json")
        try:
            result = trainer.fit(factory, datamodule)
        except Exception as exc:
            (run_dir / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
            raise
        text = result.summary()
        (run_dir / "summary.txt").write_text(text, encoding="utf-8")
        print(f"run directory: {run_dir}", file=sys.stderr)
        return 0


class TuneCommand:
    """``lcv tune CONFIG... [key=value ...]``: tune the experiment's ``tune.space`` with its tuner backend."""

    help = "Tune hyperparameters: every trial cross-validates on the same folds; write best.yaml and a summary."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add config files, overrides, the budget, workers, storage and study options."""
        parser.add_argument("config", nargs="+", help="config files (YAML/TOML/JSON), then key=value overrides")
        parser.add_argument("--n-trials", type=int, help="trials to run in all (default tune.n_trials)")
        parser.add_argument("--timeout", type=float, help="time budget in seconds (default tune.timeout)")
        parser.add_argument("--workers", type=int, default=1, help="local worker processes on one study (default 1)")
        parser.add_argument("--storage", help="study storage URL, e.g. postgresql+psycopg://user:pw@host/db")
        parser.add_argument("--study", help="study name; machines with the same storage and study share it")
        parser.add_argument("--run-dir", help="write the study here instead of runs/<name>/<timestamp>/")
        parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # internal: index of a local worker

    def run(self, args: argparse.Namespace) -> int:
        """Validate the config (before torch is imported), then tune and print the summary."""
        from lcv_config import ConfigError, load_config
        from lcv_config.loading import split_arguments

        files, overrides = split_arguments(args.config)
        config = load_config(files, overrides)  # bad input exits 2 here, before torch is imported
        for name in ("n_trials", "workers"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}.", name)
        if args.timeout is not None and args.timeout <= 0:
            raise ConfigError(f"--timeout must be positive, got {args.timeout}.", "timeout")
        from lcv_core.tuning import run_worker, tune

        run_dir = Path(args.run_dir) if args.run_dir else new_run_dir(config.output_dir, config.name)
        if args.worker is not None:
            run_worker(
                config,
                run_dir,
                worker=args.worker,
                n_trials=args.n_trials,
                timeout=args.timeout,
                storage=args.storage,
                study=args.study,
            )
            return 0
        tune(
            config,
            n_trials=args.n_trials,
            timeout=args.timeout,
            workers=args.workers,
            storage=args.storage,
            study=args.study,
            run_dir=run_dir,
        )
        print(f"run directory: {run_dir}", file=sys.stderr)
        return 0
