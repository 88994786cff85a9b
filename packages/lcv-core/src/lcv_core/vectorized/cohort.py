"""Cohorts of the ``vectorized`` schedule: folds stacked into one parameter set, with one optimizer over it."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities.types import LRSchedulerConfig

from lcv_config import LcvError
from lcv_core.vectorized.batches import Stepper
from lcv_core.vectorized.fused import FusedStep

_FUSED = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad)
_NO_SYNC = ("params", "fused", "foreach", "capturable", "differentiable")


class Cohort:
    """Folds with the same number of training batches per epoch: one stacked parameter set, one optimizer.

    Args:
        folds: The cohort's folds.
        modules: Every fold's module.
        specs: Every fold's optimizer and schedulers.
        layout: The step that uses the stacked parameters; they are kept in its layout (`Stepper.stored`),
            and the fold modules and optimizers get theirs back (`Stepper.module_view`).
    """

    def __init__(
        self,
        folds: list[int],
        modules: Sequence[LightningModule],
        specs: list[tuple[torch.optim.Optimizer, list[LRSchedulerConfig]]],
        layout: Stepper,
    ) -> None:
        self.folds = folds
        self.layout = layout
        template = modules[folds[0]]
        self.params: dict[str, torch.Tensor] = {}
        for name, p in template.named_parameters():
            stacked = layout.stored(name, torch.stack([modules[i].get_parameter(name).detach() for i in folds]))
            self.params[name] = stacked.clone(memory_format=torch.contiguous_format).requires_grad_(p.requires_grad)
        originals = [specs[i][0] for i in folds]
        self.originals = originals
        names = {id(p): n for n, p in template.named_parameters()}
        self.param_names: list[list[str]] = [[names[id(p)] for p in g["params"]] for g in originals[0].param_groups]
        opt = originals[0]
        accepted = inspect.signature(type(opt).__init__).parameters
        defaults = {k: v for k, v in opt.defaults.items() if k in accepted}
        groups = [
            {**{k: v for k, v in g.items() if k != "params"}, "params": [self.params[n] for n in group_names]}
            for g, group_names in zip(opt.param_groups, self.param_names, strict=True)
        ]
        if type(opt) in _FUSED and defaults.get("fused") is None and not defaults.get("foreach"):
            defaults["fused"] = True
            for g in groups:
                g["fused"] = True
        self.optimizer: torch.optim.Optimizer = type(opt)(groups, **defaults)
        self._fused = FusedStep.of(self.optimizer)
        self._trainable = [p for p in self.params.values() if p.requires_grad]
        self._slots: dict[tuple[int, str], tuple[LightningModule, dict[str, Any], str]] = {}
        self.load_optimizer_state()

    def step(self) -> None:
        """Step the stacked optimizer, then drop the gradients (``zero_grad(set_to_none=True)``, one loop)."""
        if self._fused is None or not self._fused.step():
            self.optimizer.step()
        for p in self._trainable:
            p.grad = None

    def load_optimizer_state(self) -> None:
        """Stack the folds' optimizer states (empty before the first step) into the stacked optimizer."""
        templates = [m for m in self.originals]
        for gi, group in enumerate(self.optimizer.param_groups):
            for pi, stacked in enumerate(group["params"]):
                states = [o.state.get(o.param_groups[gi]["params"][pi]) for o in templates]
                if not all(states):
                    continue
                first = states[0]
                assert first is not None  # checked by all() above
                merged: dict[str, Any] = {}
                name = self.param_names[gi][pi]
                for key, value in first.items():
                    if isinstance(value, torch.Tensor) and value.ndim > 0:  # shaped as the parameter (elementwise)
                        stacked_state = torch.stack([s[key] for s in states if s is not None])
                        merged[key] = self.layout.stored(name, stacked_state).contiguous()
                    else:
                        merged[key] = value.clone() if isinstance(value, torch.Tensor) else value
                self.optimizer.state[stacked] = merged

    def sync_hyperparameters(self) -> None:
        """Take the learning rate & co. from the folds' own optimizers (their schedulers step those)."""
        first = self.originals[0]
        for other, fold in zip(self.originals[1:], self.folds[1:], strict=True):
            for g0, g in zip(first.param_groups, other.param_groups, strict=True):
                if g0.get("lr") != g.get("lr"):
                    raise LcvError(
                        f"Fold {fold}'s learning rate {g.get('lr')} differs from fold {self.folds[0]}'s {g0.get('lr')}"
                        "; the vectorized schedule needs one learning rate per step for all folds. Use "
                        "schedule='interleaved'."
                    )
        for g_new, g0 in zip(self.optimizer.param_groups, first.param_groups, strict=True):
            g_new.update({k: v for k, v in g0.items() if k not in _NO_SYNC})

    def clip(self, max_norm: float | None, clip_value: float | None) -> None:
        """Clip each fold's gradients on its own (norm over the fold's slice, or elementwise by value)."""
        named = [(n, p.grad) for n, p in self.params.items() if p.grad is not None]
        grads = [g for _, g in named]
        if not grads:
            return
        if clip_value is not None:
            for g in grads:
                g.clamp_(-clip_value, clip_value)
            return
        if max_norm is None:
            return
        k = len(self.folds)
        # each fold's norm over its gradients in the module's layout (the order of the sum, as clip_grad_norm_'s)
        views = [self.layout.module_view(n, g).reshape(k, -1) for n, g in named]
        norms = torch.stack([torch.linalg.vector_norm(v, dim=1) for v in views], dim=1)
        total = torch.linalg.vector_norm(norms, dim=1)
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.ndim - 1))).to(g.dtype))

    def write_back(self, modules: Sequence[LightningModule]) -> None:
        """Copy the stacked weights into each fold's module (`write_back_optimizers` does the optimizer states)."""
        with torch.no_grad():
            for name, stacked in self.params.items():
                rows = self.layout.module_view(name, stacked).unbind(0)
                for fold, row in zip(self.folds, rows, strict=True):
                    self._slot(modules[fold], name).copy_(row)

    def write_back_optimizers(self) -> None:
        """Copy the stacked optimizer's state into each fold's own optimizer (its state of the fold's parameters)."""
        opt = self.optimizer
        for gi, group in enumerate(opt.param_groups):
            for pi, stacked in enumerate(group["params"]):
                state = opt.state.get(stacked)
                if not state:
                    continue
                name = self.param_names[gi][pi]
                states = {
                    key: self.layout.module_view(name, value).unbind(0)
                    for key, value in state.items()
                    if isinstance(value, torch.Tensor) and value.ndim
                }
                for j, original in enumerate(self.originals):
                    original.state[original.param_groups[gi]["params"][pi]] = {
                        key: states[key][j].clone(memory_format=torch.contiguous_format)
                        if key in states
                        else (value.clone() if isinstance(value, torch.Tensor) else value)
                        for key, value in state.items()
                    }

    def _slot(self, module: LightningModule, name: str) -> torch.Tensor:
        """Return ``module``'s parameter ``name``, from where it is registered (``get_parameter`` walks the path)."""
        key = (id(module), name)
        found = self._slots.get(key)
        if found is None or found[0] is not module:
            owner, _, leaf = name.rpartition(".")
            found = self._slots[key] = (module, module.get_submodule(owner)._parameters, leaf)
        param: torch.Tensor | None = found[1][found[2]]
        assert param is not None  # the stacked parameters are the registered ones
        return param
