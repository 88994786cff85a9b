"""The conformance suites of every plugin kind pass a correct toy plugin and fail deliberately broken ones.

lcv-config's tests run without torch: the toy networks and learners below use a scalar "tensor" with just the
members the suites call (``tolist``, ``sum``, ``backward``, ``ndim``, ``grad``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from lcv_config.testing import (
    CallbackContract,
    CommandContract,
    DataModuleContract,
    DatasetContract,
    FittedTransformContract,
    LearnerContract,
    LoggerContract,
    ModelContract,
    TransformContract,
    assert_close,
)


def run_all(instance: Any, tmp_path: Path) -> None:
    """Run every ``test_*`` method of a contract instance (a folder each for those that take ``tmp_path``)."""
    for name in sorted(n for n in dir(type(instance)) if n.startswith("test_")):
        method = getattr(instance, name)
        if "tmp_path" in method.__code__.co_varnames[: method.__code__.co_argcount]:
            folder = tmp_path / name
            folder.mkdir(parents=True)
            method(folder)
        else:
            method()


def _method(make: Callable[..., Any]) -> Callable[..., Any]:
    return lambda self, *args, **kwargs: make(*args, **kwargs)


def contract(base: type, **methods: Any) -> Any:
    """Return an instance of ``base`` whose ``make_*`` methods return what ``methods`` give."""
    return type(f"Contract_{base.__name__}", (base,), {n: _method(m) for n, m in methods.items()})()


def fails(instance: Any, test: str, message: str, tmp_path: Path | None = None) -> None:
    method = getattr(instance, test)
    with pytest.raises(AssertionError, match=message):
        method(tmp_path) if tmp_path is not None else method()


# --- plain transforms ------------------------------------------------------------------------------------------


class Double:
    def __call__(self, x: list[float]) -> list[float]:
        return [2 * v for v in x]


class InPlaceDouble:
    def __call__(self, x: list[float]) -> list[float]:
        x[:] = [2 * v for v in x]
        return x


class Counter:
    """Broken: its output depends on how often it was called."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: list[float]) -> list[float]:
        self.calls += 1
        return [v + self.calls for v in x]


class Unpicklable(Double):
    def __init__(self) -> None:
        self.hook = lambda v: v


def plain_transform(make: Callable[[], Any]) -> Any:
    return contract(TransformContract, make_transform=make, make_input=lambda: [1.0, 2.0, 3.0])


def test_transform_contract(tmp_path: Path) -> None:
    run_all(plain_transform(Double), tmp_path)
    fails(plain_transform(InPlaceDouble), "test_leaves_its_input_unchanged", "modified in place")
    fails(plain_transform(Counter), "test_same_input_same_output", "two calls on the same sample")
    fails(plain_transform(Unpicklable), "test_can_be_pickled", "Unpicklable cannot be pickled")
    fails(plain_transform(lambda: 3), "test_is_a_transform", "int is not callable")


# --- fitted transforms -----------------------------------------------------------------------------------------


class Center:
    """A correct fitted transform over lists of rows: subtract the training mean per column."""

    def __init__(self) -> None:
        self.mean: list[float] | None = None

    def fit(self, data: list[list[float]]) -> Center:
        self.mean = [sum(col) / len(col) for col in zip(*data, strict=True)]
        return self

    def transform(self, x: list[list[float]]) -> list[list[float]]:
        assert self.mean is not None
        return [[v - m for v, m in zip(row, self.mean, strict=True)] for row in x]

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = list(state["mean"])


class NoState:
    """Broken: the documented-before-#22 shape, fit and transform only."""

    fit = Center.fit
    transform = Center.transform


class BatchCenter(Center):
    """Broken: centres each batch on its own mean (a leak of validation statistics, and batch-dependent)."""

    def transform(self, x: list[list[float]]) -> list[list[float]]:
        return Center().fit(x).transform(x)


class RefitOnTransform(Center):
    def transform(self, x: list[list[float]]) -> list[list[float]]:
        self.fit(x)
        return super().transform(x)


class SharedMean(Center):
    """Broken: keeps its state in a list shared by every copy."""

    shared: ClassVar[list[float]] = []

    def fit(self, data: list[list[float]]) -> SharedMean:
        SharedMean.shared[:] = [sum(col) / len(col) for col in zip(*data, strict=True)]
        self.mean = SharedMean.shared
        return self


