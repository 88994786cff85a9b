"""The rows and the workloads of ``run.py``: which runners train the folds, on which data sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PEER_REQUIREMENT = "lightning-cv==1.2.0"


@dataclass(frozen=True)
class Runner:
    """One way of training the k folds."""

    label: str
    """Row label."""
    child: str
    """Runner name in ``_child.py``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Extra spec entries (the lcv schedule)."""
    peer: bool = False
    """Runs in lightning-cv's environment."""


RUNNERS = [
    Runner("hand loop, DataLoader", "dataloader_loop"),
    Runner("B: hand loop, tensor batches", "tensor_loop"),
    Runner("5 × lightning.Trainer.fit", "lightning_trainer"),
    Runner(f"lightning-cv {PEER_REQUIREMENT.split('==')[1]}", "lightning_cv", peer=True),
    Runner("lcv interleaved", "lcv", {"schedule": "interleaved"}),
    Runner("lcv sequential", "lcv", {"schedule": "sequential"}),
    Runner("lcv offload", "lcv", {"schedule": "offload"}),
    Runner("lcv vectorized", "lcv", {"schedule": "vectorized"}),
    Runner("lcv interleaved, lcv learner", "lcv", {"schedule": "interleaved", "learner": True}),
    Runner("lcv vectorized, lcv learner", "lcv", {"schedule": "vectorized", "learner": True}),
    Runner("lcv auto", "lcv", {"schedule": "auto"}),
    Runner("lcv auto, lcv learner", "lcv", {"schedule": "auto", "learner": True}),
]
B_LABEL, LCV_LABEL, LEARNER_LABEL = RUNNERS[1].label, RUNNERS[4].label, RUNNERS[8].label
AUTO_GROUPS = {
    "lcv auto": ["lcv interleaved", "lcv sequential", "lcv offload", "lcv vectorized"],
    "lcv auto, lcv learner": ["lcv interleaved, lcv learner", "lcv vectorized, lcv learner"],
}
"""Each ``auto`` row and the rows of the schedules it is measured against (the first one is ``interleaved``)."""


@dataclass
class Case:
    """One workload: a data set, a width and a number of epochs."""

    name: str
    data: Path
    width: int
    epochs: int
    dataset: str
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def thread_env(threads: int) -> dict[str, str]:
    """Return the environment that caps the math libraries' threads at ``threads``."""
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
