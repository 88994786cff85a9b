"""Conformance suites that every plugin, ours or a third party's, runs in its own tests.

One suite per plugin kind: [`SplitterContract`][lcv_config.testing.SplitterContract],
[`FoldDataSourceContract`][lcv_config.testing.FoldDataSourceContract] and
[`DataModuleContract`][lcv_config.testing.DataModuleContract], [`DatasetContract`][lcv_config.testing.DatasetContract],
[`TransformContract`][lcv_config.testing.TransformContract],
[`FittedTransformContract`][lcv_config.testing.FittedTransformContract],
[`ModelContract`][lcv_config.testing.ModelContract], [`LearnerContract`][lcv_config.testing.LearnerContract],
[`CallbackContract`][lcv_config.testing.CallbackContract], [`LoggerContract`][lcv_config.testing.LoggerContract],
[`TunerContract`][lcv_config.testing.TunerContract] and [`CommandContract`][lcv_config.testing.CommandContract].
They import no torch themselves: tensors are handled through their methods.

Subclass a contract in a pytest test module and implement its ``make_*`` method; pytest collects
the inherited ``test_*`` methods (name the subclass ``Test...``)::

    from lcv_config.testing import SplitterContract

    class TestMySplitter(SplitterContract):
        def make_splitter(self):
            return MySplitter(n_splits=4)
"""

from lcv_config.testing.assertions import assert_close, assert_no_overlap, plain
from lcv_config.testing.callbacks import CallbackContract
from lcv_config.testing.commands import CommandContract
from lcv_config.testing.data import DataModuleContract, DatasetContract, FoldDataSourceContract
from lcv_config.testing.loggers import LoggerContract
from lcv_config.testing.models import LearnerContract, ModelContract
from lcv_config.testing.splitters import SplitterContract
from lcv_config.testing.transforms import FittedTransformContract, TransformContract
from lcv_config.testing.tuners import TunerContract

__all__ = [
    "SplitterContract",
    "FoldDataSourceContract",
    "TunerContract",
    "plain",
    "assert_close",
    "TransformContract",
    "FittedTransformContract",
    "DataModuleContract",
    "DatasetContract",
    "ModelContract",
    "LearnerContract",
    "CallbackContract",
    "LoggerContract",
    "CommandContract",
    "assert_no_overlap",
]
