"""lcv against its peers: one command, a table, the ratios and the goals of issue #9.

Usage (from the repository root, with the packages installed in ``.venv``)::

    .venv/bin/python benchmarks/run.py [--quick] [--widths 8,256,1024] [--repeats N] [--out benchmarks/RESULTS.md]

Every runner trains the same workload (5-fold stratified CV, MLP ``in-W-W-classes``, Adam, batch 64) on the same
folds, each in a fresh subprocess (``benchmarks/_child.py``), and the repeats are interleaved (repeat 1 of every
runner and case, then repeat 2, ...), each repeat in a fresh seeded order of the runners, so a noisy neighbour
slows all runners alike. Each figure is the median over the repeats. lightning-cv runs in an environment of its
own, made on first use with ``uv``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _report import (
    Section,
    checkpoint_goals,
    checkpoint_section,
    goals,
    markdown,
    print_report,
    print_sections,
    scaling_goals,
    scaling_section,
)
from _runners import PEER_REQUIREMENT, RUNNERS, Case, Runner, thread_env
from data_memory import measure as measure_data_memory
from rich.console import Console

HERE = Path(__file__).resolve().parent
CHILD = HERE / "_child.py"
PEER_ENV = Path(os.environ.get("LCV_PEER_ENV") or Path(tempfile.gettempdir()) / "lcv-peer-env")


# -- data -------------------------------------------------------------------------------------------


def _stratified_folds(y: np.ndarray, k: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    from sklearn.model_selection import StratifiedKFold

    splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    train, val = zip(*((torch.as_tensor(tr), torch.as_tensor(va)) for tr, va in splits), strict=True)
    return list(train), list(val)


def write_digits(path: Path, k: int, seed: int) -> None:
    """Write scikit-learn's digits (pixels scaled to [0, 1]) and its stratified folds."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    train, val = _stratified_folds(y, k, seed)
    X_t, y_t = torch.as_tensor(X / 16.0, dtype=torch.float32), torch.as_tensor(y)
    torch.save({"X": X_t, "y": y_t, "train": train, "val": val}, path)


def digits_data(k: int = 5, seed: int = 0) -> dict[str, Any]:
    """Return digits and its stratified folds as the runners get them (for scripts that run in one process)."""
    from _child import load_data

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits.pt"
        write_digits(path, k, seed)
        return load_data(path)


def write_synthetic(path: Path, n: int, k: int, seed: int) -> None:
    """Write ``n`` × 64 Gaussian inputs labelled by a random linear teacher (10 classes) and their folds."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 64, generator=g)
    y = (X @ torch.randn(64, 10, generator=g) + 0.5 * torch.randn(n, 10, generator=g)).argmax(1)
    train, val = _stratified_folds(y.numpy(), k, seed)
    torch.save({"X": X, "y": y, "train": train, "val": val}, path)


# -- lightning-cv's own environment ---------------------------------------------------------------


def _pip_find_links() -> list[str]:
    """Return the find-links locations pip is configured with (read at run time, as the noxfile does)."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    links: list[str] = []
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith(".find-links"):
            links += shlex.split(value.strip().strip("'\""))
    return links


