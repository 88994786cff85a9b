"""The vectorized engine's direct fused-kernel optimizer step equals ``optimizer.step()`` bit for bit.

One test per private torch kernel lcv calls (``lcv_core.vectorized.fused``): a torch release that changes one of
them fails here, not in a user's numbers.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lcv_core.vectorized.fused import FusedStep


def _params(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(5, 8, 64), (5, 8), (5, 10, 8), (5, 10)]
    return [torch.randn(s, generator=g).requires_grad_() for s in shapes]


def _run(optimizer_cls: type[torch.optim.Optimizer], kwargs: dict[str, Any], fused_path: bool) -> list[Any]:
    """Four steps on fixed gradients (the first one always through ``optimizer.step()``); return the tensors."""
    params = _params(0)
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": 0.003}]  # two groups, their own lr
    opt = optimizer_cls(groups, lr=0.01, fused=True, **kwargs)
    fused = FusedStep.of(opt)
    assert fused is not None
    g = torch.Generator().manual_seed(1)
    stateless = optimizer_cls is torch.optim.SGD and not kwargs.get("momentum")  # nothing to create first
    for step in range(4):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        params[3].grad = None if step == 2 else params[3].grad  # a parameter without a gradient is skipped
        if fused_path:
            done = fused.step()
            assert done is (step > 0 or stateless)  # the first step creates the state: optimizer.step() does it
            if not done:
                opt.step()
        else:
            opt.step()
        for group in opt.param_groups:
            group["lr"] *= 0.5  # a scheduler between steps: read at every step
    state = [{k: v for k, v in opt.state[p].items()} for p in params]
    return [p.detach() for p in params] + [v for s in state for v in s.values() if isinstance(v, torch.Tensor)]


@pytest.mark.parametrize(
    ("optimizer_cls", "kwargs"),
    [
        (torch.optim.Adam, {}),  # torch._fused_adam_
        (torch.optim.Adam, {"weight_decay": 0.1, "amsgrad": True, "maximize": True, "betas": (0.8, 0.99)}),
        (torch.optim.AdamW, {"weight_decay": 0.1}),  # torch._fused_adamw_
        (torch.optim.SGD, {}),  # torch._fused_sgd_ without momentum buffers
        (torch.optim.SGD, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
        (torch.optim.SGD, {"momentum": 0.9, "dampening": 0.1, "maximize": True}),
    ],
)
def test_fused_step_equals_the_optimizers_own_step(optimizer_cls: type[torch.optim.Optimizer], kwargs: Any) -> None:
    ours, theirs = _run(optimizer_cls, kwargs, True), _run(optimizer_cls, kwargs, False)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: torch.optim.Adam(ps),  # not fused: torch picks foreach or the for-loop
        lambda ps: torch.optim.Adagrad(ps, fused=True),  # no direct path: optimizer.step()
        lambda ps: torch.optim.Adam([ps[0], torch.nn.Parameter(ps[1].double())], fused=True),  # two dtypes
    ],
)
def test_other_optimizers_keep_their_own_step(make: Any) -> None:
    params = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(3))]
    assert FusedStep.of(make(params)) is None


def test_a_tensor_learning_rate_leaves_the_step_to_the_optimizer() -> None:
    param = torch.nn.Parameter(torch.randn(3, 4))
    opt = torch.optim.Adam([param], lr=torch.tensor(0.01), fused=True)
    fused = FusedStep.of(opt)
    assert fused is not None
    param.grad = torch.ones_like(param)
    opt.step()
    before = param.detach().clone()
    assert fused.step() is False  # nothing stepped: the caller runs optimizer.step()
    assert torch.equal(param.detach(), before)
