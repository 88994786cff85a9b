"""Fold-parallel scaling: ``schedule="parallel"`` on 1 process against 2 processes (``devices=1`` vs ``devices=2``).

The digits workload of ``benchmarks/run.py`` (5-fold stratified CV, MLP ``64 → 256 → 256 → 10``, Adam, batch 64,
10 epochs), built from a config with lcv's learner, one torch thread per process. Each fit runs in a fresh
subprocess (``--child``); with ``devices=2`` Fabric starts the script once more for rank 1. The clock starts once
the processes and the process group are up (launching and importing lightning are not the fold loop) and stops when
the fit returns on rank 0. Each case also runs for 1 epoch, so that the cost of one more epoch (the part that
scales) is told apart from the fixed part (setting up the folds on every process, out-of-fold predictions).
Prints the wall seconds, the ratios, whether the per-fold histories are equal (bitwise: ``parallel`` trains each
fold in its own random stream, wherever it runs) and the load average. The idle-cores check tells whether the two
cores behaved as two idle cores during the run: the same 1-process fit alone on core 0, then two of them at once on
cores 0 and 1 (no exchange between them). On this 2-vCPU machine they keep anywhere from about 0.7 to 1.0 of their
solo speed, from one hour to the next (two vCPUs are not two idle physical cores: the host runs other work). The
check runs between the fits, not during them: a low figure says the machine was not two idle cores in that
stretch of the run, not by how much each fit was slowed.

    .venv/bin/python benchmarks/scaling.py              # 10 epochs, width 256, 1 repeat
    .venv/bin/python benchmarks/scaling.py --repeats 3  # the median over 3 interleaved repeats
    .venv/bin/python benchmarks/scaling.py --quick      # 2 epochs: a smoke run

On paper (docs/guides/cluster.md): with k folds on d processes the slowest process trains ceil(k/d) folds, so the
speed-up is at most k / ceil(k/d): 5 folds on 2 processes, 5/3 = 1.67x; on 5 processes, 5x. Each epoch then waits
for the slowest process and exchanges the folds' history rows and the stop flag (about 1 ms); the folds' weights
travel once at the end (and before each checkpoint). The fixed part (setting up every fold's data and model on every
process, the first epoch's warm-up) is the same on 1 and 2 processes, so the whole-fit ratio stays below the
per-epoch one on a fit this short.

Needs lcv-core and lcv-data installed; ``rows()`` returns the figures for ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()


def config(epochs: int, width: int, folds: int, devices: int) -> dict[str, Any]:
    """Return the digits experiment with ``schedule="parallel"`` on ``devices`` processes."""
    return {
        "name": "scaling",
        "seed": 0,
        "data": {
            "dataset": "digits",
            "splitter": {"name": "stratified_kfold", "cfg": {"n_splits": folds, "shuffle": True}},
            "fitted_transforms": ["standardize"],
            "dataloaders": {"default": {"batch_size": 64}},
        },
        "model": {"name": "mlp", "cfg": {"in_features": 64, "out_features": 10, "hidden": [width, width]}},
        "criterion": "CrossEntropyLoss",
        "optimizer": {"name": "Adam", "cfg": {"lr": 0.001}},
        "trainer": {
            "accelerator": "cpu",
            "schedule": "parallel",
            "devices": devices,
            "max_epochs": epochs,
            "enable_progress_bar": False,
        },
    }


def child(epochs: int, width: int, folds: int, devices: int, out: Path, pin: int | None = None) -> None:
    """Fit once (this process is one rank); rank 0 writes the wall seconds of the fit and the history to ``out``.

    ``pin``: run on that core only, and start the fit once the file ``go`` exists next to ``out`` (after writing
    ``ready`` there): how the idle-cores check starts two fits at once.
    """
    import torch

    torch.set_num_threads(1)
    from lcv_core.configure import configure_all
    from lcv_core.distributed import parallel

    if pin is not None:
        os.sched_setaffinity(0, {pin})
    trainer, factory, datamodule = configure_all(config(epochs, width, folds, devices))
    parallel.launch(trainer.fabric)  # start rank 1 and the process group before the clock; fit() reuses them
    trainer.fabric.barrier()
    if pin is not None:
        (out.parent / "ready").write_text("")
        while not (out.parent / "go").exists():
            time.sleep(0.001)
    start = time.perf_counter()
    result = trainer.fit(factory, datamodule)
    seconds = time.perf_counter() - start
    if trainer.fabric.is_global_zero:
        out.write_text(json.dumps({"seconds": seconds, "history": result.history}))
    if torch.distributed.is_initialized():  # how a multi-process script ends (trainer guide)
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _command(epochs: int, width: int, folds: int, devices: int, out: Path, pin: int | None = None) -> list[str]:
    command = [sys.executable, str(HERE), "--child", str(devices), str(out)]
    command += ["--epochs", str(epochs), "--width", str(width), "--folds", str(folds)]
    return command + (["--pin", str(pin)] if pin is not None else [])


def _report(proc: subprocess.CompletedProcess[str] | subprocess.Popen[str], out: Path, what: str) -> dict[str, Any]:
    if proc.returncode != 0:
        stdout, stderr = (proc.stdout, proc.stderr) if isinstance(proc, subprocess.CompletedProcess) else ("", "")
        raise RuntimeError(f"{what} failed:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def run_child(epochs: int, width: int, folds: int, devices: int, pin: int | None = None) -> dict[str, Any]:
    """Run one fit in a fresh subprocess (on core ``pin`` only, if given); return rank 0's report."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        if pin is not None:
            (Path(tmp) / "go").write_text("")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        command = _command(epochs, width, folds, devices, out, pin)
        proc = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=1800)
        return _report(proc, out, f"devices={devices}")


