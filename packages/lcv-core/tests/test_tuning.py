"""lcv_core.tuning.tune with a fake backend: params applied per trial, frozen folds, pruning, best.yaml, errors."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import lcv_core.configure
from lcv_config import ConfigError, LcvError, TrialPruned, load_config
from lcv_config.registry import register, unregister
from lcv_config.space import CategoricalParam, FloatParam, parse_space
from lcv_core.tuning import tune
from lcv_core.tuning.params import apply_params
from lcv_core.tuning.workers import worker_seed

LOADED: list[Path | None] = []
"""Where each datamodule built by a trial loaded its folds from."""


class FakeTrial:
    def __init__(self, number: int, params: dict[str, Any], prune_above: float | None) -> None:
        self.number, self.params, self.prune_above = number, params, prune_above
        self.reports: list[tuple[float, int]] = []
        self.user_attrs: dict[str, Any] = {}

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return self.prune_above is not None and self.reports[-1][0] > self.prune_above

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value


class FakeTuner:
    """A tiny random-search backend implementing lcv_config.protocols.Tuner."""

    made: list[FakeTuner] = []

    def __init__(
        self,
        space: Mapping[str, Any],
        direction: str = "minimize",
        seed: int | None = None,
        pruner: Any = None,
        **kwargs: Any,
    ) -> None:
        self.space = parse_space(space)
        self.direction, self.kwargs = direction, kwargs
        self.rng = random.Random(seed)
        self.prune_above = None if pruner is None else float(pruner["cfg"]["above"])
        self.trials: list[tuple[FakeTrial, str, float | None]] = []
        FakeTuner.made.append(self)

    def optimize(self, objective: Any, n_trials: int | None = None, timeout: float | None = None) -> None:
        for _ in range(n_trials or 1):
            params = {}
            for key, p in self.space.items():
                if isinstance(p, CategoricalParam):
                    params[key] = self.rng.choice(p.choices)
                elif isinstance(p, FloatParam):
                    params[key] = self.rng.uniform(p.low, p.high)
            trial = FakeTrial(len(self.trials), params, self.prune_above)
            try:
                self.trials.append((trial, "COMPLETE", objective(trial)))
            except TrialPruned:
                self.trials.append((trial, "PRUNED", None))

    def _done(self) -> tuple[FakeTrial, str, float | None]:
        done = [t for t in self.trials if t[1] == "COMPLETE"]
        return min(done, key=lambda t: t[2]) if self.direction == "minimize" else max(done, key=lambda t: t[2])

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self._done()[0].params)

    @property
    def best_value(self) -> float:
        return float(self._done()[2])  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _fakes(monkeypatch: pytest.MonkeyPatch, fold_data: Any) -> Iterator[None]:
    class SavingFoldData(fold_data):  # type: ignore[misc, valid-type]
        """FoldData that saves and loads its folds as lcv-data's datamodule does (duck-typed)."""

        def __init__(self) -> None:
            super().__init__(n_folds=3, n=90)

        def save_folds(self, path: str | Path) -> None:
            Path(path).write_text(json.dumps({"val": self.val_indices, "train": self.train_indices}))

        def load_folds(self, path: str | Path) -> None:
            data = json.loads(Path(path).read_text())
            self.val_indices, self.train_indices = data["val"], data["train"]
            LOADED.append(Path(path))

    register("tuner", "fake")(FakeTuner)
    monkeypatch.setattr(lcv_core.configure, "build_datamodule", lambda config: SavingFoldData())
    LOADED.clear()
    FakeTuner.made.clear()
    yield
    unregister("tuner", "fake")


BASE = {
    "name": "tiny",
    "seed": 3,
    "data": {"dataset": "fake"},
    "model": {"name": "mlp", "cfg": {"in_features": 8, "out_features": 3, "hidden": [8]}},
    "criterion": "CrossEntropyLoss",
    "optimizer": {"name": "SGD", "cfg": {"lr": 0.1}},
    "trainer": {"accelerator": "cpu", "max_epochs": 3, "enable_progress_bar": False},
    "tune": {"backend": "fake", "space": {"optimizer.cfg.lr": {"type": "float", "low": 0.01, "high": 0.5}}},
}


def config(**tune: Any) -> Any:
    return load_config(base={**BASE, "tune": {**BASE["tune"], **tune}})


def test_each_trial_gets_its_params_frozen_folds_and_user_attrs(tmp_path: Path, capsys: Any) -> None:
    result = tune(config(), n_trials=3, run_dir=tmp_path)
    tuner = FakeTuner.made[0]
    assert tuner.kwargs["workdir"] == tmp_path and tuner.direction == "minimize"
    assert [t[1] for t in tuner.trials] == ["COMPLETE"] * 3
    for trial, _, value in tuner.trials:
        saved = load_config(tmp_path / f"trial_{trial.number}" / "config.yaml")
        assert saved.optimizer.cfg["lr"] == pytest.approx(trial.params["optimizer.cfg.lr"])  # type: ignore[union-attr]
        assert len(trial.reports) == 3 and [s for _, s in trial.reports] == [0, 1, 2]
        assert value == pytest.approx(min(v for v, _ in trial.reports))  # the best epoch's fold mean
        assert len(trial.user_attrs["per_fold"]) == 3 and trial.user_attrs["std"] >= 0
        assert (tmp_path / f"trial_{trial.number}" / "metrics.json").exists()
    assert (tmp_path / "folds.json").exists()
    assert [tmp_path / "folds.json"] * 3 == LOADED  # every trial trained on the folds frozen once
    best = load_config(tmp_path / "best.yaml")
    assert best.optimizer.cfg["lr"] == pytest.approx(result.best_params["optimizer.cfg.lr"])  # type: ignore[union-attr]
    assert result.best_value == pytest.approx(min(t[2] for t in tuner.trials))  # type: ignore[type-var]
    out = capsys.readouterr().out
    assert "COMPLETE" in out and "best config" in out and "optimizer.cfg.lr=" in out
    assert [r["number"] for r in result.trials] == [0, 1, 2]


