"""The project code a torch_mate config points at by dotted path: a model, transforms and a custom learner.

``config.yaml`` names these as ``torch_mate_parts.<Name>``; put this folder on ``PYTHONPATH`` (``python run.py``
does that itself, as running a script puts its folder first on ``sys.path``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lcv_core.learners import Stage, SupervisedLearner


class TinyConvNet(nn.Module):
    """A small CNN on 8x8 digit images given as 64 flat pixels."""

    def __init__(self, channels: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(channels * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class scores for a batch of flat 64-pixel images."""
        return self.head(self.features(x.reshape(-1, 1, 8, 8)).flatten(1))  # type: ignore[no-any-return]


class Scale:
    """Multiply a sample by ``factor`` (``pre``: pixel values 0..16 to 0..1)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Return the scaled sample."""
        return x * self.factor


class GaussianNoise:
    """Add Gaussian noise (``train``: augmentation, never applied to validation samples)."""

    def __init__(self, std: float = 0.05) -> None:
        self.std = std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Return the sample plus noise."""
        return x + self.std * torch.randn_like(x)


class Clamp:
    """Clamp a sample into ``[low, high]``."""

    def __init__(self, low: float = 0.0, high: float = 1.0) -> None:
        self.low, self.high = low, high

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Return the clamped sample."""
        return x.clamp(self.low, self.high)


class ToFloat32:
    """Cast a sample to float32 (``post``: runs last on every split)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Return the sample as float32."""
        return torch.as_tensor(x, dtype=torch.float32)


class ToLong:
    """Cast a target to int64 class labels (a target transform)."""

    def __call__(self, y: Any) -> torch.Tensor:
        """Return the target as int64."""
        return torch.as_tensor(y, dtype=torch.long)


class CountBatches:
    """A batch transform that counts the batches it saw and passes them on unchanged."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, batch: Any) -> Any:
        """Count the batch and return it."""
        self.count += 1
        return batch


class CenterInputs:
    """A batch transform on ``(x, y)`` batches: subtract each image's mean pixel value from its pixels."""

    def __call__(self, batch: Any) -> Any:
        """Return the batch with centred inputs."""
        x, y = batch[0], batch[1]
        return x - x.mean(dim=1, keepdim=True), y


def label_smoothing_step(learner: SupervisedLearner, batch: Any, batch_idx: int) -> dict[str, Any]:
    """Not used by the config: shows the NeuroMANCER-style alternative to overriding ``shared_step``."""
    x, y = learner.split_batch(batch)
    return {"loss": nn.functional.cross_entropy(learner(x), y, label_smoothing=0.1)}


class MarginLearner(SupervisedLearner):
    """A torch_mate-style custom learner: its own network in ``configure_model`` and an extra metric in ``shared_step``.

    It logs ``<stage>_margin``, the mean gap between the true class's score and the best other class's score.
    """

    def configure_model(self) -> nn.Module:  # type: ignore[override]  # lcv learners may return the network
        """Build the network here instead of from the ``model`` argument."""
        return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def shared_step(self, batch: Any, batch_idx: int, stage: Stage) -> dict[str, Any]:
        """Run the default step, then log the margin."""
        out = super().shared_step(batch, batch_idx, stage)
        _, y = self.split_batch(batch)
        scores = out["outputs"]
        true = scores.gather(1, y[:, None]).squeeze(1)
        other = scores.scatter(1, y[:, None], float("-inf")).max(dim=1).values
        self.log(f"{stage}_margin", (true - other).mean(), on_epoch=True)
        return out
