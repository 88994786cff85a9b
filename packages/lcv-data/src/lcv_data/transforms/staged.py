"""Staged transforms: ``pre`` (all splits) -> ``train`` | ``val`` | ``test`` | ``predict`` -> ``post`` (all splits)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lcv_config import ConfigError, LcvError, build
from lcv_config.errors import did_you_mean

STAGES = ("pre", "train", "val", "test", "predict", "post")
"""The keys of ``transforms`` and ``target_transforms``."""
SPLITS = ("train", "val", "test", "predict")
"""The splits a loader serves."""
BATCH_STAGES = ("before", "after")
"""The keys under each split of ``batch_transforms``: before or after the batch moves to the device."""


def build_transform(component: Any, path: str) -> Any:
    """Return a transform from a registered name, a ``sklearn:Name``, a dotted path, a ``{name, cfg}`` or an object."""
    name = component.get("name") if isinstance(component, Mapping) else getattr(component, "name", component)
    cfg = component.get("cfg") if isinstance(component, Mapping) else getattr(component, "cfg", None)
    if isinstance(name, str) and name.startswith("sklearn:"):
        from lcv_data.transforms.sklearn import SklearnTransform

        return SklearnTransform(name.removeprefix("sklearn:"), **dict(cfg or {}))
    if isinstance(component, (str, Mapping)) or inspect.isclass(component) or hasattr(component, "cfg"):
        return build("transform", component, path)
    if callable(component) or hasattr(component, "transform"):
        return component  # an object (or a function) used as given
    raise ConfigError(
        f"Expected a transform name, {{name, cfg}}, class or callable; got {type(component).__name__}.", path
    )


def build_stages(spec: Mapping[str, Sequence[Any]] | None, path: str) -> dict[str, list[Any]]:
    """Build every stage's transforms; an unknown stage is an error listing the valid ones."""
    stages: dict[str, list[Any]] = {s: [] for s in STAGES}
    for stage, items in (spec or {}).items():
        if stage not in STAGES:
            raise ConfigError(
                f"Unknown transform stage '{stage}'.{did_you_mean(stage, STAGES)} Valid stages: {', '.join(STAGES)}.",
                path,
            )
        stages[stage] = [build_transform(t, f"{path}.{stage}[{i}]") for i, t in enumerate(items)]
    return stages


def build_batch_stages(
    spec: Mapping[str, Mapping[str, Sequence[Any]]] | None, path: str
) -> dict[str, dict[str, list[Any]]]:
    """Build batch transforms per split (``default`` applies to every split) and per side of the device transfer."""
    out: dict[str, dict[str, list[Any]]] = {s: {b: [] for b in BATCH_STAGES} for s in SPLITS}
    spec = dict(spec or {})
    for split in spec:
        if split not in ("default", *SPLITS):
            valid = ("default", *SPLITS)
            raise ConfigError(
                f"Unknown batch transform split '{split}'.{did_you_mean(split, valid)} Valid: {', '.join(valid)}.", path
            )
        for side in spec[split]:
            if side not in BATCH_STAGES:
                raise ConfigError(
                    f"Unknown batch transform key '{side}'.{did_you_mean(side, BATCH_STAGES)} Valid: before, after.",
                    f"{path}.{split}",
                )
    for split in SPLITS:
        for side in BATCH_STAGES:
            for source in ("default", split):
                items = spec.get(source, {}).get(side, [])
                out[split][side] += [build_transform(t, f"{path}.{source}.{side}[{i}]") for i, t in enumerate(items)]
    return out


def transform_name(t: Any) -> str:
    """Return a short name of a transform for messages."""
    return getattr(t, "__name__", None) or type(t).__name__


def apply_transform(t: Any, value: Any) -> Any:
    """Call a transform (``transform`` method of a fitted one, else the callable itself)."""
    return t.transform(value) if hasattr(t, "transform") and hasattr(t, "fit") else t(value)


def apply_fitted(t: Any, value: Any) -> Any:
    """Apply a fitted transform to one sample's value (fitted transforms work on batches: add a batch dimension)."""
    tensor = torch.as_tensor(value)
    return t.transform(tensor.unsqueeze(0))[0]


@dataclass
class SamplePipeline:
    """The per-sample transforms of inputs and targets, by stage, plus one fold's fitted transforms."""

    inputs: dict[str, list[Any]] = field(default_factory=lambda: {s: [] for s in STAGES})
    targets: dict[str, list[Any]] = field(default_factory=lambda: {s: [] for s in STAGES})

    def is_empty(self, split: str) -> bool:
        """Return whether no per-sample transform runs for ``split`` (then the fast loader may serve it)."""
        return not any(d[s] for d in (self.inputs, self.targets) for s in ("pre", split, "post"))

    def pre(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Apply only the ``pre`` stage (what fitted transforms are fitted on)."""
        for t in self.inputs["pre"]:
            x = apply_transform(t, x)
        for t in self.targets["pre"]:
            y = apply_transform(t, y)
        return x, y

    def apply(
        self, x: Any, y: Any, split: str, index: int, fitted_x: Sequence[Any] = (), fitted_y: Sequence[Any] = ()
    ) -> tuple[Any, Any]:
        """Run ``pre`` -> ``split`` -> fitted -> ``post`` on one sample's input and target.

        Raises:
            LcvError: A transform raised; the message names the transform, the sample index and the split.
        """
        for what, value, stages, fitted in (("input", x, self.inputs, fitted_x), ("target", y, self.targets, fitted_y)):
            if what == "target" and value is None:
                continue
            for stage, items in (
                ("pre", stages["pre"]),
                (split, stages[split]),
                ("fitted", fitted),
                ("post", stages["post"]),
            ):
                for t in items:
                    try:
                        value = apply_fitted(t, value) if stage == "fitted" else apply_transform(t, value)
                    except LcvError:
                        raise
                    except Exception as exc:
                        raise LcvError(
                            f"The {what} transform {transform_name(t)} (stage '{stage}') failed on sample {index} "
                            f"of the {split} split: {type(exc).__name__}: {exc}"
                        ) from exc
            if what == "input":
                x = value
            else:
                y = value
        return x, y
