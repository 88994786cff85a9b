"""Make one model per fold from a class, a factory or an instance, each seeded from the run's seed."""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule

from lcv_config import LcvError


def fold_seeds(seed: int, n_folds: int) -> list[int]:
    """Derive one independent seed per fold from the run's seed (NumPy's ``SeedSequence.spawn``)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n_folds)]


def fold_stream_seeds(seed: int, n_folds: int) -> list[int]:
    """Derive each fold's seed of its training stream (shuffling, dropout), independent of its init seed."""
    return [int(s.generate_state(2)[1]) for s in np.random.SeedSequence(seed).spawn(n_folds)]


ModelSpec = LightningModule | type[LightningModule] | Callable[..., LightningModule]


def make_fold_model(
    model: ModelSpec, fold: int, seed: int, model_kwargs: Mapping[str, Any] | None = None
) -> LightningModule:
    """Return fold ``fold``'s model: a copy of an instance, or a new one built under the fold's seed.

    A class is called with ``model_kwargs``; a factory is called with ``fold=`` when it accepts it. A
    ``torch.nn.Module`` among ``model_kwargs`` (the ``LitAutoEncoder(encoder, decoder)`` pattern) is copied for each
    fold and re-initialised under the fold's seed (``reset_parameters`` of every layer that has one), so folds train
    networks of their own from different initial weights and ``seed`` decides them; a layer with parameters but no
    ``reset_parameters`` keeps the instance's values, with a warning naming it. A LightningModule instance is copied
    as it is: every fold starts from its weights.
    """
    kwargs = dict(model_kwargs or {})
    if isinstance(model, LightningModule):
        if kwargs:
            raise LcvError("model_kwargs are for a model class or factory, not an instance.")
        built: Any = copy.deepcopy(model)  # every fold starts from the instance's weights
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for name, value in kwargs.items():
                if isinstance(value, torch.nn.Module):
                    kwargs[name] = _reinitialised_copy(name, value)
            if not inspect.isclass(model) and _accepts(model, "fold"):
                kwargs["fold"] = fold
            built = model(**kwargs)
    if not isinstance(built, LightningModule):
        raise LcvError(
            f"The model must be a LightningModule (or a class/factory making one); got {type(built).__name__}."
        )
    check_module(built)
    return built


def _reinitialised_copy(name: str, network: torch.nn.Module) -> torch.nn.Module:
    """Return a copy of ``network`` with every layer's parameters drawn anew (``reset_parameters``)."""
    network = copy.deepcopy(network)
    kept = []
    for path, layer in network.named_modules():
        if not any(True for _ in layer.parameters(recurse=False)):
            continue
        reset = getattr(layer, "reset_parameters", None)
        if callable(reset):
            reset()
        else:
            kept.append(f"{name}.{path}" if path else name)
    if kept:
        warnings.warn(
            f"model_kwargs: {', '.join(kept)} has parameters but no reset_parameters(), so every fold starts from the "
            "values you passed there; give it reset_parameters() (or build the network in the model) to draw them per "
            "fold.",
            UserWarning,
            stacklevel=3,
        )
    return network


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def check_module(module: LightningModule) -> None:
    """Refuse a module without ``training_step`` or ``configure_optimizers`` before training starts."""
    cls = type(module)
    for hook in ("training_step", "configure_optimizers"):
        if getattr(cls, hook) is getattr(LightningModule, hook):
            raise LcvError(f"{cls.__name__} does not define {hook}(); a LightningModule for lcv needs it.")


def check_no_shared_parameters(models: list[LightningModule]) -> None:
    """Refuse fold models whose copies share a parameter tensor (each fold must train its own weights)."""
    owner: dict[int, int] = {}
    for fold, m in enumerate(models):
        for name, p in m.named_parameters():
            key = p.data_ptr()
            if key in owner and owner[key] != fold:
                raise LcvError(
                    f"Fold {fold}'s parameter '{name}' is the same tensor as one of fold {owner[key]}'s: "
                    "the model factory returns modules that share weights. Build a new module per call."
                )
            owner[key] = fold


def _cpu_copy(module: LightningModule) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class BestWeights:
    """Each fold's weights at the best epoch by the fold mean of ``monitor``, kept on the CPU.

    Interleaved schedules snapshot all folds whenever the fold mean improves (strictly, so the first best
    epoch wins, as in `CVResult.best_epoch`). The sequential schedule only knows fold means after
    the last fold, so it keeps every epoch of every fold and picks at the end.
    """

    def __init__(self, monitor: str, mode: str, every_epoch: bool) -> None:
        self.key = f"cv/{monitor}_mean"
        self.mode = mode
        self.every_epoch = every_epoch
        self.score: float | None = None
        self.epoch: int | None = None
        self.states: list[dict[str, torch.Tensor] | None] = []
        self.per_epoch: dict[int, list[dict[str, torch.Tensor]]] = {}

    def update(self, epoch: int, metrics: Mapping[str, float], modules: list[LightningModule | None]) -> None:
        """Snapshot every fold if the fold mean of ``epoch`` is the best so far (interleaved schedules).

        A ``None`` module is a fold another process trains (``parallel``); its snapshot arrives with the fold's state.
        """
        value = metrics.get(self.key)
        if value is None or math.isnan(value):
            return
        if self.score is None or (value < self.score if self.mode == "min" else value > self.score):
            self.score, self.epoch = value, epoch
            self.states = [None if m is None else _cpu_copy(m) for m in modules]

    def are_current(self, epoch: int) -> bool:
        """Whether the snapshots were taken at ``epoch`` (the one just trained): they equal the folds' weights now.

        A checkpoint then stores the weights once and a fold-parallel gather sends them once.
        """
        return bool(self.states) and not self.every_epoch and self.epoch == epoch

    def record(self, fold: int, module: LightningModule) -> None:
        """Keep fold ``fold``'s weights of the epoch it just finished (sequential schedule)."""
        self.per_epoch.setdefault(fold, []).append(_cpu_copy(module))

    def load_best(self, modules: list[LightningModule], best_epoch: int) -> list[LightningModule]:
        """Load each fold's best weights into its module, switch it to eval mode and return the modules."""
        states: list[dict[str, torch.Tensor] | None]
        if self.every_epoch:
            states = [self.per_epoch[i][min(best_epoch, len(self.per_epoch[i]) - 1)] for i in range(len(modules))]
        else:
            states = self.states
        for module, state in zip(modules, states, strict=False):  # no snapshot (monitor never finite): last weights
            assert state is not None, "parallel: every fold's snapshot is gathered before the fit ends"
            module.load_state_dict(state)
        for module in modules:
            module.eval()
        return modules

    def state_dict(self) -> dict[str, Any]:
        """Return the snapshots for a checkpoint."""
        per_epoch = [self.per_epoch.get(i, []) for i in range(max(self.per_epoch, default=-1) + 1)]
        return {"score": self.score, "epoch": self.epoch, "states": self.states, "per_epoch": per_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the snapshots from a checkpoint."""
        self.score, self.epoch, self.states = state["score"], state["epoch"], list(state["states"])
        self.per_epoch = {i: list(s) for i, s in enumerate(state["per_epoch"]) if s}
