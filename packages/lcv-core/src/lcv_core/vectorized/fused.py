"""The stacked optimizer's step straight on torch's fused kernels (the ``vectorized`` schedule's hot path).

``torch.optim.Adam(fused=True).step()`` spends about 50 µs per call in Python around a kernel that takes under
10 µs for a small model (profiler hooks, grouping the tensors by device and dtype, re-reading every parameter's
state into new lists). A vectorized cohort steps one optimizer over a handful of stacked tensors that never change
device or dtype, so that work is the same every step: `FusedStep` calls the kernel ``Optimizer.step`` would call,
with the same tensors in the same order and the same hyperparameters (read from the param groups at every step,
so schedulers and `Cohort.sync_hyperparameters` apply), and the update is bit for bit the optimizer's own.

Covered: ``Adam`` and ``AdamW`` (``torch._fused_adam_`` / ``torch._fused_adamw_``) and ``SGD``
(``torch._fused_sgd_``) with ``fused=True``, on dense tensors of one device and dtype, with float hyperparameters.
Anything else, and any step where a parameter's state does not exist yet (the first step creates it), goes through
``optimizer.step()``. Global optimizer hooks (``torch.optim.optimizer.register_optimizer_step_pre_hook``) are not
called for the stacked optimizer, which is lcv's own and not the fold's.

This module is the only place lcv calls torch's private fused kernels; ``tests/test_vectorized_fused.py`` checks
each against ``optimizer.step()``, so a torch release that changes one fails there first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def _plain(value: Any) -> bool:
    return isinstance(value, (float, int)) and not isinstance(value, bool)


class FusedStep:
    """One optimizer's step on torch's fused kernel; `of()` says whether the optimizer qualifies.

    Args:
        optimizer: An ``Adam``, ``AdamW`` or ``SGD`` with ``fused=True`` (see `of()`).
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self._step: Callable[[], bool] = self._sgd if type(optimizer) is torch.optim.SGD else self._adam

    @classmethod
    def of(cls, optimizer: torch.optim.Optimizer) -> FusedStep | None:
        """Return the fused step of ``optimizer``, or ``None`` when only ``optimizer.step()`` can step it."""
        if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD):
            return None
        kernels = ("_fused_sgd_",) if type(optimizer) is torch.optim.SGD else ("_fused_adam_", "_fused_adamw_")
        if not all(hasattr(torch, k) for k in kernels):
            return None
        if getattr(optimizer, "grad_scale", None) is not None or getattr(optimizer, "found_inf", None) is not None:
            return None
        kinds = set()
        for group in optimizer.param_groups:
            if not group.get("fused") or group.get("differentiable") or group.get("capturable"):
                return None
            for p in group["params"]:
                if p.is_complex() or p.is_sparse:
                    return None
                kinds.add((p.device, p.dtype))
        return cls(optimizer) if len(kinds) == 1 else None

    def step(self) -> bool:
        """Step every parameter that has a gradient; ``False`` (nothing done) when ``optimizer.step()`` must."""
        with torch.no_grad():
            return self._step()

    def _adam(self) -> bool:
        opt = self.optimizer
        calls: list[tuple[dict[str, Any], list[list[torch.Tensor]]]] = []
        for group in opt.param_groups:
            lists: list[list[torch.Tensor]] = [[], [], [], [], [], []]
            params, grads, avgs, squares, maxima, steps = lists
            amsgrad = group["amsgrad"]
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                state = opt.state.get(p)
                if not state or grad.is_sparse:
                    return False  # the first step creates the state: Adam's own code does that
                params.append(p)
                grads.append(grad)
                avgs.append(state["exp_avg"])
                squares.append(state["exp_avg_sq"])
                if amsgrad:
                    maxima.append(state["max_exp_avg_sq"])
                steps.append(state["step"])
            beta1, beta2 = group["betas"]
            if not all(_plain(v) for v in (group["lr"], beta1, beta2, group["weight_decay"], group["eps"])):
                return False  # tensor hyperparameters: Adam moves them per device
            if params:
                calls.append((group, lists))
        for group, (params, grads, avgs, squares, maxima, steps) in calls:
            beta1, beta2 = group["betas"]
            torch._foreach_add_(steps, 1)
            decoupled = group.get("decoupled_weight_decay", type(opt) is torch.optim.AdamW)  # the key: torch 2.6+
            kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
            kernel(
                params,
                grads,
                avgs,
                squares,
                maxima,
                steps,
                amsgrad=group["amsgrad"],
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=group["maximize"],
                grad_scale=None,
                found_inf=None,
            )
        return True

    def _sgd(self) -> bool:
        opt = self.optimizer
        calls: list[tuple[dict[str, Any], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]] = []
        for group in opt.param_groups:
            params: list[torch.Tensor] = []
            grads: list[torch.Tensor] = []
            buffers: list[torch.Tensor] = []
            momentum = group["momentum"]
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if grad.is_sparse:
                    return False
                if momentum != 0:
                    buffer = opt.state.get(p, {}).get("momentum_buffer")
                    if buffer is None:
                        return False  # SGD's first step creates the momentum buffers
                    buffers.append(buffer)
                params.append(p)
                grads.append(grad)
            if not all(_plain(group[k]) for k in ("lr", "momentum", "dampening", "weight_decay")):
                return False
            if params:
                calls.append((group, params, grads, buffers))
        for group, params, grads, buffers in calls:
            torch._fused_sgd_(
                params,
                grads,
                buffers,
                weight_decay=group["weight_decay"],
                momentum=group["momentum"],
                lr=group["lr"],
                dampening=group["dampening"],
                nesterov=group["nesterov"],
                maximize=group["maximize"],
                is_first_step=False,
                grad_scale=None,
                found_inf=None,
            )
        return True
