"""Each process of a multi-process fit on CPU on its own cores, for the length of the fit.

Lightning gives each of the N processes on a machine 1/N of the cores' worth of torch threads
(``_set_num_threads_if_needed``) but leaves their placement to the operating system. Fold-parallel fits exchange a
few hundred bytes after every epoch; when a process waits for the other's message and the other has started its next
epoch, the kernel often wakes the waiting one (or its gloo thread) on the busy core, and the exchange that takes
0.2 ms takes 2-4 ms (2 processes, 2 cores, width 256: 7% of the fit). Bound to their own cores, the processes never
meet. `bound_cpus` binds each process to its share of the cores allowed, and gives the process its previous cores
back when the fit ends (rank 0 is often the user's own Python process).

Nothing is bound when a launcher already placed the processes (``srun --cpu-bind``, ``taskset`` per process: the
processes on a machine are allowed different cores), when there are fewer cores than processes, off CPU, or with
``TrainerConfig.cpu_binding=False``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch.distributed as dist
from lightning.fabric import Fabric

from lcv_core.core.lightning_compat import fabric_launched
from lcv_core.distributed.exchange import all_gather_objects


def share(cores: list[int], index: int, count: int) -> list[int]:
    """Return the ``index``-th of ``count`` contiguous, near-equal parts of ``cores`` (sorted; empty if too few)."""
    ordered = sorted(cores)
    return ordered[index * len(ordered) // count : (index + 1) * len(ordered) // count]


def _threads() -> list[int]:
    """Return the ids of this process's threads (gloo's and the data loaders' included)."""
    return [int(tid) for tid in os.listdir("/proc/self/task")]


def _bind(cores: set[int]) -> None:
    """Bind every thread of this process to ``cores`` (threads started later inherit the main thread's cores)."""
    for tid in _threads():
        try:
            os.sched_setaffinity(tid, cores)
        except (ProcessLookupError, PermissionError):  # a thread that ended meanwhile, or one we may not move
            continue


def cores_for(fabric: Fabric) -> set[int] | None:
    """Return the cores this process should use, or ``None`` to leave placement alone (see the module's notes).

    Collective on a multi-process fit: every rank tells the others its host and allowed cores.
    """
    if not (hasattr(os, "sched_setaffinity") and fabric_launched(fabric) and dist.is_initialized()):
        return None
    if int(fabric.world_size) <= 1 or fabric.device.type != "cpu" or not Path("/proc/self/task").is_dir():
        return None
    mine = (socket.gethostname(), sorted(os.sched_getaffinity(0)))
    every = all_gather_objects(fabric, mine)
    neighbours = [cores for host, cores in every if host == mine[0]]
    if len(neighbours) <= 1 or any(cores != mine[1] for cores in neighbours):
        return None  # alone on this machine, or a launcher gave the processes their own cores already
    part = share(mine[1], int(fabric.local_rank), len(neighbours))
    return set(part) if part else None


@contextmanager
def bound_cpus(fabric: Fabric, enabled: bool) -> Iterator[None]:
    """Run the block with this process bound to its share of the machine's cores (`cores_for`), then unbind it.

    Collective when ``enabled`` on a multi-process fit: every rank enters it at the same point.
    """
    cores = cores_for(fabric) if enabled else None
    if cores is None:
        yield
        return
    before = os.sched_getaffinity(0)
    _bind(cores)
    try:
        yield
    finally:
        _bind(before)