class TupleState(Center):
    def state_dict(self) -> dict[str, Any]:
        return {"mean": {tuple(self.mean or ())}}


class Dropper(Center):
    def transform(self, x: list[list[float]]) -> list[list[float]]:
        return super().transform(x)[1:]


class Sideways(Center):
    on = "both"


DATA = [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [6.0, 60.0]]
OTHER = [[v * 3 + 1 for v in row] for row in DATA]


def fitted(make: Callable[[], Any]) -> Any:
    return contract(
        FittedTransformContract,
        make_transform=make,
        make_data=lambda: [list(r) for r in DATA],
        make_other_data=lambda: [list(r) for r in OTHER],
    )


def test_fitted_transform_contract(tmp_path: Path) -> None:
    run_all(fitted(Center), tmp_path)
    fails(fitted(NoState), "test_is_a_fitted_transform", r"lacks \['state_dict', 'load_state_dict'\]")
    fails(fitted(BatchCenter), "test_a_sample_does_not_depend_on_its_batch", "sample 0 alone vs in its batch")
    fails(fitted(RefitOnTransform), "test_transform_does_not_refit", "the state after transforming validation data")
    fails(fitted(SharedMean), "test_each_copy_fits_its_own_state", "fold 0's output after fold 1 was fitted")
    fails(fitted(TupleState), "test_state_survives_json_and_a_fresh_copy", "not JSON-serialisable")
    fails(fitted(Dropper), "test_keeps_the_batch_dimension", "a batch of 4 samples became 3")
    fails(fitted(Sideways), "test_is_a_fitted_transform", "'on' is 'both'")


# --- datamodules and datasets ----------------------------------------------------------------------------------

SAMPLES = [float(i) for i in range(30)]


class ListFolds:
    """A fold data source over a list: contiguous validation blocks, batches of 4."""

    def __init__(self, samples: list[float], n_folds: int = 3) -> None:
        self.samples = samples
        n = len(samples)
        bounds = [n * k // n_folds for k in range(n_folds + 1)]
        self.folds: list[Any] = [
            ([i for i in range(n) if not bounds[k] <= i < bounds[k + 1]], list(range(bounds[k], bounds[k + 1])))
            for k in range(n_folds)
        ]

    def _batches(self, indices: list[int]) -> list[list[float]]:
        values = [self.samples[i] for i in indices]
        return [values[i : i + 4] for i in range(0, len(values), 4)]

    def train_val_dataloaders(self) -> list[tuple[list[list[float]], list[list[float]]]]:
        return [(self._batches(train), self._batches(val)) for train, val in self.folds]


class SavingFolds(ListFolds):
    """A correct datamodule: folds computed in setup, saved and loaded as JSON."""

    def __init__(self, samples: list[float], n_folds: int = 3) -> None:
        super().__init__(samples, n_folds)
        self.setups = 0

    @classmethod
    def from_config(cls, config: Any, seed: int = 0) -> SavingFolds:
        return cls(SAMPLES, n_folds=int(config.splitter.cfg.get("n_splits", 3)))

    def setup(self, stage: str | None = None) -> None:
        self.setups += 1

    def save_folds(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.folds), encoding="utf-8")

    def load_folds(self, path: Path) -> None:
        self.folds = [tuple(f) for f in json.loads(Path(path).read_text(encoding="utf-8"))]


class ForgetfulLoad(SavingFolds):
    def load_folds(self, path: Path) -> None:
        pass  # keeps its own (here: differently seeded) folds


class ReshufflingSetup(SavingFolds):
    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        self.folds = self.folds[1:] + self.folds[:1]


class LeakyFolds(SavingFolds):
    def setup(self, stage: str | None = None) -> None:
        self.folds = [([*tr, va[0]], va) for tr, va in self.folds]


class MisconfiguredFromConfig(SavingFolds):
    @classmethod
    def from_config(cls, config: Any, seed: int = 0) -> Any:
        return [SAMPLES]


def datamodule(cls: type[SavingFolds], fresh: Callable[[], Any] | None = None) -> Any:
    made: list[int] = []

    def make() -> Any:
        made.append(1)
        source = cls(SAMPLES)
        if len(made) > 1 and fresh is not None:
            source = fresh()
        return source

    instance = contract(DataModuleContract, make_source=make, make_config=lambda: {"splitter": {"name": "kfold"}})
    type(instance).datamodule_class = cls
    return instance


