"""The vectorized engine: k fold models as one batched computation give the interleaved schedule's numbers.

The configurable learner runs without vmap (grouped kernels); its tests are at the end."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from lightning.fabric import Fabric
from lightning.pytorch import LightningModule
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from lcv_config import LcvError, TrainerConfig
from lcv_core import Callback, CrossValidationTrainer, SupervisedLearner
from lcv_core.core.fold_models import fold_seeds, fold_stream_seeds, make_fold_model
from lcv_core.core.rng import FoldRNG
from lcv_core.vectorized import batched_ops
from lcv_core.vectorized.batches import _Stepper
from lcv_core.vectorized.engine import VectorizedFolds, can_vectorize
from lcv_core.vectorized.grouped import _GroupedStepper, grouped_supported

N_FEATURES, N_CLASSES = 8, 3  # as conftest's dataset


class AdamMLP(LightningModule):
    """An unmodified user module: MLP, Adam, train_loss/val_loss/val_acc, no dropout (random numbers differ)."""

    def __init__(self, lr: float = 0.01, hidden: int = 16) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.ReLU(), nn.Identity(), nn.Linear(hidden, N_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        out = self(x)
        self.log("val_loss", nn.functional.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(dim=1) == y).float().mean())

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class StepLRModule(AdamMLP):
    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=0.1)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)}


def run_vectorized(
    model: Any,
    data: Any,
    epochs: int = 2,
    seed: int = 0,
    precision: str = "64-true",
    model_kwargs: dict[str, Any] | None = None,
    **config: Any,
) -> tuple[list[list[dict[str, float]]], VectorizedFolds]:
    """Drive the engine as the trainer would: same fold seeds, same fold random streams, same loaders."""
    fabric = Fabric(accelerator="cpu", devices=1, precision=precision)  # type: ignore[arg-type]  # a valid literal
    loaders = data.train_val_dataloaders()
    modules = [make_fold_model(model, i, s, model_kwargs) for i, s in enumerate(fold_seeds(seed, len(loaders)))]
    modules = [fabric.strategy.precision.convert_module(m) for m in modules]
    rngs = [FoldRNG(s) for s in fold_stream_seeds(seed, len(loaders))]
    cfg = TrainerConfig(accelerator="cpu", max_epochs=epochs, precision=precision, **config)
    assert can_vectorize(modules, loaders, cfg, fabric=fabric) is None
    engine = VectorizedFolds(modules, loaders, cfg, fabric=fabric, rngs=rngs)
    history: list[list[dict[str, float]]] = [[] for _ in loaders]
    for epoch in range(epochs):
        train = engine.train_epoch(epoch)
        val = engine.validate(epoch)
        for fold, (t, v) in enumerate(zip(train, val, strict=True)):
            history[fold].append({**t, **v})
        engine.step_epoch_schedulers(epoch)
    engine.write_back()
    return history, engine


def assert_same_history(a: list[list[dict[str, float]]], b: list[list[dict[str, float]]], tol: float) -> None:
    assert len(a) == len(b)
    for fold, (ha, hb) in enumerate(zip(a, b, strict=True)):
        assert len(ha) == len(hb)
        for epoch, (ra, rb) in enumerate(zip(ha, hb, strict=True)):
            assert set(ra) == set(rb), (fold, epoch)
            for name in ra:
                assert ra[name] == pytest.approx(rb[name], rel=tol, abs=tol), (fold, epoch, name, ra[name], rb[name])


class FinalWeights(Callback):
    def __init__(self) -> None:
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_fold_end(self, *, fold: int, module: Any, **kwargs: Any) -> None:
        self.weights[fold] = {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("model", [AdamMLP, StepLRModule])
def test_vectorized_matches_interleaved_per_fold(data, trainer_kwargs, model) -> None:
    final = FinalWeights()
    res = CrossValidationTrainer(**trainer_kwargs, precision="64-true", callbacks=[final]).fit(model, data)
    history, engine = run_vectorized(model, data)
    assert_same_history(history, res.history, tol=1e-6)  # metrics are logged in float32, as by the trainer
    assert history[0][-1]["val_loss"] != history[1][-1]["val_loss"]  # the folds really are different models
    assert history[0][1]["train_loss"] < history[0][0]["train_loss"]  # and they learn
    # write_back puts every fold's trained weights into its own module: the interleaved trainer's, to float64 rounding
    for fold, module in enumerate(engine.modules):
        for name, value in module.state_dict().items():
            torch.testing.assert_close(value, final.weights[fold][name], rtol=1e-10, atol=1e-12)
    # and each fold's optimizer holds its slice of the stacked state (Adam's moments), ready for a checkpoint
    state = engine.cohorts[0].originals[1].state
    assert len(state) == 4 and all(s["exp_avg"].dim() > 0 for s in state.values())


def test_fast_linear_and_cross_entropy_change_no_number_of_a_fit(data, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path users take (nn.Linear, F.cross_entropy, the engine): identical histories and weights."""
    wrapped: list[int] = []
    add_batch_dim = batched_ops._add_batch_dim

    def counted(*args: Any) -> torch.Tensor:
        wrapped.append(1)
        return add_batch_dim(*args)

    monkeypatch.setattr(batched_ops, "_add_batch_dim", counted)
    fast, fast_engine = run_vectorized(AdamMLP, data, precision="32-true")
    assert len(wrapped) >= 48  # 16 training steps took the fast path (2 linear + 1 cross_entropy each), and validation
    monkeypatch.setattr(batched_ops, "_AVAILABLE", False)
    slow, slow_engine = run_vectorized(AdamMLP, data, precision="32-true")
    assert fast == slow
    for a, b in zip(fast_engine.modules, slow_engine.modules, strict=True):
        for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(pa, pb), name


