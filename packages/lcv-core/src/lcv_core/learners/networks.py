"""Small networks for tabular data, registered as models for configs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lcv_config import register


@register("model", "mlp")
class MLP(nn.Module):
    """A multilayer perceptron: ``Linear → activation → dropout`` per hidden layer, then a linear head.

    Args:
        in_features: Inputs per sample.
        out_features: Outputs per sample (classes, or regression targets).
        hidden: Width of each hidden layer.
        dropout: Dropout probability after each hidden layer.
        activation: A ``torch.nn`` activation class name.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (256, 256),
        dropout: float = 0.0,
        activation: str = "ReLU",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), getattr(nn, activation)()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the network's output for a batch of flat inputs."""
        return self.net(x.flatten(1))  # type: ignore[no-any-return]
