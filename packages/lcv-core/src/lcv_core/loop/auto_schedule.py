"""``schedule='auto'``, the default: ``vectorized`` or ``interleaved``, chosen at the start of a fit.

The choice is taken once, after the folds are set up and before any fold hook runs, in this order:

1. **Several processes** (``devices > 1``, DDP): ``interleaved``, the multi-process behaviour of before.
2. **Cannot vectorize** (a per-batch hook override, manual optimization, mixed precision, a non-elementwise optimizer,
   a Lightning callback, a callback with per-fold or per-step hooks, a profiler, fold models whose plain attributes
   differ, step code that reads ``self.trainer`` or ``self.global_step``, ...): ``interleaved``.
3. **Size of one step**, parameters per fold × samples per batch: clearly small (`SMALL_STEP`) is ``vectorized``, where
   a step is Python overhead that one batched computation removes (k-1)/k of; clearly large (`LARGE_STEP`, or more than
   ``VECTORIZE_PARAMETERS_CPU`` parameters on the CPU) is ``interleaved``, where a step is arithmetic and the batched
   kernels are slower.
4. **In between: a short timed probe** (`probe_times()`): a few real training steps of both schedules on throwaway
   copies of the folds (deep copies of the modules and optimizers, batches drawn with every loader's position and
   generator and every random state put back), best of a few rounds. ``vectorized`` is chosen when it was more than
   `MARGIN` faster per step; ties go to ``interleaved``.

The fit itself is then exactly the chosen schedule's: the probe changes no weight, optimizer state, loader position or
random stream, so the per-fold numbers equal those of ``schedule='<choice>'`` run alone. The choice and its reason are
printed in one line (with the progress bar; ``enable_progress_bar=False`` prints nothing), kept in the run state
(``last.ckpt``: a resumed ``auto`` fit continues with the saved choice) and written to ``metrics.json``
(``schedule``, ``schedule_reason``). Given the same measurements the choice is the same; ``schedule='<name>'``
overrides it.
"""

from __future__ import annotations

import ast
import copy
import functools
import inspect
import random
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from lightning.pytorch import LightningModule
from torchmetrics import Metric

from lcv_core.callbacks.base import Callback
from lcv_core.callbacks.checkpoint import ModelCheckpoint
from lcv_core.callbacks.progress import RichProgressBar
from lcv_core.core.lightning_compat import is_fabric_loader, unwrap_optimizer
from lcv_core.core.loader_state import kept_loader_state, loader_chain
from lcv_core.core.metric_log import FoldMetricLog, on_device
from lcv_core.loop.fold_loop import overridden_hook
from lcv_core.loop.schedules import (
    PER_BATCH_HOOKS,
    VECTORIZE_PARAMETERS_CPU,
    InterleavedSchedule,
    VectorizedSchedule,
)

if TYPE_CHECKING:
    from lcv_core.core.fold import FoldState
    from lcv_core.loop.trainer import CrossValidationTrainer
    from lcv_core.vectorized.engine import VectorizedFolds

SMALL_STEP = 8_000_000
"""Parameters per fold × samples per batch at or below which ``auto`` vectorizes without a probe (measured in
``benchmarks/`` on the CPU, batch 64: ``vectorized`` 2.8x faster than ``interleaved`` at 682 parameters, 1.45x at
85,002)."""
LARGE_STEP = 16_000_000
"""Parameters per fold × samples per batch above which ``auto`` interleaves without a probe on the CPU
(``VECTORIZE_PARAMETERS_CPU`` × a batch of 64; at 1.1M parameters × 64 ``vectorized`` was 1.7x slower)."""
ACCELERATOR_LARGE_STEP = 1_000_000_000
"""As `LARGE_STEP`, on an accelerator (GPU), whose batched kernels pay off up to much larger steps; in between the
probe decides."""
MARGIN = 0.05
"""How much faster per step (a fraction) the probe must measure ``vectorized`` to choose it over ``interleaved``."""
PROBE_STEPS = 4
"""Training steps of every fold per probe round (fewer when a fold has fewer batches)."""
PROBE_ROUNDS = 2
"""Timed rounds per schedule after one warm-up round; the fastest round counts."""

