"""``F.linear`` and ``F.cross_entropy`` on the stacked tensors under ``vmap``: bitwise torch's batching rules.

The vectorized schedule runs the user's unmodified step under ``vmap``; ``batched_ops`` computes these two calls on
the folds' stacked tensors directly. It must change no number: not the outputs, not the gradients, not a fit
(``test_vectorized.py::test_fast_linear_and_cross_entropy_change_no_number_of_a_fit``).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.func import vmap
from torch.nn import functional

from lcv_core.vectorized import batched_ops
from lcv_core.vectorized.batched_ops import batched_ops as fast_ops

K, N, IN, OUT = 4, 6, 5, 3


def _leaves(seed: int, bias: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    leaves = {
        "x": torch.randn(K, N, IN, generator=g, requires_grad=True),
        "w": torch.randn(K, OUT, IN, generator=g, requires_grad=True),
        "y": torch.randint(0, OUT, (K, N), generator=g),
    }
    if bias:
        leaves["b"] = torch.randn(K, OUT, generator=g, requires_grad=True)
    return leaves


def _step(kwargs: dict[str, Any]) -> Any:
    def step(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(torch.relu(functional.linear(x, w, b)), y, **kwargs)

    return step


def _run(fast: bool, bias: bool, targets: torch.Tensor | None = None, **kwargs: Any) -> list[torch.Tensor]:
    """Loss per fold and the gradients of x, w (and b) for the vmapped step, with or without `batched_ops`."""
    leaves = _leaves(0, bias)
    y = leaves["y"] if targets is None else targets
    b = leaves.get("b")
    in_dims = (0, 0, 0 if bias else None, 0)
    if fast:
        with fast_ops():
            loss = vmap(_step(kwargs), in_dims=in_dims)(leaves["x"], leaves["w"], b, y)
    else:
        loss = vmap(_step(kwargs), in_dims=in_dims)(leaves["x"], leaves["w"], b, y)
    wrt = [leaves["x"], leaves["w"]] + ([b] if b is not None else [])
    return [loss.detach(), *torch.autograd.grad(loss.sum(), wrt)]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_outputs_and_gradients_are_bitwise_those_of_the_batching_rules(bias: bool) -> None:
    for got, want in zip(_run(True, bias), _run(False, bias), strict=True):
        assert torch.equal(got, want)


def test_ignored_targets_are_left_out_of_each_folds_mean() -> None:
    targets = _leaves(0, True)["y"].clone()
    targets[0, :3] = -100  # fold 0 averages over 3 rows, fold 2 over 5, the others over all 6
    targets[2, 1] = -100
    got, want = _run(True, True, targets), _run(False, True, targets)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    assert torch.isfinite(got[0]).all()


@pytest.mark.parametrize(
    "kwargs",
    [{"reduction": "sum"}, {"label_smoothing": 0.1}, {"weight": torch.tensor([1.0, 2.0, 0.5])}],
    ids=["sum", "label-smoothing", "class-weights"],
)
def test_other_arguments_go_to_torchs_own_function(kwargs: dict[str, Any]) -> None:
    for got, want in zip(_run(True, True, **kwargs), _run(False, True, **kwargs), strict=True):
        assert torch.equal(got, want)


def test_outside_vmap_and_after_the_block_torchs_functions_are_untouched() -> None:
    x, w = torch.randn(N, IN), torch.randn(OUT, IN)
    with fast_ops():
        assert torch.equal(functional.linear(x, w), x @ w.T)  # a plain call inside the block: torch's numbers
    assert functional.linear is torch._C._nn.linear
    with pytest.raises(RuntimeError), fast_ops():
        raise RuntimeError("the step failed")
    assert functional.linear is torch._C._nn.linear  # put back after an error too
    assert functional.cross_entropy is batched_ops._cross_entropy
