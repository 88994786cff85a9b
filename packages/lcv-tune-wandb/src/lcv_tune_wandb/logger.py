"""Log a cross-validation run to Weights & Biases: per-fold and fold-mean metrics on one monotonic step axis.

[`WandbCVLogger`][lcv_tune_wandb.WandbCVLogger] is a Lightning Fabric logger (``log_metrics``, ``log_hyperparams``,
``finalize``), written without importing lightning so that lcv-tune-wandb depends on lcv-config only. The trainer logs
epoch rows
(``fold_<i>/<name>``, ``cv/<name>_mean``, ``cv/<name>_std``, ``epoch``) and, when the module logs ``on_step``,
per-step rows whose step is the fold's own optimizer step. W&B drops rows whose step goes backwards, so the
logger keeps its own monotonic row counter as W&B's step and records the trainer's step in ``trainer/step``; epoch
metrics are plotted against ``epoch`` (``define_metric``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lcv_config import ConfigError
from lcv_tune_wandb._engine import import_wandb

MODES = ("offline", "online", "auto")
"""How the logger reaches W&B: ``offline`` (files to sync later), ``online``, or ``auto`` (online with an API key)."""


def resolve_mode(mode: str) -> str:
    """Return ``"online"`` or ``"offline"`` for ``mode``.

    ``auto`` is online when an API key is configured (``WANDB_API_KEY``) and ``WANDB_MODE`` does not say
    ``offline``/``disabled``; otherwise offline, so a run never fails for want of an account.

    Raises:
        ConfigError: ``mode`` is not one of `MODES`.
    """
    if mode not in MODES:
        from lcv_config.errors import did_you_mean

        raise ConfigError(f"Unknown W&B mode {mode!r}.{did_you_mean(mode, MODES)} Valid: {', '.join(MODES)}.", "mode")
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").lower()
    if env in ("offline", "dryrun", "disabled"):
        return "offline"
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


class WandbCVLogger:
    """A Fabric logger that writes a cross-validation run to one W&B run.

    Args:
        project: The W&B project.
        name: The run's display name (default: W&B's).
        group: The run group, e.g. the experiment name.
        save_dir: Where W&B writes its files (``<save_dir>/wandb/``); the run directory when built from a config.
        mode: ``offline`` (default), ``online`` or ``auto``; see `resolve_mode()`.
        entity: The W&B entity (team or user), online only.
        tags: Tags of the run.
        config: Extra config values stored with the run.

    Example:
        >>> trainer = CrossValidationTrainer(loggers=[WandbCVLogger(project="digits")])  # doctest: +SKIP
    """

    def __init__(
        self,
        project: str = "lcv",
        name: str | None = None,
        group: str | None = None,
        save_dir: str | Path | None = None,
        mode: str = "offline",
        entity: str | None = None,
        tags: list[str] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.mode = resolve_mode(mode)
        self.project = project
        self._name = name
        self.group = group
        self.save_dir = Path(save_dir) if save_dir is not None else Path(".")
        self.entity = entity
        self.tags = list(tags or [])
        self._config = dict(config or {})
        self._run: Any = None
        self._row = 0

    # -- Fabric's logger interface --------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The run's name (``lcv`` until the run starts and W&B names it)."""
        return str(self._run.name) if self._run is not None else (self._name or "lcv")

    @property
    def version(self) -> str:
        """The W&B run id (empty until the run starts)."""
        return str(self._run.id) if self._run is not None else ""

    @property
    def root_dir(self) -> str:
        """Where W&B writes its files."""
        return str(self.save_dir)

    @property
    def log_dir(self) -> str:
        """The run's own directory (``.../wandb/<offline-run-...>``), once it started."""
        return str(Path(self.experiment.dir).parent)

    @property
    def experiment(self) -> Any:
        """The ``wandb`` run, started on first use."""
        if self._run is None:
            wandb = import_wandb()
            self.save_dir.mkdir(parents=True, exist_ok=True)
            self._run = wandb.init(
                dir=str(self.save_dir),
                project=self.project,
                entity=self.entity,
                name=self._name,
                group=self.group,
                tags=self.tags,
                config=self._config,
                reinit="create_new",
                settings=wandb.Settings(mode=self.mode, silent=True, console="off", save_code=False, disable_git=True),
            )
            self._run.define_metric("epoch")
            for pattern in ("cv/*", "fold_*"):
                self._run.define_metric(pattern, step_metric="epoch")
        return self._run

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log one row; ``step`` (the trainer's step or epoch) is kept as ``trainer/step``, W&B's step only grows."""
        row: dict[str, Any] = {k: float(v) for k, v in metrics.items() if not _is_nan(v)}
        if step is not None:
            row["trainer/step"] = int(step)
        self.experiment.log(row, step=self._row)
        self._row += 1

    def log_hyperparams(self, params: Mapping[str, Any] | Any, *args: Any, **kwargs: Any) -> None:
        """Store ``params`` (a mapping, e.g. the resolved experiment config) in the run's config."""
        values = params if isinstance(params, Mapping) else vars(params)
        self.experiment.config.update(dict(values), allow_val_change=True)

    def log_summary(self, values: Mapping[str, Any]) -> None:
        """Set summary values of the run, e.g. each metric's fold mean and std at the best epoch."""
        for key, value in values.items():
            self.experiment.summary[key] = value

    def log_image(self, key: str, path: str | Path) -> None:
        """Log an image file (the learning-curve plot) under ``key``."""
        wandb = import_wandb()
        self.experiment.log({key: wandb.Image(str(path))}, step=self._row)
        self._row += 1

    def save(self) -> None:
        """Nothing to flush: W&B writes as it goes."""

    def finalize(self, status: str) -> None:
        """Finish the run; a status other than ``success`` records exit code 1."""
        if self._run is not None:
            self._run.finish(exit_code=0 if status == "success" else 1)
            self._run = None

    def __repr__(self) -> str:
        return f"WandbCVLogger(project={self.project!r}, mode={self.mode!r})"


def _is_nan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False
