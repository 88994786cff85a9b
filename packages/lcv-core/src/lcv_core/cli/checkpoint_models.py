"""Rebuild fold models from checkpoints alone, with the experiment config embedded in them.

``lcv test`` and ``lcv predict`` rebuild their models here and ``lcv cv --resume`` reads its checkpoint here; torch
is imported only when a checkpoint is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lcv_core.cli.checkpoint_trust import check_trusted
from lcv_core.cli.holdout import FIT_HEADER, has_test_data


class LoadedModels:
    """Fold models rebuilt from checkpoints: the embedded config, each model with its fold index, the run dir."""

    def __init__(self, config: Any, models: list[Any], folds: list[int], run_dir: Path | None, single: bool) -> None:
        self.config = config
        self.models = models
        self.folds = folds
        self.run_dir = run_dir
        self.single = single
        """Whether the checkpoints come from ``lcv fit`` (one model, holdout validation)."""


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read a fold-weights file or a full lcv checkpoint; one clear error for anything else."""
    from lcv_core.core import saving

    def unreadable(exc: Exception) -> str:
        return (
            f"{path} is not an lcv checkpoint: torch.load cannot read it ({type(exc).__name__}). Pass a "
            "fold_<i>.ckpt file written by ModelCheckpoint, a last.ckpt, an epoch folder or a run directory."
        )

    def foreign(state: Any) -> str:
        fmt = state.get("format") if isinstance(state, dict) else None
        return (
            f"{path} is not an lcv checkpoint (expected format 'lcv-fold-weights' or 'lcv-checkpoint', found "
            f"{fmt!r}). Pass a fold_<i>.ckpt file written by ModelCheckpoint, a last.ckpt or a run directory."
        )

    return saving.read(path, ("lcv-fold-weights", saving.FORMAT), unreadable, foreign)


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


_LAYOUT = ("seed", "data.splitter", "data.holdout", "data.labels", "data.groups")
"""The config keys that decide which samples each fold trained and validated on."""


def _lookup(config: Any, dotted: str) -> Any:
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value.model_dump() if hasattr(value, "model_dump") else value


def _check_same_layout(run: Any, now: Any, source: Path) -> None:
    """Refuse overrides that change the fold layout: each model must see the holdout split as in its run."""
    from lcv_config import ConfigError

    changed = [k for k in _LAYOUT if _lookup(run, k) != _lookup(now, k)]
    if changed and has_test_data(now):  # without test data the commands say so, which is the clearer message
        key = changed[0]
        raise ConfigError(
            f"The overrides change {', '.join(changed)} ({key}: {_lookup(run, key)!r} in the run, "
            f"{_lookup(now, key)!r} now): the fold models of {source} were trained on another fold layout, and their "
            "scores on it would mix training and validation samples. Drop those overrides; to evaluate another "
            "layout, train it with `lcv cv`.",
            key,
        )


def check_fold_layout(loaded: LoadedModels, datamodule: Any) -> None:
    """Refuse a datamodule whose folds differ from the run's ``folds.json`` (when the run directory is known).

    Raises:
        LcvError: The fold count or some fold's indices differ.
    """
    import json

    from lcv_config import LcvError

    saved = loaded.run_dir / "folds.json" if loaded.run_dir is not None else None
    folds = getattr(datamodule, "folds", None)
    if loaded.single or saved is None or not saved.is_file() or folds is None or callable(folds):
        return
    try:
        written = json.loads(saved.read_text(encoding="utf-8"))["folds"]
        run = [[sorted(map(int, f["train"])), sorted(map(int, f["val"]))] for f in written]
        now = [[sorted(map(int, tr)), sorted(map(int, va))] for tr, va in folds]
    except (KeyError, TypeError, ValueError):
        return  # a datamodule's own folds.json format: nothing to compare with
    if run != now:
        differ = [i for i in range(max(len(run), len(now))) if i >= len(run) or i >= len(now) or run[i] != now[i]]
        raise LcvError(
            f"The datamodule now gives {len(now)} folds, the run {loaded.run_dir} was trained on {len(run)} "
            f"(folds {differ} differ from its folds.json): each fold model must be evaluated with its own fold's "
            "fitted transforms and holdout, as in training. Use the run's config without overrides of the split."
        )


def load_models(
    target: str | Path, overrides: list[str] | None = None, *, trust_checkpoint: bool = False
) -> LoadedModels:
    """Rebuild the fold models from checkpoints alone, with the experiment config embedded in them.

    A checkpoint is data: its config may name only what installed plugins and ``register`` provide (and classes of
    the modules bare names are looked up in, such as ``torch.nn``); any other dotted path is refused before anything
    is imported, unless ``trust_checkpoint`` (see `lcv_core.cli.checkpoint_trust`).

    Args:
        target: A ``fold_<i>.ckpt`` file, an epoch folder of them (a fold ensemble), a ``last.ckpt`` (every
            fold at its best epoch) or a run directory (its ``checkpoints/last.ckpt``).
        overrides: ``key=value`` overrides applied to the embedded config.
        trust_checkpoint: Import and call any dotted path the embedded config names, as for a config file you
            wrote. Only for checkpoints from a source you trust as you would trust its code.

    Raises:
        LcvError: The path is missing, not an lcv checkpoint, a checkpoint has no embedded config, or the config
            names a dotted path no plugin provides (without ``trust_checkpoint``).
    """
    from lcv_config import LcvError, load_config
    from lcv_config.loading import parse_yaml

    files = _checkpoint_files(Path(target))
    pairs: list[tuple[int, dict[str, Any]]] = []
    text: str | None = None
    for path in files:
        state = read_checkpoint(path)
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

    check_trusted(config, files[0], overrides or [], trust=trust_checkpoint)
    if overrides:
        _check_same_layout(load_config((), [], base=parse_yaml(text)), config, files[0])

    factory = learner_factory(config)
    models = []
    for _fold, weights in pairs:
        model = factory()
        model.load_state_dict(weights)
        model.eval()
        models.append(model)
    return LoadedModels(config, models, [f for f, _ in pairs], _run_dir_of(files), text.startswith(FIT_HEADER))