_CALLBACK_HOOKS_PER_FOLD = (
    "on_train_epoch_start_per_fold",
    "on_train_epoch_end_per_fold",
    "on_train_batch_start_per_fold",
    "on_train_batch_end_per_fold",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_after_optimizer_step",
    "on_before_zero_grad",
    "on_validation_start_per_fold",
    "on_validation_batch_start_per_fold",
    "on_validation_batch_end_per_fold",
    "on_validation_end_per_fold",
)
"""Callback hooks called per fold or per step, which the vectorized engine has no place to call."""
_VECTORIZED_AWARE = (RichProgressBar, ModelCheckpoint)
"""lcv's callbacks whose per-fold hooks only refine a display or serve ``sequential``: they work vectorized."""


@dataclass(frozen=True)
class AutoChoice:
    """What ``schedule='auto'`` chose, and why."""

    schedule: str
    """``interleaved`` or ``vectorized``."""
    reason: str
    """Why, with the figures the choice was taken on."""

    def line(self) -> str:
        """Return the line the fit prints."""
        return f"schedule='auto' chose {self.schedule!r}: {self.reason}"


@dataclass(frozen=True)
class ProbeTimes:
    """What the probe measured: seconds per training step of all folds, under each schedule (best round)."""

    interleaved: float
    """Seconds per step of all folds, one fold after another."""
    vectorized: float
    """Seconds per step of all folds as one batched computation."""
    steps: int
    """Steps per round."""


@dataclass(frozen=True)
class StepSize:
    """The size of one training step, which decides when the probe is not needed."""

    parameters: int
    """Parameters per fold."""
    batch_size: int | None
    """Samples per training batch (``None``: unknown, counted as 1)."""
    device: str
    """The device type (``cpu``, ``cuda``, ...)."""
    n_folds: int
    """The number of folds."""

    @property
    def work(self) -> int:
        """Parameters × samples per batch: the arithmetic of one fold's step, up to a constant."""
        return self.parameters * (self.batch_size or 1)

    def describe(self) -> str:
        """Return the size in words: ``85,002 parameters per fold × 64 samples per batch on the cpu``."""
        batch = f" × {self.batch_size} samples per batch" if self.batch_size else ""
        return f"{self.parameters:,} parameters per fold{batch} on the {self.device}"


def by_size(size: StepSize) -> AutoChoice | None:
    """Return the choice the size of a step makes clear, or ``None`` when the probe must decide."""
    large = LARGE_STEP if size.device == "cpu" else ACCELERATOR_LARGE_STEP
    slower = "arithmetic-bound, where one batched computation of the folds is slower than one fold after another"
    if size.device == "cpu" and size.parameters > VECTORIZE_PARAMETERS_CPU:
        return AutoChoice(
            "interleaved",
            f"{size.describe()} is a large step (more than {VECTORIZE_PARAMETERS_CPU:,} parameters per fold on the "
            f"CPU): {slower}",
        )
    if size.work > large:
        return AutoChoice(
            "interleaved", f"{size.describe()} is a large step (over {large:,} parameters × samples): {slower}"
        )
    if size.work <= SMALL_STEP:
        return AutoChoice(
            "vectorized",
            f"{size.describe()} is a small step (at most {SMALL_STEP:,} parameters × samples): mostly overhead, "
            f"which one batched computation of the {size.n_folds} folds pays once instead of {size.n_folds} times",
        )
    return None


def by_times(times: ProbeTimes, size: StepSize) -> AutoChoice:
    """Return the choice the probe's timings make: ``vectorized`` only when more than `MARGIN` faster per step."""
    ratio = times.interleaved / times.vectorized if times.vectorized > 0 else float("inf")
    measured = (
        f"the probe measured {1e3 * times.vectorized:.2f} ms per step of all {size.n_folds} folds vectorized against "
        f"{1e3 * times.interleaved:.2f} ms interleaved ({size.describe()}; {times.steps} steps, best of "
        f"{PROBE_ROUNDS} rounds)"
    )
    if times.vectorized * (1 + MARGIN) < times.interleaved:
        return AutoChoice("vectorized", f"{measured}: {ratio:.2f}x faster")
    return AutoChoice("interleaved", f"{measured}: vectorized is not more than {MARGIN:.0%} faster")