def test_datamodule_contract(tmp_path: Path) -> None:
    run_all(datamodule(SavingFolds), tmp_path)
    fails(
        datamodule(ForgetfulLoad, fresh=lambda: ForgetfulLoad(SAMPLES, n_folds=5)),
        "test_saved_folds_load_into_a_fresh_datamodule",
        "folds loaded from save_folds",
        tmp_path,
    )
    fails(datamodule(ReshufflingSetup), "test_setup_twice_keeps_the_folds", "folds after a second setup")
    fails(datamodule(LeakyFolds), "test_folds_match_the_loaders", "in train and validation")
    fails(datamodule(MisconfiguredFromConfig), "test_from_config_builds_a_fold_data_source", "returned list")


class Pairs:
    def __init__(self, n: int = 5) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[list[float], int]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return [float(i)], i % 2


class Ragged(Pairs):
    def __getitem__(self, i: int) -> Any:
        x, y = super().__getitem__(i)
        return (x, y) if i == 0 else (x, y, "extra")


class Bare(Pairs):
    def __getitem__(self, i: int) -> Any:
        return float(i)


def test_dataset_contract(tmp_path: Path) -> None:
    run_all(contract(DatasetContract, make_dataset=Pairs), tmp_path)
    fails(contract(DatasetContract, make_dataset=lambda: Pairs(1)), "test_has_samples", "1 sample")
    fails(
        contract(DatasetContract, make_dataset=Ragged), "test_every_index_reads_the_same_twice", "differ in structure"
    )
    fails(contract(DatasetContract, make_dataset=Bare), "test_every_index_reads_the_same_twice", "use a tuple or dict")


# --- networks and learners (a torch-free stand-in for tensors and modules) ----------------------------------


class Param:
    def __init__(self, value: float) -> None:
        self.value, self.grad, self.requires_grad = value, None, True


class Scalar:
    """A 0-d "tensor": the sum of ``value * param`` terms; ``backward`` sets each param's grad."""

    ndim = 0

    def __init__(self, terms: list[tuple[float, Param | None]]) -> None:
        self.terms = terms

    def backward(self) -> None:
        for coefficient, param in self.terms:
            if param is not None:
                param.grad = (param.grad or 0.0) + coefficient

    def tolist(self) -> float:
        return sum(c * (p.value if p else 1.0) for c, p in self.terms)


class Vector:
    """A 1-d batch of outputs ``x_i * w + b``."""

    def __init__(self, xs: list[float], w: Param | None, b: Param | None) -> None:
        self.xs, self.w, self.b = xs, w, b

    def __len__(self) -> int:
        return len(self.xs)

    def float(self) -> Vector:
        return self

    def sum(self) -> Scalar:
        return Scalar([(sum(self.xs), self.w), (float(len(self.xs)), self.b)])

    def tolist(self) -> list[float]:
        w = self.w.value if self.w else 1.0
        b = self.b.value if self.b else 0.0
        return [x * w + b for x in self.xs]


SEED = iter(range(1, 10_000))


