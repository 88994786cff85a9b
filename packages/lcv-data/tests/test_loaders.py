"""TensorBatchLoader: one gather per batch, every sample once per epoch."""

from __future__ import annotations

import pytest
import torch

from lcv_config import LcvError
from lcv_data import TensorBatchLoader


def _data(n: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(n, dtype=torch.float32).unsqueeze(1), torch.arange(n) % 3


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_cover_the_split_exactly_once_per_epoch(shuffle: bool) -> None:
    X, y = _data()
    indices = torch.arange(3, 50, 2)  # 24 samples of 50
    loader = TensorBatchLoader((X, y), indices, batch_size=5, shuffle=shuffle, seed=1)
    for _ in range(3):
        served = torch.cat([x for x, _ in loader]).squeeze(1).long()
        assert sorted(served.tolist()) == indices.tolist()


def test_targets_stay_aligned_with_inputs() -> None:
    X, y = _data()
    loader = TensorBatchLoader((X, y), torch.arange(50), batch_size=7, shuffle=True)
    for x, t in loader:
        assert torch.equal(x.squeeze(1).long() % 3, t)


@pytest.mark.parametrize(
    ("n", "batch_size", "drop_last", "expected"),
    [(24, 5, False, 5), (24, 5, True, 4), (25, 5, True, 5), (3, 5, True, 0), (3, 5, False, 1)],
)
def test_len_counts_the_batches_served(n: int, batch_size: int, drop_last: bool, expected: int) -> None:
    X, y = _data()
    loader = TensorBatchLoader((X, y), torch.arange(n), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == expected == len(batches)
    assert all(len(x) == batch_size for x, _ in batches[: n // batch_size])


def test_drop_last_drops_only_the_short_last_batch() -> None:
    X, y = _data()
    loader = TensorBatchLoader((X, y), torch.arange(24), batch_size=5, drop_last=True)
    assert [len(x) for x, _ in loader] == [5, 5, 5, 5]


def test_shuffle_differs_per_epoch_and_is_reproducible_from_the_seed() -> None:
    X, y = _data()
    a = TensorBatchLoader((X, y), torch.arange(50), batch_size=50, shuffle=True, seed=4)
    b = TensorBatchLoader((X, y), torch.arange(50), batch_size=50, shuffle=True, seed=4)
    a1, a2 = next(iter(a))[0], next(iter(a))[0]
    b1 = next(iter(b))[0]
    assert not torch.equal(a1, a2)
    assert torch.equal(a1, b1)


def test_transform_is_applied_to_inputs_only() -> None:
    X, y = _data()
    loader = TensorBatchLoader((X, y), torch.arange(10), batch_size=4, transform=lambda x: x * 10 + 1)
    xs, ys = zip(*loader, strict=True)
    assert torch.cat(xs).squeeze(1).tolist() == [i * 10 + 1 for i in range(10)]
    assert torch.cat(ys).tolist() == [i % 3 for i in range(10)]


@pytest.mark.parametrize("batch_size", [0, -2, 2.5])
def test_bad_batch_size_is_an_error(batch_size: float) -> None:
    X, y = _data()
    with pytest.raises(LcvError, match="batch_size must be a positive integer"):
        TensorBatchLoader((X, y), torch.arange(10), batch_size=batch_size)  # type: ignore[arg-type]


def test_tensors_of_different_lengths_are_an_error() -> None:
    with pytest.raises(LcvError, match=r"same number of samples; got \[9, 10\]"):
        TensorBatchLoader((torch.zeros(10, 2), torch.zeros(9)), torch.arange(9), batch_size=2)
