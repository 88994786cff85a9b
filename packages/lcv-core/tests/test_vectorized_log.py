"""What k folds log in the vectorized engine: values computed later for many steps equal the step-by-step ones."""

from __future__ import annotations

import pytest
import torch

from lcv_core.vectorized.grouped import _accuracies
from lcv_core.vectorized.metric_log import Deferred, _FoldsLog

K = 3


def _steps() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    # 7 steps of 3 folds: batches of 10 then a smaller last one of 4, 5 classes
    return [(torch.randn(K, n, 5, generator=g), torch.randint(0, 5, (K, n), generator=g)) for n in [10] * 6 + [4]]


def _reduce(deferred: bool, budget: int) -> list[dict[str, float]]:
    log = _FoldsLog(K, torch.device("cpu"))
    log.DEFERRED_BYTES = budget
    log.start()
    for out, y in _steps():
        eager = (out.argmax(dim=-1) == y).float().mean(1)
        value = Deferred(_accuracies, out, y) if deferred else eager
        log.add("acc", "mean", None, value, [float(y.shape[1])] * K)
    return log.reduce()


@pytest.mark.parametrize("budget", [1, 1000, 2**30])  # computed at once, in runs of a few steps, at the end
def test_deferred_accuracies_reduce_to_the_step_by_step_values(budget: int) -> None:
    expected = _reduce(deferred=False, budget=budget)
    assert _reduce(deferred=True, budget=budget) == expected  # bit for bit: the same ops, batched over steps
    steps = _steps()
    correct = [sum(float((o.argmax(-1)[f] == y[f]).sum()) for o, y in steps) for f in range(K)]
    total = sum(y.shape[1] for _, y in steps)
    for fold in range(K):
        assert expected[fold]["acc"] == pytest.approx(correct[fold] / total)  # the fold's accuracy over the epoch


def test_deferred_values_of_a_subset_of_folds_are_computed_at_once() -> None:
    log = _FoldsLog(K, torch.device("cpu"))
    log.start()
    out, y = _steps()[0]
    log.add("acc", "mean", torch.tensor([0, 2]), Deferred(_accuracies, out[[0, 2]], y[[0, 2]]), [10.0, 10.0])
    result = log.reduce()
    expected = (out.argmax(-1) == y).float().mean(1)
    assert result[0]["acc"] == pytest.approx(float(expected[0]))
    assert "acc" not in result[1]  # fold 1 logged nothing
    assert result[2]["acc"] == pytest.approx(float(expected[2]))
