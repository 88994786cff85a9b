"""What writing ``last.ckpt`` after every epoch costs on the digits workload (issue #24).

Usage (from the repository root)::

    .venv/bin/python benchmarks/checkpoint_cost.py [--widths 8,256,1024] [--epochs 20] [--epochs-1024 4]
        [--schedule interleaved] [--threads 1]

For each width it fits the workload of ``run.py`` (digits, 5 stratified folds, MLP ``64-W-W-10``, Adam, batch 64)
four times in this process: without a run directory (no ``last.ckpt``), with one and the checkpoint written in
place after every epoch (everything on the training thread, as before #24), with lcv's writer after every epoch
(``checkpoint_every_n_epochs=1``: large checkpoints in a background thread), and as lcv writes it by default
(``checkpoint_every_n_epochs="auto"``: as often as keeps the loop's share under 5%), or with
``checkpoint_every_n_epochs=N`` for the last row when ``--every N`` is given.
It prints the seconds the training loop spent on ``last.ckpt`` per epoch, the file's size, and that time as a
share of the fit's wall time, plus where the megabytes come from.
`checkpoint_rows()` returns the same figures as rows, for ``run.py``.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

GOAL_SHARE = 0.05
"""Issue #24's goal: ``last.ckpt`` takes at most this share of the fit's wall time."""


def _datamodule(data: dict[str, Any], batch_size: int, seed: int) -> Any:
    from sklearn.model_selection import PredefinedSplit

    from lcv_data.datamodule import CrossValDataModule

    test_fold = torch.empty(len(data["y"]), dtype=torch.long)
    for i, (_, va) in enumerate(data["folds"]):
        test_fold[va] = i
    return CrossValDataModule(
        X=data["X"],
        y=data["y"],
        splitter=PredefinedSplit(test_fold.numpy()),  # the benchmark's very folds
        dataloaders={"default": {"batch_size": batch_size}},
        seed=seed,
    )


def _fit(
    data: dict[str, Any],
    width: int,
    epochs: int,
    schedule: str,
    run_dir: Path | None,
    mode: str,
    every: int | str = 1,
) -> Any:
    """Fit once; return the trainer (its schedule's writer holds the checkpoint timings) and the wall seconds."""
    from _child import _module_class, _module_config

    from lcv_core.loop.checkpoint import LastCheckpointWriter
    from lcv_core.trainer import CrossValidationTrainer

    spec = {"width": width, "n_classes": 10, "lr": 1e-3, "batch_size": 64, "seed": 0}
    trainer = CrossValidationTrainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        seed=0,
        schedule=schedule,
        enable_progress_bar=False,
        default_root_dir=str(run_dir) if run_dir is not None else None,
        checkpoint_every_n_epochs=every,
    )
    if mode == "in place":
        trainer.schedule.last_writer = LastCheckpointWriter(background_bytes=sys.maxsize)
    datamodule = _datamodule(data, spec["batch_size"], spec["seed"])
    start = time.perf_counter()
    trainer.fit(_module_class(), datamodule, model_kwargs={"config": _module_config(data, spec)})
    return trainer, time.perf_counter() - start


def _mb(value: Any) -> float:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return len(buffer.getvalue()) / 1e6


def breakdown(path: Path) -> dict[str, float]:
    """Return the megabytes of each part of a ``last.ckpt`` (fold parts summed over the folds)."""
    state = torch.load(path, weights_only=True, map_location="cpu")
    parts: dict[str, float] = {}
    for fold in state["folds"]:
        for key in ("model", "optimizers", "loaders", "rng", "history"):
            parts[f"folds: {key}"] = parts.get(f"folds: {key}", 0.0) + _mb(fold[key])
    parts["best-epoch weights"] = _mb(state["best_weights"])
    parts["global rng"] = _mb(state["rng"])
    parts["fold indices"] = _mb(state["split"])
    rest = {k: v for k, v in state.items() if k not in ("folds", "best_weights", "rng", "split")}
    parts["config, versions, callbacks, loggers"] = _mb(rest)
    return parts