# -- what the trainer's folds say -----------------------------------------------------------------------


def _loader_int(loader: Any, name: str) -> int | None:
    for obj in loader_chain(loader):
        value = getattr(obj, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def step_size(trainer: CrossValidationTrainer) -> StepSize:
    """Return the size of one training step of ``trainer``'s folds."""
    folds = trainer.folds
    return StepSize(
        parameters=sum(p.numel() for p in folds[0].module.parameters()),
        batch_size=_loader_int(folds[0].train_loader, "batch_size"),
        device=trainer.fabric.device.type,
        n_folds=len(folds),
    )


def _callback_blocker(trainer: CrossValidationTrainer) -> str | None:
    """Return why the run's callbacks need ``interleaved`` (per-fold or per-step hooks), or ``None``."""
    if trainer.lightning_callbacks:
        names = ", ".join(type(c).__name__ for c in trainer.lightning_callbacks)
        return f"Lightning callbacks ({names}) are called per fold and per batch"
    for callback in trainer.callbacks:
        if isinstance(callback, _VECTORIZED_AWARE):
            continue
        for hook in _CALLBACK_HOOKS_PER_FOLD:
            method = getattr(type(callback), hook, None)
            if callable(method) and method is not getattr(Callback, hook, None):
                return f"callback {type(callback).__name__} implements {hook}, which only 'interleaved' calls"
    return None


_PLAIN = (bool, int, float, str, bytes, type(None))


def _plain_attributes(module: torch.nn.Module) -> dict[str, Any]:
    """Return the plain values a module and its submodules hold, by ``<submodule>.<attribute>``, with ``hparams``.

    Plain: numbers, strings and ``None``, also inside tuples, lists and dicts.
    """

    def plain(value: Any) -> bool:
        if isinstance(value, _PLAIN):
            return True
        if isinstance(value, (tuple, list)):
            return all(plain(v) for v in value)
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        return False

    found: dict[str, Any] = {}
    for prefix, sub in module.named_modules():
        attrs = dict(vars(sub))
        if isinstance(sub, LightningModule):
            attrs.update({f"hparams.{k}": v for k, v in sub.hparams.items()})
        for name, value in attrs.items():
            if not name.startswith("_") and plain(value):
                found[f"{prefix}.{name}" if prefix else name] = value
    return found


def _differing_attribute(modules: list[LightningModule]) -> str | None:
    """Return why the fold modules differ in a plain attribute (the vectorized engine reads those from fold 0's)."""
    first = _plain_attributes(modules[0])
    for i, module in enumerate(modules[1:], start=1):
        other = _plain_attributes(module)
        for name in sorted(first.keys() | other.keys()):
            if first.get(name) != other.get(name):
                return (
                    f"the fold models differ in {name} ({first.get(name)!r} in fold 0, {other.get(name)!r} in fold "
                    f"{i}), and one batched computation reads such attributes from fold 0's model"
                )
    return None


_PER_FOLD_READS = ("trainer", "global_step")
"""What a step may read of its own fold that one batched computation answers from fold 0 (its trainer view) or from
the epoch start (``global_step``)."""
_CALLED_PER_FOLD = ("__init__", "setup", "teardown", "prepare_data", "test_step", "predict_step")


def _reads_per_fold_state(module: LightningModule) -> str | None:
    """Return where the module's own step code reads ``self.trainer`` or ``self.global_step``, or ``None``.

    The methods of the user's classes are read (their source, when it can be found), but for hooks (``on_*``,
    ``configure_*``, ...) which every fold's module runs for itself. The answer is remembered per set of methods:
    parsing their source costs several milliseconds, and a tuning study fits the same class once per trial.
    """
    methods = tuple(
        (cls.__name__, name, function)
        for cls in type(module).__mro__
        if cls.__module__.split(".")[0] not in ("lightning", "torch", "builtins", "typing")
        for name, function in vars(cls).items()
        if inspect.isfunction(function) and not name.startswith(("on_", "configure_")) and name not in _CALLED_PER_FOLD
    )
    return _methods_read_per_fold_state(methods)


@functools.lru_cache(maxsize=256)
def _methods_read_per_fold_state(methods: tuple[tuple[str, str, Callable[..., Any]], ...]) -> str | None:
    for cls_name, name, function in methods:
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        except (OSError, TypeError, SyntaxError):
            continue  # no source to read (built in a REPL, compiled): nothing to go on
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in _PER_FOLD_READS
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
            ):
                return (
                    f"{cls_name}.{name} reads self.{node.attr}, which one batched computation of the folds "
                    "answers for fold 0 (self.trainer) or at the epoch start (self.global_step)"
                )
    return None


