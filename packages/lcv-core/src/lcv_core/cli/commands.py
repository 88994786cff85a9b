"""The ``lcv cv``, ``fit`` and ``tune`` commands: train from config files and write a run directory.

``lcv test`` and ``lcv predict`` are in `lcv_core.cli.test` and `lcv_core.cli.predict`. Heavy imports
(torch, Lightning) happen inside ``run`` so that ``lcv --help`` stays fast and a bad config exits 2 before torch is
imported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lcv_core.cli.checkpoint_models import read_checkpoint
from lcv_core.cli.checkpoint_trust import add_trust_flag, check_trusted
from lcv_core.cli.holdout import FIT_HEADER, HOLDOUT_FIX, HoldoutValidation, has_test_data
from lcv_core.loop.run_dir import RunLock, create_run_dir, start_run

if TYPE_CHECKING:
    from lcv_core.loop.trainer import CrossValidationTrainer


def check_plugin_names(config: Any, files: list[str]) -> None:
    """Refuse, before torch is imported, every name in ``config`` that no installed plugin provides (all at once).

    Raises:
        ConfigProblemsError: One or more unknown names, each with its key, the closest names and what to install.
    """
    from lcv_config import ConfigProblemsError, check_names

    problems = check_names(config)  # entry-point metadata only: imports no plugin
    if problems:
        raise ConfigProblemsError(problems, ", ".join(files) or "config")


class CvCommand:
    """``lcv cv CONFIG... [key=value ...]``: run a k-fold cross-validation from config files."""

    help = "Cross-validate the experiment a config describes; print per-fold scores with mean ± std."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add config files, overrides, the run directory and the resume options."""
        parser.add_argument(
            "config", nargs="*", help="config files (YAML/TOML/JSON), then key=value overrides (none with --resume)"
        )
        parser.add_argument("--run-dir", help="write the run here instead of runs/<name>/<timestamp>/")
        parser.add_argument(
            "--resume",
            metavar="CKPT",
            help="resume from a trainer checkpoint (a last.ckpt or a run directory); it holds the config, so no "
            "config file is needed; key=value overrides still apply",
        )
        add_trust_flag(parser)

    def run(self, args: argparse.Namespace) -> int:
        """Validate and build everything, create the run directory, train, print the summary."""
        from lcv_config import ConfigError, load_config
        from lcv_config.loading import split_arguments

        files, overrides = split_arguments(args.config)
        resume: Path | None = None
        if args.resume is not None:
            resume, config = _resume_point(Path(args.resume), files, overrides, trust=args.trust_checkpoint)
        elif not files:
            raise ConfigError("lcv cv needs a config file, or --resume CKPT to continue a run.", "config")
        else:
            config = load_config(files, overrides)  # bad input exits 2 here, before torch is imported
        check_plugin_names(config, files)
        from lcv_core.configure import configure_all

        run_dir_arg = args.run_dir
        if not run_dir_arg and resume is not None and resume.parent.name == "checkpoints":
            run_dir_arg = resume.parent.parent  # continue in the run's own directory
        # several processes (devices > 1, torchrun, srun): only the first locks and writes the run directory
        lock = RunLock.for_command(run_dir_arg, config.output_dir, config.name)
        run_dir = lock.run_dir
        with lock:
            try:
                start_run(lock)
                trainer, factory, datamodule = configure_all(config, run_dir=run_dir)
                if hasattr(datamodule, "setup"):
                    datamodule.setup("fit")  # computes the folds: bad splits fail here, before anything is written
                if resume is not None:
                    _check_resume(resume, trainer, datamodule)  # a refused resume writes nothing
                if lock.writes:
                    _write_run_files(run_dir, config, datamodule)
            except BaseException:
                lock.discard()
                raise
            try:
                result = trainer.fit(factory, datamodule, ckpt_path=resume)
            except Exception as exc:
                if lock.writes:
                    (run_dir / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
                raise
            text = result.summary()
            if lock.writes:
                (run_dir / "summary.txt").write_text(text, encoding="utf-8")
        if lock.writes:
            print(f"run directory: {run_dir}", file=sys.stderr)
        return 0


def _check_resume(resume: Path, trainer: CrossValidationTrainer, datamodule: Any) -> None:
    """Refuse, before anything is written, a checkpoint whose folds or schedule differ from this run's."""
    from lcv_core.loop import checkpoint

    state = read_checkpoint(resume)
    split = checkpoint.split_indices(datamodule)
    if split is not None:
        checkpoint.check_compatible(state, resume, len(split), split)
    schedule = getattr(trainer, "schedule", None)
    if schedule is not None:
        checkpoint.check_schedule(state, str(resume), schedule)


def _resume_point(target: Path, files: list[str], overrides: list[str], *, trust: bool = False) -> tuple[Path, Any]:
    """Return the trainer checkpoint to resume from and the experiment config embedded in it (plus overrides).

    The embedded config is data: it may name only what installed plugins and ``register`` provide, unless ``trust``
    (``--trust-checkpoint``).
    """
    from lcv_config import ConfigError, LcvError, load_config
    from lcv_config.loading import parse_yaml

    if files:
        raise ConfigError(
            "--resume takes the config from the checkpoint; pass key=value overrides only, not config files "
            f"({', '.join(files)}).",
            "config",
        )
    ckpt = target / "checkpoints" / "last.ckpt" if target.is_dir() else target
    state = read_checkpoint(ckpt) if ckpt.is_file() else None
    if state is None:
        raise LcvError(f"--resume {target}: no checkpoint there; pass a last.ckpt or a run directory.")
    if state.get("format") != "lcv-checkpoint":
        raise LcvError(
            f"--resume {ckpt}: a fold's weights file cannot resume a run; pass the trainer checkpoint last.ckpt."
        )
    embedded = state.get("experiment_config")
    if not isinstance(embedded, str) or not embedded.strip():
        raise LcvError(f"--resume {ckpt}: the checkpoint has no embedded experiment config (not written by `lcv cv`).")
    config = load_config((), overrides, base=parse_yaml(embedded))
    check_trusted(config, ckpt, overrides, trust=trust)
    return ckpt, config


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
        parser.add_argument(
            "--nested",
            action="store_true",
            help="nested cross-validation: tune inside each outer fold (tune.nested) and score on its test rows; "
            "with --run-dir of a stopped nested run, continue it",
        )
        parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # internal: index of a local worker

    def run(self, args: argparse.Namespace) -> int:
        """Validate the config (before torch is imported), then tune and print the summary."""
        from lcv_config import ConfigError, load_config
        from lcv_config.loading import split_arguments

        files, overrides = split_arguments(args.config)
        config = load_config(files, overrides)  # bad input exits 2 here, before torch is imported
        check_plugin_names(config, files)
        for name in ("n_trials", "workers"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}.", name)
        if args.timeout is not None and args.timeout <= 0:
            raise ConfigError(f"--timeout must be positive, got {args.timeout}.", "timeout")
        from lcv_core.tuning.runner import run_worker, tune

        if args.worker is not None:  # a worker of a study whose main process holds the run directory
            run_dir = Path(args.run_dir) if args.run_dir else create_run_dir(config.output_dir, config.name)
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
        lock = RunLock.claim(args.run_dir) if args.run_dir else RunLock.new(config.output_dir, config.name)
        if args.nested or (config.tune is not None and config.tune.nested is not None):
            from lcv_core.tuning.nested import nested_tune

            return _run_study(args, config, lock, nested_tune, "the estimate is from the trials that finished")
        return _run_study(args, config, lock, tune, "best.yaml is from the trials that finished")


def _run_study(args: argparse.Namespace, config: Any, lock: RunLock, run: Any, partial: str) -> int:
    """Run (or continue) a study with ``run`` (``tune`` or ``nested_tune``) in the locked run directory.

    Returns 0, or 1 when fewer trials finished than asked (``partial`` says what the results are then).
    """
    with lock:
        try:
            start_run(lock)
            result = run(
                config,
                n_trials=args.n_trials,
                timeout=args.timeout,
                workers=args.workers,
                storage=args.storage,
                study=args.study,
                run_dir=lock.run_dir,
            )
        except BaseException:
            lock.discard()  # removes only what stayed empty: a study refused before its first trial
            raise
    print(f"run directory: {lock.run_dir}", file=sys.stderr)
    if result.problems:  # the results are written, but the study did not run as asked
        print(f"lcv: error: {'; '.join(result.problems)}; {partial}.", file=sys.stderr)
        return 1
    return 0


def _write_run_files(run_dir: Path, config: Any, datamodule: Any) -> None:
    from lcv_config.cli import installed_lcv_packages
    from lcv_config.loading import dump_config

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_config(config), encoding="utf-8")
    (run_dir / "versions.json").write_text(json.dumps(dict(installed_lcv_packages()), indent=2), encoding="utf-8")
    if hasattr(datamodule, "save_folds"):
        datamodule.save_folds(run_dir / "folds.json")


