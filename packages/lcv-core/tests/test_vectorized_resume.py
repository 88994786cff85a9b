"""A vectorized fit stopped after an epoch and resumed from ``last.ckpt`` ends as the uninterrupted fit did.

The grouped step keeps the learner's stacked weights in its own layout and steps the optimizer on torch's fused
kernel; the checkpoint holds every fold's module and optimizer in the modules' layout, and resuming restacks them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from lcv_core import Callback, CrossValidationTrainer, SupervisedLearner

N_FEATURES, N_CLASSES = 8, 3  # as conftest's dataset


class StopAfter(Callback):
    """Raise at the end of epoch ``epoch`` (after its checkpoint), as a crash between epochs would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_end(self, *, epoch: int, **kwargs: Any) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt("stopped")


class FinalWeights(Callback):
    def __init__(self) -> None:
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_fold_end(self, *, fold: int, module: Any, **kwargs: Any) -> None:
        self.weights[fold] = {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("optimizer", ["Adam", "SGD"])
def test_vectorized_resume_continues_bit_for_bit(data, trainer_kwargs, tmp_path: Path, capsys, optimizer: str) -> None:
    # hidden 16: weights of 8x16 and 16x16 floats fill whole vectors (stacked transposed), 16x3 does not
    net = {"name": "mlp", "cfg": {"in_features": N_FEATURES, "out_features": N_CLASSES, "hidden": [16, 16]}}
    opt_cfg = {"lr": 0.01, "momentum": 0.9} if optimizer == "SGD" else {"lr": 0.01}
    model_kwargs = {"model": net, "optimizer": {"name": optimizer, "cfg": opt_cfg}}
    kwargs = {**trainer_kwargs, "max_epochs": 4, "schedule": "vectorized"}
    straight_weights = FinalWeights()
    straight = CrossValidationTrainer(**kwargs, callbacks=[straight_weights]).fit(
        SupervisedLearner, data, model_kwargs=model_kwargs
    )
    run = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        CrossValidationTrainer(**kwargs, default_root_dir=run, callbacks=[StopAfter(epoch=1)]).fit(
            SupervisedLearner, data, model_kwargs=model_kwargs
        )
    resumed_weights = FinalWeights()
    resumed = CrossValidationTrainer(**kwargs, default_root_dir=run, callbacks=[resumed_weights]).fit(
        SupervisedLearner, data, model_kwargs=model_kwargs, ckpt_path="last"
    )
    assert "falls back" not in capsys.readouterr().out  # all three fits ran vectorized
    assert [len(h) for h in resumed.history] == [4] * 5
    assert resumed.history == straight.history  # every fold's metrics of every epoch, exactly
    for fold, weights in straight_weights.weights.items():
        for name, value in weights.items():
            assert torch.equal(resumed_weights.weights[fold][name], value), (fold, name)
    assert straight.history[0][-1]["train_loss"] < straight.history[0][0]["train_loss"]  # it learns


class OptimizerStates(Callback):
    """Fold 0's ``optimizer.state_dict()`` after each epoch, as a checkpointing callback would read it."""

    def __init__(self) -> None:
        self.states: list[dict[int, dict[str, torch.Tensor]]] = []

    def on_validation_end(self, *, trainer: Any, **kwargs: Any) -> None:
        state = trainer.folds[0].optimizers[0].state_dict()["state"]
        self.states.append({i: {k: v.clone() for k, v in s.items()} for i, s in state.items()})


def test_a_fold_optimizer_s_state_dict_between_epochs_is_that_epoch_s_as_interleaved(data, trainer_kwargs) -> None:
    # the vectorized schedule copies the optimizer states back to the fold optimizers only when asked (state_dict)
    net = {"name": "mlp", "cfg": {"in_features": N_FEATURES, "out_features": N_CLASSES, "hidden": [16]}}
    model_kwargs = {"model": net, "optimizer": {"name": "Adam", "cfg": {"lr": 0.01}}}
    recorded = {}
    for schedule in ("interleaved", "vectorized"):
        rec = OptimizerStates()
        trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3, "schedule": schedule}, callbacks=[rec])
        trainer.fit(SupervisedLearner, data, model_kwargs=model_kwargs)
        recorded[schedule] = rec.states
        final = trainer.folds[0].optimizers[0].state_dict()["state"]
        for i, s in rec.states[-1].items():  # the last epoch's read is the state the fit ends with
            for key, value in s.items():
                assert torch.equal(final[i][key], value), (schedule, i, key)
    pairs = zip(recorded["vectorized"], recorded["interleaved"], strict=True)  # 3 epochs each
    for epoch, (vectorized, interleaved) in enumerate(pairs):
        assert vectorized.keys() == interleaved.keys()
        for i, s in interleaved.items():
            assert int(vectorized[i]["step"]) == int(s["step"]) == 8 * (epoch + 1)  # 120 samples, batches of 16
            for key in ("exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(vectorized[i][key], s[key], rtol=1e-4, atol=1e-6)