class Linear:
    """A correct toy network: one weight and one bias, fresh per instance."""

    def __init__(self) -> None:
        self.w, self.b = Param(0.5 + next(SEED) / 100), Param(0.1)

    def parameters(self) -> Iterator[Param]:
        return iter([self.w, self.b])

    def __call__(self, xs: list[float]) -> Vector:
        return Vector(xs, self.w, self.b)

    def eval(self) -> Linear:
        return self

    def train(self) -> Linear:
        return self

    def state_dict(self) -> dict[str, float]:
        return {"w": self.w.value, "b": self.b.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.w.value, self.b.value = state["w"], state["b"]


SHARED = Param(1.0)


class SharedWeight(Linear):
    def __init__(self) -> None:
        super().__init__()
        self.w = SHARED


class Detached(Linear):
    def __call__(self, xs: list[float]) -> Vector:
        return Vector(xs, None, None)


class Summing(Linear):
    def __call__(self, xs: list[float]) -> Vector:
        return Vector([sum(xs)], self.w, self.b)


class ForgetsState(Linear):
    def load_state_dict(self, state: dict[str, float]) -> None:
        pass


class Frozen(Linear):
    def __init__(self) -> None:
        super().__init__()
        self.w.requires_grad = self.b.requires_grad = False


def model(cls: type[Linear]) -> Any:
    return contract(ModelContract, make_model=cls, make_input=lambda: [1.0, 2.0, 3.0])


def test_model_contract(tmp_path: Path) -> None:
    run_all(model(Linear), tmp_path)
    fails(model(SharedWeight), "test_each_fold_gets_its_own_parameters", "1 parameter")
    fails(model(Detached), "test_output_keeps_the_batch_and_carries_gradients", "no parameter got a gradient")
    fails(model(Summing), "test_output_keeps_the_batch_and_carries_gradients", "a batch of 3 gave 1 outputs")
    fails(model(ForgetsState), "test_state_dict_round_trip", "output after load_state_dict")
    fails(model(Frozen), "test_has_trainable_parameters", "no parameter requires grad")


class Learner(Linear):
    """A correct toy learner: a squared-error-like loss over the network's output."""

    def training_step(self, batch: list[float], batch_idx: int) -> Any:
        return self(batch).sum()

    def validation_step(self, batch: list[float], batch_idx: int) -> dict[str, Any]:
        return {"val_loss": self(batch).sum().tolist()}

    def configure_optimizers(self) -> Any:
        return ("sgd", list(self.parameters()))


class StepReturnsBatchLosses(Learner):
    def training_step(self, batch: list[float], batch_idx: int) -> Any:
        return self(batch)


class SkipsEveryBatch(Learner):
    def training_step(self, batch: list[float], batch_idx: int) -> Any:
        return None


class NoOptimizer(Learner):
    def configure_optimizers(self) -> Any:
        return None


class ModuleBuiltOnce(Learner):
    net = Linear()

    def __init__(self) -> None:
        self.w, self.b = self.net.w, self.net.b


def learner(cls: type[Learner]) -> Any:
    return contract(LearnerContract, make_learner=cls, make_batch=lambda: [1.0, 2.0])


def test_learner_contract(tmp_path: Path) -> None:
    run_all(learner(Learner), tmp_path)
    fails(learner(StepReturnsBatchLosses), "test_training_step_returns_a_loss_that_trains", "not a scalar")
    fails(learner(SkipsEveryBatch), "test_training_step_returns_a_loss_that_trains", "returned None")
    fails(learner(NoOptimizer), "test_configure_optimizers_returns_an_optimizer", "returned None")
    fails(learner(ModuleBuiltOnce), "test_each_fold_gets_its_own_parameters", "2 parameter")
    with pytest.raises(AttributeError):  # no validation_step at all
        contract(LearnerContract, make_learner=Linear, make_batch=lambda: [1.0]).test_validation_step_runs()


# --- callbacks -------------------------------------------------------------------------------------------------


class Hooks:
    """Stands in for lcv_core.Callback: hook names and their keyword payloads."""

    def on_train_start(self, *, trainer: Any, **kwargs: Any) -> None: ...

    def on_validation_end(self, *, trainer: Any, epoch: int, metrics: dict[str, float], **kwargs: Any) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


class BestSoFar:
    """A correct callback: remembers the best fold-mean loss."""

    def __init__(self) -> None:
        self.best: float | None = None

    def on_validation_end(self, metrics: dict[str, float]) -> None:
        value = metrics["cv/val_loss_mean"]
        self.best = value if self.best is None else min(self.best, value)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "history": [1.0, 2.0]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]


class Misspelt(BestSoFar):
    def on_validation_ends(self, metrics: dict[str, float]) -> None: ...


class PositionalHook(BestSoFar):
    def on_train_start(self, trainer: Any, /) -> None: ...


class WantsUnknownPayload(BestSoFar):
    def on_validation_end(self, metrics: dict[str, float], fold_scores: list[float]) -> None: ...


class PicklesItself(BestSoFar):
    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "me": self}


class LosesState(BestSoFar):
    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def callback(cls: type[BestSoFar]) -> Any:
    made: list[BestSoFar] = []

    def make() -> BestSoFar:  # the first callback has seen an epoch, later ones are fresh
        cb = cls()
        if not made:
            cb.best = 0.25
        made.append(cb)
        return cb

    instance = contract(CallbackContract, make_callback=make)
    type(instance).hooks_from = Hooks
    return instance


