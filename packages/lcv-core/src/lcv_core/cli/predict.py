"""The ``lcv predict`` command: predict with models rebuilt from checkpoints and write a CSV.

`lcv_core.inference.api` holds the Python API (``predict`` on a fit's result); this module predicts with models
rebuilt from checkpoints, on a feature file or the config's holdout.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lcv_core.cli.checkpoint_models import LoadedModels, load_models
from lcv_core.cli.checkpoint_trust import add_trust_flag
from lcv_core.cli.holdout import HoldoutValidation, holdout_source, per_fold_loaders


def read_features(path: str | Path) -> Any:
    """Read a feature matrix from ``.npy`` or ``.csv`` (header row optional) as a float32 tensor.

    Raises:
        LcvError: The file is missing, of another kind, empty or not numeric.
    """
    import numpy as np
    import torch

    from lcv_config import LcvError

    path = Path(path)
    if not path.is_file():
        raise LcvError(f"--data {path} does not exist; pass a .npy or .csv file of features, one row per sample.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            try:
                [float(v) for v in lines[0].split(",")] if lines else None
                skip = 0
            except ValueError:
                skip = 1  # a header row
            array = np.loadtxt(lines[skip:], delimiter=",", ndmin=2, dtype=np.float64)
        else:
            raise LcvError(f"--data {path}: expected a .npy or .csv file, got '{path.suffix or '(no suffix)'}'.")
    except ValueError as exc:
        raise LcvError(f"--data {path} is not a numeric feature table: {exc}") from exc
    if array.size == 0:
        raise LcvError(f"--data {path} holds no samples.")
    return torch.as_tensor(np.asarray(array, dtype=np.float32))


def _expected_features(model: Any) -> int | None:
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.Linear):
            return int(module.in_features)
    return None


def _feature_loaders(loaded: LoadedModels, x: Any, data: str) -> list[Any]:
    """Batches of user features per model, through each fold's fitted input transforms when the config has any."""
    from lcv_config import LcvError

    expected = _expected_features(loaded.models[0])
    n = int(x.shape[1]) if x.ndim == 2 else None
    if expected is not None and n is not None and n != expected:
        raise LcvError(
            f"--data {data} has {n} features per sample; the model expects {expected} (its first layer's "
            "in_features). Pass the same feature columns the model was trained on."
        )
    per_fold = [x] * len(loaded.models)
    if loaded.config.data.fitted_transforms:
        per_fold = [_fitted_inputs(loaded, fold, x) for fold in loaded.folds]
    return [[(xf[i : i + 256],) for i in range(0, len(xf), 256)] for xf in per_fold]


def _fitted_inputs(loaded: LoadedModels, fold: int, x: Any) -> Any:
    """Apply fold ``fold``'s fitted input transforms, refitted from the config's dataset and split."""
    from lcv_config import LcvError
    from lcv_core.configure import build_datamodule

    cache = loaded.__dict__.setdefault("_fitted", {})
    if "source" not in cache:
        datamodule = build_datamodule(loaded.config)
        source = HoldoutValidation(datamodule) if loaded.single else datamodule
        source.setup("fit")
        cache["source"] = datamodule
    fitted = getattr(cache["source"], "fitted", None)
    if not fitted:
        raise LcvError(
            "The config has data.fitted_transforms, but its datamodule exposes no fitted state ('fitted'), so "
            "--data cannot be transformed as in training. Predict on the config's holdout instead (omit --data)."
        )
    for t in fitted[0 if loaded.single else fold]:
        if getattr(t, "on", "input") != "target":
            x = t.transform(x)
    return x