def test_ragged_folds_uneven_batch_counts_and_sizes(data, trainer_kwargs) -> None:
    dataset = data.dataset
    # 5 folds of 103 samples: train sets of 82 or 83 samples -> with batch 20, 5 batches each but last batches of
    # 2 or 3; with batch 41, folds have 2 or 3 batches (two optimizer cohorts).
    for batch in (20, 41):
        data = UnevenFoldData(dataset, n=103, batch_size=batch)
        res = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3}, precision="64-true").fit(AdamMLP, data)
        history, engine = run_vectorized(AdamMLP, data, epochs=3)
        assert_same_history(history, res.history, tol=1e-6)
        assert len(engine.cohorts) == (1 if batch == 20 else 2)


def test_gradient_clipping_is_per_fold(data, trainer_kwargs) -> None:
    for algorithm, value in (("norm", 0.05), ("value", 0.01)):
        clip = {"gradient_clip_val": value, "gradient_clip_algorithm": algorithm}
        res = CrossValidationTrainer(**trainer_kwargs, **clip, precision="64-true").fit(AdamMLP, data)
        free = CrossValidationTrainer(**trainer_kwargs, precision="64-true").fit(AdamMLP, data)
        history, _ = run_vectorized(AdamMLP, data, **clip)
        assert_same_history(history, res.history, tol=1e-6)
        assert history[0][-1]["val_loss"] != pytest.approx(free.history[0][-1]["val_loss"], rel=1e-6)


def test_float32_matches_within_float_tolerance(data, trainer_kwargs) -> None:
    res = CrossValidationTrainer(**trainer_kwargs).fit(AdamMLP, data)
    history, _ = run_vectorized(AdamMLP, data, precision="32-true")
    assert_same_history(history, res.history, tol=1e-4)


class UnevenFoldData:
    """KFold-like contiguous folds whose sizes differ by one (n not divisible by the number of folds)."""

    def __init__(self, dataset: Any, n: int, batch_size: int, n_folds: int = 5) -> None:
        self.dataset, self.n_folds, self.batch_size, self.val_batch_size = dataset, n_folds, batch_size, 8
        bounds = [round(i * n / self.n_folds) for i in range(self.n_folds + 1)]
        self.val_indices = [list(range(bounds[i], bounds[i + 1])) for i in range(self.n_folds)]
        self.train_indices = [[j for j in range(n) if j not in set(v)] for v in self.val_indices]

    def train_val_dataloaders(self) -> list[tuple[DataLoader[Any], DataLoader[Any]]]:
        """Return one (train, val) pair of loaders per fold."""
        return [
            (
                DataLoader(Subset(self.dataset, tr), batch_size=self.batch_size, shuffle=True),
                DataLoader(Subset(self.dataset, va), batch_size=self.val_batch_size),
            )
            for tr, va in zip(self.train_indices, self.val_indices, strict=True)
        ]


class Manual(AdamMLP):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False


class WithBatchNorm(AdamMLP):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(N_FEATURES, 8), nn.BatchNorm1d(8), nn.Linear(8, N_CLASSES))


