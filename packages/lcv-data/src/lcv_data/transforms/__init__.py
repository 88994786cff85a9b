"""Transforms: staged per-sample ones, and ones fitted on each fold's training data only.

- ``staged``: the per-sample pipeline ``pre`` -> ``train`` | ``val`` | ``test`` | ``predict`` -> ``post``, and
  batch transforms before or after the device transfer.
- ``fitted``: lcv's fitted transforms (``standardize``, ``min_max_scale``, ``robust_scale``, ``pca``,
  ``label_encode``), each with ``fit``/``transform`` and a JSON-ready ``state_dict()``.
- ``sklearn``: any scikit-learn transformer as a fitted transform (``sklearn:StandardScaler``).

The fitted transforms are importable from here (``lcv_data.transforms.Standardize``), as the entry points name them.
"""

from lcv_data.transforms.fitted import (
    PCA,
    FittedTransformBase,
    LabelEncode,
    MinMaxScale,
    RobustScale,
    Standardize,
    check_finite,
)
from lcv_data.transforms.sklearn import SklearnTransform

__all__ = [
    "PCA",
    "FittedTransformBase",
    "LabelEncode",
    "MinMaxScale",
    "RobustScale",
    "SklearnTransform",
    "Standardize",
    "check_finite",
]
