"""``compile``: each fold's module compiled with torch.compile, as Lightning's ``Trainer.fit(torch.compile(model))``.

The tests compile with backends that run the captured graphs with torch's own kernels (a counting backend that runs
the FX graph as it is, ``aot_eager``), so compiled and plain fits must agree to float32 rounding: the same ATen ops
run on the same values, and only ``aot_eager``'s decompositions may regroup an op's arithmetic. inductor (generated
C++ kernels, seconds of compile per graph on this machine) is measured in ``benchmarks/compile_cost.py``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

from lcv_config import LcvError, load_config
from lcv_core import CrossValidationTrainer, ModelCheckpoint
from lcv_core.core.lightning_compat import compiled_module_and_arguments
from lcv_core.demos import IndexFolds, TinyClassifier

TOLERANCE = 1e-5
"""Relative tolerance between compiled and plain fits: float32 rounding of a regrouped sum (``aot_eager``)."""


class Graphs:
    """A torch.compile backend that records every graph it is given and runs it unchanged."""

    def __init__(self) -> None:
        self.graphs: list[torch.fx.GraphModule] = []

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        self.graphs.append(gm)
        return gm.forward

    def __deepcopy__(self, memo: dict[int, Any]) -> Graphs:
        return self  # Lightning keeps a deep copy of torch.compile's arguments: let it record here too


class Saved(TinyClassifier):
    """The demo classifier with its hyperparameters saved, so ``load_from_checkpoint`` rebuilds it."""

    def __init__(self, lr: float = 0.1, hidden: int = 16) -> None:
        super().__init__(lr=lr, hidden=hidden)
        self.save_hyperparameters()


def folds() -> IndexFolds:
    return IndexFolds(n_folds=3, n=60)


def fit(compile: Any, **kwargs: Any) -> Any:
    settings = {
        "accelerator": "cpu",
        "max_epochs": 2,
        "seed": 0,
        "enable_progress_bar": False,
        "schedule": "interleaved",
    }
    model = kwargs.pop("model", TinyClassifier)
    return CrossValidationTrainer(**{**settings, **kwargs}, compile=compile).fit(model, folds())


def assert_same_history(a: Any, b: Any) -> None:
    assert len(a.history) == len(b.history)
    for fold_a, fold_b in zip(a.history, b.history, strict=True):
        assert len(fold_a) == len(fold_b)
        for row_a, row_b in zip(fold_a, fold_b, strict=True):
            assert row_a.keys() == row_b.keys()
            for name in row_a:
                assert row_b[name] == pytest.approx(row_a[name], rel=TOLERANCE), name


def assert_plain(module: Any) -> None:
    assert type(module) in (TinyClassifier, Saved, Manual)
    assert not {"forward", "training_step", "validation_step", "log", "log_dict"} & set(vars(module))
    assert not any("_orig_mod" in key for key in module.state_dict())
    pickle.dumps(module)  # a compiled function in the module would not pickle


@pytest.fixture(scope="module")
def plain() -> Any:
    return fit(False)


@pytest.mark.parametrize("schedule", ["interleaved", "sequential", "offload", "parallel"])
def test_every_schedule_compiles_each_fold_and_matches_the_plain_fit(plain: Any, schedule: str) -> None:
    backend = Graphs()
    result = fit({"backend": backend}, schedule=schedule)
    # training_step, validation_step and the short last batch's training_step: graphs shared by every fold
    assert len(backend.graphs) >= 2
    assert_same_history(plain, result)
    for module in result.models:
        assert_plain(module)


def test_aot_eager_compiles_the_backward_too_and_matches(plain: Any) -> None:
    result = fit({"backend": "aot_eager"})
    assert_same_history(plain, result)
    for compiled, reference in zip(result.models, plain.models, strict=True):
        for name, value in reference.state_dict().items():
            torch.testing.assert_close(compiled.state_dict()[name], value, rtol=TOLERANCE, atol=1e-7)


def test_vectorized_falls_back_to_interleaved_and_says_why(plain: Any, capsys: pytest.CaptureFixture[str]) -> None:
    backend = Graphs()
    result = fit({"backend": backend}, schedule="vectorized")
    assert "schedule='vectorized' falls back to 'interleaved': compile is on" in capsys.readouterr().out
    assert backend.graphs
    assert_same_history(plain, result)


def test_auto_runs_interleaved_without_a_probe_and_says_why(plain: Any) -> None:
    backend = Graphs()
    result = fit({"backend": backend}, schedule="auto")
    assert result.schedule == "interleaved"
    assert "compile is on" in (result.schedule_reason or "")
    assert backend.graphs
    assert_same_history(plain, result)  # interleaved's numbers: no probe step touched a fold


class Manual(TinyClassifier):
    """The demo classifier with manual optimization: optimizer calls and backward inside the compiled step."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> None:
        optimizer = self.optimizers()
        loss = torch.nn.functional.cross_entropy(self(batch[0]), batch[1])
        optimizer.zero_grad()  # type: ignore[union-attr]  # one optimizer
        self.manual_backward(loss)
        optimizer.step()  # type: ignore[union-attr]  # one optimizer
        self.log("train_loss", loss)