class TwoOptimizers(AdamMLP):
    def configure_optimizers(self) -> Any:
        return [torch.optim.Adam(self.net[0].parameters()), torch.optim.SGD(self.net[3].parameters(), lr=0.1)]


class WithLBFGS(AdamMLP):
    def configure_optimizers(self) -> Any:
        return torch.optim.LBFGS(self.parameters())


class PerFoldPlateau(AdamMLP):
    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters())
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}


class DataDependentBranch(AdamMLP):
    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        if loss.item() > 0:  # a Python branch on a tensor value cannot run once for all folds
            self.log("train_loss", loss)
        return loss


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (Manual, "uses manual optimization"),
        (WithBatchNorm, "BatchNorm1d 'net.1' updates running statistics"),
        (TwoOptimizers, "returns 2 optimizers (one is vectorized)"),
        (WithLBFGS, "optimizer LBFGS is not elementwise"),
        (PerFoldPlateau, "ReduceLROnPlateau monitors the per-fold 'val_loss'"),
        (DataDependentBranch, "DataDependentBranch.training_step fails under torch.func.vmap"),
    ],
)
def test_cannot_vectorize_gives_the_reason(data, model, expected) -> None:
    modules = [model() for _ in range(data.n_folds)]
    reason = can_vectorize(modules, data.train_val_dataloaders())
    assert reason is not None and expected in reason, reason
    if "vmap" not in expected:  # the static checks also guard the engine itself
        with pytest.raises(LcvError, match="cannot run these models.*Use schedule='interleaved'"):
            VectorizedFolds(modules, data.train_val_dataloaders())


def test_trial_call_leaves_weights_and_random_state_alone(data) -> None:
    modules = [AdamMLP() for _ in range(data.n_folds)]
    before = [m.net[0].weight.detach().clone() for m in modules]
    state = torch.get_rng_state()
    assert can_vectorize(modules, data.train_val_dataloaders()) is None
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(m.net[0].weight, b) for m, b in zip(modules, before, strict=True))


