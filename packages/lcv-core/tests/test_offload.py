"""The offload schedule: interleaved numbers, idle folds' weights and optimizer state on the CPU."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lcv_core import Callback, CrossValidationTrainer
from lcv_core.core.fold import move_fold


class AdamModule:
    """Mixin: Adam, so every fold has optimizer state (exp_avg, exp_avg_sq) to move."""

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=0.01)  # type: ignore[attr-defined]


def test_offload_gives_the_interleaved_metrics(data, tiny, trainer_kwargs) -> None:
    class Adam(AdamModule, tiny):  # type: ignore[misc, valid-type]
        pass

    kwargs = {**trainer_kwargs, "max_epochs": 3}
    interleaved = CrossValidationTrainer(**kwargs, schedule="interleaved").fit(Adam, data)
    offload = CrossValidationTrainer(**kwargs, schedule="offload").fit(Adam, data)
    assert offload.history == interleaved.history
    assert len(offload.models) == 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="on a CPU-only machine every fold is on the CPU anyway")
def test_offload_keeps_idle_folds_on_the_cpu_and_the_active_one_on_the_device(data, tiny, trainer_kwargs) -> None:
    seen: list[tuple[int, list[str]]] = []

    class Devices(Callback):
        def on_train_batch_start_per_fold(self, *, trainer: Any, fold: int, batch_idx: int, **kwargs: Any) -> None:
            if batch_idx == 1:  # after the first step, so the optimizer has state
                where = []
                for f in trainer.folds:
                    devices = {p.device.type for p in f.module.parameters()}
                    state = f.optimizers[0].optimizer.state
                    devices |= {v.device.type for s in state.values() for k, v in s.items() if k != "step"}
                    where.append(",".join(sorted(devices)))
                seen.append((fold, where))

    class Adam(AdamModule, tiny):  # type: ignore[misc, valid-type]
        pass

    kwargs = {**trainer_kwargs, "max_epochs": 1, "accelerator": "cuda"}
    trainer = CrossValidationTrainer(**kwargs, schedule="offload", callbacks=[Devices()])
    trainer.fit(Adam, data)
    device = trainer.fabric.device.type
    assert device == "cuda"
    assert [fold for fold, _ in seen] == [0, 1, 2, 3, 4]
    for fold, where in seen:
        assert where[fold] == device
        assert all(w == "cpu" for i, w in enumerate(where) if i != fold)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_move_fold_moves_parameters_and_optimizer_state_to_cuda(data, tiny, trainer_kwargs) -> None:
    class Adam(AdamModule, tiny):  # type: ignore[misc, valid-type]
        pass

    trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 1, "accelerator": "cuda"}, schedule="offload")
    trainer.fit(Adam, data)
    fold = trainer.folds[0]
    assert {p.device.type for p in fold.module.parameters()} == {"cpu"}
    move_fold(fold, torch.device("cuda"))
    state = fold.optimizers[0].optimizer.state
    assert {p.device.type for p in fold.module.parameters()} == {"cuda"}
    assert {v.device.type for s in state.values() for k, v in s.items() if k != "step"} == {"cuda"}
