"""The conformance suite of experiment loggers (``lcv.loggers``)."""

from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path
from typing import Any

from lcv_config.protocols import Logger
from lcv_config.testing._helpers import missing_members


class LoggerContract:
    """What a logger (``lcv.loggers``) must take: lcv's calls, with its metric names, writing under its folder.

    Implement `make_logger(root_dir)`, building the logger as lcv does (``Logger(root_dir=root_dir)`` or
    ``save_dir=``); see [`Logger`][lcv_config.Logger] for the calls.
    """

    config: dict[str, Any] = {
        "seed": 0,
        "model": {"name": "mlp", "cfg": {"hidden": [16, 16], "dropout": None}},
        "trainer": {"max_epochs": 2, "monitor": "val_loss"},
        "callbacks": [],
    }
    """The resolved config given to ``log_hyperparams`` (nested, with lists and ``None``)."""

    def make_logger(self, root_dir: Path) -> Any:
        """Return a logger that writes under ``root_dir``."""
        raise NotImplementedError

    @staticmethod
    def epoch_metrics(epoch: int) -> dict[str, float]:
        """Return one epoch's metrics as lcv logs them: per fold and the fold mean and std."""
        folds = {f"fold_{i}/val_loss": 1.0 / (epoch + 1) + 0.1 * i for i in range(3)}
        return {**folds, "cv/val_loss_mean": 1.0 / (epoch + 1) + 0.1, "cv/val_loss_std": 0.0816}

    def _run(self, root_dir: Path) -> Any:
        logger = self.make_logger(root_dir)
        with contextlib.suppress(NotImplementedError):  # lcv tolerates it (Fabric's CSVLogger raises it)
            logger.log_hyperparams(copy.deepcopy(self.config))
        for epoch in range(3):
            logger.log_metrics(self.epoch_metrics(epoch), step=epoch)
        logger.finalize("success")
        return logger

    def test_is_a_logger(self, tmp_path: Path) -> None:
        """The object has ``log_metrics``, ``log_hyperparams`` and ``finalize``."""
        logger = self.make_logger(tmp_path)
        missing = missing_members(logger, Logger)
        assert not missing, f"{type(logger).__name__} lacks {missing}"

    def test_takes_a_whole_run_and_writes_only_under_its_folder(self, tmp_path: Path) -> None:
        """A run's calls succeed, and every file written lies under ``root_dir`` (none in the working directory)."""
        root, cwd = tmp_path / "run", tmp_path / "cwd"
        root.mkdir()
        cwd.mkdir()
        previous = Path.cwd()
        os.chdir(cwd)
        try:
            self._run(root)
        finally:
            os.chdir(previous)
        stray = sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*"))
        assert not stray, f"the logger wrote outside its root_dir, into the working directory: {stray[:5]}"
