"""A per-sample transform (``example_clip``) and a transform fitted per fold (``example_center``)."""

from __future__ import annotations

from typing import Any

import torch


class Clip:
    """Clip every value into ``[low, high]``."""

    def __init__(self, low: float = -5.0, high: float = 5.0) -> None:
        self.low, self.high = low, high

    def __call__(self, x: Any) -> torch.Tensor:
        return torch.as_tensor(x).clamp(self.low, self.high)


class Center:
    """Subtract each feature's mean over the fold's training data; the state is a JSON list."""

    on = "input"

    def __init__(self) -> None:
        self.mean: torch.Tensor | None = None

    def fit(self, data: Any) -> Center:
        self.mean = torch.as_tensor(data).float().mean(0)
        return self

    def transform(self, x: Any) -> torch.Tensor:
        if self.mean is None:
            raise RuntimeError("Center.transform before fit")
        return torch.as_tensor(x).float() - self.mean

    def state_dict(self) -> dict[str, Any]:
        return {} if self.mean is None else {"mean": self.mean.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = torch.tensor(state["mean"], dtype=torch.float32)