class LogsEverything(AdamMLP):
    """Logs with every reduction, an explicit batch size, a Python float, and from an epoch hook."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.net[2] = nn.Dropout(dropout)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log_dict({"train_loss": loss, "max_x": x.max()}, reduce_fx="max")
        self.log("seen", float(len(y)), reduce_fx="sum")
        self.log("min_y", y.min().float(), reduce_fx="min", batch_size=1)
        return {"loss": loss}

    def on_train_epoch_end(self) -> None:
        self.log("hook_value", 7.0)


def test_logging_reductions_and_epoch_hooks_per_fold(data, trainer_kwargs) -> None:
    ragged = UnevenFoldData(data.dataset, n=103, batch_size=20)
    res = CrossValidationTrainer(**trainer_kwargs, precision="64-true").fit(LogsEverything, ragged)
    history, _ = run_vectorized(LogsEverything, ragged)
    assert_same_history(history, res.history, tol=1e-6)
    assert [h[0]["seen"] for h in history] == [len(t) for t in ragged.train_indices] == [82, 83, 82, 83, 82]
    assert all(h[0]["hook_value"] == 7.0 and h[0]["min_y"] == 0.0 for h in history)


def test_dropout_draws_different_masks_per_fold(data) -> None:
    history, _ = run_vectorized(LogsEverything, data, model_kwargs={"dropout": 0.5})
    no_dropout, _ = run_vectorized(LogsEverything, data)
    assert all(math.isfinite(h[-1]["val_loss"]) for h in history)
    assert history[0][0]["train_loss"] != no_dropout[0][0]["train_loss"]


class LogsPerStep(AdamMLP):
    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("loss", loss, on_step=True, on_epoch=False)
        return loss


def test_on_step_values_per_fold_with_their_optimizer_steps(data) -> None:
    loaders = data.train_val_dataloaders()
    engine = VectorizedFolds([LogsPerStep() for _ in loaders], loaders)
    engine.train_epoch(0)
    metrics = engine.train_epoch(1)
    assert metrics == [{} for _ in loaders]  # on_epoch=False: nothing in the epoch history
    rows = engine.step_values(3)
    assert [step for step, _ in rows] == list(range(8, 16))  # 120 samples / 16 = 8 steps per epoch, second epoch
    assert all(math.isfinite(values["loss"]) for _, values in rows)
    assert rows != engine.step_values(2)


# -- the configurable learner: grouped kernels (one baddbmm per Linear), no vmap ------------------------------


def mlp(out: int = N_CLASSES, **cfg: Any) -> dict[str, Any]:
    return {"name": "mlp", "cfg": {"in_features": N_FEATURES, "out_features": out, "hidden": [16, 12], **cfg}}


class RegressionData:
    """Five contiguous folds of a noisy linear regression with ``outputs`` targets (float), batches of 16."""

    def __init__(self, outputs: int = 1, binary: bool = False) -> None:
        g = torch.Generator().manual_seed(1)
        x = torch.randn(150, N_FEATURES, generator=g)
        y = x @ torch.randn(N_FEATURES, outputs, generator=g) + 0.1 * torch.randn(150, outputs, generator=g)
        if binary:
            y = (y > 0).float()
        self.dataset = TensorDataset(x, y)

    def train_val_dataloaders(self) -> list[tuple[DataLoader[Any], DataLoader[Any]]]:
        pairs = []
        for i in range(5):
            val = list(range(i * 30, (i + 1) * 30))
            train = [j for j in range(150) if j not in val]
            pairs.append(
                (
                    DataLoader(Subset(self.dataset, train), batch_size=16, shuffle=True),
                    DataLoader(Subset(self.dataset, val), batch_size=16),
                )
            )
        return pairs


def compare(data: Any, trainer_kwargs: dict[str, Any], tol: float = 1e-6, **learner: Any) -> Any:
    """Fit interleaved (the trainer) and vectorized (the engine) in float64; assert the same per-fold history."""
    final = FinalWeights()
    res = CrossValidationTrainer(**trainer_kwargs, precision="64-true", callbacks=[final]).fit(
        SupervisedLearner, data, model_kwargs=learner
    )
    history, engine = run_vectorized(SupervisedLearner, data, model_kwargs=learner)
    assert isinstance(engine._stepper, _GroupedStepper)  # the grouped kernels ran, not vmap
    assert_same_history(history, res.history, tol=tol)
    for fold, module in enumerate(engine.modules):
        for name, value in module.state_dict().items():
            torch.testing.assert_close(value, final.weights[fold][name], rtol=1e-9, atol=1e-11)
    return history


def test_classification_with_metrics_matches_interleaved(data, trainer_kwargs) -> None:
    history = compare(data, trainer_kwargs, model=mlp(), metrics=["accuracy", "f1", {"name": "top2_accuracy"}])
    last = history[0][-1]
    # what a user reads per fold: loss, accuracy and the configured torchmetrics, computed per fold
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "val_top2_accuracy"} <= set(last)
    assert "val_accuracy" not in last  # accuracy is val_acc, under one name
    assert history[0][-1]["val_loss"] != history[1][-1]["val_loss"]
    assert history[0][1]["train_loss"] < history[0][0]["train_loss"]


def test_cross_entropy_options_are_averaged_per_fold_as_the_criterion_does(data, trainer_kwargs) -> None:
    weight = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=0.1, ignore_index=2)
    compare(data, trainer_kwargs, model=mlp(), criterion=criterion)


@pytest.mark.parametrize(
    ("criterion", "outputs", "metrics"),
    [("MSELoss", 2, ["mse", "r2"]), ("HuberLoss", 1, ["mae"]), ("L1Loss", 1, [])],
)
def test_regression_matches_interleaved(trainer_kwargs, criterion, outputs, metrics) -> None:
    history = compare(RegressionData(outputs), trainer_kwargs, model=mlp(outputs), criterion=criterion, metrics=metrics)
    assert "val_acc" not in history[0][-1] and all(f"val_{m}" in history[0][-1] for m in metrics)


def test_binary_classification_with_one_logit(trainer_kwargs) -> None:
    data = RegressionData(1, binary=True)
    history = compare(data, trainer_kwargs, model=mlp(1), criterion="BCEWithLogitsLoss", task="classification")
    assert 0.0 <= history[2][-1]["val_acc"] <= 1.0
    weighted = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([3.0]))
    history_weighted = compare(data, trainer_kwargs, model=mlp(1), criterion=weighted, task="classification")
    assert history_weighted[0][0]["train_loss"] != history[0][0]["train_loss"]  # pos_weight counts, per fold


def test_sequential_network_with_flatten_and_activations(data, trainer_kwargs) -> None:
    def net() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(N_FEATURES, 10), nn.Tanh(), nn.Linear(10, N_CLASSES, bias=False))

    def factory() -> SupervisedLearner:
        return SupervisedLearner(model=net())

    final = FinalWeights()
    res = CrossValidationTrainer(**trainer_kwargs, precision="64-true", callbacks=[final]).fit(factory, data)
    history, engine = run_vectorized(factory, data)
    assert isinstance(engine._stepper, _GroupedStepper)
    assert_same_history(history, res.history, tol=1e-6)


def test_trainer_runs_the_learner_vectorized_without_falling_back(data, trainer_kwargs, capsys) -> None:
    kwargs = {"model": mlp(), "metrics": ["accuracy"]}
    trainer = CrossValidationTrainer(**trainer_kwargs, schedule="vectorized")
    vec = trainer.fit(SupervisedLearner, data, model_kwargs=kwargs)
    assert "falls back" not in capsys.readouterr().out
    ref = CrossValidationTrainer(**trainer_kwargs).fit(SupervisedLearner, data, model_kwargs=kwargs)
    assert_same_history(vec.history, ref.history, tol=1e-4)  # float32: kernels differ in rounding only
    assert 0.0 < vec.metric("val_acc").mean <= 1.0


class OwnStep(SupervisedLearner):
    def shared_step(self, batch: Any, batch_idx: int, stage: Any) -> dict[str, Any]:
        out = super().shared_step(batch, batch_idx, stage)
        self.log(f"{stage}_twice", 2 * out["loss"])
        return out


def test_a_learner_subclass_that_changes_the_step_runs_under_vmap(data, trainer_kwargs) -> None:
    learner = OwnStep(model=mlp())
    assert not grouped_supported(learner) and grouped_supported(SupervisedLearner(model=mlp()))
    history, engine = run_vectorized(OwnStep, data, model_kwargs={"model": mlp()})
    assert type(engine._stepper) is _Stepper
    assert history[0][-1]["train_twice"] == pytest.approx(2 * history[0][-1]["train_loss"], rel=1e-6)


def test_other_networks_and_criteria_are_not_grouped() -> None:
    assert not grouped_supported(SupervisedLearner(model=nn.Sequential(nn.Linear(8, 3), nn.BatchNorm1d(3))))
    assert not grouped_supported(SupervisedLearner(model=mlp(), criterion=nn.CrossEntropyLoss(reduction="sum")))
    assert not grouped_supported(SupervisedLearner(model=mlp(), criterion="KLDivLoss"))
    assert not grouped_supported(SupervisedLearner(model=mlp(), custom_training_step=lambda m, b, i: m(b[0]).sum()))


class StepLogged(AdamMLP):
    """Logs its losses with on_step=True too (Lightning's per-step curves)."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y), on_step=True, on_epoch=True)


class BeforeLog(Callback):
    """Records every hand-over to the loggers and adds the fold's learning rate, as an LR logger would."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_before_log_metrics(self, *, metrics: dict[str, Any], fold: Any, step: int, stage: str, optimizer: Any,
                              **kwargs: Any) -> None:  # fmt: skip
        self.calls.append((fold, step, stage, {k: round(float(v), 5) for k, v in metrics.items()}))
        if optimizer is not None:
            metrics["lr"] = optimizer.param_groups[0]["lr"]


def test_on_step_values_reach_callbacks_and_loggers_as_under_interleaved(data, trainer_kwargs, tmp_path) -> None:
    # the default schedule picks vectorized for small modules: per-step values were recorded but never logged
    runs = {}
    for schedule in ("interleaved", "vectorized"):
        spy = BeforeLog()
        run = tmp_path / schedule
        kwargs = {**trainer_kwargs, "precision": "64-true", "default_root_dir": str(run)}
        result = CrossValidationTrainer(**kwargs, schedule=schedule, callbacks=[spy]).fit(StepLogged, data)
        assert result.schedule == schedule
        rows = (run / "logs" / "csv" / "metrics.csv").read_text().splitlines()
        runs[schedule] = (spy.calls, rows[0].split(","), len(rows))
    calls, header, n_rows = runs["vectorized"]
    steps = [c for c in calls if c[2] == "train"]
    assert {c[0] for c in steps} == set(range(data.n_folds)) and len({c[1] for c in steps if c[0] == 0}) > 1
    assert "fold_0/train_loss_step" in header and "fold_2/val_loss_step" in header and "lr" in header
    assert calls == runs["interleaved"][0]  # the same hand-overs in the same order, with the same values
    assert (header, n_rows) == runs["interleaved"][1:]
