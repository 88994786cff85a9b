"""What both fold datamodules (``CrossValDataModule``, ``LightningFolds``) share: one fold's loaders by index."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lcv_config import LcvError


class FoldAccess:
    """``train_dataloader``/``val_dataloader`` of fold ``self.fold``, for a plain ``lightning.Trainer``.

    The datamodule provides ``folds`` (set by ``setup("fit")``), ``fold``, ``setup`` and ``_loader(i, split, idx)``.
    """

    folds: Any
    fold: int

    if TYPE_CHECKING:  # provided by the datamodule

        def setup(self, stage: str) -> None: ...

        def _loader(self, fold: int, split: str, indices: Any) -> Any: ...

    def _fold_index(self, fold: int | None) -> int:
        self.setup("fit")
        assert self.folds is not None
        k = self.fold if fold is None else fold
        if not 0 <= k < len(self.folds):
            raise LcvError(f"fold={k} does not exist: this datamodule has folds 0..{len(self.folds) - 1}.")
        return k

    def train_dataloader(self) -> Any:
        """Return the training loader of fold ``self.fold`` (for a plain ``lightning.Trainer``)."""
        k = self._fold_index(None)
        return self._loader(k, "train", self.folds[k][0])

    def val_dataloader(self) -> Any:
        """Return the validation loader of fold ``self.fold``."""
        k = self._fold_index(None)
        return self._loader(k, "val", self.folds[k][1])