def test_manual_optimization_compiles_and_matches() -> None:
    backend = Graphs()
    assert_same_history(fit(False, model=Manual), fit({"backend": backend}, model=Manual))
    assert backend.graphs


def test_a_torch_compiled_model_is_compiled_per_fold_with_its_arguments(plain: Any) -> None:
    backend = Graphs()
    model = torch.compile(TinyClassifier(), backend=backend)  # the Lightning tutorial's line
    result = fit(False, model=model)
    assert backend.graphs
    for module in result.models:
        assert_plain(module)
    assert len(result.history) == 3


def test_lightning_records_the_arguments_of_torch_compile() -> None:
    module = TinyClassifier()
    assert compiled_module_and_arguments(torch.compile(module, backend="eager", dynamic=False)) == (
        module,
        {"backend": "eager", "dynamic": False},
    )
    assert compiled_module_and_arguments(module) == (module, None)


def test_checkpoints_of_a_compiled_fit_load_into_the_plain_module_and_resume_exactly(tmp_path: Path) -> None:
    full = fit({"backend": "eager"}, model=Saved, max_epochs=3, default_root_dir=str(tmp_path / "full"))
    run = tmp_path / "resumed"
    fit({"backend": "eager"}, model=Saved, max_epochs=2, default_root_dir=str(run), callbacks=[ModelCheckpoint()])
    for path in sorted((run / "checkpoints").rglob("*.ckpt")):
        state = torch.load(path, weights_only=True)
        keys = state["state_dict"] if "state_dict" in state else state["folds"][0]["model"]
        assert keys and not any("_orig_mod" in key for key in keys), path
    fold_checkpoints = [p for p in (run / "checkpoints").rglob("*.ckpt") if p.name != "last.ckpt"]
    assert fold_checkpoints
    loaded = Saved.load_from_checkpoint(fold_checkpoints[0])
    assert_plain(loaded)
    # the compiled run's last.ckpt continues without compile into the history of an uninterrupted compiled fit
    resumed = CrossValidationTrainer(
        accelerator="cpu", max_epochs=3, seed=0, enable_progress_bar=False, schedule="interleaved"
    ).fit(Saved, folds(), ckpt_path=run / "checkpoints" / "last.ckpt")
    assert_same_history(full, resumed)


@pytest.mark.parametrize(
    ("compile", "message"),
    [
        ({"backend": "indutor"}, "Unknown trainer.compile.backend 'indutor'. Did you mean 'inductor'?"),
        ({"options": {"max_autotun": True}}, "Unknown trainer.compile.options key 'max_autotun' for the inductor"),
        ({"mdoe": "max-autotune"}, "Unknown key 'mdoe' at compile.mdoe. Did you mean 'mode'?"),
        ({"mode": "max-autotun"}, "Did you mean 'max-autotune'?"),
        ({"mode": "default", "options": {"max_autotune": True}}, "torch.compile takes one of them"),
        ("yes", "use true, false or a mapping with some of mode, fullgraph, dynamic, backend, options"),
    ],
)
def test_bad_compile_arguments_are_refused_before_training(compile: Any, message: str) -> None:
    with pytest.raises(LcvError) as err:
        CrossValidationTrainer(accelerator="cpu", compile=compile)
    assert message in str(err.value)


def test_a_config_file_turns_compile_on_and_names_a_misspelt_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("name: compiled\ntrainer:\n  compile: {backend: aot_eager, dynamic: false}\n", encoding="utf-8")
    config = load_config(path)
    trainer = CrossValidationTrainer(config.trainer)
    assert trainer.compile_arguments == {
        "mode": None,
        "fullgraph": False,
        "dynamic": False,
        "backend": "aot_eager",
        "options": None,
    }
    path.write_text("name: compiled\ntrainer:\n  compile: true\n", encoding="utf-8")
    assert CrossValidationTrainer(load_config(path).trainer).compile_arguments == {
        "mode": None,
        "fullgraph": False,
        "dynamic": None,
        "backend": "inductor",
        "options": None,
    }
    path.write_text("name: compiled\ntrainer:\n  compile: {fulgraph: true}\n", encoding="utf-8")
    with pytest.raises(
        LcvError, match=r"Unknown key 'fulgraph' at trainer\.compile\.fulgraph\. Did you mean 'fullgraph'"
    ):
        load_config(path)