def ensure_peer_env() -> tuple[str | None, str]:
    """Return lightning-cv's interpreter (making its environment if needed) and a note on how it went."""
    python = PEER_ENV / "bin" / "python"
    check = [str(python), "-c", "import lightning_cv, torch; print(lightning_cv.__version__, torch.__version__)"]
    if python.exists():
        done = subprocess.run(check, capture_output=True, text=True)
        if done.returncode == 0:
            return str(python), f"{PEER_ENV} (lightning-cv {done.stdout.split()[0]}, torch {done.stdout.split()[1]})"
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    env = dict(os.environ)
    links = [x for x in (env.get("UV_FIND_LINKS", "").split(",") + _pip_find_links()) if x]
    if links:  # uv does not read pip's configuration: hand it pip's find-links (e.g. a local CPU wheel of torch)
        env["UV_FIND_LINKS"] = ",".join(dict.fromkeys(links))
    steps = [
        [uv, "venv", "-q", "-p", sys.executable, str(PEER_ENV)],
        [
            uv,
            "pip",
            "install",
            "-q",
            "-p",
            str(PEER_ENV),
            PEER_REQUIREMENT,
            f"torch=={torch.__version__.split('+')[0]}",
        ],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, env=env, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"could not install {PEER_REQUIREMENT}: {' '.join(step[:3])}: {exc}"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return None, f"could not install {PEER_REQUIREMENT}: {' | '.join(tail)}"
    done = subprocess.run(check, capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"{PEER_REQUIREMENT} installed but does not import: {done.stderr.strip().splitlines()[-1:]}"
    return str(python), f"{PEER_ENV} (made now; lightning-cv {done.stdout.split()[0]}, torch {done.stdout.split()[1]})"


# -- measuring --------------------------------------------------------------------------------------


def run_child(python: str, runner: Runner, case: Case, workdir: Path, seed: int, threads: int) -> dict[str, Any]:
    """Run one runner on one case in a fresh process and return its measurements."""
    spec = {
        "data": str(case.data),
        "width": case.width,
        "epochs": case.epochs,
        "batch_size": 64,
        "lr": 1e-3,
        "n_classes": 10,
        "seed": seed,
        "threads": threads,
        **runner.extra,
    }
    spec_path = workdir / "spec.json"
    out_path = workdir / "result.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    out_path.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1", **thread_env(threads)}
    done = subprocess.run(
        [python, str(CHILD), runner.child, str(spec_path), str(out_path)], capture_output=True, text=True, env=env
    )
    if not out_path.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"error": f"the child process died: {tail[0][:300]}"}
    result: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    return result


def cli_timings(repeats: int = 5) -> dict[str, Any]:
    """Return the median wall time of ``lcv --help`` and ``lcv components``, and whether they import torch."""
    lcv = Path(sys.executable).parent / "lcv"
    out: dict[str, Any] = {}
    for args in (["--help"], ["components"]):
        name = "lcv " + " ".join(args)
        if not lcv.exists():
            out[name] = {"note": f"{lcv} not found"}
            continue
        times, rc = [], 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            rc = subprocess.run([str(lcv), *args], capture_output=True).returncode
            times.append(time.perf_counter() - t0)
        probe = (
            "import atexit, os, sys\n"
            "atexit.register(lambda: os.write(3, b'1' if 'torch' in sys.modules else b'0'))\n"
            "from importlib.metadata import entry_points\n"
            f"sys.argv = ['lcv', *{args!r}]\n"
            "main = next(iter(entry_points(group='console_scripts', name='lcv'))).load()\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
        )
        r, w = os.pipe()
        subprocess.run(
            [sys.executable, "-c", f"import os; os.dup2({w}, 3)\n{probe}"], capture_output=True, pass_fds=(w,)
        )
        os.close(w)
        flag = os.read(r, 1)
        os.close(r)
        out[name] = {"wall_s": statistics.median(times), "rc": rc, "imports_torch": flag == b"1"}
    return out


# -- reporting --------------------------------------------------------------------------------------


