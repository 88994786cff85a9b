"""Transforms fitted on one fold's training data only, then applied to that fold's every split.

Each has ``fit(train_data)`` (samples along dimension 0) and ``transform(x)``, and a JSON-ready
``state_dict()``/``load_state_dict()`` pair so a run saves its fitted state without pickle.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from lcv_config import LcvError


def check_finite(data: torch.Tensor, owner: str, names: list[str] | None = None) -> None:
    """Raise an [`LcvError`][lcv_config.LcvError] naming the first feature column that holds NaN or inf."""
    if data.numel() == 0:
        return
    # min and max carry any NaN or inf and allocate nothing; isfinite() would make copies of the whole data
    low, high = torch.aminmax(data)
    if not bool(torch.isfinite(low) & torch.isfinite(high)):
        finite = torch.isfinite(data)
        column = int((~finite).reshape(len(data), -1).any(0).nonzero()[0, 0])
        label = f"feature column {column}" + (f" ('{names[column]}')" if names and column < len(names) else "")
        raise LcvError(f"{owner}.fit: {label} holds NaN or inf; clean or impute it first.")


class FittedTransformBase:
    """Shared behaviour of lcv's fitted transforms: checks, the fitted state, ``state_dict`` and ``__call__``.

    Subclasses list their fitted tensors in ``_state`` and implement ``_fit`` and ``_transform``.
    """

    _state: ClassVar[tuple[str, ...]] = ()
    on: str = "input"
    """What the transform is fitted on and applied to: ``"input"`` or ``"target"``."""

    def fit(self, data: Any) -> Any:
        """Learn the state from training data (samples along dimension 0); return ``self``.

        Raises:
            LcvError: No samples, or a column holding NaN or inf (the message names the column).
        """
        data = torch.as_tensor(data)
        if data.numel() == 0:
            raise LcvError(f"{type(self).__name__}.fit got no training samples.")
        if data.is_floating_point():
            check_finite(data, type(self).__name__)
        self._fit(data)
        return self

    def transform(self, x: Any) -> Any:
        """Apply the fitted state to ``x``.

        Raises:
            LcvError: The transform was not fitted yet.
        """
        if any(getattr(self, name, None) is None for name in self._state):
            raise LcvError(f"{type(self).__name__}.transform was called before fit.")
        return self._transform(torch.as_tensor(x))

    def __call__(self, x: Any) -> Any:
        """Apply the fitted state to ``x`` (same as [`transform()`][lcv_data.FittedTransformBase.transform])."""
        return self.transform(x)

    def _fit(self, data: torch.Tensor) -> None:
        raise NotImplementedError

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Return the fitted state as JSON-ready lists (empty before ``fit``)."""
        state: dict[str, Any] = {}
        for name in self._state:
            value = getattr(self, name, None)
            if value is None:
                return {}
            state[name] = {"shape": list(value.shape), "values": value.flatten().tolist()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state returned by [`state_dict()`][lcv_data.FittedTransformBase.state_dict]."""
        for name in self._state:
            entry = state[name]
            setattr(self, name, torch.tensor(entry["values"], dtype=torch.float32).reshape(entry["shape"]))

    def __repr__(self) -> str:
        first = getattr(self, self._state[0], None) if self._state else None
        fitted = "unfitted" if first is None else f"fitted, {tuple(first.shape)}"
        return f"{type(self).__name__}({fitted})"


class Standardize(FittedTransformBase):
    """Subtract the training mean and divide by the training standard deviation, per feature.

    Args:
        eps: A training standard deviation at or below this marks a constant feature, which is only centred.
    """

    _state = ("mean", "std")

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = eps
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def _fit(self, data: torch.Tensor) -> None:
        data = data.float()
        self.mean = data.mean(0)
        std = data.std(0, unbiased=False)
        # A feature constant in training (a blank pixel) keeps its scale, as in scikit-learn's StandardScaler;
        # dividing by ~0 would blow up any validation sample where it is not constant.
        self.std = torch.where(std > self.eps, std, torch.ones_like(std))

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        assert self.mean is not None and self.std is not None
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


class MinMaxScale(FittedTransformBase):
    """Map each feature's training range onto ``feature_range`` (a constant feature maps to its lower end).

    Args:
        feature_range: The output range ``(low, high)``.
    """

    _state = ("min", "scale")

    def __init__(self, feature_range: tuple[float, float] = (0.0, 1.0)) -> None:
        low, high = feature_range
        if not high > low:
            raise LcvError(f"MinMaxScale: feature_range must be (low, high) with low < high; got {feature_range}.")
        self.feature_range = (float(low), float(high))
        self.min: torch.Tensor | None = None
        self.scale: torch.Tensor | None = None

    def _fit(self, data: torch.Tensor) -> None:
        data = data.float()
        self.min = data.amin(0)
        span = data.amax(0) - self.min
        self.scale = torch.where(span > 0, span, torch.ones_like(span))

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        assert self.min is not None and self.scale is not None
        low, high = self.feature_range
        return (x - self.min.to(x.device)) / self.scale.to(x.device) * (high - low) + low


class RobustScale(FittedTransformBase):
    """Subtract the training median and divide by the training interquartile range, per feature.

    Args:
        quantile_range: The percentiles whose distance is the scale (``(25, 75)`` is the IQR).
    """

    _state = ("median", "scale")

    def __init__(self, quantile_range: tuple[float, float] = (25.0, 75.0)) -> None:
        low, high = quantile_range
        if not 0 <= low < high <= 100:
            raise LcvError(f"RobustScale: quantile_range must satisfy 0 <= low < high <= 100; got {quantile_range}.")
        self.quantile_range = (float(low), float(high))
        self.median: torch.Tensor | None = None
        self.scale: torch.Tensor | None = None

    def _fit(self, data: torch.Tensor) -> None:
        data = data.double()
        q = torch.tensor([self.quantile_range[0] / 100, 0.5, self.quantile_range[1] / 100], dtype=torch.float64)
        low, median, high = torch.quantile(data, q, dim=0)
        span = (high - low).float()
        self.median = median.float()
        self.scale = torch.where(span > 0, span, torch.ones_like(span))

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        assert self.median is not None and self.scale is not None
        return (x - self.median.to(x.device)) / self.scale.to(x.device)


class PCA(FittedTransformBase):
    """Project onto the training data's first principal components (centred with the training mean).

    Args:
        n_components: How many components to keep.
        whiten: Divide each component by its training standard deviation.
    """

    _state = ("mean", "components", "std")

    def __init__(self, n_components: int = 2, whiten: bool = False) -> None:
        if type(n_components) is not int or n_components < 1:  # bool is an int subclass: refuse it too
            raise LcvError(f"PCA: n_components must be a positive integer; got {n_components!r}.")
        self.n_components = n_components
        self.whiten = whiten
        self.mean: torch.Tensor | None = None
        self.components: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def _fit(self, data: torch.Tensor) -> None:
        data = data.double().reshape(len(data), -1)
        if self.n_components > min(data.shape):
            raise LcvError(
                f"PCA: n_components={self.n_components} exceeds min(samples, features) = {min(data.shape)} of a "
                "fold's training data; choose fewer components."
            )
        mean = data.mean(0)
        _, s, vh = torch.linalg.svd(data - mean, full_matrices=False)
        # Fix the sign of each component (largest loading positive) so the result does not depend on the solver.
        signs = torch.sign(vh[torch.arange(len(vh)), vh.abs().argmax(1)])
        vh = vh * signs[:, None]
        self.mean = mean.float()
        self.components = vh[: self.n_components].float()
        std = (s[: self.n_components] / max(len(data) - 1, 1) ** 0.5).float()
        self.std = torch.where(std > 0, std, torch.ones_like(std))

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        assert self.mean is not None and self.components is not None and self.std is not None
        flat = x.reshape(len(x), -1).float() if x.ndim > 1 else x.reshape(1, -1).float()
        out = (flat - self.mean.to(x.device)) @ self.components.to(x.device).T
        if self.whiten:
            out = out / self.std.to(x.device)
        return out if x.ndim > 1 else out[0]


class LabelEncode(FittedTransformBase):
    """Map the class values seen in training onto ``0..n_classes-1`` (fitted on targets).

    A class that a fold's training part lacks is an error at ``transform`` time, naming the value.
    """

    _state = ("classes",)
    on = "target"

    def __init__(self) -> None:
        self.classes: torch.Tensor | None = None

    def _fit(self, data: torch.Tensor) -> None:
        self.classes = torch.unique(data.flatten()).float()

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        assert self.classes is not None
        values = x.float()
        pos = torch.searchsorted(self.classes, values.contiguous())
        pos_c = pos.clamp(max=len(self.classes) - 1)
        unknown = self.classes[pos_c] != values
        if bool(unknown.any()):
            bad = values[unknown].flatten()[0].item()
            seen = ", ".join(f"{c:g}" for c in self.classes.tolist()[:20])
            raise LcvError(f"LabelEncode: class {bad:g} was not in the fold's training targets (seen: {seen}).")
        return pos_c.long()

    @property
    def n_classes(self) -> int:
        """The number of classes seen in training (0 before ``fit``)."""
        return 0 if self.classes is None else len(self.classes)
