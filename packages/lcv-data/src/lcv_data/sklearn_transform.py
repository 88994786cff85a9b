"""Kept so the documented path ``lcv_data.sklearn_transform.SklearnTransform`` still imports.

The class lives in [`lcv_data.transforms.sklearn`][lcv_data.transforms.sklearn], beside lcv's other fitted transforms.
"""

from lcv_data.transforms.sklearn import SKLEARN_MODULES, SklearnTransform

__all__ = ["SKLEARN_MODULES", "SklearnTransform"]
