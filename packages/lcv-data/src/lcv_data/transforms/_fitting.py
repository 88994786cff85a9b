"""Fit a fold's fitted transforms on that fold's training data only."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lcv_config import LcvError
from lcv_data.sources import Source
from lcv_data.transforms.fitted import check_finite
from lcv_data.transforms.staged import SamplePipeline


def fit_fold(
    source: Source, pipeline: SamplePipeline, transforms: Sequence[Any], fold: int, train_idx: np.ndarray
) -> list[Any]:
    """Return fitted copies of ``transforms``, each fitted on the training samples after the ones before it.

    Raises:
        LcvError: Non-finite training data, or a transform's ``fit``/``transform`` fails.
    """
    fitted: list[Any] = []
    data: dict[bool, torch.Tensor] = {}
    sides = [getattr(t, "on", "input") == "target" for t in transforms]
    for position, (t, on_target) in enumerate(zip(transforms, sides, strict=True)):
        if on_target not in data:
            data[on_target] = _training_data(source, pipeline, train_idx, on_target)
            if data[on_target].is_floating_point():
                names = None if on_target else source.feature_names
                check_finite(data[on_target], type(t).__name__, names)
        clone = copy.deepcopy(t)
        try:
            clone.fit(data[on_target])
            if on_target in sides[position + 1 :]:  # a later transform fits on this one's output
                data[on_target] = clone.transform(data[on_target])
        except LcvError:
            raise
        except Exception as exc:
            raise LcvError(f"Fitting {type(t).__name__} on fold {fold}'s training data failed: {exc}") from exc
        fitted.append(clone)
    return fitted


def _training_data(src: Source, pipeline: SamplePipeline, indices: np.ndarray, target: bool) -> torch.Tensor:
    key = src.target_key if target else src.input_key
    if key is None:
        raise LcvError("A fitted target transform needs targets, but the dataset's samples have none.")
    stages = pipeline.targets if target else pipeline.inputs
    if src.tensors is not None and not stages["pre"]:
        return src.tensors[key][torch.as_tensor(indices)]  # type: ignore[index]  # key matches tensors' kind
    values = []
    for i in indices.tolist():
        sample = src.dataset[i]
        x, y = sample[src.input_key], sample[src.target_key] if src.target_key is not None else None
        values.append(torch.as_tensor(pipeline.pre(x, y)[1 if target else 0]))
    return torch.stack(values)
