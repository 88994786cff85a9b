"""The state of one fit as a whole (epoch, stop request, fold means, best weights, split), owned by the trainer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lcv_core.core.fold_models import BestWeights
from lcv_core.core.saving import plain


@dataclass
class RunState:
    """What the trainer knows about the fit between epochs; checkpoints save and restore exactly this.

    Callbacks read it through the trainer (``trainer.current_epoch``, ``trainer.epoch_metrics``, ...) and ask for a
    stop with ``trainer.stop(reason)``; only the loop writes it.
    """

    best: BestWeights
    """Each fold's weights at the best epoch by the fold mean of the monitor."""
    current_epoch: int = 0
    """The epoch being trained (0-based), or the last one once the fit ended."""
    should_stop: bool = False
    """Whether a stop was asked for during this epoch (honoured once ``min_epochs`` are done)."""
    stop_reason: str | None = None
    """Why the fit stops early, as the callback that asked said it."""
    finished: bool = False
    """Whether the fit ended (all epochs run, or a stop was honoured)."""
    epoch_metrics: dict[str, float] = field(default_factory=dict)
    """The last epoch's per-fold metrics and fold means (``fold_<i>/<name>``, ``cv/<name>_mean``/``_std``)."""
    monitor_checked: bool = False
    """Whether the monitor was checked against the metrics of a validated epoch."""
    checkpoint_paths: dict[str, Any] = field(default_factory=dict)
    """Checkpoints written by this fit: ``best`` (per-fold paths, set by ModelCheckpoint) and ``last``."""
    split: list[list[list[int]]] | None = None
    """Each fold's ``[train indices, validation indices]``, when the datamodule says (lcv-data's do)."""
    schedule: str | None = None
    """The schedule ``schedule='auto'`` chose (``interleaved`` or ``vectorized``); a resumed fit keeps it."""
    schedule_reason: str | None = None
    """Why ``auto`` chose it, with the figures it measured."""

    def stop(self, reason: str) -> None:
        """Ask the loop to stop after this epoch."""
        self.should_stop, self.stop_reason = True, reason

    def state_dict(self) -> dict[str, Any]:
        """Return the trainer part of a checkpoint (the best weights go in a key of their own)."""
        return {
            "current_epoch": self.current_epoch,
            "should_stop": self.should_stop,
            "stop_reason": self.stop_reason,
            "finished": self.finished,
            "epoch_metrics": dict(self.epoch_metrics),
            "monitor_checked": self.monitor_checked,
            "checkpoint_paths": plain(self.checkpoint_paths),
            "schedule": self.schedule,
            "schedule_reason": self.schedule_reason,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict()` returned."""
        self.current_epoch = int(state["current_epoch"])
        self.should_stop, self.stop_reason = bool(state["should_stop"]), state["stop_reason"]
        self.finished = bool(state["finished"])
        self.epoch_metrics = dict(state["epoch_metrics"])
        self.monitor_checked = bool(state["monitor_checked"])
        self.checkpoint_paths = dict(state["checkpoint_paths"])
        self.schedule, self.schedule_reason = state.get("schedule"), state.get("schedule_reason")
