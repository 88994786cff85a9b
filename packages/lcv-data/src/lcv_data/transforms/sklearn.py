"""Any scikit-learn transformer as a fold-fitted transform, with a pickle-free saved state."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import numpy as np
import torch

from lcv_config import LcvError
from lcv_config.errors import did_you_mean
from lcv_data.transforms.fitted import check_finite

SKLEARN_MODULES = (
    "sklearn.preprocessing",
    "sklearn.decomposition",
    "sklearn.feature_selection",
    "sklearn.impute",
    "sklearn.kernel_approximation",
    "sklearn.random_projection",
    "sklearn.cross_decomposition",
)
"""Where a bare transformer name (``StandardScaler``) is looked up, in this order."""


def _find(name: str) -> Any:
    if "." in name or ":" in name:
        module_name, _, attr = name.replace(":", ".").rpartition(".")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise LcvError(f"Cannot import the scikit-learn transformer '{name}': {exc}") from exc
    known: list[str] = []
    for module_name in SKLEARN_MODULES:
        module = importlib.import_module(module_name)
        if hasattr(module, name):
            return getattr(module, name)
        known += [n for n in dir(module) if n[:1].isupper()]
    raise LcvError(
        f"Unknown scikit-learn transformer '{name}'.{did_you_mean(name, known)} Searched: {', '.join(SKLEARN_MODULES)}."
    )


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=value["dtype"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class SklearnTransform:
    """A scikit-learn transformer (``StandardScaler``, ``PCA``, ``QuantileTransformer``...) fitted per fold.

    In a config, ``{name: "sklearn:StandardScaler", cfg: {...}}`` builds one too.

    Args:
        name: The transformer's class name in a scikit-learn module, or a dotted path.
        on: ``"input"`` (default) or ``"target"``: what it is fitted on and applied to.
        **kwargs: The transformer's arguments.

    Raises:
        LcvError: An unknown transformer (with the closest names) or arguments it rejects.
    """

    def __init__(self, name: str, on: str = "input", **kwargs: Any) -> None:
        self.name = name
        self.on = on
        self.kwargs = kwargs
        cls = _find(name)
        defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
        # Config files have no tuples: a list given where scikit-learn's default is a tuple becomes one.
        kwargs = {
            k: tuple(v) if isinstance(v, list) and isinstance(defaults.get(k), tuple) else v for k, v in kwargs.items()
        }
        try:
            self.estimator = cls(**kwargs)
        except TypeError as exc:
            raise LcvError(f"SklearnTransform('{name}'): {exc}") from exc
        self.fitted = False

    def fit(self, data: Any) -> SklearnTransform:
        """Fit the transformer on training data (samples along dimension 0); return ``self``."""
        tensor = torch.as_tensor(data)
        if tensor.numel() == 0:
            raise LcvError(f"SklearnTransform('{self.name}').fit got no training samples.")
        if tensor.is_floating_point():
            check_finite(tensor, f"SklearnTransform('{self.name}')")
        self.estimator.fit(tensor.reshape(len(tensor), -1).numpy() if tensor.ndim > 1 else tensor.numpy())
        self.fitted = True
        return self

    def transform(self, x: Any) -> Any:
        """Apply the fitted transformer; a tensor in gives a float32 tensor out (or int64 for label encoders)."""
        if not self.fitted:
            raise LcvError(f"SklearnTransform('{self.name}').transform was called before fit.")
        tensor = torch.as_tensor(x)
        single = tensor.ndim == 1 and self.on == "input"
        array = tensor.reshape(1, -1).numpy() if single else tensor.reshape(len(tensor), -1).numpy()
        if self.on == "target":
            array = tensor.numpy()
        out = np.asarray(self.estimator.transform(array))
        result = torch.as_tensor(out.astype(np.int64) if out.dtype.kind in "iu" else out.astype(np.float32))
        return result[0] if single else result

    __call__ = transform

    def state_dict(self) -> dict[str, Any]:
        """Return the fitted attributes (those scikit-learn ends with ``_``) as JSON-ready values."""
        if not self.fitted:
            return {}
        return {k: _encode(v) for k, v in vars(self.estimator).items() if k.endswith("_") and not k.startswith("_")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the fitted attributes returned by `state_dict()`."""
        for key, value in state.items():
            setattr(self.estimator, key, _decode(value))
        self.fitted = True

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"SklearnTransform({self.name!r}{', ' + args if args else ''})"