def checkpoint_rows(
    widths: tuple[int, ...] = (8, 256, 1024),
    epochs: int = 20,
    epochs_1024: int = 4,
    schedule: str = "interleaved",
    threads: int = 1,
    every: int | str = "auto",
) -> list[dict[str, Any]]:
    """Measure ``last.ckpt`` on the digits workload; one row per width and way of writing, with the fit without it.

    Each row: ``width``, ``epochs``, ``mode`` (``"in place"``: every epoch on the training thread, as before #24;
    ``"lcv, every epoch"``: lcv's writer with ``checkpoint_every_n_epochs=1``; ``"lcv"``: as lcv writes it by
    default, ``auto``; ``"lcv, every N"`` instead when ``every`` is a number),
    ``fit_s`` (wall seconds of the fit that wrote it), ``fit_s_without`` (the same fit without a run directory),
    ``ckpt_ms_per_epoch`` (training-loop milliseconds spent on ``last.ckpt`` per epoch: capture, write in place,
    waits), ``writes``,
    ``background_ms_per_epoch``, ``share`` (of ``fit_s``), ``size_mb`` and ``parts_mb`` (where the megabytes are).
    """
    from run import digits_data

    torch.set_num_threads(threads)
    data = digits_data()
    rows: list[dict[str, Any]] = []
    for width in widths:
        n_epochs = epochs_1024 if width >= 1024 else epochs
        _, without = _fit(data, width, n_epochs, schedule, None, "none")
        last_mode = "lcv" if every == "auto" else f"lcv, every {every}"
        for mode, n in (("in place", 1), ("lcv, every epoch", 1), (last_mode, every)):
            with tempfile.TemporaryDirectory() as tmp:
                trainer, wall = _fit(data, width, n_epochs, schedule, Path(tmp), mode, n)
                writer = trainer.schedule.last_writer
                last = Path(tmp) / "checkpoints" / "last.ckpt"
                writes = writer.writes
                rows.append(
                    {
                        "width": width,
                        "epochs": n_epochs,
                        "mode": mode,
                        "fit_s": wall,
                        "fit_s_without": without,
                        "ckpt_ms_per_epoch": 1000 * writer.blocked_s / n_epochs,
                        "background_ms_per_epoch": 1000 * writer.background_s / n_epochs,
                        "writes": writes,
                        "share": writer.blocked_s / wall,
                        "size_mb": last.stat().st_size / 1e6,
                        "parts_mb": breakdown(last) if mode == last_mode else {},  # the same file in every mode
                    }
                )
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    """Print the rows as a Markdown table, then the size breakdown of each width."""
    print("| width | epochs | last.ckpt written | writes | fit s | fit s without | ms/epoch on the loop "
          "| ms/epoch background | MB | share of fit | goal ≤ 5% |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ok = "yes" if r["share"] <= GOAL_SHARE else "no"
        print(
            f"| {r['width']} | {r['epochs']} | {r['mode']} | {r['writes']} | {r['fit_s']:.2f} | "
            f"{r['fit_s_without']:.2f} | "
            f"{r['ckpt_ms_per_epoch']:.1f} | {r['background_ms_per_epoch']:.1f} | {r['size_mb']:.2f} | "
            f"{r['share']:.1%} | {ok} |"
        )
    for r in rows:
        if r["parts_mb"]:
            parts = ", ".join(f"{k} {v:.3f}" for k, v in r["parts_mb"].items() if not math.isclose(v, 0.0))
            print(f"\nwidth {r['width']}: {r['size_mb']:.2f} MB = {parts} (MB, torch.save sizes)")


def main() -> None:
    """Parse the options, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="8,256,1024")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--epochs-1024", type=int, default=4, help="epochs for widths >= 1024 (slow on a CPU)")
    parser.add_argument("--schedule", default="interleaved")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--every", default="auto", help="checkpoint_every_n_epochs of the third row per width")
    args = parser.parse_args()
    every = args.every if args.every == "auto" else int(args.every)
    widths = tuple(int(w) for w in args.widths.split(","))
    print_rows(checkpoint_rows(widths, args.epochs, args.epochs_1024, args.schedule, args.threads, every))


if __name__ == "__main__":
    main()
