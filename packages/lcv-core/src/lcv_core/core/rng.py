"""One random stream per fold, so a fold's shuffling and dropout do not depend on the schedule.

With one global generator, the interleaved schedule draws fold 1's first shuffle after fold 0's
first epoch, the sequential schedule after fold 0's last epoch: the same seed would give different
folds. Each fold therefore owns the states of torch's CPU (and CUDA) generator, NumPy's global
generator and Python's ``random``, swapped in while the fold trains or validates.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


class FoldRNG:
    """The random state of one fold, activated with `active()`."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._torch = torch.Generator().manual_seed(seed).get_state()
        self._numpy: Any = np.random.RandomState(seed).get_state()
        self._python = random.Random(seed).getstate()
        self._cuda: list[torch.Tensor] | None = None

    @contextmanager
    def active(self) -> Iterator[None]:
        """Make this fold's states the global ones for the duration of the block."""
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()  # type: ignore[no-untyped-call]  # unannotated
        saved = (torch.get_rng_state(), np.random.get_state(), random.getstate())
        saved_cuda = torch.cuda.get_rng_state_all() if cuda else None
        torch.set_rng_state(self._torch)
        np.random.set_state(self._numpy)
        random.setstate(self._python)
        if cuda:
            if self._cuda is None:
                torch.cuda.manual_seed_all(self.seed)
            else:
                torch.cuda.set_rng_state_all(self._cuda)
        try:
            yield
        finally:
            self._torch = torch.get_rng_state()
            self._numpy = np.random.get_state()
            self._python = random.getstate()
            torch.set_rng_state(saved[0])
            np.random.set_state(saved[1])
            random.setstate(saved[2])
            if saved_cuda is not None:
                self._cuda = torch.cuda.get_rng_state_all()
                torch.cuda.set_rng_state_all(saved_cuda)

    def state_dict(self) -> dict[str, Any]:
        """Return the fold's random states (for checkpoints)."""
        return {"torch": self._torch, "numpy": self._numpy, "python": self._python, "cuda": self._cuda}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the fold's random states (also from a checkpoint, where NumPy's array became a list)."""
        name, keys, pos, has_gauss, gauss = state["numpy"]
        version, internal, gauss_next = state["python"]
        self._torch = state["torch"]
        self._numpy = (name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(gauss))
        self._python = (version, tuple(internal), gauss_next)
        self._cuda = state["cuda"]
