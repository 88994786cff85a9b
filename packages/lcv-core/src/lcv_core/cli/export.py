"""The ``lcv export`` command: one self-contained file for production, from a run's checkpoints.

What goes to production after cross-validation is either the fold ensemble (every fold model, averaged or voted)
or one model trained on all the data outside the holdout (the run of ``lcv fit``, the refit model); either needs
the input transforms fitted on its own training data. The artifact holds both and computes what ``lcv predict``
writes for the same features.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lcv_core.cli.checkpoint_models import LoadedModels, load_models
from lcv_core.cli.holdout import HoldoutValidation

EXPORT_NOTE = "the same outputs as `lcv predict RUN --data FEATURES` (probabilities and label, or predictions)"


def _parse_what(what: str, loaded: LoadedModels, run: str) -> list[int]:
    """Indices into ``loaded.models`` that ``--what`` selects.

    Raises:
        LcvError: ``fold=K`` names no fold of the run, or ``refit``/``ensemble`` does not match the run's kind.
    """
    from lcv_config import LcvError

    if what == "ensemble":
        if loaded.single:
            raise LcvError(
                f"{run} is an `lcv fit` run: it holds one model trained outside the holdout, not a fold ensemble. "
                "Export it with --what refit."
            )
        return list(range(len(loaded.models)))
    if what == "refit":
        if not loaded.single:
            raise LcvError(
                f"{run} is a cross-validation run; --what refit exports the model of an `lcv fit` run (one model "
                "trained on all the data outside the holdout): run `lcv fit CONFIG` and export that run, or export "
                "this one with --what ensemble or --what fold=K."
            )
        return [0]
    if what.startswith("fold="):
        k = what.removeprefix("fold=")
        if k.isdigit() and int(k) in loaded.folds:
            return [loaded.folds.index(int(k))]
        raise LcvError(f"--what {what}: {run} has folds {', '.join(map(str, loaded.folds))}; pick one as fold=K.")
    raise LcvError(f"--what {what!r}: expected ensemble, refit or fold=K (K a fold index).")


def _fitted_transforms(loaded: LoadedModels, folds: list[int]) -> list[list[Any]]:
    """Each selected fold's fitted input transforms: the run's ``transforms.json``, else refitted as ``lcv predict``.

    Refitting from the config's dataset and split gives the very state the run fitted (the split is seeded).
    """
    if not loaded.config.data.fitted_transforms:
        return [[] for _ in folds]
    from lcv_config import LcvError
    from lcv_core.configure import build_datamodule

    datamodule = build_datamodule(loaded.config)
    saved = loaded.run_dir / "transforms.json" if loaded.run_dir is not None else None
    if not loaded.single and saved is not None and saved.is_file() and hasattr(datamodule, "load_transforms"):
        datamodule.load_transforms(saved)
    else:
        source = HoldoutValidation(datamodule) if loaded.single else datamodule
        source.setup("fit")
    fitted = getattr(datamodule, "fitted", None)
    if not fitted:
        raise LcvError(
            "The config has data.fitted_transforms, but its datamodule exposes no fitted state ('fitted'), so the "
            "artifact cannot apply them; export from a run of lcv-data's datamodule."
        )
    return [[t for t in fitted[0 if loaded.single else f] if getattr(t, "on", "input") != "target"] for f in folds]


def _network_and_head(model: Any) -> tuple[Any, str]:
    """The network to export and its prediction head, as the learner's ``predict_step`` applies it."""
    from lcv_core.learners.supervised import SupervisedLearner

    if isinstance(model, SupervisedLearner):
        if model.task != "classification":
            return model.model, "identity"
        return model.model, "classification"
    return model, "identity"


def _example(loaded: LoadedModels, data: str | None) -> Any:
    """A few rows of raw features to trace the predictor with: ``--example``, else zeros of the first layer's width."""
    import torch
    from torch import nn

    from lcv_config import LcvError
    from lcv_core.cli.predict import read_features

    if data:
        return read_features(data)[:8]
    for module in loaded.models[0].modules():
        if isinstance(module, nn.Linear):
            return torch.zeros(4, module.in_features)
    raise LcvError(
        "The model has no nn.Linear layer to read its input width from; pass --example FILE (.npy or .csv with a "
        "few rows of features) to trace the artifact with."
    )


