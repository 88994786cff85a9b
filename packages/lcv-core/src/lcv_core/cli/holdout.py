"""The holdout split of ``lcv fit`` (one model validated on ``data.holdout``), and the holdout data of loaded models.

``lcv fit`` trains on everything outside the holdout; ``lcv test`` and ``lcv predict`` score fold models on the
holdout, split as in the run that trained them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lcv_core.cli.checkpoint_models import LoadedModels

FIT_HEADER = "# lcv fit: one model trained outside data.holdout and validated on it\n"
"""First line of the embedded config of an ``lcv fit`` run, so ``lcv test``/``lcv predict`` rebuild its split."""

HOLDOUT_FIX = (
    "Add a holdout to the config, e.g. `data.holdout: 0.2` (a fraction or a count of samples carved off before "
    "the folds), or a separate `data.test_dataset`."
)


class HoldoutValidation:
    """One ``(train, val)`` split of a datamodule: train on everything outside its holdout, validate on the holdout.

    Wraps a datamodule with lcv-data's interface (``setup``, ``save_folds``/``load_folds``, ``test_dataloader``):
    its k folds are replaced by one fold whose training part is the union of the folds' samples, so fitted
    transforms are fitted on all of it; validation batches come from ``test_dataloader`` (the holdout or
    ``test_dataset``). Used by ``lcv fit`` with a trainer whose ``min_folds`` is 1.
    """

    def __init__(self, datamodule: Any) -> None:
        from lcv_config import ConfigError

        missing = [m for m in ("setup", "save_folds", "load_folds", "test_dataloader") if not hasattr(datamodule, m)]
        if missing:
            raise ConfigError(
                f"lcv fit needs a datamodule with {', '.join(missing)} (as lcv-data's 'cross_val'); "
                f"{type(datamodule).__name__} has none of them. Use `lcv cv` with this datamodule instead.",
                "data.datamodule",
            )
        self.datamodule = datamodule
        self._ready = False

    @property
    def trainer(self) -> Any:
        """The trainer serving batches (forwarded to the datamodule, whose hooks read its flags)."""
        return getattr(self.datamodule, "trainer", None)

    @trainer.setter
    def trainer(self, value: Any) -> None:
        self.datamodule.trainer = value

    @property
    def folds(self) -> Any:
        """The one ``(train_indices, val_indices)`` split."""
        self.setup()
        return self.datamodule.folds

    def setup(self, stage: str | None = None) -> None:
        """Compute the datamodule's split once, then replace its folds by the single holdout split."""
        import tempfile

        if self._ready:
            return
        dm = self.datamodule
        dm.setup("fit")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "folds.json"
            dm.save_folds(path)
            data = json.loads(path.read_text(encoding="utf-8"))
            pool = sorted({int(i) for fold in data["folds"] for part in ("train", "val") for i in fold[part]})
            data["folds"] = [{"train": pool, "val": data.get("test") or []}]
            path.write_text(json.dumps(data), encoding="utf-8")
            dm.load_folds(path)
        dm.setup("fit")  # fits the fitted transforms on the whole training part
        self._ready = True

    def train_val_dataloaders(self) -> list[tuple[Any, Any]]:
        """Return ``[(train_loader, holdout_loader)]``."""
        self.setup()
        train, _ = self.datamodule.train_val_dataloaders()[0]
        return [(train, self.datamodule.test_dataloader(0))]

    def test_dataloaders(self) -> list[Any]:
        """Return the holdout loader, with the transforms fitted on the training part."""
        self.setup()
        return [self.datamodule.test_dataloader(0)]

    def predict_dataloader(self, fold: int | None = None) -> Any:
        """Return the prediction loader (``predict_dataset`` or the holdout)."""
        self.setup()
        return self.datamodule.predict_dataloader(0)

    def save_folds(self, path: str | Path) -> None:
        """Write the single split as ``folds.json``."""
        self.setup()
        self.datamodule.save_folds(path)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Forward Lightning's hook to the datamodule, if it has one."""
        hook = getattr(self.datamodule, "on_after_batch_transfer", None)
        return hook(batch, dataloader_idx) if callable(hook) else batch


def has_test_data(config: Any) -> bool:
    """Whether the experiment config has data to test on (a holdout or a test dataset)."""
    return config.data.holdout is not None or config.data.test_dataset is not None


def holdout_source(loaded: LoadedModels, what: str) -> Any:
    """The datamodule the checkpoints' config describes, split as in the run (``lcv fit``: one holdout split)."""
    from lcv_config import ConfigError

    if not has_test_data(loaded.config):
        raise ConfigError(f"The checkpoint's config has no test data for {what}. {HOLDOUT_FIX}", "data.holdout")
    from lcv_core.configure import build_datamodule

    datamodule = build_datamodule(loaded.config)
    if loaded.single:
        return HoldoutValidation(datamodule)
    if hasattr(datamodule, "setup"):
        datamodule.setup("fit")
    from lcv_core.cli.checkpoint_models import check_fold_layout

    check_fold_layout(loaded, datamodule)
    return datamodule


def per_fold_loaders(source: Any, folds: list[int], kind: str) -> list[Any]:
    """One loader per model: the datamodule's per-fold loaders (each fold's fitted transforms) when it has them."""
    from lcv_config import LcvError

    if kind == "test" and hasattr(source, "test_dataloaders"):
        loaders = list(source.test_dataloaders())
        return [loaders[min(f, len(loaders) - 1)] for f in folds]
    method = getattr(source, f"{kind}_dataloader", None)
    if not callable(method):
        raise LcvError(
            f"The datamodule {type(source).__name__} has no {kind}_dataloader(); it cannot serve {kind} data."
        )
    try:
        return [method(f) for f in folds]
    except TypeError:  # a Lightning datamodule: one loader, no fold argument
        return [method()] * len(folds)
