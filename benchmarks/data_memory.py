"""Peak memory of CrossValDataModule with k = 2 vs k = 10 folds: folds are index views, so it should not grow.

Run from the repository root: ``.venv/bin/python benchmarks/data_memory.py [--n 100000] [--features 64]``.
Each k runs in a fresh subprocess (same imports, same data) that builds the datamodule, iterates every fold's
training and validation loader once, and reports its peak resident set size. Goal: k = 10 within 10% of k = 2.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from typing import Any

from _runners import thread_env


def child(k: int, n: int, features: int) -> None:
    """Build a k-fold datamodule over an n x features float32 set, serve every batch, print peak RSS in MiB."""
    import torch

    from lcv_data.datamodule import CrossValDataModule
    from lcv_data.transforms import Standardize

    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, features, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    dm = CrossValDataModule(
        X=X,
        y=y,
        splitter="stratified_kfold",
        splitter_kwargs={"n_splits": k, "shuffle": True},
        fitted_transforms=[Standardize()],
        dataloaders={"default": {"batch_size": 1024}},
    )
    served = 0
    for train, val in dm.train_val_dataloaders():
        for loader in (train, val):
            for x, _ in loader:
                served += len(x)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"k": k, "peak_mib": peak_kib / 1024, "samples_served": served}))


def measure(
    n: int = 100_000, features: int = 64, ks: tuple[int, ...] = (2, 10), threads: int = 1
) -> dict[int, dict[str, Any]]:
    """Return ``{k: {"peak_mib": ..., "samples_served": ...}}``, each k measured in a fresh subprocess.

    The children run with ``threads`` math threads: each thread's allocator arena adds to the resident set,
    so a thread count that varies with the machine's load would blur the comparison.
    """
    results = {}
    env = {**os.environ, **thread_env(threads)}
    for k in ks:
        cmd = [sys.executable, __file__, "--child", str(k), "--n", str(n), "--features", str(features)]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        out = done.stdout.strip().splitlines()[-1]
        results[k] = json.loads(out)
    return results


def main() -> None:
    """Measure k = 2 and k = 10 in subprocesses and print both peaks and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n, args.features)
        return
    results = measure(args.n, args.features)
    for k, result in results.items():
        print(f"k={k:>2}: peak RSS {result['peak_mib']:8.1f} MiB, {result['samples_served']} samples served")
    data_mib = args.n * args.features * 4 / 2**20
    ratio = results[10]["peak_mib"] / results[2]["peak_mib"]
    verdict = "OK" if ratio <= 1.10 else "ABOVE GOAL"
    print(f"data: {data_mib:.1f} MiB; peak ratio k=10 / k=2: {ratio:.3f} (goal: <= 1.10) -> {verdict}")


if __name__ == "__main__":
    main()
