"""What ``run.py`` prints and writes: the medians per runner, one table per workload, the goals of issue #9."""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from _runners import AUTO_GROUPS, B_LABEL, LCV_LABEL, LEARNER_LABEL, RUNNERS, Case
from rich.console import Console
from rich.markup import escape
from rich.table import Table


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
    chosen = sorted({r["schedule_chosen"] for r in ok if r.get("schedule_chosen")})
    return {
        "chosen": "/".join(chosen),
        "wall_s": wall,
        "cpu_s": _median(ok, "cpu_s"),
        "us_per_step": statistics.median(1e6 * r["wall_s"] / r["fold_steps"] for r in ok),
        "rss_mib": _median(ok, "peak_rss_mib"),
        "accuracies": best["accuracies"],
        "repeats": len(ok),
        "note": f"{len(runs) - len(ok)} of {len(runs)} repeats failed" if len(ok) < len(runs) else "",
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
                _fmt_acc(s["accuracies"])
                + (f" ({s['note']})" if s["note"] else "")
                + (f" (chose {s['chosen']})" if label in AUTO_GROUPS and s["chosen"] else ""),
            ]
        )
    return rows


HEADERS = ["runner", "wall s", "CPU s", "µs/fold-step", "peak RSS MiB", "× B", "× lcv", "per-fold val accuracy"]


