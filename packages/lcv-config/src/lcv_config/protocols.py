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
    """A transform whose state is fitted on one fold's training data only."""

    def fit(self, data: Any) -> Any:
        """Learn the transform's state from training data; return ``self``."""
        ...

    def transform(self, x: Any) -> Any:
        """Apply the fitted state to ``x``."""
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
    """A tuning backend: owns a study and runs an objective over proposed trials."""

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