def blocker(trainer: CrossValidationTrainer, trial: bool) -> str | None:
    """Return why ``trainer``'s folds must run ``interleaved``, or ``None`` when they can be vectorized.

    Args:
        trainer: A trainer whose folds are set up.
        trial: Also run the model's steps under ``vmap`` on fold 0's first batches (``can_vectorize``'s trial,
            which leaves no trace); without it only what can be read from the model and the config is checked.
    """
    cfg, folds = trainer.config, trainer.folds
    if getattr(trainer, "compile_arguments", None) is not None:  # checked first: the trial step would compile
        return "compile is on, and torch.compile compiles each fold's module, not the batched step of all folds"
    if cfg.fast_dev_run or cfg.overfit_batches:
        return "fast_dev_run or overfit_batches is set (a quick check runs the plain loop)"
    if trainer.profiler is not None:
        return "a profiler is set, and it times each fold's steps"
    reason = _callback_blocker(trainer)
    if reason is not None:
        return reason
    modules = [f.module for f in folds]
    hooks = [h for h in PER_BATCH_HOOKS if getattr(type(modules[0]), h) is not getattr(LightningModule, h)]
    if hooks:
        return f"{type(modules[0]).__name__} overrides {', '.join(hooks)}, which Lightning calls per batch"
    reason = _differing_attribute(modules) or _reads_per_fold_state(modules[0])
    if reason is not None:
        return reason
    if overridden_hook(trainer.datamodule, "on_after_batch_transfer") is not None:
        return "the datamodule transforms batches on the device (on_after_batch_transfer), one fold's at a time"
    if any(not hasattr(loader, "__len__") for f in folds for loader in (f.train_loader, f.val_loader)):
        return "a fold's loader has no len()"
    return _engine_blocker(trainer, trial)


def _engine_blocker(trainer: CrossValidationTrainer, trial: bool) -> str | None:
    """Return why the vectorized engine refuses the folds (`can_vectorize`, with its trial step if ``trial``)."""
    from lcv_core.vectorized.engine import can_vectorize

    cfg, folds = trainer.config, trainer.folds
    modules = [f.module for f in folds]
    loaders = [(f.train_loader, f.val_loader) for f in folds] if trial else None
    optimizers = [(f.optimizers, f.schedulers) for f in folds]
    with kept_loader_state([f.train_loader for f in folds] + [f.val_loader for f in folds]):  # the trial draws a batch
        reason = can_vectorize(modules, loaders, cfg, optimizers=optimizers, fabric=trainer.fabric)
    if reason is not None and trial:
        for module in modules:  # the trial ran the steps under vmap: drop what it left in metric states
            for sub in module.modules():
                if isinstance(sub, Metric):
                    sub.reset()
    return reason


