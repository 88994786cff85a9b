"""One W&B tuner trial: the run it logs to, its reported values, and SIGTERM turned into a prune decision."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any


class WandbTrial:
    """One trial: an offline W&B run that logs the reported value once per step.

    Args:
        number: The trial's number within its study.
        params: The proposed parameters, keyed by config path.
        run: The W&B run the trial logs to.
        metric: The name the reported values are logged under.
        pruner: Called with the trial to ask whether it should stop (hyperband), or ``None``.
    """

    def __init__(self, number: int, params: Mapping[str, Any], run: Any, metric: str, pruner: Any = None) -> None:
        self._number = number
        self._params = dict(params)
        self._run = run
        self._metric = metric
        self._pruner = pruner
        self.history: list[dict[str, Any]] = []
        """The rows logged so far: ``{metric: value, "_step": step}``."""
        self.user_attrs: dict[str, Any] = {}
        """Values stored with `set_user_attr()` (also in the run's summary)."""
        self.terminated = False
        """Whether a SIGTERM (W&B's agent stopping the run) arrived during the trial."""

    @property
    def number(self) -> int:
        """The trial's number within its study."""
        return self._number

    @property
    def params(self) -> dict[str, Any]:
        """The parameters proposed for this trial, keyed by config path (inactive conditional ones are absent)."""
        return dict(self._params)

    @property
    def run(self) -> Any:
        """The trial's ``wandb`` run, to log more than the objective."""
        return self._run

    def report(self, value: float, step: int) -> None:
        """Log the objective's intermediate value (the fold mean) as one history row at ``step``."""
        row = {self._metric: float(value)}
        self._run.log(row, step=int(step))
        self.history.append({**row, "_step": int(step)})

    def should_prune(self) -> bool:
        """Return whether the sweep's early-termination rule (hyperband) or a SIGTERM stops this trial now.

        W&B's agent stops a run its controller terminates with SIGTERM; lcv turns that signal into a prune
        decision, so the CV run ends cleanly after the current epoch and the trial is recorded as pruned.
        """
        return self.terminated or bool(self._pruner is not None and self._pruner(self))

    def set_user_attr(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value in the run's summary."""
        json.dumps(value)  # fail here, not at sync time
        self.user_attrs[key] = value
        self._run.summary[key] = value

    def __repr__(self) -> str:
        return f"WandbTrial(number={self._number}, params={self._params!r})"


@contextmanager
def terminate_prunes(trial: WandbTrial) -> Iterator[None]:
    """While the trial runs, SIGTERM (how W&B's agent stops a run) marks it for pruning instead of killing it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        trial.terminated = True

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
