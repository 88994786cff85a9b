"""The loaders lcv-data serves, and how each split's loader is chosen from its settings.

Every loader here has ``state_dict()``/``load_state_dict()`` (torchdata's ``StatefulDataLoader`` names): the
state decides the next epoch's batch order, so a run resumed from a checkpoint serves the batches the
uninterrupted run would have served.

- ``tensor``: [`TensorBatchLoader`][lcv_data.TensorBatchLoader], the fast path for in-memory tensors.
- ``dataloader``: [`ResumableDataLoader`][lcv_data.ResumableDataLoader] over a
  [`SplitDataset`][lcv_data.loaders.SplitDataset] (per-sample transforms, workers).
- ``split``: [`SplitLoader`][lcv_data.loaders.SplitLoader], the wrapper every split is served by.
"""

from lcv_data.loaders.dataloader import ResumableDataLoader, SplitDataset
from lcv_data.loaders.split import SplitLoader
from lcv_data.loaders.tensor import TensorBatchLoader

__all__ = ["ResumableDataLoader", "SplitDataset", "SplitLoader", "TensorBatchLoader"]
