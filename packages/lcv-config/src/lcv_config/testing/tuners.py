"""The conformance suite of tuner backends (``lcv.tuners``)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from lcv_config.protocols import Trial, TrialPruned, Tuner
from lcv_config.testing._helpers import missing_members


class TunerContract:
    """What every tuner backend must do, checked on a cheap quadratic objective.

    The objective minimises ``(x - 2)^2`` over ``x`` in ``[-5, 5]`` with a categorical ``c``.
    """

    space: dict[str, Any] = {
        "x": {"type": "float", "low": -5.0, "high": 5.0},
        "c": {"type": "categorical", "choices": ["a", "b"]},
    }
    tuner_class: Any = None
    """The backend class as registered in ``lcv.tuners``; set it, or override `make_tuner()`."""

    @staticmethod
    def lcv_arguments(space: dict[str, Any], direction: str, workdir: Path) -> dict[str, Any]:
        """Return the keyword arguments ``lcv tune`` constructs a backend with (no study, storage, sampler, pruner)."""
        return {
            "space": space,
            "direction": direction,
            "study": None,
            "storage": None,
            "workdir": workdir,
            "sampler": None,
            "pruner": None,
            "seed": 0,
        }

    def make_tuner(self, space: dict[str, Any], direction: str, workdir: Path) -> Tuner:
        """Return a tuner over ``space`` with a fresh study in ``workdir``: ``tuner_class(**lcv_arguments(...))``."""
        if self.tuner_class is None:
            raise NotImplementedError("set tuner_class to the backend class, or override make_tuner")
        tuner: Tuner = self.tuner_class(**self.lcv_arguments(space, direction, workdir))
        return tuner

    def test_accepts_the_arguments_lcv_constructs_it_with(self, tmp_path: Path) -> None:
        """The backend's class takes the keywords ``lcv tune`` passes (see [`Tuner`][lcv_config.Tuner])."""
        tuner = self.make_tuner(self.space, "minimize", tmp_path)
        arguments = self.lcv_arguments(self.space, "minimize", tmp_path)
        try:
            inspect.signature(type(tuner)).bind(**arguments)
        except TypeError as exc:
            raise AssertionError(
                f"lcv constructs a tuner as {type(tuner).__name__}({', '.join(f'{k}=...' for k in arguments)}); "
                f"its signature refuses that: {exc}"
            ) from None

    @staticmethod
    def _objective(seen: list[Trial], finished: list[float] | None = None, prune_first: bool = False) -> Any:
        def objective(trial: Trial) -> float:
            seen.append(trial)
            x = float(trial.params["x"])
            assert trial.params["c"] in ("a", "b")
            if prune_first and len(seen) == 1:
                raise TrialPruned()
            for step in range(3):
                trial.report((x - 2.0) ** 2 + 1.0 / (step + 1), step)
                if trial.should_prune():
                    raise TrialPruned()
            trial.set_user_attr("fold_scores", [(x - 2.0) ** 2] * 2)
            if finished is not None:
                finished.append((x - 2.0) ** 2)
            return (x - 2.0) ** 2

        return objective

    def test_runs_the_requested_trials_with_parameters_in_bounds(self, tmp_path: Path) -> None:
        """``optimize`` runs ``n_trials`` trials; each trial's parameters lie in the space."""
        tuner = self.make_tuner(self.space, "minimize", tmp_path)
        seen: list[Trial] = []
        tuner.optimize(self._objective(seen), n_trials=6)
        assert len(seen) == 6, f"asked for 6 trials, the objective ran {len(seen)} times"
        assert all(-5.0 <= float(t.params["x"]) <= 5.0 for t in seen), [t.params["x"] for t in seen]
        assert len({t.number for t in seen}) == 6, "trial numbers must be unique"

    def test_best_is_the_best_finished_trial(self, tmp_path: Path) -> None:
        """``best_value`` is the lowest value returned (minimize) and ``best_params`` produced it."""
        tuner = self.make_tuner(self.space, "minimize", tmp_path)
        seen: list[Trial] = []
        finished: list[float] = []
        tuner.optimize(self._objective(seen, finished), n_trials=5)
        best_x = float(tuner.best_params["x"])
        assert abs(tuner.best_value - (best_x - 2.0) ** 2) < 1e-9, "best_params did not produce best_value"
        assert finished, "no trial finished"
        assert abs(tuner.best_value - min(finished)) < 1e-9, f"best_value {tuner.best_value}, values {finished}"

    def test_maximize(self, tmp_path: Path) -> None:
        """With ``direction='maximize'`` the best trial has the highest value."""
        tuner = self.make_tuner(self.space, "maximize", tmp_path)
        seen: list[Trial] = []
        finished: list[float] = []
        tuner.optimize(self._objective(seen, finished), n_trials=5)
        assert finished, "no trial finished"
        assert abs(tuner.best_value - max(finished)) < 1e-9, f"best_value {tuner.best_value}, values {finished}"

    def test_a_pruned_trial_does_not_stop_the_study(self, tmp_path: Path) -> None:
        """A [`TrialPruned`][lcv_config.TrialPruned] raised by the objective ends that trial only."""
        tuner = self.make_tuner(self.space, "minimize", tmp_path)
        seen: list[Trial] = []
        finished: list[float] = []
        tuner.optimize(self._objective(seen, finished, prune_first=True), n_trials=4)
        assert len(seen) == 4, f"the study stopped after the pruned trial: {len(seen)} of 4 trials ran"
        if finished:  # the backend's own pruner may have stopped the others too
            best = tuner.best_value
            assert abs(best - min(finished)) < 1e-9, f"best_value {best}, finished values {finished}"

    def test_trial_is_a_trial(self, tmp_path: Path) -> None:
        """The object given to the objective satisfies the [`Trial`][lcv_config.Trial] protocol."""
        tuner = self.make_tuner(self.space, "minimize", tmp_path)
        seen: list[Trial] = []
        tuner.optimize(self._objective(seen), n_trials=1)
        assert isinstance(seen[0], Trial)

    def test_is_a_tuner(self, tmp_path: Path) -> None:
        """The backend has every member of the [`Tuner`][lcv_config.Tuner] protocol.

        Checked statically: ``best_value`` may rightly raise before any trial finished.
        """
        tuner = self.make_tuner(self.space, "minimize", tmp_path)
        missing = missing_members(tuner, Tuner)
        assert not missing, f"{type(tuner).__name__} lacks {missing}"
