"""The ``lcv cv``, ``fit``, ``test``, ``predict`` and ``tune`` commands.

Heavy imports (torch, Lightning) happen inside ``run`` so that ``lcv --help`` stays fast and a bad config
exits 2 before torch is imported.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


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

    def run(self, args: argparse.Namespace) -> int:
        """Validate and build everything, create the run directory, train, print the summary."""
        from lcv_config import ConfigError, load_config
        from lcv_config.cli import installed_lcv_packages
        from lcv_config.loading import dump_config, split_arguments

        files, overrides = split_arguments(args.config)
        resume: Path | None = None
        if args.resume is not None:
            resume, config = _resume_point(Path(args.resume), files, overrides)
        elif not files:
            raise ConfigError("lcv cv needs a config file, or --resume CKPT to continue a run.", "config")
        else:
            config = load_config(files, overrides)  # bad input exits 2 here, before torch is imported
        from lcv_core.configure import configure_all

        if args.run_dir:
            run_dir = Path(args.run_dir)
        elif resume is not None and resume.parent.name == "checkpoints":
            run_dir = resume.parent.parent  # continue in the run's own directory
        else:
            run_dir = new_run_dir(config.output_dir, config.name)
        trainer, factory, datamodule = configure_all(config, run_dir=run_dir)
        if hasattr(datamodule, "setup"):
            datamodule.setup("fit")  # computes the folds: bad splits fail here, before anything is written
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_config(config), encoding="utf-8")
        (run_dir / "versions.json").write_text(json.dumps(dict(installed_lcv_packages()), indent=2), encoding="utf-8")
        if hasattr(datamodule, "save_folds"):
            datamodule.save_folds(run_dir / "folds.json")
        try:
            result = trainer.fit(factory, datamodule, ckpt_path=resume)
        except Exception as exc:
            (run_dir / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
            raise
        text = result.summary()
        (run_dir / "summary.txt").write_text(text, encoding="utf-8")
        print(f"run directory: {run_dir}", file=sys.stderr)
        return 0


def _resume_point(target: Path, files: list[str], overrides: list[str]) -> tuple[Path, Any]:
    """Return the trainer checkpoint to resume from and the experiment config embedded in it (plus overrides)."""
    from lcv_config import ConfigError, LcvError, load_config
    from lcv_config.loading import parse_yaml

    if files:
        raise ConfigError(
            "--resume takes the config from the checkpoint; pass key=value overrides only, not config files "
            f"({', '.join(files)}).",
            "config",
        )
    ckpt = target / "checkpoints" / "last.ckpt" if target.is_dir() else target
    state = _read_checkpoint(ckpt) if ckpt.is_file() else None
    if state is None:
        raise LcvError(f"--resume {target}: no checkpoint there; pass a last.ckpt or a run directory.")
    if state.get("format") != "lcv-checkpoint":
        raise LcvError(
            f"--resume {ckpt}: a fold's weights file cannot resume a run; pass the trainer checkpoint last.ckpt."
        )
    embedded = state.get("experiment_config")
    if not isinstance(embedded, str) or not embedded.strip():
        raise LcvError(f"--resume {ckpt}: the checkpoint has no embedded experiment config (not written by `lcv cv`).")
    return ckpt, load_config((), overrides, base=parse_yaml(embedded))


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


FIT_HEADER = "# lcv fit: one model trained outside data.holdout and validated on it\n"
"""First line of the embedded config of an ``lcv fit`` run, so ``lcv test``/``lcv predict`` rebuild its split."""

_HOLDOUT_FIX = (
    "Add a holdout to the config, e.g. `data.holdout: 0.2` (a fraction or a count of samples carved off before "
    "the folds), or a separate `data.test_dataset`."
)


def _write_run_files(run_dir: Path, config: Any, datamodule: Any) -> None:
    from lcv_config.cli import installed_lcv_packages
    from lcv_config.loading import dump_config

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_config(config), encoding="utf-8")
    (run_dir / "versions.json").write_text(json.dumps(dict(installed_lcv_packages()), indent=2), encoding="utf-8")
    if hasattr(datamodule, "save_folds"):
        datamodule.save_folds(run_dir / "folds.json")


class HoldoutValidation:
    """One ``(train, val)`` split of a datamodule: train on everything outside its holdout, validate on the holdout.

    Wraps a datamodule with lcv-data's interface (``setup``, ``save_folds``/``load_folds``, ``test_dataloader``):
    its k folds are replaced by one fold whose training part is the union of the folds' samples, so fitted
    transforms are fitted on all of it; validation batches come from ``test_dataloader`` (the holdout or
    ``test_dataset``). Used by ``lcv fit`` with a trainer whose ``min_folds`` is 1.
    """

    def __init__(self, datamodule: Any) -> None:
        from lcv_config import ConfigError

        missing = [m for m in ("setup", "save_folds", "load_folds", "test_dataloader") if not hasattr(datamodule, m)]
        if missing:
            raise ConfigError(
                f"lcv fit needs a datamodule with {', '.join(missing)} (as lcv-data's 'cross_val'); "
                f"{type(datamodule).__name__} has none of them. Use `lcv cv` with this datamodule instead.",
                "data.datamodule",
            )
        self.datamodule = datamodule
        self._ready = False

    @property
    def trainer(self) -> Any:
        """The trainer serving batches (forwarded to the datamodule, whose hooks read its flags)."""
        return getattr(self.datamodule, "trainer", None)

    @trainer.setter
    def trainer(self, value: Any) -> None:
        self.datamodule.trainer = value

    @property
    def folds(self) -> Any:
        """The one ``(train_indices, val_indices)`` split."""
        self.setup()
        return self.datamodule.folds

    def setup(self, stage: str | None = None) -> None:
        """Compute the datamodule's split once, then replace its folds by the single holdout split."""
        import tempfile

        if self._ready:
            return
        dm = self.datamodule
        dm.setup("fit")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "folds.json"
            dm.save_folds(path)
            data = json.loads(path.read_text(encoding="utf-8"))
            pool = sorted({int(i) for fold in data["folds"] for part in ("train", "val") for i in fold[part]})
            data["folds"] = [{"train": pool, "val": data.get("test") or []}]
            path.write_text(json.dumps(data), encoding="utf-8")
            dm.load_folds(path)
        dm.setup("fit")  # fits the fitted transforms on the whole training part
        self._ready = True

    def train_val_dataloaders(self) -> list[tuple[Any, Any]]:
        """Return ``[(train_loader, holdout_loader)]``."""
        self.setup()
        train, _ = self.datamodule.train_val_dataloaders()[0]
        return [(train, self.datamodule.test_dataloader(0))]

    def test_dataloaders(self) -> list[Any]:
        """Return the holdout loader, with the transforms fitted on the training part."""
        self.setup()
        return [self.datamodule.test_dataloader(0)]

    def predict_dataloader(self, fold: int | None = None) -> Any:
        """Return the prediction loader (``predict_dataset`` or the holdout)."""
        self.setup()
        return self.datamodule.predict_dataloader(0)

    def save_folds(self, path: str | Path) -> None:
        """Write the single split as ``folds.json``."""
        self.setup()
        self.datamodule.save_folds(path)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Forward Lightning's hook to the datamodule, if it has one."""
        hook = getattr(self.datamodule, "on_after_batch_transfer", None)
        return hook(batch, dataloader_idx) if callable(hook) else batch