def choose(
    trainer: CrossValidationTrainer, probe: Callable[[CrossValidationTrainer], ProbeTimes] | None = None
) -> AutoChoice:
    """Return the schedule for ``trainer``'s folds (set up, not yet trained) and why: the rule, then the probe.

    Args:
        trainer: The trainer about to run its folds.
        probe: Measures both schedules when the rule does not decide (default `probe_times()`); tests pass fixed
            timings here.
    """
    world = trainer.fabric.world_size
    if world > 1:
        return AutoChoice(
            "interleaved", f"{world} processes: every process trains a shard of every fold, as 'interleaved' does"
        )
    reason = blocker(trainer, trial=False)
    if reason is not None:
        return AutoChoice("interleaved", f"the folds cannot be vectorized: {reason}")
    size = step_size(trainer)
    verdict = by_size(size)
    if verdict is not None and verdict.schedule == "interleaved":
        return verdict
    reason = _engine_blocker(trainer, trial=True)  # the rest of `blocker` passed above
    if reason is not None:
        return AutoChoice("interleaved", f"the folds cannot be vectorized: {reason}")
    if verdict is not None:
        return verdict
    workers = _loader_int(trainer.folds[0].train_loader, "num_workers")
    if workers:
        return AutoChoice(
            "interleaved",
            f"{size.describe()} is between clearly small and clearly large, and the probe that would decide would "
            f"start the loaders' worker processes (num_workers={workers})",
        )
    return by_times((probe or probe_times)(trainer), size)


# -- the probe ------------------------------------------------------------------------------------------


@contextmanager
def _kept_random_state(device: torch.device) -> Iterator[None]:
    """Put torch's (CPU and the device's), NumPy's and Python's global random states back after the block."""
    devices = [device] if device.type == "cuda" else []
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


class _Copy:
    """A throwaway copy of one fold: its module and optimizers deep-copied, a random stream of its own."""

    def __init__(self, fold: FoldState, trainer: CrossValidationTrainer) -> None:
        self.log = FoldMetricLog()
        self.log.start("train")
        memo: dict[int, Any] = {id(fold.log): self.log}  # the copy's self.log lands in a log of its own
        if trainer.datamodule is not None:
            memo[id(trainer.datamodule)] = trainer.datamodule  # data a module refers to is read, never copied
        optimizers = [unwrap_optimizer(o) for o in fold.optimizers]
        memo[id(getattr(fold.module, "_fabric_optimizers", None))] = []  # Fabric's wrappers hold its strategy
        self.module, self.optimizers = copy.deepcopy((fold.module, optimizers), memo)
        for optimizer in self.optimizers:
            # an LR scheduler wraps its optimizer's step in an instance attribute that steps the original one
            optimizer.__dict__.pop("step", None)
        self.module.trainer = fold.view  # read-only here, as the fold's own module reads it
        self.loader = fold.train_loader
        self.rng = copy.deepcopy(fold.rng)

    def train(self, trainer: CrossValidationTrainer, steps: int) -> None:
        """Run ``steps`` training steps as the lean interleaved loop does (the probe excludes per-batch hooks)."""
        cfg, device, module = trainer.config, trainer.fabric.device, self.module
        optimizer = self.optimizers[0]
        move = not is_fabric_loader(self.loader)
        with self.rng.active():
            module.train()
            self.log.start("train")
            batches = iter(self.loader)
            for batch_idx in range(steps):
                batch = next(batches)
                if move and not on_device(batch, device):
                    batch = trainer.fabric.to_device(batch)
                out = module.training_step(batch, batch_idx)
                loss = out["loss"] if isinstance(out, Mapping) else out
                optimizer.zero_grad(set_to_none=True)
                if loss is None:  # as Lightning: no loss, no backward and no step
                    continue
                loss.backward()
                if cfg.gradient_clip_val:
                    params = [p for g in optimizer.param_groups for p in g["params"]]
                    if cfg.gradient_clip_algorithm == "norm":
                        torch.nn.utils.clip_grad_norm_(params, cfg.gradient_clip_val)
                    else:
                        torch.nn.utils.clip_grad_value_(params, cfg.gradient_clip_val)
                optimizer.step()
            self.log.reduce()  # the one read-back per fold and epoch of the real loop


