"""The configurable learner's metrics: names it builds itself (``accuracy``, ``mse``) and the log name of any metric."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from torchmetrics import Metric

from lcv_config import ConfigError
from lcv_config.registry import split_component

if TYPE_CHECKING:
    from lcv_core.learners.supervised import Task

CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "top{k}_accuracy", "f1", "precision", "recall", "auroc")
"""Metric names a classification learner builds itself (``num_classes`` from the model's output)."""
REGRESSION_METRICS: tuple[str, ...] = ("mse", "rmse", "mae", "r2")
"""Metric names a regression learner builds itself."""


def metric_spec(component: Any, index: int, task: Task) -> tuple[str, Any, bool]:
    """Return ``(log name, component, is a named metric the learner builds itself)``."""
    name = split_component(component, f"metrics[{index}]")[0]
    if isinstance(name, str) and _is_named_metric(name):
        known = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
        if not (name in known or (task == "classification" and _top_k(name))):
            raise ConfigError(
                f"Metric '{name}' is not a {task} metric. {task.capitalize()} metrics: {', '.join(known)}.",
                f"metrics[{index}].name",
            )
        return name, component, True
    if not isinstance(name, str):
        name = getattr(name, "__name__", "metric")
    name = name.rsplit(".", 1)[-1]
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_"), component, False


def repeats_acc(name: str, component: Any, named: bool) -> bool:
    """Return whether a metric is the plain accuracy a classification learner logs as ``<stage>_acc`` anyway.

    ``metrics: [accuracy]`` would otherwise log the same number twice, as ``val_acc`` and ``val_accuracy``; an
    ``accuracy`` with a ``cfg`` (``average: macro``, ``top_k``) is another number and keeps its own name.
    """
    return named and name == "accuracy" and not split_component(component, "metrics")[1]


def _top_k(name: str) -> int | None:
    if name.startswith("top") and name.endswith("_accuracy") and name[3:-9].isdigit():
        return int(name[3:-9])
    return None


def _is_named_metric(name: str) -> bool:
    return name in CLASSIFICATION_METRICS or name in REGRESSION_METRICS or _top_k(name) is not None


def named_metric(name: str, component: Any, task: Task, num_classes: int) -> Metric:
    """Build a metric by its short name, with the task and ``num_classes`` the model's output implies."""
    import torchmetrics

    _, cfg = split_component(component, "metrics")
    if task == "regression":
        classes: dict[str, Any] = {
            "mse": (torchmetrics.MeanSquaredError, {}),
            "rmse": (torchmetrics.MeanSquaredError, {"squared": False}),
            "mae": (torchmetrics.MeanAbsoluteError, {}),
            "r2": (torchmetrics.R2Score, {}),
        }
        cls, defaults = classes[name]
        return cast(Metric, cls(**{**defaults, **cfg}))
    kind: dict[str, Any] = (
        {"task": "binary"} if num_classes == 1 else {"task": "multiclass", "num_classes": num_classes}
    )
    k = _top_k(name)
    factories: dict[str, Any] = {
        "accuracy": torchmetrics.Accuracy,
        "f1": torchmetrics.F1Score,
        "precision": torchmetrics.Precision,
        "recall": torchmetrics.Recall,
        "auroc": torchmetrics.AUROC,
    }
    extra: dict[str, Any] = {}
    if kind["task"] == "multiclass" and name in ("f1", "precision", "recall"):
        extra["average"] = "macro"
    if k is not None:
        extra["top_k"] = k
    return cast(Metric, factories.get(name, torchmetrics.Accuracy)(**{**kind, **extra, **cfg}))