def _has_test_data(config: Any) -> bool:
    return config.data.holdout is not None or config.data.test_dataset is not None


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
        if not _has_test_data(config):
            raise ConfigError(
                f"lcv fit validates on held-out data, but this config has none. {_HOLDOUT_FIX}", "data.holdout"
            )
        from lcv_core.configure import configure_all

        run_dir = Path(args.run_dir) if args.run_dir else new_run_dir(config.output_dir, config.name)
        trainer, factory, datamodule = configure_all(config, run_dir=run_dir)
        trainer.min_folds = 1
        trainer.experiment_config_yaml = FIT_HEADER + (trainer.experiment_config_yaml or "")
        split = HoldoutValidation(datamodule)
        split.setup()  # bad splits fail here, before anything is written
        _write_run_files(run_dir, config, split)
        try:
            result = trainer.fit(factory, split)
        except Exception as exc:
            (run_dir / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
            raise
        lines = [f"best epoch {result.best_epoch}"] + [f"{n} {m.mean:.4f}" for n, m in result.metrics.items()]
        text = "\n".join(lines) + "\n"
        (run_dir / "summary.txt").write_text(text, encoding="utf-8")
        print(text, end="")
        print(f"run directory: {run_dir}", file=sys.stderr)
        return 0


# -- checkpoints -> models ---------------------------------------------------------------------------


class LoadedModels:
    """Fold models rebuilt from checkpoints: the embedded config, each model with its fold index, the run dir."""

    def __init__(self, config: Any, models: list[Any], folds: list[int], run_dir: Path | None, single: bool) -> None:
        self.config = config
        self.models = models
        self.folds = folds
        self.run_dir = run_dir
        self.single = single
        """Whether the checkpoints come from ``lcv fit`` (one model, holdout validation)."""


def _read_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    from lcv_config import LcvError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for foreign files
        raise LcvError(
            f"{path} is not an lcv checkpoint: torch.load cannot read it ({type(exc).__name__}). Pass a "
            "fold_<i>.ckpt file written by ModelCheckpoint, a last.ckpt, an epoch folder or a run directory."
        ) from exc
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt not in ("lcv-fold-weights", "lcv-checkpoint"):
        raise LcvError(
            f"{path} is not an lcv checkpoint (expected format 'lcv-fold-weights' or 'lcv-checkpoint', found "
            f"{fmt!r}). Pass a fold_<i>.ckpt file written by ModelCheckpoint, a last.ckpt or a run directory."
        )
    return state  # type: ignore[no-any-return]  # checked to be a dict above


def _checkpoint_files(target: Path) -> list[Path]:
    from lcv_config import LcvError

    if not target.exists():
        raise LcvError(
            f"{target} does not exist; pass a fold_<i>.ckpt file, an epoch folder of them, a last.ckpt or a run "
            "directory (runs/<name>/<timestamp>)."
        )
    if target.is_file():
        return [target]
    fold_files = sorted(target.glob("fold_*.ckpt"), key=lambda p: int(p.stem[5:]) if p.stem[5:].isdigit() else 0)
    if fold_files:
        return fold_files
    for candidate in (target / "checkpoints" / "last.ckpt", target / "last.ckpt"):
        if candidate.is_file():
            return [candidate]
    raise LcvError(
        f"{target} holds no checkpoint: expected fold_<i>.ckpt files (an epoch folder), checkpoints/last.ckpt "
        "(a run directory) or last.ckpt."
    )


def _best_states(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Each fold's weights at the best epoch of a trainer checkpoint (its last weights when none was recorded)."""
    best = state.get("best_weights") or {}
    if best.get("states"):
        return list(best["states"])
    per_epoch, epoch = best.get("per_epoch") or [], best.get("epoch")
    if per_epoch and all(per_epoch) and epoch is not None:
        return [fold[min(int(epoch), len(fold) - 1)] for fold in per_epoch]
    return [fold["model"] for fold in state["folds"]]


def _run_dir_of(files: list[Path]) -> Path | None:
    for parent in files[0].resolve().parents[:3]:
        if (parent / "config.yaml").is_file() and (parent / "checkpoints").is_dir():
            return parent
    return None


def load_models(target: str | Path, overrides: list[str] | None = None) -> LoadedModels:
    """Rebuild the fold models from checkpoints alone, with the experiment config embedded in them.

    Args:
        target: A ``fold_<i>.ckpt`` file, an epoch folder of them (a fold ensemble), a ``last.ckpt`` (every
            fold at its best epoch) or a run directory (its ``checkpoints/last.ckpt``).
        overrides: ``key=value`` overrides applied to the embedded config.

    Raises:
        LcvError: The path is missing, not an lcv checkpoint, or a checkpoint has no embedded config.
    """
    from lcv_config import LcvError, load_config
    from lcv_config.loading import parse_yaml

    files = _checkpoint_files(Path(target))
    pairs: list[tuple[int, dict[str, Any]]] = []
    text: str | None = None
    for path in files:
        state = _read_checkpoint(path)
        embedded = state.get("experiment_config")
        if not isinstance(embedded, str) or not embedded.strip():
            raise LcvError(
                f"{path} has no embedded experiment config, so the model cannot be rebuilt from it alone (it was "
                "written by a trainer not built from a config, or by an older lcv-core). Train with "
                "`lcv cv CONFIG` or `lcv fit CONFIG`, or build the model in Python and load state['state_dict']."
            )
        text = text or embedded
        if state["format"] == "lcv-fold-weights":
            pairs.append((int(state.get("fold", len(pairs))), state["state_dict"]))
        else:
            pairs += list(enumerate(_best_states(state)))
    assert text is not None  # noqa: S101  # one file at least, each with a config
    config = load_config((), overrides or [], base=parse_yaml(text))
    from lcv_core.configure import learner_factory

    factory = learner_factory(config)
    models = []
    for _fold, weights in pairs:
        model = factory()
        model.load_state_dict(weights)
        model.eval()
        models.append(model)
    return LoadedModels(config, models, [f for f, _ in pairs], _run_dir_of(files), text.startswith(FIT_HEADER))


def _holdout_source(loaded: LoadedModels, what: str) -> Any:
    """The datamodule the checkpoints' config describes, split as in the run (``lcv fit``: one holdout split)."""
    from lcv_config import ConfigError

    if not _has_test_data(loaded.config):
        raise ConfigError(f"The checkpoint's config has no test data for {what}. {_HOLDOUT_FIX}", "data.holdout")
    from lcv_core.configure import build_datamodule

    datamodule = build_datamodule(loaded.config)
    if loaded.single:
        return HoldoutValidation(datamodule)
    if hasattr(datamodule, "setup"):
        datamodule.setup("fit")
    return datamodule


def _per_fold_loaders(source: Any, folds: list[int], kind: str) -> list[Any]:
    """One loader per model: the datamodule's per-fold loaders (each fold's fitted transforms) when it has them."""
    from lcv_config import LcvError

    if kind == "test" and hasattr(source, "test_dataloaders"):
        loaders = list(source.test_dataloaders())
        return [loaders[min(f, len(loaders) - 1)] for f in folds]
    method = getattr(source, f"{kind}_dataloader", None)
    if not callable(method):
        raise LcvError(
            f"The datamodule {type(source).__name__} has no {kind}_dataloader(); it cannot serve {kind} data."
        )
    try:
        return [method(f) for f in folds]
    except TypeError:  # a Lightning datamodule: one loader, no fold argument
        return [method()] * len(folds)


# -- lcv test ------------------------------------------------------------------------------------------


def _format_table(rows: list[tuple[str, dict[str, str]]], columns: list[str]) -> str:
    widths = [max(len(c), *(len(r.get(c, "")) for _, r in rows)) for c in columns]
    label = max(len(name) for name, _ in rows)
    lines = ["  ".join([" " * label, *(c.rjust(w) for c, w in zip(columns, widths, strict=True))])]
    for name, row in rows:
        lines.append(
            "  ".join([name.ljust(label), *(row.get(c, "").rjust(w) for c, w in zip(columns, widths, strict=True))])
        )
    return "\n".join(lines)


def evaluate(loaded: LoadedModels) -> dict[str, Any]:
    """Test every fold model on the holdout with its own fold's loader, and the fold ensemble; return the scores.

    Returns:
        ``{"per_fold": [{metric: value}], "metrics": {metric: {"mean", "std", "per_fold"}}, "ensemble": {...}}``.
    """
    import torch

    from lcv_core.inference import _ensemble_scores, _inputs, test
    from lcv_core.results import MetricSummary

    source = _holdout_source(loaded, "lcv test")
    loaders = _per_fold_loaders(source, loaded.folds, "test")
    per_fold = [test([model], loader).per_fold[0] for model, loader in zip(loaded.models, loaders, strict=True)]
    outputs: list[list[Any]] = []
    targets: list[Any] = []
    for model, loader in zip(loaded.models, loaders, strict=True):
        outs, ys = [], []
        with torch.no_grad():
            for batch in loader:
                outs.append(model(_inputs(batch)).cpu())
                if isinstance(batch, (list, tuple)) and len(batch) == 2:
                    ys.append(batch[1].cpu())
        outputs.append(outs)
        targets.append(torch.cat(ys) if ys else None)
    same = all(t is not None and torch.equal(t, targets[0]) for t in targets)
    ensemble = _ensemble_scores(outputs, targets[0]) if len(outputs) > 1 and same else {}
    names = sorted(set.intersection(*(set(m) for m in per_fold)))
    metrics = {}
    for name in names:
        summary = MetricSummary(name, [m[name] for m in per_fold])
        metrics[name] = {"mean": summary.mean, "std": summary.std, "per_fold": summary.per_fold}
    return {"folds": loaded.folds, "per_fold": per_fold, "metrics": metrics, "ensemble": ensemble}


class TestCommand:
    """``lcv test RUN_DIR_OR_CKPT``: score each fold's best model and the fold ensemble on the holdout."""

    __test__ = False  # not a pytest test class despite the name

    help = (
        "Evaluate each fold's best model and the fold ensemble on the holdout test data; print a table and "
        "write test_metrics.json into the run directory."
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the checkpoint or run directory and config overrides."""
        parser.add_argument("checkpoint", help="a run directory, last.ckpt, an epoch folder or a fold_<i>.ckpt")
        parser.add_argument("overrides", nargs="*", help="key=value overrides of the embedded config")
        parser.add_argument("--output", help="write the JSON here (default <run dir>/test_metrics.json)")

    def run(self, args: argparse.Namespace) -> int:
        """Rebuild the models, test them, print the table and write ``test_metrics.json``."""
        loaded = load_models(args.checkpoint, list(args.overrides))
        report = evaluate(loaded)
        columns = list(report["metrics"])
        rows = [
            (f"fold {f}", {n: f"{m[n]:.4f}" for n in columns if n in m})
            for f, m in zip(loaded.folds, report["per_fold"], strict=True)
        ]
        if len(rows) > 1:
            rows.append(("mean ± std", {n: f"{s['mean']:.4f} ± {s['std']:.4f}" for n, s in report["metrics"].items()}))
        table = _format_table(rows, columns)
        if report["ensemble"]:
            table += "\nensemble: " + ", ".join(f"{k} {v:.4f}" for k, v in report["ensemble"].items())
        print(table)
        target = Path(args.checkpoint)
        default_dir = loaded.run_dir or (target if target.is_dir() else target.parent)
        out = Path(args.output) if args.output else default_dir / "test_metrics.json"
        report["checkpoint"] = str(target)
        out.write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"test metrics: {out}", file=sys.stderr)
        return 0


# -- lcv predict ---------------------------------------------------------------------------------------


def read_features(path: str | Path) -> Any:
    """Read a feature matrix from ``.npy`` or ``.csv`` (header row optional) as a float32 tensor.

    Raises:
        LcvError: The file is missing, of another kind, empty or not numeric.
    """
    import numpy as np
    import torch

    from lcv_config import LcvError

    path = Path(path)
    if not path.is_file():
        raise LcvError(f"--data {path} does not exist; pass a .npy or .csv file of features, one row per sample.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            try:
                [float(v) for v in lines[0].split(",")] if lines else None
                skip = 0
            except ValueError:
                skip = 1  # a header row
            array = np.loadtxt(lines[skip:], delimiter=",", ndmin=2, dtype=np.float64)
        else:
            raise LcvError(f"--data {path}: expected a .npy or .csv file, got '{path.suffix or '(no suffix)'}'.")
    except ValueError as exc:
        raise LcvError(f"--data {path} is not a numeric feature table: {exc}") from exc
    if array.size == 0:
        raise LcvError(f"--data {path} holds no samples.")
    return torch.as_tensor(np.asarray(array, dtype=np.float32))


def _expected_features(model: Any) -> int | None:
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.Linear):
            return int(module.in_features)
    return None


def _feature_loaders(loaded: LoadedModels, x: Any, data: str) -> list[Any]:
    """Batches of user features per model, through each fold's fitted input transforms when the config has any."""
    from lcv_config import LcvError

    expected = _expected_features(loaded.models[0])
    n = int(x.shape[1]) if x.ndim == 2 else None
    if expected is not None and n is not None and n != expected:
        raise LcvError(
            f"--data {data} has {n} features per sample; the model expects {expected} (its first layer's "
            "in_features). Pass the same feature columns the model was trained on."
        )
    per_fold = [x] * len(loaded.models)
    if loaded.config.data.fitted_transforms:
        per_fold = [_fitted_inputs(loaded, fold, x) for fold in loaded.folds]
    return [[(xf[i : i + 256],) for i in range(0, len(xf), 256)] for xf in per_fold]


def _fitted_inputs(loaded: LoadedModels, fold: int, x: Any) -> Any:
    """Apply fold ``fold``'s fitted input transforms, refitted from the config's dataset and split."""
    from lcv_config import LcvError
    from lcv_core.configure import build_datamodule

    cache = loaded.__dict__.setdefault("_fitted", {})
    if "source" not in cache:
        datamodule = build_datamodule(loaded.config)
        source = HoldoutValidation(datamodule) if loaded.single else datamodule
        source.setup("fit")
        cache["source"] = datamodule
    fitted = getattr(cache["source"], "fitted", None)
    if not fitted:
        raise LcvError(
            "The config has data.fitted_transforms, but its datamodule exposes no fitted state ('fitted'), so "
            "--data cannot be transformed as in training. Predict on the config's holdout instead (omit --data)."
        )
    for t in fitted[0 if loaded.single else fold]:
        if getattr(t, "on", "input") != "target":
            x = t.transform(x)
    return x


class PredictCommand:
    """``lcv predict CKPT [--data FILE] [--output FILE] [--ensemble mean|vote] [key=value ...]``.

    Rebuilds the learner from the config embedded in the checkpoint(s), loads the weights and predicts on
    ``--data`` (features as ``.npy`` or ``.csv``; through each fold's fitted transforms, refitted from the
    config's dataset, when the config has ``fitted_transforms``) or, by default, on the config's holdout or
    ``test_dataset``. Writes one CSV row per sample: class probabilities and the predicted label for
    classification, the outputs for regression, and the target when the data has one.
    """

    help = (
        "Predict with a checkpoint alone: a fold_<i>.ckpt, an epoch folder (fold ensemble) or a run directory; "
        "on --data (.npy/.csv features) or the config's holdout; write a CSV of predictions."
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the checkpoint, data, output and ensemble options and config overrides."""
        parser.add_argument("checkpoint", help="a fold_<i>.ckpt, an epoch folder of them, last.ckpt or a run directory")
        parser.add_argument("overrides", nargs="*", help="key=value overrides of the embedded config")
        parser.add_argument("--data", help="features to predict: .npy or .csv (header optional); default the holdout")
        parser.add_argument("--output", default="predictions.csv", help="CSV to write (default predictions.csv)")
        parser.add_argument("--ensemble", default="mean", choices=["mean", "vote"], help="how folds combine")

    def run(self, args: argparse.Namespace) -> int:
        """Rebuild the models, predict, write the CSV and print a summary."""
        import torch

        from lcv_config import LcvError
        from lcv_core.inference import _ensemble, predict

        loaded = load_models(args.checkpoint, list(args.overrides))
        if args.data:
            x = read_features(args.data)
            loaders = _feature_loaders(loaded, x, args.data)
            targets = None
        else:
            source = _holdout_source(loaded, "lcv predict without --data")
            loaders = _per_fold_loaders(source, loaded.folds, "test")
            targets = _targets(loaders[0])
        pairs = zip(loaded.models, loaders, strict=True)
        try:
            per_fold = [predict([model], loader, ensemble=None).per_fold[0] for model, loader in pairs]
        except RuntimeError as exc:
            raise LcvError(f"The model cannot predict on {args.data or 'the holdout'}: {exc}") from exc
        classification = getattr(loaded.models[0], "task", None) == "classification"
        probs = _ensemble(per_fold, "mean") if len(per_fold) > 1 else per_fold[0].float()
        if probs.ndim == 1:
            probs = probs[:, None]
        header: list[str]
        if classification:
            binary = probs.shape[1] == 1
            probs = torch.cat([1 - probs, probs], dim=1) if binary else probs
            vote = args.ensemble == "vote" and len(per_fold) > 1
            labels = _ensemble(per_fold, "vote") if vote else probs.argmax(dim=1)
            header = [f"prob_{c}" for c in range(probs.shape[1])] + ["label"]
            columns = [*probs.T.tolist(), labels.tolist()]
        else:
            header = ["prediction"] if probs.shape[1] == 1 else [f"prediction_{j}" for j in range(probs.shape[1])]
            columns = probs.T.tolist()
        if targets is not None and len(targets) == len(probs) and targets.ndim == 1:
            header.append("target")
            columns.append(targets.tolist())
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = [",".join(_cell(v) for v in row) for row in zip(*columns, strict=True)]
        out.write_text("\n".join([",".join(header), *rows]) + "\n", encoding="utf-8")
        how = f"fold {loaded.folds[0]}'s model"
        if len(loaded.models) > 1:
            how = f"{len(loaded.models)} fold models, ensemble {args.ensemble}"
        summary = f"predicted {len(probs)} samples with {how} -> {out}"
        if classification and targets is not None and len(targets) == len(probs):
            summary += f"; accuracy against the targets {float((labels == targets).float().mean()):.4f}"
        print(summary)
        return 0


def _cell(value: Any) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _targets(loader: Any) -> Any:
    import torch

    ys = [batch[1] for batch in loader if isinstance(batch, (list, tuple)) and len(batch) == 2]
    return torch.cat([y.cpu() for y in ys]) if ys else None