class PredictCommand:
    """``lcv predict CKPT [--data FILE] [--output FILE] [--ensemble mean|vote] [key=value ...]``.

    Rebuilds the learner from the config embedded in the checkpoint(s), loads the weights and predicts on
    ``--data`` (features as ``.npy`` or ``.csv``; through each fold's fitted transforms, refitted from the
    config's dataset, when the config has ``fitted_transforms``) or, by default, on the config's holdout or
    ``test_dataset``. Writes one CSV row per sample: class probabilities and the predicted label for
    classification, the outputs for regression, and the target when the data has one.
    """

    help = (
        "Predict with a checkpoint alone: a fold_<i>.ckpt, an epoch folder (fold ensemble) or a run directory; "
        "on --data (.npy/.csv features) or the config's holdout; write a CSV of predictions."
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the checkpoint, data, output and ensemble options and config overrides."""
        parser.add_argument("checkpoint", help="a fold_<i>.ckpt, an epoch folder of them, last.ckpt or a run directory")
        parser.add_argument("overrides", nargs="*", help="key=value overrides of the embedded config")
        add_trust_flag(parser)
        parser.add_argument("--data", help="features to predict: .npy or .csv (header optional); default the holdout")
        parser.add_argument("--output", default="predictions.csv", help="CSV to write (default predictions.csv)")
        parser.add_argument("--ensemble", default="mean", choices=["mean", "vote"], help="how folds combine")

    def run(self, args: argparse.Namespace) -> int:
        """Rebuild the models, predict, write the CSV and print a summary."""
        import torch

        from lcv_config import LcvError
        from lcv_core.inference.api import predict
        from lcv_core.inference.ensemble import combine_folds

        loaded = load_models(args.checkpoint, list(args.overrides), trust_checkpoint=args.trust_checkpoint)
        if args.data:
            x = read_features(args.data)
            loaders = _feature_loaders(loaded, x, args.data)
            targets = None
        else:
            source = holdout_source(loaded, "lcv predict without --data")
            loaders = per_fold_loaders(source, loaded.folds, "test")
            targets = _targets(loaders[0])
        pairs = zip(loaded.models, loaders, strict=True)
        try:
            per_fold = [predict([model], loader, ensemble=None).per_fold[0] for model, loader in pairs]
        except RuntimeError as exc:
            raise LcvError(f"The model cannot predict on {args.data or 'the holdout'}: {exc}") from exc
        classification = getattr(loaded.models[0], "task", None) == "classification"
        probs = combine_folds(per_fold, "mean") if len(per_fold) > 1 else per_fold[0].float()
        if probs.ndim == 1:
            probs = probs[:, None]
        header: list[str]
        if classification:
            binary = probs.shape[1] == 1
            probs = torch.cat([1 - probs, probs], dim=1) if binary else probs
            vote = args.ensemble == "vote" and len(per_fold) > 1
            labels = combine_folds(per_fold, "vote") if vote else probs.argmax(dim=1)
            header = [f"prob_{c}" for c in range(probs.shape[1])] + ["label"]
            columns = [*probs.T.tolist(), labels.tolist()]
        else:
            header = ["prediction"] if probs.shape[1] == 1 else [f"prediction_{j}" for j in range(probs.shape[1])]
            columns = probs.T.tolist()
        if targets is not None and len(targets) == len(probs) and targets.ndim == 1:
            header.append("target")
            columns.append(targets.tolist())
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = [",".join(_cell(v) for v in row) for row in zip(*columns, strict=True)]
        out.write_text("\n".join([",".join(header), *rows]) + "\n", encoding="utf-8")
        how = f"fold {loaded.folds[0]}'s model"
        if len(loaded.models) > 1:
            how = f"{len(loaded.models)} fold models, ensemble {args.ensemble}"
        summary = f"predicted {len(probs)} samples with {how} -> {out}"
        if classification and targets is not None and len(targets) == len(probs):
            summary += f"; accuracy against the targets {float((labels == targets).float().mean()):.4f}"
        print(summary)
        return 0


def _cell(value: Any) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _targets(loader: Any) -> Any:
    import torch

    ys = [batch[1] for batch in loader if isinstance(batch, (list, tuple)) and len(batch) == 2]
    return torch.cat([y.cpu() for y in ys]) if ys else None