def _timed(device: torch.device, run: Callable[[], Any]) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def probe_times(trainer: CrossValidationTrainer, steps: int = PROBE_STEPS, rounds: int = PROBE_ROUNDS) -> ProbeTimes:
    """Time a few training steps of ``interleaved`` and ``vectorized`` on throwaway copies of ``trainer``'s folds.

    Each round runs ``steps`` steps of every fold under both schedules, in turn; one warm-up round, then the fastest of
    ``rounds`` counts. The folds' modules, optimizers, loaders and random streams are left exactly as they were.
    """
    from lcv_core.vectorized.engine import VectorizedFolds

    folds, cfg, device = trainer.folds, trainer.config, trainer.fabric.device
    steps = max(1, min([steps, *(len(f.train_loader) for f in folds)]))
    if isinstance(cfg.limit_train_batches, int):
        steps = min(steps, cfg.limit_train_batches)
    best = {"interleaved": float("inf"), "vectorized": float("inf")}
    with _kept_random_state(device), kept_loader_state([f.train_loader for f in folds]):
        interleaved = [_Copy(f, trainer) for f in folds]
        stacked = [_Copy(f, trainer) for f in folds]
        engine: VectorizedFolds = VectorizedFolds(
            [c.module for c in stacked],
            [(f.train_loader, f.val_loader) for f in folds],
            cfg.model_copy(update={"limit_train_batches": steps}),
            fabric=trainer.fabric,
            optimizers=[(c.optimizers, []) for c in stacked],
            rngs=[c.rng for c in stacked],
        )

        def run_interleaved() -> None:
            for c in interleaved:
                c.train(trainer, steps)

        for round_ in range(rounds + 1):
            t_interleaved = _timed(device, run_interleaved)
            t_vectorized = _timed(device, lambda: engine.train_epoch(0))
            if round_ > 0:  # the first round warms up (allocations, optimizer states, kernels)
                best["interleaved"] = min(best["interleaved"], t_interleaved)
                best["vectorized"] = min(best["vectorized"], t_vectorized)
    return ProbeTimes(best["interleaved"] / steps, best["vectorized"] / steps, steps)


# -- the schedule -----------------------------------------------------------------------------------------


class AutoSchedule(VectorizedSchedule):
    """``vectorized`` or ``interleaved``, chosen at the start of the fit by `choose()` (see the module docstring)."""

    name = "auto"

    def __init__(self, trainer: CrossValidationTrainer) -> None:
        super().__init__(trainer)
        self.probe: Callable[[CrossValidationTrainer], ProbeTimes] = probe_times
        """Measures both schedules when the rule does not decide; replace it to inject timings."""
        self.choice: AutoChoice | None = None
        """The choice of the last fit (``None`` before one)."""

    def _run(self, first_epoch: int) -> None:
        state = self.trainer.state
        self.vetted = False
        if state.schedule is not None:  # resumed: continue with the schedule that trained the checkpoint
            self.choice = AutoChoice(state.schedule, state.schedule_reason or "")
            line = f"schedule='auto' resumes with {state.schedule!r}, the choice stored in the checkpoint" + (
                f" ({state.schedule_reason})" if state.schedule_reason else ""
            )
        else:
            self.choice = choose(self.trainer, self.probe)
            state.schedule, state.schedule_reason = self.choice.schedule, self.choice.reason
            line = self.choice.line()
            # a vectorized choice passed can_vectorize's trial step in choose(): the engine need not run it again
            self.vetted = self.choice.schedule == "vectorized"
        if self.trainer.config.enable_progress_bar:  # without it a fit prints nothing; the result keeps the choice
            self.trainer.fabric.print(line)
        if self.choice.schedule == "vectorized":
            super()._run(first_epoch)
        else:
            InterleavedSchedule._run(self, first_epoch)

    def engine(self) -> VectorizedFolds | None:
        """Return the batched engine; if it refuses after all (it says why), record ``interleaved`` as the choice."""
        engine = super().engine()
        if engine is None:
            state = self.trainer.state
            state.schedule = "interleaved"
            state.schedule_reason = f"{state.schedule_reason}; the vectorized engine then refused the folds"
            self.choice = AutoChoice("interleaved", state.schedule_reason)
        return engine