def goals(cases: list[Case], cli: dict[str, Any], memory: dict[int, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Return ``(goal, measured, PASS/MISS/n/a)`` for the goals of issues #9 and #24 (``schedule="auto"``)."""
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
        b = wall(case, B_LABEL)
        # each interleaved goal for the user's LightningModule, then for lcv's configurable learner
        for label, who in ((LCV_LABEL, ""), (LEARNER_LABEL, ", lcv learner")):
            lcv = wall(case, label)
            check(f"{tag} lcv interleaved{who} ≤ 1.15× B", lcv, b, "<=", 1.15)
            check(
                f"{tag} DataLoader hand loop ≥ 1.2× lcv interleaved{who}", wall(case, RUNNERS[0].label), lcv, ">=", 1.2
            )
            check(f"{tag} 5 × Trainer.fit ≥ 2× lcv interleaved{who}", wall(case, RUNNERS[2].label), lcv, ">=", 2.0)
            check(f"{tag} lightning-cv ≥ 2× lcv interleaved{who}", wall(case, RUNNERS[3].label), lcv, ">=", 2.0)
        bound = {8: 3.5, 256: 1.5}.get(case.width)
        if bound is not None:
            check(f"{tag} B ≥ {bound}× lcv vectorized", b, wall(case, RUNNERS[7].label), ">=", bound)
            check(f"{tag} B ≥ {bound}× lcv vectorized, lcv learner", b, wall(case, RUNNERS[9].label), ">=", bound)
    for case in cases:  # schedule="auto" (issue #24): near the fastest lcv schedule, never much slower than interleaved
        tag = f"digits W={case.width}:" if case.dataset == "digits" else f"{case.dataset}:"
        for auto_label, others in AUTO_GROUPS.items():
            auto = summarize(case.runs.get(auto_label, []))
            walls = {label: wall(case, label) for label in others}
            measured = {label: w for label, w in walls.items() if w is not None}
            chose = f", chose {auto['chosen']}" if auto.get("chosen") else ""
            if "wall_s" not in auto or not measured:
                out.append((f"{tag} {auto_label} ≤ 1.05× the fastest lcv schedule", "not measured", "n/a"))
                continue
            fastest = min(measured, key=lambda label: measured[label])
            for goal, label in (
                (f"{tag} {auto_label} ≤ 1.05× the fastest lcv schedule ({fastest})", fastest),
                (f"{tag} {auto_label} ≤ 1.05× {others[0]}", others[0]),
            ):
                den = summarize(case.runs.get(label, []))
                if "wall_s" not in den:
                    out.append((goal, "not measured", "n/a"))
                    continue
                ratio = auto["wall_s"] / den["wall_s"]
                cpu = f" ({auto['cpu_s'] / den['cpu_s']:.2f}× CPU time)" if den["cpu_s"] else ""
                out.append((goal, f"{ratio:.2f}×{cpu}{chose}", "PASS" if ratio <= 1.05 else "MISS"))
    issue_24 = {  # width: (learner vectorized ≤ × B, module vectorized ≤ × B, lightning-cv ≥ × auto, 5 × fit ≥ × auto)
        8: (0.30, 0.50, 2.5, 3.0),
        256: (0.50, None, 2.0, None),
    }
    for case in (c for c in cases if c.dataset == "digits" and c.width in issue_24):
        tag, b, auto = f"digits W={case.width}:", wall(case, B_LABEL), wall(case, RUNNERS[10].label)
        learner, module, peer, trainer = issue_24[case.width]
        check(f"{tag} lcv vectorized, lcv learner ≤ {learner:.2f}× B", wall(case, RUNNERS[9].label), b, "<=", learner)
        if module is not None:
            check(
                f"{tag} lcv vectorized (the module under vmap) ≤ {module:.2f}× B",
                wall(case, RUNNERS[7].label),
                b,
                "<=",
                module,
            )
        check(f"{tag} lightning-cv ≥ {peer}× lcv auto", wall(case, RUNNERS[3].label), auto, ">=", peer)
        if trainer is not None:
            check(f"{tag} 5 × Trainer.fit ≥ {trainer}× lcv auto", wall(case, RUNNERS[2].label), auto, ">=", trainer)
    goal = "peak RSS of the data pipeline at k=10 within 10% of k=2"
    if 2 in memory and 10 in memory:
        peak2, peak10 = memory[2]["peak_mib"], memory[10]["peak_mib"]
        ratio = peak10 / peak2
        measured = f"{ratio:.3f}× ({peak10:.0f} / {peak2:.0f} MiB, {memory[10]['samples_served']:,} samples served)"
        out.append((goal, measured, "PASS" if ratio <= 1.10 else "MISS"))
    else:
        out.append((goal, "not measured", "n/a"))
    for name, r in cli.items():
        if "wall_s" not in r:
            out.append((f"`{name}` under 1 s", r["note"], "n/a"))
            continue
        ok = r["wall_s"] < 1.0 and r["rc"] == 0 and not r["imports_torch"]
        measured = f"{r['wall_s']:.2f} s, exit {r['rc']}, imports torch: {'yes' if r['imports_torch'] else 'no'}"
        out.append((f"`{name}` under 1 s (no torch import)", measured, "PASS" if ok else "MISS"))
    return out


Section = tuple[str, list[str], list[list[str]], list[str]]
"""An extra measurement printed after the cases: title, headers, rows, notes below the table."""


def scaling_section(rows: list[dict[str, Any]]) -> Section:
    """The fold-parallel rows of ``scaling.rows()`` as a section."""
    headers = ["runner", "wall s", "speed-up", "s per added epoch", "speed-up per epoch", "bound", "per-fold equal"]
    table = [
        [
            r["row"],
            f"{r['wall_s']:.2f}",
            f"{r['speedup']:.2f}×",
            f"{r['epoch_s']:.3f}",
            f"{r['epoch_speedup']:.2f}×",
            f"{r['bound']:.2f}×",
            "yes" if r["equal"] else "NO",
        ]
        for r in rows
    ]
    notes = [
        "schedule='parallel', digits, 5 folds, width 256, one torch thread per process; launch excluded. "
        f"Bound: folds / ceil(folds / processes). 1-minute load average after the runs: {rows[-1]['load']:.2f}."
    ]
    kept = rows[-1].get("cores_kept", float("nan"))
    if kept == kept:  # not NaN: the idle-cores check ran
        notes.append(
            "Idle-cores check (median over the repeats, run between the fits): a 1-process fit alone on core 0 took "
            f"{kept:.2f}× the time of each of two such fits run at once on cores 0 and 1 (1.00: the two cores worked "
            "as two idle cores; lower: the host's other work slowed them in that stretch of the run)."
        )
    return "fold-parallel scaling, 1 vs 2 processes", headers, table, notes


def scaling_goals(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Goal of issue #24: 2 processes give the 1-process per-fold numbers and ≥ 1.6× its speed (width 256)."""
    two = next(r for r in rows if r["devices"] == 2)
    kept = two.get("cores_kept", float("nan"))
    cores = f" (idle-cores check {kept:.2f})" if kept == kept else ""
    return [
        (
            "fold-parallel, 2 processes: per-fold numbers equal to 1 process",
            "yes" if two["equal"] else "no",
            "PASS" if two["equal"] else "MISS",
        ),
        (
            f"fold-parallel, 2 processes: ≥ 1.6× the speed of 1 per added epoch (width 256; bound {two['bound']:.2f}×)",
            f"{two['epoch_speedup']:.2f}×{cores}",
            "PASS" if two["epoch_speedup"] >= 1.6 else "MISS",
        ),
        (
            "fold-parallel, 2 processes: ≥ 1.6× the speed of 1 for the whole 10-epoch fit (with the fixed part)",
            f"{two['speedup']:.2f}×{cores}",
            "PASS" if two["speedup"] >= 1.6 else "MISS",
        ),
    ]


def checkpoint_section(rows: list[dict[str, Any]]) -> Section:
    """The ``last.ckpt`` rows of ``checkpoint_cost.checkpoint_rows()`` as a section."""
    headers = ["width", "epochs", "writing", "MB", "fit s", "fit s without", "ms per epoch on the loop", "share of fit"]
    table = [
        [
            str(r["width"]),
            str(r["epochs"]),
            r["mode"],
            f"{r['size_mb']:.2f}",
            f"{r['fit_s']:.2f}",
            f"{r['fit_s_without']:.2f}",
            f"{r['ckpt_ms_per_epoch']:.1f}",
            f"{100 * r['share']:.1f}%",
        ]
        for r in rows
    ]
    notes = [
        "interleaved, digits, 5 folds. 'in place': every epoch on the training thread (before #24); 'lcv, every "
        "epoch': checkpoint_every_n_epochs=1 (captured at the epoch's end, large files written in the background); "
        "'lcv': the default, checkpoint_every_n_epochs='auto' (as often as keeps the share under 5%)."
    ]
    return "last.ckpt: what writing it costs the fit", headers, table, notes


def checkpoint_goals(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Goal of issue #24: with lcv's default writing, ``last.ckpt`` takes ≤ 5% of the fit on every digits row."""
    return [
        (
            f"digits W={r['width']}: last.ckpt ≤ 5% of the fit (default writing)",
            f"{100 * r['share']:.1f}%",
            "PASS" if r["share"] <= 0.05 else "MISS",
        )
        for r in rows
        if r["mode"] == "lcv"
    ]


def print_sections(console: Console, sections: list[Section]) -> None:
    """Print the extra measurements, one table each."""
    for title, headers, rows, notes in sections:
        table = Table(title=title, title_justify="left", caption=" ".join(notes), caption_justify="left")
        for h in headers:
            table.add_column(h)
        for row in rows:
            table.add_row(*(escape(c) for c in row))
        console.print(table)


def print_report(console: Console, cases: list[Case], goal_rows: list[tuple[str, str, str]]) -> None:
    """Print one table per case and the goals."""
    for case in cases:
        table = Table(title=case.name, title_justify="left")
        for i, h in enumerate(HEADERS):
            table.add_column(h, justify="left" if i in (0, 7) else "right", overflow="fold")
        for row in case_rows(case):
            table.add_row(*(escape(c) for c in row))
        console.print(table)
    table = Table(title="Goals of issues #9 and #24 (ratios within this run)", title_justify="left")
    for h in ("goal", "measured", ""):
        table.add_column(h)
    for goal, measured, verdict in goal_rows:
        style = {"PASS": "green", "MISS": "red"}.get(verdict, "dim")
        table.add_row(escape(goal), escape(measured), f"[{style}]{verdict}[/{style}]")
    console.print(table)


def markdown(
    args: argparse.Namespace,
    info: dict[str, str],
    peer_note: str,
    cases: list[Case],
    goal_rows: Any,
    sections: list[Section] | None = None,
) -> str:
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
    for title, headers, rows, notes in sections or []:
        lines += [f"## {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
        lines += ["", *notes, ""]
    lines += ["## Goals", "", "| goal | measured | verdict |", "|---|---|---|"]
    lines += [f"| {g} | {m} | {v} |" for g, m, v in goal_rows]
    return "\n".join(lines) + "\n"
