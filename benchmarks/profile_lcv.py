"""Profile one lcv fit with cProfile and attribute its time per fold-step to the loop's parts.

Usage (from the repository root)::

    .venv/bin/python benchmarks/profile_lcv.py [--width 8] [--epochs 3] [--schedule interleaved] [--top 25]

The fit (digits, 5 stratified folds, MLP 64-W-W-10, Adam, batch 64) runs in a fresh subprocess under cProfile,
after its imports, so the profile holds the training only. Printed: the top functions by own time, and the
time per fold-step (inclusive, so the buckets overlap where one calls another) of the parts that a lean fold
loop should make cheap: ``Fabric.call`` dispatch, the ``self.log`` interception, host syncs (``.item()``,
``.tolist()``, ``.cpu()``), batch loading, forward, backward and the optimizer step.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

_SYNCS = ("item", "tolist", "cpu")
# (label, predicate over pstats' (file, line, function) key); inclusive time of the outermost match counts
BUCKETS: list[tuple[str, Any]] = [
    ("Fabric.call (hook dispatch)", lambda f, fn: fn == "call" and f.endswith("fabric/fabric.py")),
    ("self.log interception (FoldMetricLog.log)", lambda f, fn: fn in ("log", "log_dict") and "_logging" in f),
    ("batch_size_of", lambda f, fn: fn == "batch_size_of"),
    ("batch loading (TensorBatchLoader.__iter__ / _batches)", lambda f, fn: fn in ("__iter__", "_batches")),
    ("host syncs: Tensor.item / tolist / cpu", lambda f, fn: f == "~" and any(f"'{m}'" in fn for m in _SYNCS)),
    ("forward: training_step / validation_step", lambda f, fn: fn in ("training_step", "validation_step")),
    ("backward: Fabric.backward", lambda f, fn: fn == "backward" and f.endswith("fabric/fabric.py")),
    ("optimizer step (Fabric optimizer step)", lambda f, fn: fn == "step" and "wrappers.py" in f),
    ("zero_grad", lambda f, fn: fn == "zero_grad"),
    ("precision contexts (_call_step)", lambda f, fn: fn == "_call_step"),
    ("fabric.to_device", lambda f, fn: fn == "to_device"),
    ("FoldRNG.active (per fold-epoch)", lambda f, fn: fn == "active" and "_rng" in f),
]


def child(width: int, epochs: int, schedule: str, prof_path: str) -> None:
    """Fit once under cProfile (imports done before) and dump the stats to ``prof_path``."""
    sys.path.insert(0, str(HERE))
    import _child  # the benchmark's own runner, so the profile is of the benchmarked code path
    import run

    for name in _child.IMPORTS["lcv"]:
        __import__(name)
    data = run.digits_data()
    spec = {"width": width, "epochs": epochs, "batch_size": 64, "lr": 1e-3, "n_classes": 10, "seed": 0}
    spec["schedule"] = schedule
    profiler = cProfile.Profile()
    profiler.enable()
    _child.run_lcv(data, spec)
    profiler.disable()
    profiler.dump_stats(prof_path)
    steps = _child.fold_steps(data, 64, epochs)
    Path(prof_path + ".json").write_text(json.dumps({"fold_steps": steps}), encoding="utf-8")


def report(prof_path: str, top: int) -> str:
    """Return the top functions by own time and the per-fold-step cost of each bucket."""
    steps = json.loads(Path(prof_path + ".json").read_text(encoding="utf-8"))["fold_steps"]
    stats = pstats.Stats(prof_path)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # pstats keeps its table here
    total = max(ct for (_, _, _, ct, _) in raw.values())
    buf = io.StringIO()
    buf.write(f"profiled fit: {total:.2f} s for {steps} fold-steps = {1e6 * total / steps:.0f} µs per fold-step\n\n")
    buf.write(f"{'part of the loop':58s} {'calls':>8s} {'µs/fold-step':>13s} {'share':>6s}\n")
    for label, pred in BUCKETS:
        hits = {k: v for k, v in raw.items() if pred(k[0], k[2])}
        # inclusive time without double counting recursion: callers that are themselves hits are skipped
        cum = sum(v[3] for k, v in hits.items() if not any(c in hits for c in v[4]))
        calls = sum(v[1] for v in hits.values())
        buf.write(f"{label:58s} {calls:8d} {1e6 * cum / steps:13.1f} {100 * cum / total:5.1f}%\n")
    buf.write(f"\ntop {top} functions by own time:\n")
    out = io.StringIO()
    pstats.Stats(prof_path, stream=out).sort_stats("tottime").print_stats(top)
    body = out.getvalue()
    buf.write(body[body.find("   ncalls") :])
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Run the profiled fit in a fresh process and print the report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--schedule", default="interleaved")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as in run.py)")
    p.add_argument("--child", metavar="PROF", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.width, args.epochs, args.schedule, args.child)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        prof = str(Path(tmp) / "fit.prof")
        cmd = [sys.executable, __file__, "--width", str(args.width), "--epochs", str(args.epochs)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        subprocess.run([*cmd, "--schedule", args.schedule, "--child", prof], check=True, env=env)
        print(report(prof, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
