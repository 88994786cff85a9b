"""Quick look: seconds per epoch of the vectorized fold engine against the interleaved trainer.

Usage (from the repository root)::

    .venv/bin/python benchmarks/vectorized_quick.py [--epochs 3] [--widths 8,256]

Digits (1797 x 64, 10 classes), 5-fold stratified CV, MLP ``64-W-W-10``, Adam, batch 64. Both runners get the
same folds, fold seeds and batch order; batches come either from a tensor-gather loader (one index per batch)
or from a default-collate ``DataLoader``. Figures are per epoch (train + validation), median over the epochs.
The final per-fold validation accuracies are printed so a fast wrong answer shows.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch._dynamo  # noqa: F401  # lightning imports it; import it for every runner alike (see issue #9)
from lightning.fabric import Fabric
from lightning.pytorch import LightningModule
from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedKFold
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from lcv_config import TrainerConfig
from lcv_core import CrossValidationTrainer
from lcv_core.core.fold_models import fold_seeds, fold_stream_seeds, make_fold_model
from lcv_core.core.rng import FoldRNG
from lcv_core.vectorized.engine import VectorizedFolds, can_vectorize

BATCH = 64


class MLP(LightningModule):
    """``64-W-W-10`` with Adam, logging train_loss, val_loss and val_acc."""

    def __init__(self, width: int = 256, fused: bool | None = None) -> None:
        super().__init__()
        self.fused = fused
        self.net = nn.Sequential(
            nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        out = self(x)
        self.log("val_loss", nn.functional.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=1e-3, fused=self.fused)


class TensorBatches:
    """Batches by indexing whole tensors: one gather per batch, shuffled with the global (fold) generator."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool) -> None:
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.x)) if self.shuffle else torch.arange(len(self.x))
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.x[index], self.y[index]


def fold_loaders(kind: str) -> list[tuple[Any, Any]]:
    """Return the 5 stratified folds' (train, val) loaders."""
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    splits = StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(digits.data, digits.target)
    loaders: list[tuple[Any, Any]] = []
    for tr, va in splits:
        tr_t, va_t = torch.as_tensor(tr), torch.as_tensor(va)
        if kind == "tensor":
            loaders.append((TensorBatches(x[tr_t], y[tr_t], BATCH, True), TensorBatches(x[va_t], y[va_t], 256, False)))
        else:
            ds = TensorDataset(x, y)
            loaders.append(
                (
                    DataLoader(Subset(ds, tr.tolist()), batch_size=BATCH, shuffle=True),
                    DataLoader(Subset(ds, va.tolist()), batch_size=256),
                )
            )
    return loaders


class EpochTimer:
    """Records the wall time of every epoch of the trainer (end of one epoch to the end of the next)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last = time.perf_counter()

    def on_train_start(self, **_: Any) -> None:
        """Called when training starts."""
        self._last = time.perf_counter()

    def on_validation_end(self, **_: Any) -> None:
        """Called after every epoch's validation of all folds."""
        now = time.perf_counter()
        self.times.append(now - self._last)
        self._last = now


def interleaved(width: int, kind: str, epochs: int, fused: bool | None) -> tuple[float, list[float]]:
    """Return seconds per epoch and final per-fold val_acc of the interleaved trainer."""
    timer = EpochTimer()
    trainer = CrossValidationTrainer(
        accelerator="cpu", max_epochs=epochs, seed=0, enable_progress_bar=False, callbacks=[timer]
    )
    result = trainer.fit(MLP, fold_loaders(kind), model_kwargs={"width": width, "fused": fused})
    return statistics.median(timer.times), [h[-1]["val_acc"] for h in result.history]


def vectorized(width: int, kind: str, epochs: int) -> tuple[float, list[float]]:
    """Return seconds per epoch and final per-fold val_acc of the vectorized engine (same seeds and batches)."""
    fabric = Fabric(accelerator="cpu", devices=1)
    fabric.seed_everything(0, verbose=False)
    loaders = fold_loaders(kind)
    modules = [make_fold_model(MLP, i, s, {"width": width}) for i, s in enumerate(fold_seeds(0, 5))]
    rngs = [FoldRNG(s) for s in fold_stream_seeds(0, 5)]
    cfg = TrainerConfig(accelerator="cpu", max_epochs=epochs)
    reason = can_vectorize(modules, loaders, cfg, fabric=fabric)
    assert reason is None, reason
    engine = VectorizedFolds(modules, loaders, cfg, fabric=fabric, rngs=rngs)
    times, val = [], []
    for epoch in range(epochs):
        start = time.perf_counter()
        engine.train_epoch(epoch)
        val = engine.validate(epoch)
        times.append(time.perf_counter() - start)
    engine.write_back()
    return statistics.median(times), [v["val_acc"] for v in val]


def main() -> None:
    """Print seconds per epoch for each width and batch source, and the ratio interleaved / vectorized."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--widths", default="8,256")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, digits 5-fold, batch {BATCH}, {args.epochs} epochs; s/epoch (median)")
    header = f"{'width':>5}  {'batches':<10} {'interleaved':>11} {'+fused Adam':>11} {'vectorized':>10} {'ratio':>6}"
    print(header + "  final val_acc per fold (interleaved | vectorized)")
    for width in (int(w) for w in args.widths.split(",")):
        for kind in ("tensor", "DataLoader"):
            t_i, acc_i = interleaved(width, kind, args.epochs, None)
            t_f, _ = interleaved(width, kind, args.epochs, True)
            t_v, acc_v = vectorized(width, kind, args.epochs)
            accs = " ".join(f"{a:.3f}" for a in acc_i) + " | " + " ".join(f"{a:.3f}" for a in acc_v)
            print(f"{width:>5}  {kind:<10} {t_i:>11.3f} {t_f:>11.3f} {t_v:>10.3f} {t_i / t_v:>5.2f}x  {accs}")


if __name__ == "__main__":
    main()