def machine(threads: int) -> dict[str, str]:
    """Describe the machine and the versions measured."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import lightning

    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": f"{len(os.sched_getaffinity(0))} usable of {os.cpu_count()}",
        "torch threads per runner": str(threads),
        "load average at start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "os": platform.platform(),
    }


# -- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``--quick`` changes the defaults of the other options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 3 epochs, widths 8,256, 1 repeat, 5k synthetic")
    p.add_argument("--widths", help="MLP widths on digits (default 8,256,1024; quick: 8,256)")
    p.add_argument("--repeats", type=int, help="interleaved repeats per figure (default 3; quick: 1)")
    p.add_argument("--epochs", type=int, help="epochs on digits (default 20; quick: 3)")
    p.add_argument(
        "--synthetic-n", type=int, help="samples of the synthetic set (default 100000; quick: 5000; 0: skip)"
    )
    p.add_argument("--synthetic-epochs", type=int, help="epochs on the synthetic set (default 2; quick: 1)")
    p.add_argument("--synthetic-width", type=int, default=256, help="MLP width on the synthetic set (default 256)")
    p.add_argument("--runners", help="comma-separated row labels or child names to run (default: all)")
    p.add_argument("--no-peer", action="store_true", help="skip lightning-cv (no separate environment)")
    p.add_argument("--no-scaling", action="store_true", help="skip the fold-parallel 1-vs-2-process rows")
    p.add_argument("--no-checkpoint-cost", action="store_true", help="skip the last.ckpt cost rows")
    p.add_argument("--out", type=Path, default=None, help="markdown file (default benchmarks/RESULTS.md; quick: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per runner (default 1: on a busy machine, OpenMP threads waiting for each other\n"
        "at every op made a width-8 fit up to 60x slower and the timings meaningless)",
    )
    args = p.parse_args(argv)
    quick = args.quick
    args.widths = [int(w) for w in (args.widths or ("8,256" if quick else "8,256,1024")).split(",") if w]
    args.repeats = args.repeats or (1 if quick else 3)
    args.epochs = args.epochs or (3 if quick else 20)
    args.synthetic_n = args.synthetic_n if args.synthetic_n is not None else (5_000 if quick else 100_000)
    args.synthetic_epochs = args.synthetic_epochs or (1 if quick else 2)
    if args.out is None and not quick:
        args.out = HERE / "RESULTS.md"
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally write) the results."""
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 170)  # a log file gets the whole table
    info = machine(args.threads)
    runners = RUNNERS
    if args.runners:
        wanted = {w.strip() for w in args.runners.split(",")}
        runners = [r for r in RUNNERS if r.label in wanted or r.child in wanted or r.label.endswith(tuple(wanted))]
    peer_python, peer_note = (None, "skipped (--no-peer)") if args.no_peer else ensure_peer_env()
    if any(r.peer for r in runners) and not args.no_peer:
        console.print(f"lightning-cv: {peer_note}")
    workdir = Path(tempfile.mkdtemp(prefix="lcv-bench-"))
    cases: list[Case] = []
    digits = workdir / "digits.pt"
    write_digits(digits, 5, args.seed)
    for w in args.widths:
        cases.append(Case(f"digits, width {w}, {args.epochs} epochs", digits, w, args.epochs, "digits"))
    if args.synthetic_n:
        synth = workdir / "synthetic.pt"
        write_synthetic(synth, args.synthetic_n, 5, args.seed)
        name = f"synthetic {args.synthetic_n:,} × 64, width {args.synthetic_width}, {args.synthetic_epochs} epochs"
        cases.append(Case(name, synth, args.synthetic_width, args.synthetic_epochs, "synthetic"))
    total = args.repeats * len(cases) * len(runners)
    for case in cases:  # the tables list the runners in their own order, not in the order they ran
        case.runs = {runner.label: [] for runner in runners}
    done = 0
    t0 = time.perf_counter()
    for rep in range(args.repeats):
        for case in cases:
            # a fresh order every repeat: a neighbour's load that rises or falls over a repeat (or the runs before
            # a runner warming the caches) must not favour the runners that always come first
            order = list(runners)
            random.Random(f"{args.seed}/{rep}/{case.name}").shuffle(order)
            for runner in order:
                done += 1
                if runner.peer and peer_python is None:
                    case.runs[runner.label].append({"skipped": peer_note})
                    continue
                python = peer_python if runner.peer else sys.executable
                assert python is not None
                console.print(f"[dim]{done}/{total} repeat {rep + 1}: {case.name}: {runner.label}[/dim]", end=" ")
                result = run_child(python, runner, case, workdir, args.seed, args.threads)
                msg = f"{result['wall_s']:.2f} s" if "wall_s" in result else result.get("skipped") or result["error"]
                console.print(f"[dim]{msg}[/dim]")
                case.runs[runner.label].append(result)
    console.print(f"[dim]measured in {time.perf_counter() - t0:.0f} s[/dim]")
    cli = cli_timings()
    memory = measure_data_memory(n=args.synthetic_n or 100_000, threads=args.threads)
    goal_rows = goals(cases, cli, memory)
    sections: list[Section] = []
    if not args.no_scaling:
        import scaling

        console.print("[dim]fold-parallel scaling: schedule='parallel' on 1 and 2 processes[/dim]")
        rows = scaling.rows(epochs=2 if args.quick else 10, repeats=args.repeats)
        sections.append(scaling_section(rows))
        goal_rows += scaling_goals(rows)
    if not args.no_checkpoint_cost:
        from checkpoint_cost import checkpoint_rows

        console.print("[dim]last.ckpt: fits with and without writing it[/dim]")
        ckpt = checkpoint_rows(widths=tuple(args.widths), epochs=args.epochs, epochs_1024=2 if args.quick else 4)
        sections.append(checkpoint_section(ckpt))
        goal_rows += checkpoint_goals(ckpt)
    print_report(console, cases, goal_rows)
    print_sections(console, sections)
    if args.out:
        args.out.write_text(markdown(args, info, peer_note, cases, goal_rows, sections), encoding="utf-8")
        console.print(f"wrote {args.out}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
