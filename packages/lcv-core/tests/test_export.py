"""Fold models export as Lightning's do, and the production predictor combines folds as lcv predict does."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from lcv_config import LcvError
from lcv_core import CrossValidationTrainer
from lcv_core.demos import IndexFolds, TinyClassifier
from lcv_core.inference.ensemble import combine_folds
from lcv_core.inference.export import Predictor, export_predictor, load_artifact

HAS_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript", "onnxruntime"))


@pytest.fixture(scope="module")
def fold_model() -> Any:
    result = CrossValidationTrainer(max_epochs=1, accelerator="cpu", seed=0, enable_progress_bar=False).fit(
        TinyClassifier, IndexFolds(n_folds=2)
    )
    return result.models[0].eval()


def test_a_fold_model_scripts_as_lightning_does(fold_model: Any, tmp_path: Path) -> None:
    """``to_torchscript`` and ``torch.jit.script`` on ``result.models[0]`` (IndexError before the per-fold view)."""
    x = torch.randn(5, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in torch and Lightning
        scripted = fold_model.to_torchscript(file_path=tmp_path / "fold0.pt")
        assert torch.allclose(torch.jit.load(str(tmp_path / "fold0.pt"))(x), fold_model(x))
        assert torch.allclose(scripted(x), fold_model(x))
        assert torch.allclose(torch.jit.script(fold_model)(x), fold_model(x))


def test_a_fold_model_goes_through_torch_export(fold_model: Any) -> None:
    x = torch.randn(5, 8)
    program = torch.export.export(fold_model, (x,))
    assert torch.allclose(program.module()(x), fold_model(x))


@pytest.mark.skipif(not HAS_ONNX, reason="needs the onnx extra: pip install 'lcv-core[onnx]'")
def test_a_fold_model_exports_to_onnx(fold_model: Any, tmp_path: Path) -> None:
    import onnxruntime

    x = torch.randn(5, 8)
    fold_model.to_onnx(tmp_path / "fold0.onnx", x, input_names=["x"], dynamo=True)
    session = onnxruntime.InferenceSession(str(tmp_path / "fold0.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": x.numpy()})
    assert torch.allclose(torch.as_tensor(out), fold_model(x), atol=1e-6)


class AddOne:
    """A fitted transform as lcv-data's: ``transform(x)`` on tensors."""

    def __init__(self, shift: float) -> None:
        self.shift = torch.full((8,), shift)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift


def _nets(n: int, out: int = 3) -> list[nn.Module]:
    torch.manual_seed(0)
    return [nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, out)) for _ in range(n)]


def test_the_predictor_is_the_mean_of_each_models_transformed_probabilities() -> None:
    nets, x = _nets(3), torch.randn(10, 8)
    shifts = [[AddOne(0.5)], [AddOne(-1.0)], []]
    probs, labels = Predictor(nets, shifts, "softmax").eval()(x)
    per_fold = [nets[0](x + 0.5).softmax(-1), nets[1](x - 1.0).softmax(-1), nets[2](x).softmax(-1)]
    assert torch.allclose(probs, combine_folds(per_fold, "mean"))
    assert torch.equal(labels, probs.argmax(-1))
    _, votes = Predictor(nets, shifts, "softmax", vote=True).eval()(x)
    assert torch.equal(votes, combine_folds(per_fold, "vote"))


def test_one_sigmoid_output_gives_two_columns_and_regression_the_mean() -> None:
    nets, x = _nets(2, out=1), torch.randn(6, 8)
    probs, labels = Predictor(nets, [[], []], "sigmoid")(x)
    p1 = (nets[0](x).sigmoid() + nets[1](x).sigmoid()) / 2
    assert torch.allclose(probs, torch.cat([1 - p1, p1], dim=1)) and torch.equal(labels, (p1[:, 0] > 0.5).long())
    assert torch.allclose(Predictor(nets, [[], []], "identity")(x), (nets[0](x) + nets[1](x)) / 2)


@pytest.mark.parametrize("fmt", ["torchscript", "export"])
def test_exported_predictors_take_any_batch_size(tmp_path: Path, fmt: str) -> None:
    predictor = Predictor(_nets(2), [[AddOne(1.0)], [AddOne(2.0)]], "softmax").eval()
    path = export_predictor(predictor, torch.randn(4, 8), fmt, tmp_path / f"p.{fmt}")
    run = load_artifact(path.rename(path.with_suffix({"torchscript": ".pt", "export": ".pt2"}[fmt])))
    for n in (1, 33):
        x = torch.randn(n, 8)
        with torch.no_grad():
            (probs, labels), (ref_probs, ref_labels) = run(x), predictor(x)
        assert torch.allclose(probs, ref_probs, atol=1e-6) and torch.equal(labels, ref_labels)


def test_an_unknown_format_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(LcvError, match="torchscript, onnx, export"):
        export_predictor(Predictor(_nets(1), [[]], "identity"), torch.randn(2, 8), "tflite", tmp_path / "p")