class FitCommand:
    """``lcv fit CONFIG... [key=value ...]``: train one model with holdout validation.

    The model trains on every sample outside ``data.holdout`` (or on the whole dataset when the config has a
    ``data.test_dataset``) and validates on the holdout each epoch. It runs on lcv's own trainer, as a
    cross-validation with one fold, so callbacks, early stopping, checkpoints (with the config embedded),
    ``metrics.json``/``metrics.csv`` and learning curves are those of ``lcv cv``; the ``cv/*_std`` columns are 0.
    """

    help = (
        "Train one model on the data outside the holdout and validate it on the holdout (data.holdout or "
        "data.test_dataset); same run directory as `lcv cv`, with one fold."
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add config files, overrides and the run directory option."""
        parser.add_argument("config", nargs="+", help="config files (YAML/TOML/JSON), then key=value overrides")
        parser.add_argument("--run-dir", help="write the run here instead of runs/<name>/<timestamp>/")

    def run(self, args: argparse.Namespace) -> int:
        """Validate the config, check it has holdout data, train one model and print its scores."""
        from lcv_config import ConfigError, load_config
        from lcv_config.loading import split_arguments

        files, overrides = split_arguments(args.config)
        config = load_config(files, overrides)
        check_plugin_names(config, files)
        if not has_test_data(config):
            raise ConfigError(
                f"lcv fit validates on held-out data, but this config has none. {HOLDOUT_FIX}", "data.holdout"
            )
        from lcv_core.configure import configure_all

        lock = RunLock.for_command(args.run_dir, config.output_dir, config.name)  # several processes: see lcv cv
        run_dir = lock.run_dir
        with lock:
            try:
                start_run(lock)
                trainer, factory, datamodule = configure_all(config, run_dir=run_dir)
                trainer.experiment_config_yaml = FIT_HEADER + (trainer.experiment_config_yaml or "")
                split = HoldoutValidation(datamodule)
                split.setup()  # bad splits fail here, before anything is written
                if lock.writes:
                    _write_run_files(run_dir, config, split)
            except BaseException:
                lock.discard()
                raise
            try:
                result = trainer.fit_holdout(factory, split)
            except Exception as exc:
                if lock.writes:
                    (run_dir / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
                raise
            lines = [f"best epoch {result.best_epoch}"] + [f"{n} {m.mean:.4f}" for n, m in result.metrics.items()]
            text = "\n".join(lines) + "\n"
            if lock.writes:
                (run_dir / "summary.txt").write_text(text, encoding="utf-8")
        print(text, end="")
        if lock.writes:
            print(f"run directory: {run_dir}", file=sys.stderr)
        return 0
