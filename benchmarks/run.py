"""lcv against its peers: one command, a table, the ratios and the goals of issue #9.

Usage (from the repository root, with the packages installed in ``.venv``)::

    .venv/bin/python benchmarks/run.py [--quick] [--widths 8,256,1024] [--repeats N] [--out benchmarks/RESULTS.md]

Every runner trains the same workload (5-fold stratified CV, MLP ``in-W-W-classes``, Adam, batch 64) on the same
folds, each in a fresh subprocess (``benchmarks/_child.py``), and the repeats are interleaved (repeat 1 of every
runner and case, then repeat 2, ...) so a noisy neighbour slows all runners alike. Each figure is the median over
the repeats. lightning-cv runs in an environment of its own, made on first use with ``uv``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

HERE = Path(__file__).resolve().parent
CHILD = HERE / "_child.py"
PEER_ENV = Path(os.environ.get("LCV_PEER_ENV") or Path(tempfile.gettempdir()) / "lcv-peer-env")
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
]
B_LABEL, LCV_LABEL = RUNNERS[1].label, RUNNERS[4].label


@dataclass
class Case:
    """One workload: a data set, a width and a number of epochs."""

    name: str
    data: Path
    width: int
    epochs: int
    dataset: str
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


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


def thread_env(threads: int) -> dict[str, str]:
    """Return the environment that caps the math libraries' threads at ``threads``."""
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the medians of a runner's repeats, or why it has none."""
    ok = [r for r in runs if "wall_s" in r]
    if not ok:
        first = runs[0] if runs else {}
        return {"note": first.get("skipped") or first.get("error") or "not run"}
    wall = _median(ok, "wall_s")
    best = min(ok, key=lambda r: abs(r["wall_s"] - wall))  # accuracies of the median run
    return {
        "wall_s": wall,
        "cpu_s": _median(ok, "cpu_s"),
        "us_per_step": statistics.median(1e6 * r["wall_s"] / r["fold_steps"] for r in ok),
        "rss_mib": _median(ok, "peak_rss_mib"),
        "accuracies": best["accuracies"],
        "repeats": len(ok),
        "note": f"{len(runs) - len(ok)} of {len(runs)} repeats failed" if len(ok) < len(runs) else "",
    }


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


def _fmt_acc(accs: list[float]) -> str:
    return " ".join(f"{a:.3f}" for a in accs)


def case_rows(case: Case) -> list[list[str]]:
    """Return the table rows of one case: label, wall, CPU, µs/fold-step, RSS, × B, × lcv, accuracies."""
    stats = {label: summarize(runs) for label, runs in case.runs.items()}
    b, lcv = stats.get(B_LABEL, {}).get("wall_s"), stats.get(LCV_LABEL, {}).get("wall_s")
    rows = []
    for label, s in stats.items():
        if "wall_s" not in s:
            rows.append([label, "—", "—", "—", "—", "—", "—", s["note"]])
            continue
        rows.append(
            [
                label,
                f"{s['wall_s']:.2f}",
                f"{s['cpu_s']:.2f}",
                f"{s['us_per_step']:.0f}",
                f"{s['rss_mib']:.0f}",
                f"{s['wall_s'] / b:.2f}" if b else "—",
                f"{s['wall_s'] / lcv:.2f}" if lcv else "—",
                _fmt_acc(s["accuracies"]) + (f" ({s['note']})" if s["note"] else ""),
            ]
        )
    return rows


HEADERS = ["runner", "wall s", "CPU s", "µs/fold-step", "peak RSS MiB", "× B", "× lcv", "per-fold val accuracy"]


