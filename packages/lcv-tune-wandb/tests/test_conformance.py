"""lcv-tune-wandb's plugins pass lcv-config's conformance suites: the tuner as lcv tune builds it, the logger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lcv_config.testing import LoggerContract, TunerContract
from lcv_tune_wandb import WandbCVLogger, WandbTuner


class TestWandbTunerAsLcvBuildsIt(TunerContract):
    tuner_class = WandbTuner


class TestWandbCVLogger(LoggerContract):
    def make_logger(self, root_dir: Path) -> Any:
        return WandbCVLogger(project="conformance", save_dir=root_dir)  # lcv passes the run directory as save_dir