class ExportCommand:
    """``lcv export RUN [--what ensemble|refit|fold=K] [--format torchscript|onnx|export] [--output FILE]``.

    Rebuilds the run's models from its checkpoints (each fold at its best epoch, as ``lcv predict``), puts each
    fold's fitted input transforms in front of its model and the fold ensemble (mean, or ``--ensemble vote``)
    behind them, and writes one file: TorchScript (``torch.jit.load``), ONNX (onnxruntime; ``pip install
    'lcv-core[onnx]'``) or a ``torch.export`` program (``torch.export.load(path).module()``). The artifact takes raw
    feature rows (float32, any batch size) and returns ``(probabilities, labels)`` for a classification learner or
    the predictions for regression: the same outputs as ``lcv predict RUN --data FEATURES``.
    """

    help = (
        "Export a run's fold ensemble, its refit model (an `lcv fit` run) or one fold as one self-contained "
        "TorchScript, ONNX or torch.export file that applies the fitted input transforms, as `lcv predict` does."
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the run, what to export, the format, the output file and the ensemble method."""
        from lcv_core.inference.export import FORMATS

        parser.add_argument("checkpoint", help="a run directory, an epoch folder of fold_<i>.ckpt files or last.ckpt")
        parser.add_argument("overrides", nargs="*", help="key=value overrides of the embedded config")
        parser.add_argument(
            "--what",
            default="ensemble",
            help="ensemble (every fold model, default), refit (the model of an `lcv fit` run) or fold=K",
        )
        parser.add_argument("--format", default="torchscript", choices=list(FORMATS), help="the artifact's format")
        parser.add_argument("--output", help="file to write (default <run>/export/<what>.<pt|onnx|pt2>)")
        parser.add_argument(
            "--ensemble", default="mean", choices=["mean", "vote"], help="how the folds' labels combine"
        )
        parser.add_argument("--example", help="a few rows of features (.npy/.csv) to trace with; default zeros")

    def run(self, args: argparse.Namespace) -> int:
        """Rebuild the models, build the predictor, write the artifact and a JSON note beside it."""
        import torch

        from lcv_core.inference.export import FORMATS, Predictor, export_predictor

        loaded = load_models(args.checkpoint, list(args.overrides))
        picked = _parse_what(args.what, loaded, args.checkpoint)
        folds = [loaded.folds[i] for i in picked]
        networks, heads = zip(*(_network_and_head(loaded.models[i]) for i in picked), strict=True)
        example = _example(loaded, args.example)
        transforms = _fitted_transforms(loaded, folds)
        head = "identity"
        if heads[0] == "classification":
            # As predict_step: softmax over several class scores, sigmoid for one output.
            with torch.no_grad():
                width = Predictor(networks[:1], transforms[:1], "identity").eval()(example[:2]).shape[-1]
            head = "softmax" if width > 1 else "sigmoid"
        predictor = Predictor(list(networks), transforms, head, vote=args.ensemble == "vote")  # type: ignore[arg-type]
        run_dir = loaded.run_dir or Path(args.checkpoint)
        name = args.what.replace("=", "_")
        out_path = Path(args.output) if args.output else run_dir / "export" / f"{name}{FORMATS[args.format]}"
        export_predictor(predictor, example, args.format, out_path)
        note = {
            "what": args.what,
            "format": args.format,
            "folds": folds,
            "ensemble": args.ensemble if len(folds) > 1 else None,
            "inputs": {"x": f"float32 (batch, {int(example.shape[1])}) raw features, before any transform"},
            "outputs": ["probabilities", "labels"] if head != "identity" else ["predictions"],
            "fitted_transforms": [[type(t).__name__ for t in ts] for ts in transforms],
            "reproduces": EXPORT_NOTE,
        }
        out_path.with_suffix(out_path.suffix + ".json").write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
        kind = f"{len(folds)} fold models ({args.ensemble})" if len(folds) > 1 else f"fold {folds[0]}'s model"
        if loaded.single:
            kind = "the refit model"
        print(f"exported {kind} with its fitted input transforms as {args.format} -> {out_path}")
        return 0