def goals(cases: list[Case], cli: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Return ``(goal, measured, PASS/MISS/n/a)`` for the goals of issue #9."""
    out: list[tuple[str, str, str]] = []

    def wall(case: Case, label: str) -> float | None:
        value = summarize(case.runs.get(label, [])).get("wall_s")
        return float(value) if value is not None else None

    def check(goal: str, num: float | None, den: float | None, op: str, bound: float) -> None:
        if num is None or den is None:
            out.append((goal, "not measured", "n/a"))
            return
        ratio = num / den
        ok = ratio <= bound if op == "<=" else ratio >= bound
        out.append((goal, f"{ratio:.2f}×", "PASS" if ok else "MISS"))

    for case in (c for c in cases if c.dataset == "digits"):
        tag = f"digits W={case.width}:"
        b, lcv = wall(case, B_LABEL), wall(case, LCV_LABEL)
        check(f"{tag} lcv interleaved ≤ 1.15× B", lcv, b, "<=", 1.15)
        check(f"{tag} DataLoader hand loop ≥ 1.2× lcv interleaved", wall(case, RUNNERS[0].label), lcv, ">=", 1.2)
        check(f"{tag} 5 × Trainer.fit ≥ 2× lcv interleaved", wall(case, RUNNERS[2].label), lcv, ">=", 2.0)
        check(f"{tag} lightning-cv ≥ 2× lcv interleaved", wall(case, RUNNERS[3].label), lcv, ">=", 2.0)
        bound = {8: 3.5, 256: 1.5}.get(case.width)
        if bound is not None:
            check(f"{tag} B ≥ {bound}× lcv vectorized", b, wall(case, RUNNERS[7].label), ">=", bound)
            check(f"{tag} B ≥ {bound}× lcv vectorized, lcv learner", b, wall(case, RUNNERS[9].label), ">=", bound)
    out.append(("peak RSS of the data pipeline at k=10 within 10% of k=2", "see benchmarks/data_memory.py", "n/a"))
    for name, r in cli.items():
        if "wall_s" not in r:
            out.append((f"`{name}` under 1 s", r["note"], "n/a"))
            continue
        ok = r["wall_s"] < 1.0 and r["rc"] == 0 and not r["imports_torch"]
        measured = f"{r['wall_s']:.2f} s, exit {r['rc']}, imports torch: {'yes' if r['imports_torch'] else 'no'}"
        out.append((f"`{name}` under 1 s (no torch import)", measured, "PASS" if ok else "MISS"))
    return out


def print_report(console: Console, cases: list[Case], goal_rows: list[tuple[str, str, str]]) -> None:
    """Print one table per case and the goals."""
    for case in cases:
        table = Table(title=case.name, title_justify="left")
        for i, h in enumerate(HEADERS):
            table.add_column(h, justify="left" if i in (0, 7) else "right", overflow="fold")
        for row in case_rows(case):
            table.add_row(*(escape(c) for c in row))
        console.print(table)
    table = Table(title="Goals of issue #9 (ratios within this run)", title_justify="left")
    for h in ("goal", "measured", ""):
        table.add_column(h)
    for goal, measured, verdict in goal_rows:
        style = {"PASS": "green", "MISS": "red"}.get(verdict, "dim")
        table.add_row(escape(goal), escape(measured), f"[{style}]{verdict}[/{style}]")
    console.print(table)


def markdown(args: argparse.Namespace, info: dict[str, str], peer_note: str, cases: list[Case], goal_rows: Any) -> str:
    """Return the results as markdown."""
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{' '.join(['python benchmarks/run.py', *sys.argv[1:]])}`.",
        "See [README.md](README.md) for what each row means.",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in info.items()),
        f"- lightning-cv: {peer_note}",
        f"- repeats: {args.repeats} (interleaved; every figure is the median)",
        "",
        "Workload: 5-fold stratified CV, MLP in-W-W-10 (ReLU), Adam lr 1e-3, batch 64, validation every epoch.",
        "Wall and CPU time cover the training only (models, loaders and validation included; imports excluded).",
        "× B and × lcv: wall time relative to the hand-written tensor-batch loop B and to lcv interleaved.",
        "Every runner ran in a fresh process with the torch threads given above.",
        "",
    ]
    for case in cases:
        lines += [f"## {case.name}", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in case_rows(case)]
        lines.append("")
    lines += ["## Goals", "", "| goal | measured | verdict |", "|---|---|---|"]
    lines += [f"| {g} | {m} | {v} |" for g, m, v in goal_rows]
    return "\n".join(lines) + "\n"


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
    done = 0
    t0 = time.perf_counter()
    for rep in range(args.repeats):
        for case in cases:
            for runner in runners:
                done += 1
                case.runs.setdefault(runner.label, [])
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
    goal_rows = goals(cases, cli)
    print_report(console, cases, goal_rows)
    if args.out:
        args.out.write_text(markdown(args, info, peer_note, cases, goal_rows), encoding="utf-8")
        console.print(f"wrote {args.out}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