def run_pair(epochs: int, width: int, folds: int) -> list[float]:
    """Run two 1-process fits at once, one on core 0 and one on core 1 (started together); return their seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [Path(tmp) / f"core{core}" for core in (0, 1)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs = []
        for core, folder in enumerate(dirs):
            folder.mkdir()
            command = _command(epochs, width, folds, 1, folder / "report.json", core)
            procs.append(
                subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        deadline = time.monotonic() + 600
        while not all((d / "ready").exists() for d in dirs) and all(p.poll() is None for p in procs):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        for folder in dirs:
            (folder / "go").write_text("")
        for proc in procs:
            proc.wait(timeout=1800)
        return [
            _report(p, d / "report.json", f"the fit on core {c}")["seconds"]
            for c, (p, d) in enumerate(zip(procs, dirs, strict=True))
        ]


def rows(
    epochs: int = 10, width: int = 256, folds: int = 5, repeats: int = 1, cores_check: bool = True
) -> list[dict[str, Any]]:
    """Measure ``parallel`` on 1 and 2 processes; return one row per process count (medians over the repeats).

    Each row has ``row``, ``devices``, ``wall_s`` (the fit of ``epochs`` epochs), ``speedup`` (1-process seconds /
    these seconds), ``epoch_s`` (the cost of one more epoch: the fit of ``epochs`` epochs minus the fit of 1, over
    ``epochs - 1``; what is left out is the fixed part: setting up the folds, the first epoch, out-of-fold
    predictions), ``epoch_speedup``, ``bound`` (folds / ceil(folds / devices)), ``equal`` (per-fold history bitwise
    the 1-process one), ``load`` (the 1-minute load average after the runs), ``cores_kept`` (the idle-cores check:
    the seconds of a 1-process fit alone on core 0 over those of two such fits run at once on cores 0 and 1; 1.0 when
    the two cores work as two idle cores, lower when the host's other work slows them). The repeats are interleaved.
    """
    seconds: dict[int, list[float]] = {1: [], 2: []}
    per_epoch: dict[int, list[float]] = {1: [], 2: []}
    histories: dict[int, list[Any]] = {1: [], 2: []}
    kept: list[float] = []
    for _ in range(repeats):
        for devices in (1, 2):
            report = run_child(epochs, width, folds, devices)
            seconds[devices].append(report["seconds"])
            histories[devices].append(report["history"])
            if epochs > 1:
                first = run_child(1, width, folds, devices)["seconds"]
                per_epoch[devices].append((report["seconds"] - first) / (epochs - 1))
        if cores_check:
            alone = run_child(epochs, width, folds, 1, pin=0)["seconds"]
            kept.append(alone / statistics.mean(run_pair(epochs, width, folds)))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    wall = {d: statistics.median(seconds[d]) for d in (1, 2)}
    epoch = {d: statistics.median(per_epoch[d]) if per_epoch[d] else float("nan") for d in (1, 2)}
    reference = histories[1][0]
    idle = statistics.median(kept) if kept else float("nan")
    return [
        {
            "row": f"lcv parallel, {devices} process{'es' if devices > 1 else ''}",
            "devices": devices,
            "wall_s": wall[devices],
            "speedup": wall[1] / wall[devices],
            "epoch_s": epoch[devices],
            "epoch_speedup": epoch[1] / epoch[devices],
            "bound": folds / math.ceil(folds / devices),
            "equal": all(h == reference for h in histories[devices]),
            "load": load,
            "cores_kept": idle,
        }
        for devices in (1, 2)
    ]


def main() -> None:
    """Parse the options; run a child fit or the whole measurement and print it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 epochs: a smoke run")
    parser.add_argument("--no-cores-check", action="store_true", help="skip the idle-cores check (two fits at once)")
    parser.add_argument("--child", nargs=2, metavar=("DEVICES", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--pin", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.epochs, args.width, args.folds, int(args.child[0]), Path(args.child[1]), args.pin)
        return
    epochs = 2 if args.quick else args.epochs
    cores = os.cpu_count()
    print(f"digits, {args.folds} folds, width {args.width}, batch 64, {epochs} epochs, parallel, 1 thread/process")
    print(f"cores: {cores}, load average before: {os.getloadavg()[0]:.2f}")
    table = rows(epochs, args.width, args.folds, args.repeats, cores_check=not args.no_cores_check)
    print(
        f"{'row':<26} {'wall s':>7} {'speed-up':>9} {'s/epoch':>8} {'speed-up':>9} {'bound':>6}  per-fold = 1 process"
    )
    for row in table:
        equal = "yes (bitwise)" if row["equal"] else "NO"
        print(
            f"{row['row']:<26} {row['wall_s']:>7.2f} {row['speedup']:>8.2f}x {row['epoch_s']:>8.3f} "
            f"{row['epoch_speedup']:>8.2f}x {row['bound']:>5.2f}x  {equal}"
        )
    two = table[1]
    print(
        f"ratio 1 process / 2 processes: {two['speedup']:.2f}x for the whole fit, {two['epoch_speedup']:.2f}x per "
        f"epoch (goal >= 1.6x on 2 idle cores; bound {two['bound']:.2f}x)"
    )
    print(f"load average after: {two['load']:.2f} (above ~0.5 other processes share the cores: the ratio is low)")
    if not math.isnan(two["cores_kept"]):
        print(
            f"idle-cores check: a 1-process fit alone / each of two at once on cores 0 and 1 = {two['cores_kept']:.2f} "
            "(1.00: two idle cores)"
        )


if __name__ == "__main__":
    main()