def test_callback_contract(tmp_path: Path) -> None:
    run_all(callback(BestSoFar), tmp_path)
    fails(
        callback(Misspelt),
        "test_every_hook_is_one_lcv_calls",
        r"'on_validation_ends': Did you mean 'on_validation_end'",
    )
    fails(callback(PositionalHook), "test_hooks_take_keyword_payloads", "'trainer' is positional-only")
    fails(callback(WantsUnknownPayload), "test_hooks_take_keyword_payloads", "requires 'fold_scores'")
    fails(callback(PicklesItself), "test_state_round_trip", r"state\['me'\]: .*PicklesItself")
    fails(callback(LosesState), "test_state_round_trip", "state after load_state_dict")


# --- loggers ---------------------------------------------------------------------------------------------------


class JsonLinesLogger:
    """A correct logger: one JSON line per call under ``root_dir``."""

    def __init__(self, root_dir: str | Path) -> None:
        self.path = Path(root_dir) / "metrics.jsonl"

    def _write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def log_hyperparams(self, params: Any) -> None:
        self._write({"hparams": params})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._write({"step": step, **metrics})

    def finalize(self, status: str) -> None:
        self._write({"status": status})


class CwdLogger(JsonLinesLogger):
    def __init__(self, root_dir: str | Path) -> None:
        self.path = Path("metrics.jsonl")


class NoSlashes(JsonLinesLogger):
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        bad = [k for k in metrics if "/" in k]
        if bad:
            raise ValueError(f"invalid metric names {bad}")


class NoFinalize:
    def __init__(self, root_dir: str | Path) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...

    def log_hyperparams(self, params: Any) -> None:
        raise NotImplementedError  # tolerated, as lcv does


def logger(cls: Any) -> Any:
    return contract(LoggerContract, make_logger=cls)


def test_logger_contract(tmp_path: Path) -> None:
    for name in "abc":
        (tmp_path / name).mkdir()
    run_all(logger(JsonLinesLogger), tmp_path)
    fails(logger(CwdLogger), "test_takes_a_whole_run_and_writes_only_under_its_folder", "metrics.jsonl", tmp_path / "a")
    with pytest.raises(ValueError, match="invalid metric names"):
        logger(NoSlashes).test_takes_a_whole_run_and_writes_only_under_its_folder(tmp_path / "b")
    fails(logger(NoFinalize), "test_is_a_logger", r"lacks \['finalize'\]", tmp_path / "c")


# --- commands --------------------------------------------------------------------------------------------------


class Greet:
    help = "Print a greeting."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("who")
        parser.add_argument("--loud", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        print(("HELLO " if args.loud else "hello ") + args.who)
        return 0


class ClashingOption(Greet):
    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-v", "--version", action="store_true")


class ReturnsNothing(Greet):
    def run(self, args: argparse.Namespace) -> Any:
        print("done")


class TwoLineHelp(Greet):
    help = "Print a greeting.\nAnd more."


def command(cls: Any, argv: list[str] | None = None, target: str | None = None) -> Any:
    instance = contract(CommandContract, make_command=cls)
    type(instance).argv, type(instance).target = argv, target
    return instance


def test_command_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_all(command(Greet, ["world", "--loud"], "argparse:ArgumentParser"), tmp_path)
    assert "HELLO world" in capsys.readouterr().out
    fails(command(ClashingOption), "test_its_options_fit_lcvs_parser", "clashes with lcv's own options")
    fails(command(ReturnsNothing, ["x"]), "test_runs_and_returns_an_exit_code", "run returned None")
    fails(command(TwoLineHelp), "test_is_a_command_with_a_one_line_help", "help must be one line")
    fails(command(Greet, target="test_conformance_heavy:Command"), "test_importing_it_imports_no_torch", "imports")


@pytest.fixture(autouse=True)
def heavy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command module that imports a stand-in 'torch' at import time (the real one is not installed here)."""
    folder = tmp_path / "heavy"
    folder.mkdir()
    (folder / "torch.py").write_text("", encoding="utf-8")
    (folder / "test_conformance_heavy.py").write_text("import torch\n\nclass Command: ...\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(folder))


def test_assert_close_walks_nested_values() -> None:
    assert_close({"a": [1.0, 2.0]}, {"a": [1.0, 2.0 + 1e-9]}, "x")
    with pytest.raises(AssertionError, match=r"x: 2.0 != 2.5 at \['a'\]\[1\]"):
        assert_close({"a": [1.0, 2.0]}, {"a": [1.0, 2.5]}, "x")
