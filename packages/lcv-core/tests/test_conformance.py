"""lcv-core's plugins pass lcv-config's conformance suites: the network, the learner, callbacks, loggers, commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.fabric.loggers import CSVLogger, TensorBoardLogger

from lcv_config import COMMANDS, list_plugins, load_plugin
from lcv_config.testing import CallbackContract, CommandContract, LearnerContract, LoggerContract, ModelContract
from lcv_core.callbacks import (
    Callback,
    EarlyStopping,
    GradientAccumulationScheduler,
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    Timer,
)
from lcv_core.learners import SupervisedLearner
from lcv_core.learners.networks import MLP


class TestMLP(ModelContract):
    def make_model(self) -> Any:
        return MLP(in_features=4, out_features=3, hidden=[8])

    def make_input(self) -> Any:
        return torch.randn(5, 4, generator=torch.Generator().manual_seed(0))


class TestSupervisedLearner(LearnerContract):
    def make_learner(self) -> Any:
        # as lcv builds it from a config: the sections as {name, cfg} components
        return SupervisedLearner(
            model={"name": "mlp", "cfg": {"in_features": 4, "out_features": 3, "hidden": [8]}},
            criterion="CrossEntropyLoss",
            optimizer={"name": "Adam", "cfg": {"lr": 0.01}},
        )

    def make_batch(self) -> Any:
        g = torch.Generator().manual_seed(0)
        return torch.randn(6, 4, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])


CALLBACKS = {
    "early_stopping": lambda: EarlyStopping(monitor="val_loss", patience=2),
    "model_checkpoint": lambda: ModelCheckpoint(monitor="val_loss"),
    "lr_monitor": LearningRateMonitor,
    "timer": lambda: Timer(duration="00:00:10:00"),
    "model_summary": ModelSummary,
    "gradient_accumulation": lambda: GradientAccumulationScheduler({0: 2}),
}


@pytest.mark.parametrize("name", sorted(CALLBACKS))
def test_builtin_callbacks_pass_the_callback_suite(name: str) -> None:
    class Contract(CallbackContract):
        hooks_from = Callback

        def make_callback(self) -> Any:
            return CALLBACKS[name]()

    suite = Contract()
    for test in sorted(n for n in dir(Contract) if n.startswith("test_")):
        getattr(suite, test)()


class TestCSVLogger(LoggerContract):
    def make_logger(self, root_dir: Path) -> Any:
        return CSVLogger(root_dir=str(root_dir))


class TestTensorBoardLogger(LoggerContract):
    def make_logger(self, root_dir: Path) -> Any:
        return TensorBoardLogger(root_dir=str(root_dir))


class TestTensorBoardCVLogger(LoggerContract):
    """lcv's `tensorboard` logger, built as a config builds it."""

    def make_logger(self, root_dir: Path) -> Any:
        from lcv_core.loggers import TensorBoardCVLogger

        return TensorBoardCVLogger(root_dir=root_dir, name="", version="")


@pytest.mark.parametrize("plugin", [p for p in list_plugins(COMMANDS) if p.distribution == "lcv-core"], ids=str)
def test_commands_pass_the_command_suite(plugin: Any) -> None:
    class Contract(CommandContract):
        target = plugin.value

        def make_command(self) -> Any:
            return load_plugin(COMMANDS, f"lcv-core:{plugin.name}")()

    suite = Contract()
    for test in sorted(n for n in dir(Contract) if n.startswith("test_")):
        getattr(suite, test)()