def test_pruned_trials_stop_early_and_show_as_pruned(tmp_path: Path) -> None:
    cfg = config(pruner={"name": "above", "cfg": {"above": 0.0}})  # every report is above 0: prune at epoch 1
    FakeTuner.made.clear()
    with pytest.raises(LcvError, match="No trial finished.*0: PRUNED, 1: PRUNED"):
        tune(cfg, n_trials=2, run_dir=tmp_path, print_summary=False)
    trials = FakeTuner.made[0].trials
    assert [t[1] for t in trials] == ["PRUNED", "PRUNED"]
    assert all(len(t[0].reports) == 1 for t in trials)
    rows = [json.loads(line) for line in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert [(r["state"], r["epochs"]) for r in rows] == [("PRUNED", 1), ("PRUNED", 1)]


def test_space_key_not_in_config_is_an_error_with_suggestion(tmp_path: Path) -> None:
    cfg = config(space={"optimizer.cfg.lrr": {"type": "float", "low": 0.01, "high": 0.1}})
    with pytest.raises(
        ConfigError, match="'optimizer.cfg.lrr' is not a path in the config.*Did you mean 'optimizer.cfg.lr'"
    ):
        tune(cfg, n_trials=1, run_dir=tmp_path)
    assert FakeTuner.made == [] and not (tmp_path / "folds.json").exists()  # before any trial


def test_a_trial_config_that_would_be_invalid_fails_before_any_trial(tmp_path: Path) -> None:
    cfg = config(space={"trainer.max_epochs": {"type": "int", "low": 0, "high": 3}})
    with pytest.raises(ConfigError, match="trainer.max_epochs"):
        tune(cfg, n_trials=1, run_dir=tmp_path)
    assert FakeTuner.made == []


def test_no_space_and_no_budget_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no 'tune.space'"):
        tune(load_config(base={k: v for k, v in BASE.items() if k != "tune"}), n_trials=1, run_dir=tmp_path)
    with pytest.raises(ConfigError, match="needs a budget"):
        tune(config(), run_dir=tmp_path)


def test_conditional_param_may_add_a_cfg_keyword() -> None:
    cfg = config(
        space={
            "optimizer.name": ["SGD", "Adam"],
            "optimizer.cfg.momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": {"optimizer.name": "SGD"}},
        }
    )
    applied = apply_params(cfg, {"optimizer.name": "SGD", "optimizer.cfg.momentum": 0.5})
    assert applied.optimizer.cfg == {"lr": 0.1, "momentum": 0.5}  # type: ignore[union-attr]
    assert cfg.optimizer.cfg == {"lr": 0.1}  # type: ignore[union-attr]  # the base config is untouched


def test_worker_seeds_differ() -> None:
    assert worker_seed(0, 0) == 0
    assert len({worker_seed(5, i) for i in range(8)}) == 8


class LabellingTuner(FakeTuner):
    """A backend whose storage keeps list choices as their string labels, as Optuna's does."""

    def optimize(self, objective: Any, n_trials: int | None = None, timeout: float | None = None) -> None:
        real_choice = self.rng.choice

        def labelled(choices: Any) -> Any:
            value = real_choice(choices)
            return str(value) if isinstance(value, list) else value

        self.rng.choice = labelled  # type: ignore[method-assign]  # every categorical comes back as a label
        super().optimize(objective, n_trials, timeout)


def test_list_choices_stored_as_labels_come_back_as_lists(tmp_path: Path) -> None:
    register("tuner", "labelling")(LabellingTuner)
    try:
        space = {"model.cfg.hidden": {"type": "categorical", "choices": [[16, 16], [8]]}}
        cfg = config(backend="labelling", space=space)
        result = tune(cfg, n_trials=2, run_dir=tmp_path, print_summary=False)
    finally:
        unregister("tuner", "labelling")
    assert result.best_params["model.cfg.hidden"] in ("[16, 16]", "[8]")  # the backend's own value, as it gave it
    best = load_config(tmp_path / "best.yaml")
    assert best.model.cfg["hidden"] in ([16, 16], [8])  # type: ignore[union-attr]
    assert result.best_config.model.cfg["hidden"] == best.model.cfg["hidden"]  # type: ignore[union-attr]
    for n in (0, 1):
        trial_cfg = load_config(tmp_path / f"trial_{n}" / "config.yaml")
        assert isinstance(trial_cfg.model.cfg["hidden"], list)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("[128, 128]", [128, 128]),  # str() of a list, as Optuna shows it
        ('{"a": 1, "b": [2]}', {"a": 1, "b": [2]}),  # JSON of a mapping
        ("{'b': [2], 'a': 1}", {"b": [2], "a": 1}),  # repr of a mapping
        ([64], [64]),  # already the choice
        ("[64]", "[64]"),  # a string choice that looks like a list stays a string
        ("relu", "relu"),
    ],
)
def test_decode_choices_gives_the_choice_back(stored: Any, expected: Any) -> None:
    from lcv_core.tuning.params import decode_choices

    space = {"x": {"type": "categorical", "choices": [[128, 128], [64], {"a": 1, "b": [2]}, "[64]", "relu"]}}
    decoded = decode_choices(space, {"x": stored, "other": "[1]"})
    assert decoded == {"x": expected, "other": "[1]"} and type(decoded["x"]) is type(expected)
