"""Fits on several processes: DDP (every rank trains every fold on a shard) and ``schedule="parallel"``.

- **DDP** (``strategy="ddp"``, ``devices=N``): Fabric wraps each fold's model in DistributedDataParallel and gives
  every rank a shard of each fold's data (``DistributedSampler``, reshuffled every epoch through ``set_epoch``).
  Each fold's epoch metrics are then reduced over the ranks with the same weights as in one process (a logged
  ``mean`` is the sum of value × batch size over all ranks divided by the total batch size), so every rank holds
  the same history, fold mean and stop decision.
- **parallel** (``schedule="parallel"``, ``devices=N``): the same launch and process group, but no DDP: fold ``i``
  is trained by rank ``i % N`` on its whole data, in its own random stream. After every epoch each rank sends its
  folds' history rows and step counts to every other rank, so fold means, early stopping, logging and pruning see
  all folds exactly as in one process. A fold's full state (weights, optimizers, schedulers, RNG, best weights)
  travels only when another rank needs it: before a checkpoint is written; when the fit ends, its weights and best
  weights only (`gather_folds`). Tensors cross ranks as raw bytes (`exchange.all_gather_states`).

In both, a stop asked for on any rank (a Timer, a callback) stops every rank after the same epoch, and only rank 0
writes files and talks to loggers and tuners.
"""

from __future__ import annotations

import atexit
import gc
import os
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from lightning.fabric import Fabric
from lightning.fabric.strategies.ddp import DDPStrategy
from lightning.fabric.strategies.dp import DataParallelStrategy
from lightning.fabric.strategies.single_device import SingleDeviceStrategy
from torch.nn import Module

from lcv_config import LcvError, TrainerConfig
from lcv_core.core.lightning_compat import fabric_launched, spawns_processes
from lcv_core.core.metric_log import FoldMetricLog
from lcv_core.core.saving import cpu_state
from lcv_core.distributed.exchange import all_gather_objects, all_gather_states, gather_tensors

if TYPE_CHECKING:
    from lcv_core.core.fold import FoldState
    from lcv_core.core.fold_models import BestWeights
    from lcv_core.loop.state import RunState

_PARALLEL_STRATEGIES = ("auto", "ddp")


class _NoGradientSync:
    """Fabric's backward-sync control for `FoldParallelStrategy`: there is no gradient sync to skip."""

    def no_backward_sync(self, module: Module, enabled: bool) -> AbstractContextManager[None]:
        """Return a context that does nothing (gradient accumulation needs no sync to be skipped)."""
        return nullcontext()


class FoldParallelStrategy(DDPStrategy):
    """DDP's process launch and process group without DDP itself: each rank trains whole folds of its own.

    Modules are not wrapped (no gradient sync between ranks), dataloaders keep their own samplers (each rank sees
    all of its folds' data) and ``no_backward_sync`` is a no-op (without Fabric's warning that the strategy cannot
    skip a sync: there is none).

    The processes are those of DDP: ``devices`` per node times ``num_nodes``, started by Fabric on one machine or by
    ``torchrun`` / SLURM's ``srun`` on several (Lightning's cluster environments); fold ``i`` goes to global rank
    ``i % (devices * num_nodes)``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Fabric reads only its no_backward_sync(module, enabled); DDP's own control would reach for a DDP wrapper.
        self._backward_sync_control = _NoGradientSync()  # type: ignore[assignment]  # duck-typed, see above

    def setup_module(self, module: Module) -> Module:  # type: ignore[override]  # no DDP wrapper, by design
        """Return ``module`` unchanged: its fold is trained on this rank alone."""
        return module

    @property
    def distributed_sampler_kwargs(self) -> None:  # type: ignore[override]  # None: no DistributedSampler
        """Return ``None`` so that Fabric keeps each loader's own sampler."""
        return None


def strategy_for(config: TrainerConfig, whole_folds: bool) -> Any:
    """Return the Fabric strategy for ``config``: a `FoldParallelStrategy` when whole folds go to processes.

    Raises:
        LcvError: ``schedule="parallel"`` with a strategy other than ``auto`` or ``ddp``.
    """
    if not whole_folds:
        return config.strategy
    if isinstance(config.strategy, FoldParallelStrategy):
        return config.strategy
    if config.strategy not in _PARALLEL_STRATEGIES:
        raise LcvError(
            f"TrainerConfig.strategy={config.strategy!r} does not go with schedule='parallel', which launches one "
            "process per device and gives each whole folds; use strategy='auto' or 'ddp' (with devices=N), or "
            "schedule='interleaved' to run that strategy on every fold."
        )
    return FoldParallelStrategy()


