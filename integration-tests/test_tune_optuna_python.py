"""Tuning from Python: a hand-written Optuna study with `TunerPruning(trial)` on a raw `optuna.Trial`."""

from __future__ import annotations

from pathlib import Path

import optuna

from lcv_config import TrialPruned
from lcv_core import CrossValidationTrainer
from lcv_core.callbacks.pruning import TunerPruning
from lcv_core.demos import IndexFolds, TinyClassifier
from lcv_tune_optuna import OptunaTuner


def _fit(trial: object, lr: float, max_epochs: int = 3) -> float:
    pruning = TunerPruning(trial, monitor="val_loss")  # type: ignore[arg-type]  # a raw optuna.Trial is a Trial
    trainer = CrossValidationTrainer(
        accelerator="cpu", max_epochs=max_epochs, seed=0, enable_progress_bar=False, callbacks=[pruning]
    )
    return trainer.fit(TinyClassifier, IndexFolds(n_folds=2, n=60), model_kwargs={"lr": lr}).metric("val_loss").mean


class _PruneFromSecond(optuna.pruners.BasePruner):
    """Prune every trial but the first after its first report."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number > 0


def test_hand_written_study_counts_pruned_trials_as_pruned() -> None:
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), pruner=_PruneFromSecond())

    def objective(trial: optuna.Trial) -> float:
        return _fit(trial, trial.suggest_float("lr", 1e-3, 1e-1, log=True))

    study.optimize(objective, n_trials=3)  # no try/except: TunerPruning raises optuna.TrialPruned
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] + [optuna.trial.TrialState.PRUNED] * 2
    pruned = study.trials[1]
    assert sorted(pruned.intermediate_values) == [0] and pruned.user_attrs["epochs"] == 1


def test_lcvs_trial_pruned_still_catches_an_optuna_prune() -> None:
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), pruner=_PruneFromSecond())
    study.enqueue_trial({"lr": 0.05})
    study.enqueue_trial({"lr": 0.05})
    caught: list[BaseException] = []

    def objective(trial: optuna.Trial) -> float:
        try:
            return _fit(trial, trial.suggest_float("lr", 1e-3, 1e-1, log=True))
        except TrialPruned as exc:
            caught.append(exc)
            raise

    study.optimize(objective, n_trials=2)
    assert len(caught) == 1 and isinstance(caught[0], optuna.TrialPruned)
    assert study.trials[1].state == optuna.trial.TrialState.PRUNED


def test_lcvs_optuna_trial_prunes_with_optunas_exception(tmp_path: Path) -> None:
    tuner = OptunaTuner(
        {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        workdir=tmp_path,
        storage=optuna.storages.InMemoryStorage(),
        pruner={"name": "median", "cfg": {"n_startup_trials": 0}},
        seed=0,
    )
    seen: list[type[BaseException]] = []

    def objective(trial: object) -> float:
        try:
            return _fit(trial, float(trial.params["lr"]))  # type: ignore[attr-defined]
        except TrialPruned as exc:
            seen.append(type(exc))
            raise

    tuner.study.enqueue_trial({"lr": 0.1})
    tuner.study.enqueue_trial({"lr": 0.001})  # far worse than the first: the median pruner stops it
    tuner.optimize(objective, n_trials=2)
    assert [t.state for t in tuner.study.trials][1] == optuna.trial.TrialState.PRUNED
    assert seen and all(issubclass(cls, optuna.TrialPruned) for cls in seen)
