"""Transforms fitted on one fold's training data only, then applied to that fold's every split."""

from __future__ import annotations

import torch

from lcv_config import LcvError


class Standardize:
    """Subtract the training mean and divide by the training standard deviation, per feature.

    Args:
        eps: A training standard deviation at or below this marks a constant feature, which is only centred.
    """

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = eps
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def fit(self, data: torch.Tensor) -> Standardize:
        """Learn mean and std from training data (samples along dimension 0)."""
        data = torch.as_tensor(data, dtype=torch.float32)
        if data.numel() == 0:
            raise LcvError("Standardize.fit got no training samples.")
        finite = torch.isfinite(data)
        if not bool(finite.all()):
            column = int((~finite).reshape(len(data), -1).any(0).nonzero()[0, 0])
            raise LcvError(f"Standardize.fit: feature column {column} holds NaN or inf; clean or impute it first.")
        self.mean = data.mean(0)
        std = data.std(0, unbiased=False)
        # A feature constant in training (a blank pixel) keeps its scale, as in scikit-learn's StandardScaler;
        # dividing by ~0 would blow up any validation sample where it is not constant.
        self.std = torch.where(std > self.eps, std, torch.ones_like(std))
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the fitted mean and std."""
        if self.mean is None or self.std is None:
            raise LcvError("Standardize.transform was called before fit.")
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    __call__ = transform

    def state_dict(self) -> dict[str, list[float]]:
        """Return the fitted statistics as lists (JSON-ready)."""
        if self.mean is None or self.std is None:
            return {}
        return {"mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    def __repr__(self) -> str:
        fitted = "unfitted" if self.mean is None else f"{self.mean.numel()} features"
        return f"Standardize({fitted}, eps={self.eps:g})"
