"""When does ``compile`` pay? Cold start, per-epoch seconds and break-even epochs on the digits workload (issue #20).

Usage (from the repository root)::

    .venv/bin/python benchmarks/compile_cost.py [--widths 8,256,1024] [--epochs 6] [--backend inductor]
        [--threads 1] [--repeats 3] [--warm-cache]

For each width it fits the workload of ``run.py`` (digits, 5 stratified folds, MLP ``64-W-W-10``, Adam, batch 64,
``schedule="interleaved"``) in this process, ``compile`` off and on, ``--repeats`` pairs alternating, and prints the
first fit's first-epoch seconds (the cold start: with ``compile`` on, dynamo tracing and the backend's code
generation of every graph), the median seconds of the later epochs over all pairs, and the break-even: the number
of epochs after which the compiled fit has caught up (``1 + extra cold-start seconds / seconds saved per epoch``),
or ``never`` when a compiled epoch is not faster. inductor's on-disk cache starts empty (a fresh
``TORCHINDUCTOR_CACHE_DIR``) unless ``--warm-cache``, so the cold start is what a first run on a machine pays;
dynamo's in-memory cache is reset before every width.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _epoch_clock() -> Any:
    """Return an lcv callback recording the wall clock at the start of the fit and at the end of every epoch."""
    from lcv_core.callbacks.base import Callback

    class EpochClock(Callback):
        def __init__(self) -> None:
            self.marks: list[float] = []

        def on_train_start(self, **kwargs: Any) -> None:
            self.marks = [time.perf_counter()]

        def on_validation_end(self, **kwargs: Any) -> None:
            self.marks.append(time.perf_counter())

    return EpochClock()


def _datamodule(data: dict[str, Any]) -> Any:
    """Return lcv-data's datamodule over the benchmark's very folds (batch 64, tensor fast path)."""
    import torch
    from sklearn.model_selection import PredefinedSplit

    from lcv_data.datamodule import CrossValDataModule

    test_fold = torch.empty(len(data["y"]), dtype=torch.long)
    for i, (_, val) in enumerate(data["folds"]):
        test_fold[val] = i
    return CrossValDataModule(
        X=data["X"],
        y=data["y"],
        splitter=PredefinedSplit(test_fold.numpy()),
        dataloaders={"default": {"batch_size": 64}},
        seed=0,
    )


def _fit(data: dict[str, Any], width: int, epochs: int, compile: Any) -> list[float]:
    """Fit once; return the wall seconds of every epoch (the first includes the compilation when it is on)."""
    from _child import _module_class, _module_config

    from lcv_core.trainer import CrossValidationTrainer

    spec = {"width": width, "n_classes": 10, "lr": 1e-3, "batch_size": 64, "seed": 0}
    clock = _epoch_clock()
    trainer = CrossValidationTrainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        seed=0,
        schedule="interleaved",
        enable_progress_bar=False,
        callbacks=[clock],
        compile=compile,
    )
    trainer.fit(_module_class(), _datamodule(data), model_kwargs={"config": _module_config(data, spec)})
    return [b - a for a, b in zip(clock.marks, clock.marks[1:], strict=False)]


def compile_rows(
    widths: tuple[int, ...], epochs: int, backend: str, threads: int, repeats: int = 3
) -> list[dict[str, Any]]:
    """Measure ``compile`` off and on; one row per width with cold-start, per-epoch seconds and the break-even.

    Per width: dynamo's cache is reset, then ``repeats`` pairs of fits run, off then on. The first compiled fit pays
    the cold start; the later ones find the graphs compiled (same class, same shapes), so every pair measures later
    epochs of both side by side, and a neighbour's load that rises or falls during the run weighs on both alike.
    """
    import torch
    from run import digits_data

    torch.set_num_threads(threads)
    data = digits_data()
    rows = []
    for width in widths:
        torch.compiler.reset()  # every width compiles from nothing (and no width fills the recompile limit)
        offs, ons = [], []
        for _ in range(repeats):
            offs.append(_fit(data, width, epochs, False))
            ons.append(_fit(data, width, epochs, {"backend": backend}))
        off, on = offs[0], ons[0]
        epoch_off = statistics.median(t for fit in offs for t in fit[1:])
        epoch_on = statistics.median(t for fit in ons for t in fit[1:])
        extra = on[0] - off[0]
        saved = epoch_off - epoch_on
        rows.append(
            {
                "width": width,
                "epochs": epochs,
                "repeats": repeats,
                "first_off": off[0],
                "first_on": on[0],
                "epoch_off": epoch_off,
                "epoch_on": epoch_on,
                "break_even": 1 + extra / saved if saved > 0 else None,
            }
        )
    return rows


def print_rows(rows: list[dict[str, Any]], backend: str) -> None:
    """Print the rows as a Markdown table."""
    print(f"compile backend: {backend}; seconds of wall clock, 5 folds per epoch")
    print("| width | epochs × repeats | 1st epoch off | 1st epoch on | cold-start cost | later epoch off "
          "| later epoch on | on/off per epoch | break-even epochs |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        even = f"{r['break_even']:.0f}" if r["break_even"] is not None else "never"
        print(
            f"| {r['width']} | {r['epochs']} × {r['repeats']} | {r['first_off']:.2f} | {r['first_on']:.2f} | "
            f"{r['first_on'] - r['first_off']:+.2f} | {r['epoch_off']:.3f} | {r['epoch_on']:.3f} | "
            f"{r['epoch_on'] / r['epoch_off']:.2f} | {even} |"
        )


def main() -> None:
    """Parse the options, measure, print."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--widths", default="8,256,1024")
    parser.add_argument("--epochs", type=int, default=6, help="at least 2: the first epoch is the cold start")
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="pairs of fits (off, on) per width")
    parser.add_argument("--warm-cache", action="store_true", help="keep inductor's usual on-disk cache")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is the cold start)")
    widths = tuple(int(w) for w in args.widths.split(","))
    with tempfile.TemporaryDirectory() as cache:
        if not args.warm_cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # read when inductor is first imported, below
        print_rows(compile_rows(widths, args.epochs, args.backend, args.threads, args.repeats), args.backend)


if __name__ == "__main__":
    main()
