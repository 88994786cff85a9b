"""The plugin contracts: one ``typing.Protocol`` per plugin kind.

Implementers need no base class from lcv; an object with these members is a plugin. Each
protocol has a conformance suite in [`lcv_config.testing`][lcv_config.testing].
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Splitter(Protocol):
    """Splits sample indices into (train, validation) folds, as scikit-learn's splitters do."""

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[Sequence[int], Sequence[int]]]:
        """Yield ``(train_indices, val_indices)`` for each fold."""
        ...

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Return the number of folds ``split`` yields."""
        ...


@runtime_checkable
class FoldDataSource(Protocol):
    """Serves one ``(train_loader, val_loader)`` pair per fold; the same folds on every call.

    A loader with ``state_dict()``/``load_state_dict(state)`` (torchdata's names) resumes exactly: the trainer
    saves each fold's loader states in ``last.ckpt`` and restores them into a fresh source's loaders on resume.
    The state must load with ``torch.load(weights_only=True)``. Optional: loaders without them restart.
    """

    def train_val_dataloaders(self) -> Iterable[tuple[Any, Any]]:
        """Return the ``(train_loader, val_loader)`` pair of every fold, in fold order."""
        ...


@runtime_checkable
class Transform(Protocol):
    """Maps one sample (or target, or batch) to its transformed value."""

    def __call__(self, x: Any) -> Any:
        """Return the transformed value."""
        ...


@runtime_checkable
class FittedTransform(Protocol):
    """A transform whose state is fitted on one fold's training data only (``data.fitted_transforms``).

    What lcv (lcv-data's datamodule) calls, in order, per fold:

    1. ``copy.deepcopy(transform)``: each fold fits its own copy, so state must live on the instance.
    2. ``fit(train)``: ``train`` is the fold's training inputs (or targets) as one tensor, samples along
       dimension 0, after the ``pre`` stage. The return value is ignored.
    3. ``transform(batch)``: on batches (samples along dimension 0) of every split of that fold; one sample
       is transformed as a batch of one (``transform(x[None])[0]``), so a row's result must not depend on
       the other rows of its batch. Also on the training data, when a later fitted transform fits on its output.
    4. ``state_dict()`` when the run directory is written (``transforms.json``): the state must be
       JSON-serialisable; ``load_state_dict(state)`` on a fresh copy when ``lcv test``/``lcv predict`` reuse it.

    Optional, with its fallback: ``on`` (``"input"`` or ``"target"``; absent means ``"input"``). ``__call__``
    is not called for a fitted transform. The suite is
    [`FittedTransformContract`][lcv_config.testing.FittedTransformContract].
    """

    def fit(self, data: Any) -> Any:
        """Learn the transform's state from training data (samples along dimension 0); return ``self``."""
        ...

    def transform(self, x: Any) -> Any:
        """Apply the fitted state to a batch ``x`` (samples along dimension 0)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Return the fitted state as JSON-serialisable values."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state returned by ``state_dict`` (after a JSON round trip) into an unfitted copy."""
        ...


@runtime_checkable
class Logger(Protocol):
    """An experiment logger (``lcv.loggers``), as Lightning Fabric's loggers are.

    lcv builds it as ``Logger(**cfg, root_dir=RUN_DIR)`` (or ``save_dir=``, whichever the constructor names,
    unless the config sets it), then calls ``log_hyperparams(config)`` once with the resolved config as a nested
    dict (``NotImplementedError`` is tolerated), ``log_metrics(metrics, step=epoch)`` per epoch with per-fold
    (``fold_0/val_loss``) and fold-mean (``cv/val_loss_mean``, ``cv/val_loss_std``) floats, and ``finalize("success")``
    at the end. Optional: ``log_summary(summary)`` (the best epoch's means) and ``log_image(name, path)``.
    """

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record scalar metrics at ``step``."""
        ...

    def log_hyperparams(self, params: Any) -> None:
        """Record the run's hyperparameters (the resolved config)."""
        ...

    def finalize(self, status: str) -> None:
        """Flush and close at the end of the run (``status`` is ``"success"``)."""
        ...


@runtime_checkable
class Trial(Protocol):
    """One evaluation of an objective with a proposed set of parameters."""

    @property
    def number(self) -> int:
        """The trial's number within its study, unique across workers."""
        ...

    @property
    def params(self) -> Mapping[str, Any]:
        """The parameters proposed for this trial, keyed by config path."""
        ...

    def report(self, value: float, step: int) -> None:
        """Report the objective's intermediate value (the fold mean) after epoch ``step``."""
        ...

    def should_prune(self) -> bool:
        """Return whether the backend wants this trial stopped now."""
        ...

    def set_user_attr(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value on the trial (per-fold scores, std)."""
        ...


Objective = Callable[[Trial], float]
"""A function that trains with a trial's parameters and returns the score to optimise."""


@runtime_checkable
class Tuner(Protocol):
    """A tuning backend (``lcv.tuners``): owns a study and runs an objective over proposed trials.

    ``lcv tune`` constructs it with keywords only::

        Backend(space=..., direction="minimize" | "maximize", study=NAME | None, storage=URL | None,
                workdir=Path, sampler=dict | None, pruner=dict | None, seed=int, **tune.options)

    (``space`` is the config's ``tune.space`` mapping; ``sampler``/``pruner`` are ``{name, cfg}`` dicts), then calls
    ``optimize(objective, n_trials=..., timeout=...)`` and reads ``best_params``/``best_value``. The suite is
    [`TunerContract`][lcv_config.testing.TunerContract].
    """

    def optimize(self, objective: Objective, n_trials: int | None = None, timeout: float | None = None) -> None:
        """Run trials of ``objective`` until ``n_trials`` finished or ``timeout`` seconds passed."""
        ...

    @property
    def best_params(self) -> dict[str, Any]:
        """The parameters of the best finished trial."""
        ...

    @property
    def best_value(self) -> float:
        """The objective value of the best finished trial."""
        ...


class TrialPruned(Exception):  # noqa: N818 - the name users of Optuna know
    """Raised inside an objective to stop a trial the backend decided to prune."""


@runtime_checkable
class Command(Protocol):
    """A subcommand of the ``lcv`` command line, registered in ``lcv.commands``."""

    help: str
    """One line shown in ``lcv <command> --help``."""

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's arguments to its parser."""
        ...

    def run(self, args: argparse.Namespace) -> int:
        """Run the command and return its exit code."""
        ...