def make_fabric(config: TrainerConfig, whole_folds: bool, **kwargs: Any) -> Fabric:
    """Return the fit's Fabric: ``config``'s strategy, or `strategy_for`'s when whole folds go to processes.

    Whole folds on a single process (one device, one node, no torchrun job) get Fabric's own choice instead of a
    `FoldParallelStrategy`: a one-process group would gain nothing, and it would hold a TCP port, ``MASTER_PORT`` and
    a process group in the user's process after the fit. ``kwargs`` are Fabric's other arguments.
    """
    fabric = Fabric(strategy=strategy_for(config, whole_folds), **kwargs)
    alone = isinstance(fabric.strategy, FoldParallelStrategy) and int(fabric.world_size) == 1
    torchrun = dist.is_available() and dist.is_torchelastic_launched()
    if alone and isinstance(config.strategy, str) and not torchrun and not dist.is_initialized():
        return Fabric(strategy="auto", **kwargs)
    return fabric


def launch(fabric: Fabric) -> None:
    """Start the processes and the process group of a multi-process strategy, once (no-op on one device).

    With ``strategy="ddp"`` the script is started again for ranks 1..N-1 (run it as a script or under
    ``torchrun``; not from a notebook).

    Raises:
        LcvError: A spawn-based strategy (``ddp_spawn``, ``ddp_fork``), which needs a function to launch.
    """
    if fabric_launched(fabric) or isinstance(fabric.strategy, (SingleDeviceStrategy, DataParallelStrategy)):
        _check_one_process_job()
        return
    start_method = spawns_processes(fabric)
    if start_method is not None:
        raise LcvError(
            f"CrossValidationTrainer cannot launch the spawn-based strategy {type(fabric.strategy).__name__} "
            f"(start method {start_method!r}) from fit(); use strategy='ddp', which "
            "starts the script again for the other ranks, or run the script with torchrun."
        )
    fabric.launch()
    if dist.is_initialized():
        # Neither Fabric nor torch destroys the process group at exit. Destroy it while the interpreter is still
        # whole, once per process, a no-op if the script did. No barrier first: a rank that failed would wait at
        # exit for ranks still busy in the default group's collectives (it hung so in a test). A script that ends
        # normally should call barrier() and destroy_process_group() itself (trainer guide): without the barrier,
        # gloo can still abort a rank at exit when its peer leaves first.
        atexit.unregister(_destroy_process_group)
        atexit.register(_destroy_process_group)


def _check_one_process_job() -> None:
    """Refuse a one-process fit in a job that ``torchrun`` started with several processes.

    Each process would train every fold alone and write the same run; the fix is to tell Fabric the job's size.

    Raises:
        LcvError: ``torchrun`` set ``WORLD_SIZE`` above 1.
    """
    if not (dist.is_available() and dist.is_torchelastic_launched()) or dist.is_initialized():
        return
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1:
        raise LcvError(
            f"torchrun started {size} processes (WORLD_SIZE={size}), but this fit runs on one device, so every "
            "process would train every fold alone and write the same run. Set trainer.devices to torchrun's "
            f"--nproc-per-node and trainer.num_nodes to its --nnodes (devices x num_nodes = {size}), with "
            "schedule='parallel' (whole folds per process) or strategy='ddp'."
        )


def _destroy_process_group() -> None:
    """Destroy the default process group if it still exists (registered with ``atexit`` by ``launch``).

    Then collect garbage: fold modules and their trainer views refer to each other (as a LightningModule and its
    trainer do), so DDP wrappers holding gloo's process group would otherwise be freed during interpreter
    finalization, where tearing down gloo's threads can abort the process ("terminate called without an active
    exception").
    """
    if dist.is_initialized():
        dist.destroy_process_group()
    gc.collect()


def world_size(fabric: Fabric) -> int:
    """Return the number of processes of the fit (1 without a multi-process strategy)."""
    return int(fabric.world_size) if fabric_launched(fabric) else 1


def owner(fold: int, size: int) -> int:
    """Return the rank that trains ``fold`` under ``schedule="parallel"`` (round robin)."""
    return fold % size


def owns(fabric: Fabric, fold: FoldState) -> bool:
    """Return whether this process trains ``fold`` when whole folds are spread over the processes."""
    return bool(owner(fold.index, world_size(fabric)) == fabric.global_rank)


def check_folds(fabric: Fabric, devices: Any, n_folds: int) -> None:
    """Refuse more processes than folds when whole folds are spread over the processes (some would idle).

    Raises:
        LcvError: Fewer folds than processes.
    """
    size = world_size(fabric)
    if n_folds < size:
        nodes = int(getattr(fabric.strategy, "num_nodes", 1))
        where = f"devices={devices!r} and num_nodes={nodes}" if nodes > 1 else f"devices={devices!r}"
        raise LcvError(
            f"schedule='parallel' with {where} starts {size} processes but the datamodule has {n_folds} folds; "
            f"use at most {n_folds} processes in all (devices x num_nodes)."
        )


def _all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """Return every rank's ``tensor`` stacked along a new first dimension (rank order)."""
    return torch.stack(gather_tensors(tensor))


