"""The ``lcv test`` command: score each fold's best model and the fold ensemble on the holdout.

`lcv_core.inference.api` holds the Python API (``test`` on a fit's result); this module scores models rebuilt
from checkpoints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lcv_core.cli.checkpoint_models import LoadedModels, load_models
from lcv_core.cli.checkpoint_trust import add_trust_flag
from lcv_core.cli.holdout import holdout_source, per_fold_loaders


def _format_table(rows: list[tuple[str, dict[str, str]]], columns: list[str]) -> str:
    widths = [max(len(c), *(len(r.get(c, "")) for _, r in rows)) for c in columns]
    label = max(len(name) for name, _ in rows)
    lines = ["  ".join([" " * label, *(c.rjust(w) for c, w in zip(columns, widths, strict=True))])]
    for name, row in rows:
        lines.append(
            "  ".join([name.ljust(label), *(row.get(c, "").rjust(w) for c, w in zip(columns, widths, strict=True))])
        )
    return "\n".join(lines)


def evaluate(loaded: LoadedModels) -> dict[str, Any]:
    """Test every fold model on the holdout with its own fold's loader, and the fold ensemble; return the scores.

    Returns:
        ``{"per_fold": [{metric: value}], "metrics": {metric: {"mean", "std", "per_fold"}}, "ensemble": {...}}``.
    """
    import torch

    from lcv_core.inference.api import test
    from lcv_core.inference.ensemble import ensemble_scores
    from lcv_core.inference.fold_predict import batch_inputs
    from lcv_core.results.cv_result import MetricSummary

    source = holdout_source(loaded, "lcv test")
    loaders = per_fold_loaders(source, loaded.folds, "test")
    per_fold = [test([model], loader).per_fold[0] for model, loader in zip(loaded.models, loaders, strict=True)]
    outputs: list[list[Any]] = []
    targets: list[Any] = []
    for model, loader in zip(loaded.models, loaders, strict=True):
        outs, ys = [], []
        with torch.no_grad():
            for batch in loader:
                outs.append(model(batch_inputs(batch)).cpu())
                if isinstance(batch, (list, tuple)) and len(batch) == 2:
                    ys.append(batch[1].cpu())
        outputs.append(outs)
        targets.append(torch.cat(ys) if ys else None)
    same = all(t is not None and torch.equal(t, targets[0]) for t in targets)
    ensemble = ensemble_scores(outputs, targets[0]) if len(outputs) > 1 and same else {}
    names = sorted(set.intersection(*(set(m) for m in per_fold)))
    metrics = {}
    for name in names:
        summary = MetricSummary(name, [m[name] for m in per_fold])
        metrics[name] = {"mean": summary.mean, "std": summary.std, "per_fold": summary.per_fold}
    return {"folds": loaded.folds, "per_fold": per_fold, "metrics": metrics, "ensemble": ensemble}


class TestCommand:
    """``lcv test RUN_DIR_OR_CKPT``: score each fold's best model and the fold ensemble on the holdout."""

    __test__ = False  # not a pytest test class despite the name

    help = (
        "Evaluate each fold's best model and the fold ensemble on the holdout test data; print a table and "
        "write test_metrics.json into the run directory."
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the checkpoint or run directory and config overrides."""
        parser.add_argument("checkpoint", help="a run directory, last.ckpt, an epoch folder or a fold_<i>.ckpt")
        parser.add_argument("overrides", nargs="*", help="key=value overrides of the embedded config")
        add_trust_flag(parser)
        parser.add_argument("--output", help="write the JSON here (default <run dir>/test_metrics.json)")

    def run(self, args: argparse.Namespace) -> int:
        """Rebuild the models, test them, print the table and write ``test_metrics.json``."""
        loaded = load_models(args.checkpoint, list(args.overrides), trust_checkpoint=args.trust_checkpoint)
        report = evaluate(loaded)
        columns = list(report["metrics"])
        rows = [
            (f"fold {f}", {n: f"{m[n]:.4f}" for n in columns if n in m})
            for f, m in zip(loaded.folds, report["per_fold"], strict=True)
        ]
        if len(rows) > 1:
            rows.append(("mean ± std", {n: f"{s['mean']:.4f} ± {s['std']:.4f}" for n, s in report["metrics"].items()}))
        table = _format_table(rows, columns)
        if report["ensemble"]:
            table += "\nensemble: " + ", ".join(f"{k} {v:.4f}" for k, v in report["ensemble"].items())
        print(table)
        target = Path(args.checkpoint)
        default_dir = loaded.run_dir or (target if target.is_dir() else target.parent)
        out = Path(args.output) if args.output else default_dir / "test_metrics.json"
        report["checkpoint"] = str(target)
        out.write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"test metrics: {out}", file=sys.stderr)
        return 0
