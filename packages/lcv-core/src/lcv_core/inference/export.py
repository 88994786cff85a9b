"""One self-contained predictor for production: fitted input transforms, fold model(s), and the fold ensemble.

`Predictor` is a plain ``nn.Module`` that takes raw feature rows and returns what ``lcv predict`` writes: each
model's input transforms (fitted on that model's training data), the model, its prediction head (class
probabilities for a classification learner), then the mean over models and, for classification, the label (the
argmax of the mean, or the majority vote). `export_predictor` writes it as TorchScript, ONNX or a
``torch.export`` program, none of which needs lcv (or Python, for ONNX) to run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from lcv_config import LcvError

ExportFormat = Literal["torchscript", "onnx", "export"]
FORMATS: dict[str, str] = {"torchscript": ".pt", "onnx": ".onnx", "export": ".pt2"}
"""Each format and the file suffix it is written with."""

Head = Literal["softmax", "sigmoid", "identity"]


class FittedTransform(nn.Module):
    """A fitted transform (an object with ``transform(x)`` on tensors, as lcv-data's) as a module to export."""

    def __init__(self, transform: Callable[[torch.Tensor], torch.Tensor] | Any) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the transformed inputs."""
        apply = getattr(self.transform, "transform", self.transform)
        return torch.as_tensor(apply(x))


class Predictor(nn.Module):
    """Raw features in; the ensemble's probabilities and labels (classification) or outputs (regression) out.

    Args:
        models: The networks, one per fold (or one).
        transforms: Per model, its fitted input transforms in the order they were applied in training.
        head: ``softmax`` (several classes), ``sigmoid`` (one output, binary) or ``identity`` (regression).
        vote: Classification only: the label is the majority vote of the models' labels (ties: the smallest
            label) instead of the argmax of the mean probabilities.
    """

    def __init__(
        self, models: Sequence[nn.Module], transforms: Sequence[Sequence[Any]], head: Head, vote: bool = False
    ) -> None:
        super().__init__()
        if len(models) != len(transforms):
            raise LcvError(f"{len(models)} models but {len(transforms)} transform lists; give one list per model.")
        self.models = nn.ModuleList(models)
        self.transforms = nn.ModuleList(nn.Sequential(*[FittedTransform(t) for t in ts]) for ts in transforms)
        self.head = head
        self.vote = vote

    def forward(self, x: torch.Tensor) -> Any:
        """Return ``(probabilities, labels)`` for classification, else the mean output of the models."""
        outputs = []
        for transform, model in zip(self.transforms, self.models, strict=True):
            out = model(transform(x))
            if self.head == "softmax":
                out = out.softmax(dim=-1)
            elif self.head == "sigmoid":
                out = out.sigmoid()
            outputs.append(out.float())
        stacked = torch.stack(outputs)
        mean = stacked.mean(dim=0)
        if self.head == "identity":
            return mean
        # lcv predict writes one sigmoid output as two columns, P(0) and P(1).
        probs = torch.cat([1 - mean, mean], dim=-1) if self.head == "sigmoid" else mean
        if self.vote and len(outputs) > 1:
            # As combine_folds(..., "vote"): each model's argmax, then the most frequent label (ties: the smallest).
            labels = stacked.argmax(dim=-1)
            counts = nn.functional.one_hot(labels, stacked.shape[-1]).sum(dim=0)
            return probs, counts.argmax(dim=-1)
        return probs, probs.argmax(dim=-1)


def export_predictor(predictor: nn.Module, example: torch.Tensor, fmt: str, path: str | Path) -> Path:
    """Write ``predictor`` to ``path`` as ``torchscript`` (traced), ``onnx`` or ``export`` (``torch.export``).

    The batch dimension stays dynamic: the artifact takes any number of rows. ``example`` (a few rows of raw
    features) is what the predictor is traced with.

    Raises:
        LcvError: An unknown format, ONNX without the ``onnx`` extra, or a model or transform that cannot be
            traced (the message says which step failed).
    """
    if fmt not in FORMATS:
        raise LcvError(f"Unknown export format '{fmt}'; expected one of {', '.join(FORMATS)}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    predictor = predictor.eval()
    example = example[: max(2, min(len(example), 8))]
    batch = torch.export.Dim("batch", min=1)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch.as_tensor of a traced tensor returns that tensor; the tracer warns about constants all the same.
            warnings.filterwarnings("ignore", "torch.as_tensor results are registered as constants", Warning)
            if fmt == "torchscript":
                traced = torch.jit.trace(predictor, (example,), check_trace=False)  # type: ignore[no-untyped-call]
                torch.jit.save(traced, str(path))
            elif fmt == "export":
                program = torch.export.export(predictor, (example,), dynamic_shapes={"x": {0: batch}})
                torch.export.save(program, str(path))
            else:
                _export_onnx(predictor, example, path, batch)
    except LcvError:
        raise
    except Exception as exc:
        raise LcvError(
            f"Exporting as {fmt} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "The fold models and the fitted transforms must be traceable (tensor operations only); "
            "try another --format."
        ) from exc
    return path


def _export_onnx(predictor: nn.Module, example: torch.Tensor, path: Path, batch: Any) -> None:
    try:
        # torch.onnx needs both to write the file; they come with the onnx extra, which may not be installed.
        import onnx  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
        import onnxscript  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError as exc:
        raise LcvError("--format onnx needs the onnx and onnxscript packages: pip install 'lcv-core[onnx]'.") from exc
    out = predictor(example)
    names = ["probabilities", "labels"] if isinstance(out, tuple) else ["outputs"]
    torch.onnx.export(
        predictor,
        (example,),
        str(path),
        input_names=["x"],
        output_names=names,
        dynamic_shapes={"x": {0: batch}},
        dynamo=True,
        external_data=False,
    )


def load_artifact(path: str | Path) -> Callable[[torch.Tensor], Any]:
    """Load an exported predictor as a callable on a float32 feature tensor (TorchScript, ``torch.export``, ONNX).

    ONNX files run with onnxruntime (``pip install 'lcv-core[onnx]'``); outputs come back as tensors.
    """
    path = Path(path)
    if path.suffix == ".pt":
        return torch.jit.load(str(path))  # type: ignore[no-untyped-call, no-any-return]  # a ScriptModule
    if path.suffix == ".pt2":
        return torch.export.load(str(path)).module()
    if path.suffix == ".onnx":
        try:
            import onnxruntime  # type: ignore[import-untyped, import-not-found, unused-ignore]  # an optional extra
        except ImportError as exc:
            raise LcvError("Running an ONNX artifact needs onnxruntime: pip install 'lcv-core[onnx]'.") from exc
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def run(x: torch.Tensor) -> Any:
            outs = [torch.as_tensor(o) for o in session.run(None, {"x": x.detach().cpu().numpy()})]
            return tuple(outs) if len(outs) > 1 else outs[0]

        return run
    raise LcvError(f"{path}: expected an exported predictor (.pt, .pt2 or .onnx), got '{path.suffix}'.")


__all__ = ["FORMATS", "ExportFormat", "FittedTransform", "Predictor", "export_predictor", "load_artifact"]