class SyncedFoldMetricLog(FoldMetricLog):
    """A fold's metric log whose epoch values are reduced over all DDP ranks, weighted as in one process."""

    def __init__(self, fabric: Fabric) -> None:
        super().__init__()
        self._fabric = fabric

    def reduce(self) -> dict[str, float]:
        """Combine every rank's sums and weights, then return the epoch values (identical on every rank).

        Raises:
            LcvError: The ranks logged different metric names in this stage.
        """
        self.flush()
        names = sorted(self._sums)
        every = all_gather_objects(self._fabric, names)
        if any(other != names for other in every):
            raise LcvError(
                f"Under DDP every rank must log the same metrics in a stage; the ranks logged {every}. Log "
                "unconditionally (e.g. self.log(name, value) on every batch, not only on some ranks)."
            )
        if not names:
            return super().reduce()
        device = self._sums[names[0]].device
        local = torch.stack(
            [
                torch.stack([self._sums[n].to(device).float() for n in names]),
                torch.tensor([self._weights[n] for n in names], device=device, dtype=torch.float32),
            ]
        )
        gathered = _all_gather(local)  # (world, 2, n)
        sums, weights = gathered[:, 0], gathered[:, 1]
        for i, name in enumerate(names):
            reduce = self._reduce[name]
            if reduce in ("mean", "sum"):
                self._sums[name] = sums[:, i].sum()
            elif reduce == "max":
                self._sums[name] = sums[:, i].max()
            else:
                self._sums[name] = sums[:, i].min()
            self._weights[name] = float(weights[:, i].sum())
        return super().reduce()


def setup_fold(fabric: Fabric, fold: FoldState, whole_folds: bool) -> None:
    """Prepare a new fold for a multi-process fit (call before the module's ``log`` is redirected).

    DDP: the fold's metrics are reduced over ranks. Whole folds per process (``parallel``): torchmetrics objects do
    not sync over ranks (each rank computes its own folds' metrics).
    """
    if world_size(fabric) <= 1:
        return
    if whole_folds:
        for sub in fold.module.modules():
            if hasattr(sub, "sync_on_compute"):
                sub.sync_on_compute = False  # type: ignore[assignment]  # a torchmetrics Metric's flag
    else:
        fold.log = SyncedFoldMetricLog(fabric)


def share_stop(fabric: Fabric, state: RunState, wish: tuple[bool, ...] = ()) -> tuple[bool, ...]:
    """Make a stop asked for on any rank the stop of every rank, with that rank's reason (lowest rank first).

    Returns rank 0's ``wish``, sent in the same exchange: flags only rank 0 can set (whether ``last.ckpt`` is due).
    """
    if world_size(fabric) <= 1:
        return wish
    mine = (bool(state.should_stop), state.stop_reason, tuple(map(bool, wish)))
    every = all_gather_objects(fabric, mine)  # one collective call, the reasons included
    asked = [reason for stops, reason, _ in every if stops]
    if asked:
        state.stop(str(asked[0]))
    return tuple(every[0][2])


def share_epoch_rows(fabric: Fabric, folds: list[FoldState], epoch: int) -> None:
    """Give every rank the history rows from ``epoch`` on and the step count of the folds other ranks trained.

    What the fold means, the loggers and the stop decisions read each epoch; small, exchanged every epoch. The rest of
    a fold's state (weights, optimizers, random stream) travels only when a rank needs it (`gather_folds`).
    """
    mine = {f.index: (f.history[epoch:], f.global_step) for f in folds if owns(fabric, f)}
    for rows in all_gather_objects(fabric, mine):  # one collective call for a few rows
        for index, (history, step) in rows.items():
            if index not in mine:
                fold = folds[index]
                fold.history[epoch:] = [dict(row) for row in history]
                fold.global_step = int(step)


def gather_folds(
    fabric: Fabric, folds: list[FoldState], best: BestWeights, send_best: bool, epoch: int, whole: bool = True
) -> None:
    """Give every rank the state of the folds other ranks trained (and, with ``send_best``, their best weights).

    ``whole``: everything that continues a fold (weights, optimizers, schedulers, random stream: before a checkpoint
    is written); otherwise the weights only (the end of a fit: what its results are made of). A fold's best-epoch
    weights travel as a note when the best epoch is ``epoch``, the one just trained: they are its current weights.
    Collective: every rank calls it at the same point of the fit.
    """
    send_best = send_best and bool(best.states)
    mine = {}
    for f in folds:
        if owns(fabric, f):
            state = f.state_dict() if whole else {"model": cpu_state(f.module.state_dict())}
            snapshot = ("model" if best.are_current(epoch) else best.states[f.index]) if send_best else None
            mine[f.index] = (state, snapshot)
    for states in all_gather_states(fabric, mine):
        for index, (state, snapshot) in states.items():
            if index in mine:
                continue
            if whole:
                folds[index].load_state_dict(state)
            else:
                folds[index].module.load_state_dict(state["model"])
            if snapshot is not None:
                best.states[index] = state["model"] if snapshot == "model" else snapshot


def agree(fabric: Fabric, decision: bool) -> bool:
    """Return rank 0's ``decision`` on every rank (a decision only rank 0 can take, e.g. when to write)."""
    if world_size(fabric) <= 1:
        return decision
    return bool(fabric.broadcast(decision, src=0))
