"""scale_batch_size: Lightning's power and binsearch modes on one fold, against a memory limit the test sets."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lcv_config import LcvError
from lcv_core import CrossValidationTrainer, scale_batch_size
from lcv_core.demos import IndexFolds, TinyClassifier


class LimitedMemory(TinyClassifier):
    """Runs out of memory, as CUDA reports it, on a training batch larger than ``limit`` samples."""

    def __init__(self, limit: int = 100, message: str = "CUDA out of memory. Tried to allocate 2.00 GiB") -> None:
        super().__init__()
        self.limit, self.message = limit, message
        self.tried: list[int] = []

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        size = len(batch[0])
        if batch_idx == 0:
            self.tried.append(size)
        if size > self.limit:
            raise RuntimeError(self.message)
        return super().training_step(batch, batch_idx)


def _folds() -> IndexFolds:
    return IndexFolds(n_folds=3, n=900, batch_size=16)  # 600 training samples per fold


@pytest.mark.parametrize(
    ("mode", "limit", "expected"), [("power", 100, 64), ("power", 64, 64), ("binsearch", 100, 100)]
)
def test_the_finder_picks_the_largest_batch_that_fits(mode: str, limit: int, expected: int) -> None:
    datamodule = _folds()
    model = LimitedMemory(limit)
    size = scale_batch_size(lambda: model, datamodule, mode=mode, margin=0.0, trainer_kwargs={"accelerator": "cpu"})
    assert size == expected
    assert max(s for s in model.tried if s <= limit) == expected
    assert datamodule.batch_size == expected, "the datamodule keeps the size for every fold of the next fit"


def test_binsearch_applies_the_margin_and_every_fold_trains_with_the_size() -> None:
    datamodule = _folds()
    size = scale_batch_size(LimitedMemory, datamodule, mode="binsearch", margin=0.1, model_kwargs={"limit": 100})
    assert size == 90
    # interleaved: training_step runs once per fold and batch (one batched call for all folds under vectorized)
    trainer = CrossValidationTrainer(
        max_epochs=1, accelerator="cpu", seed=0, enable_progress_bar=False, schedule="interleaved"
    )
    sizes: list[int] = []

    class Recording(TinyClassifier):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            sizes.append(len(batch[0]))
            return super().training_step(batch, batch_idx)

    trainer.fit(Recording, datamodule)
    assert max(sizes) == 90 and sizes.count(90) == 3 * (600 // 90)


def test_the_model_is_left_untouched_and_other_errors_propagate() -> None:
    model = LimitedMemory(1000)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scale_batch_size(model, _folds(), max_trials=3)
    instance_after = model.state_dict()
    assert all(torch.equal(before[k], instance_after[k]) for k in before)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        scale_batch_size(LimitedMemory, _folds(), model_kwargs={"limit": 4, "message": "shape mismatch"})


def test_bad_input_says_what_to_do() -> None:
    with pytest.raises(LcvError, match="even the first batch size"):
        scale_batch_size(LimitedMemory, _folds(), init_val=8, model_kwargs={"limit": 4})
    with pytest.raises(LcvError, match="has no such attribute"):
        scale_batch_size(TinyClassifier, _folds(), batch_arg_name="train_batch_size")
    with pytest.raises(LcvError, match="Did you mean 'binsearch'"):
        scale_batch_size(TinyClassifier, _folds(), mode="binsearh")  # type: ignore[arg-type]
