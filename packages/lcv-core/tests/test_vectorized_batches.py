"""The vectorized engine's batches: every fold's batch of a step gathered from the shared tensors, chunk by chunk."""

from __future__ import annotations

import pytest
import torch

from lcv_core.vectorized.batches import _Gather


class IndexLoader:
    """Stands in for lcv-data's ``TensorBatchLoader``: batches are ``tensors[order[b * bs:(b + 1) * bs]]``."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], rows: torch.Tensor, batch_size: int, seed: int) -> None:
        self.tensors, self.rows, self.batch_size = tensors, rows, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def epoch_order(self) -> torch.Tensor:
        return self.rows[torch.randperm(len(self.rows), generator=self.generator)]


def _loaders(tensors: tuple[torch.Tensor, ...]) -> list[IndexLoader]:
    n = len(tensors[0])
    # three folds, training sets of 40, 41 and 43 rows: batches of 8 leave last batches of 0, 1 and 3 rows
    return [IndexLoader(tensors, torch.arange(n)[start : start + size], 8, seed) for seed, (start, size) in
            enumerate([(0, 40), (40, 41), (81, 43)])]  # fmt: skip


@pytest.mark.parametrize("chunk_bytes", [1, 1500, _Gather.CHUNK_BYTES])
def test_gathered_steps_are_each_folds_own_batches(monkeypatch, chunk_bytes) -> None:
    g = torch.Generator().manual_seed(0)
    tensors = (torch.randn(124, 5, generator=g), torch.randint(0, 3, (124,), generator=g))
    monkeypatch.setattr(_Gather, "CHUNK_BYTES", chunk_bytes)  # 1 byte: one step per gather; 1500: two
    loaders = _loaders(tensors)
    counts = [len(loader) for loader in loaders]
    steps = list(_Gather(loaders).steps(counts, None))
    expected_orders = [loader.epoch_order() for loader in _loaders(tensors)]  # the same generators, replayed
    assert len(steps) == max(counts) == 6
    for b, groups in enumerate(steps):
        for group in groups:
            for j, fold in enumerate(group.folds):
                rows = expected_orders[fold][b * 8 : (b + 1) * 8]
                assert torch.equal(group.batch[0][j], tensors[0][rows])
                assert torch.equal(group.batch[1][j], tensors[1][rows])
                assert group.sizes[j] == len(rows)
        stepping = sorted(f for group in groups for f in group.folds)
        assert stepping == [f for f in range(3) if b < counts[f]]  # fold 0 sits the last step out


class _CountingLoader(torch.utils.data.DataLoader):  # type: ignore[type-arg]
    """A loader that counts its epochs in a class-level default, as lcv-data's resumable loaders do."""

    epoch = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        self.epoch += 1
        return super().__iter__()


def test_the_vectorized_trial_step_leaves_the_loaders_epoch_counters_alone(tiny, trainer_kwargs) -> None:
    from lcv_core import CrossValidationTrainer
    from lcv_core.demos import make_classification

    dataset = make_classification(150)
    counts = {}
    for schedule in ("interleaved", "vectorized"):
        loaders = [
            (
                _CountingLoader(torch.utils.data.Subset(dataset, [i for i in range(150) if i % 5 != k]), batch_size=16),
                _CountingLoader(torch.utils.data.Subset(dataset, list(range(k, 150, 5))), batch_size=30),
            )
            for k in range(5)
        ]
        CrossValidationTrainer(**{**trainer_kwargs, "schedule": schedule}).fit(tiny, loaders)
        counts[schedule] = [(tr.epoch, va.epoch) for tr, va in loaders]
    # the trial batch vectorized draws before training is not an epoch: every loader counts what interleaved counts
    assert counts["vectorized"] == counts["interleaved"]
    assert counts["interleaved"][0][0] == trainer_kwargs["max_epochs"]
