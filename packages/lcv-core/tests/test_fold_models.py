"""Fold models after a fit are plain LightningModules; networks passed as instances get their own weights per fold."""

from __future__ import annotations

import copy
import io
import pickle
from typing import Any

import pytest
import torch
from lightning.pytorch import LightningModule
from torch import nn

from lcv_core import CrossValidationTrainer
from lcv_core.demos import N_CLASSES, N_FEATURES


class Wrapper(LightningModule):
    """The Lightning tutorial's pattern: the network is built outside and passed in (LitAutoEncoder(encoder, ...))."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.initial = [p.detach().clone() for p in net.parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(N_FEATURES, 16), nn.ReLU(), nn.Linear(16, N_CLASSES))


def _fit(data: Any, trainer_kwargs: dict[str, Any], seed: int) -> Any:
    modules: list[Wrapper] = []

    class Recorded(Wrapper):
        def __init__(self, net: nn.Module) -> None:
            super().__init__(net)
            modules.append(self)

    result = CrossValidationTrainer(**{**trainer_kwargs, "seed": seed}).fit(
        Recorded, data, model_kwargs={"net": _net()}
    )
    return result, modules


def test_a_network_instance_in_model_kwargs_is_drawn_anew_per_fold_from_the_seed(data, trainer_kwargs) -> None:
    first, modules = _fit(data, trainer_kwargs, seed=0)
    second, _ = _fit(data, trainer_kwargs, seed=0)
    other_seed, _ = _fit(data, trainer_kwargs, seed=1)
    initial = [torch.cat([p.flatten() for p in m.initial]) for m in modules]
    assert all(not torch.equal(initial[0], w) for w in initial[1:])  # every fold starts from its own weights
    assert first.metric("val_loss").per_fold == second.metric("val_loss").per_fold  # the seed decides them
    assert first.metric("val_loss").per_fold != other_seed.metric("val_loss").per_fold


def test_a_layer_without_reset_parameters_is_named_in_a_warning(data, trainer_kwargs) -> None:
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(N_CLASSES))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.weight

    net = nn.Sequential(nn.Linear(N_FEATURES, N_CLASSES), Scale())
    with pytest.warns(UserWarning, match=r"net\.1 has parameters but no reset_parameters\(\)"):
        CrossValidationTrainer(**trainer_kwargs).fit(Wrapper, data, model_kwargs={"net": net})


def test_fold_models_pickle_deep_copy_and_save_like_any_module(data, tiny, trainer_kwargs) -> None:
    result = CrossValidationTrainer(**trainer_kwargs).fit(tiny, data)
    x = torch.randn(4, N_FEATURES)
    for model in result.models:
        expected = model(x)
        assert torch.equal(pickle.loads(pickle.dumps(model))(x), expected)
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        assert torch.equal(torch.load(buffer, weights_only=False)(x), expected)
        assert torch.equal(copy.deepcopy(model)(x), expected)
