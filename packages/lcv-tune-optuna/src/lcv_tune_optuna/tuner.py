"""The Optuna tuner backend: a study in SQLite, any SQLAlchemy database or a journal file, trials pruned per epoch."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from lcv_config import ConfigError, LcvError, TrialPruned, parse_space
from lcv_config.protocols import Objective
from lcv_config.space import CategoricalParam, FloatParam, IntParam, active, check_tuner_arguments, ordered
from lcv_tune_optuna._components import make_pruner, make_sampler
from lcv_tune_optuna._storage import open_storage

Space = Mapping[str, FloatParam | IntParam | CategoricalParam]

DEFAULT_STUDY = "lcv"
"""The study name used when none is given, so that a second run on the same storage continues the study."""

_PRIMITIVE = (type(None), bool, int, float, str)
_OPTIONS = {
    "heartbeat_interval": 60,
    "grace_period": None,
    "failed_trial_max_retry": 3,
    "gc_after_trial": False,
    "show_progress_bar": False,
    "directions": None,
}
_MULTI_NOTE = (
    "Pruning is off in multi-objective studies: Optuna cannot report intermediate values when there are several "
    "objectives, so every trial runs to its end."
)


class OptunaTrial:
    """One Optuna trial seen through lcv's [`Trial`][lcv_config.Trial] protocol.

    Args:
        trial: The Optuna trial.
        params: The parameters suggested for it, keyed by config path, with their real (decoded) values.
    """

    pruned_exception: type[BaseException] = optuna.TrialPruned
    """The exception that ends this trial as pruned; lcv's `TunerPruning` raises one that is also lcv's."""

    def __init__(self, trial: optuna.Trial, params: Mapping[str, Any], prunable: bool = True) -> None:
        self._trial = trial
        self._params = dict(params)
        self._prunable = prunable

    @property
    def number(self) -> int:
        """The trial's number within its study, unique across workers."""
        return int(self._trial.number)

    @property
    def params(self) -> dict[str, Any]:
        """The parameters proposed for this trial, keyed by config path (inactive conditional ones are absent)."""
        return dict(self._params)

    @property
    def optuna_trial(self) -> optuna.Trial:
        """The underlying Optuna trial, for features lcv does not wrap."""
        return self._trial

    def report(self, value: float, step: int) -> None:
        """Report the objective's intermediate value (the fold mean) after epoch ``step``.

        In a multi-objective study nothing is reported (Optuna does not allow it) and the trial is never pruned.
        """
        if self._prunable:
            self._trial.report(float(value), int(step))

    def should_prune(self) -> bool:
        """Return whether the study's pruner wants this trial stopped now (never in a multi-objective study)."""
        return self._prunable and bool(self._trial.should_prune())

    def set_user_attr(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value on the trial (per-fold scores, std)."""
        self._trial.set_user_attr(key, value)

    def __repr__(self) -> str:
        return f"OptunaTrial(number={self.number}, params={self._params!r})"


def _encoded_choices(param: CategoricalParam) -> tuple[list[Any], bool]:
    """Return the choices Optuna stores and whether they are JSON labels of non-primitive choices (lists, dicts)."""
    if all(isinstance(c, _PRIMITIVE) for c in param.choices):
        return list(param.choices), False
    return [json.dumps(c, sort_keys=True) for c in param.choices], True


def suggest(trial: optuna.Trial, space: Space) -> dict[str, Any]:
    """Suggest every active parameter of ``space`` on ``trial``, conditions first; return them keyed by config path.

    Raises:
        ConfigError: A range Optuna cannot sample (an int range both log-scale and stepped).
    """
    chosen: dict[str, Any] = {}
    for key in ordered(space):
        param = space[key]
        if not active(param, chosen):
            continue
        if isinstance(param, FloatParam):
            chosen[key] = trial.suggest_float(key, param.low, param.high, step=param.step, log=param.log)
        elif isinstance(param, IntParam):
            if param.log and param.step != 1:
                raise ConfigError(f"'{key}': an int range cannot be both log-scale and stepped.", f"tune.space.{key}")
            chosen[key] = trial.suggest_int(key, param.low, param.high, step=param.step, log=param.log)
        else:
            choices, labelled = _encoded_choices(param)
            picked = trial.suggest_categorical(key, choices)
            chosen[key] = param.choices[choices.index(picked)] if labelled else picked
    return chosen


class OptunaTuner:
    """Tune with Optuna: one study, created once in its storage, that any number of workers can share.

    Args:
        space: The backend-neutral search space (the raw mapping of a config's ``tune.space``, or parsed params).
        direction: ``"minimize"`` or ``"maximize"``.
        study: The study name; workers with the same storage and name share one study. Default ``"lcv"``.
        storage: ``None`` for a SQLite file ``study.db`` in ``workdir``; a SQLAlchemy URL (``sqlite:///...``,
            ``postgresql+psycopg://user:pw@host/db``); a path ending in ``.log`` for a journal file; or an Optuna
            storage.
        workdir: Where the default storage and relative storage paths go.
        sampler: A sampler name with arguments (``"tpe"``, ``{name: TPESampler, cfg: {n_startup_trials: 5}}``).
        pruner: A pruner name with arguments (``"median"``, ``{name: PatientPruner, cfg: {wrapped_pruner: median,
            patience: 2}}``); default Optuna's ``MedianPruner``.
        seed: Seed of the sampler when its ``cfg`` sets none.
        **options: ``heartbeat_interval`` (seconds, default 60; ``None`` turns heartbeats off; SQL storages only),
            ``grace_period``, ``failed_trial_max_retry`` (default 3), ``gc_after_trial``, ``show_progress_bar``,
            ``directions`` (a list such as ``[minimize, maximize]``: a multi-objective study, whose objective returns
            one value per direction; pruning is off there, and giving a pruner is an error).

    Raises:
        ConfigError: Invalid space, sampler, pruner, storage or option; or an existing study with another direction.
        LcvError: The storage cannot be opened (missing driver, unreachable server).
    """

    def __init__(
        self,
        space: Mapping[str, Any],
        direction: str = "minimize",
        study: str | None = None,
        storage: str | Path | optuna.storages.BaseStorage | None = None,
        workdir: str | Path = ".",
        sampler: Any = None,
        pruner: Any = None,
        seed: int | None = None,
        **options: Any,
    ) -> None:
        check_tuner_arguments("Optuna", direction, options, _OPTIONS)
        self._options = {**_OPTIONS, **options}
        self.space: dict[str, FloatParam | IntParam | CategoricalParam] = (
            dict(space) if _is_parsed(space) else parse_space(space)
        )
        ordered(self.space)  # a cycle among conditions is a config error now, not in the first trial
        directions = self._options["directions"]
        self.multi_objective = directions is not None
        if directions is not None:
            _check_directions(directions, pruner)
            pruner = optuna.pruners.NopPruner()
        self.direction = direction
        self.study_name = study or DEFAULT_STUDY
        self.workdir = Path(workdir)
        self.storage = open_storage(
            storage,
            self.workdir,
            heartbeat_interval=self._options["heartbeat_interval"],
            grace_period=self._options["grace_period"],
            failed_trial_max_retry=self._options["failed_trial_max_retry"],
        )
        # Created once here, before any trial: two workers creating a brand-new study at once race on the schema.
        self.study = optuna.create_study(
            storage=self.storage,
            study_name=self.study_name,
            direction=None if directions else ("minimize" if direction == "minimize" else "maximize"),
            directions=list(directions) if directions else None,
            sampler=make_sampler(sampler, self.space, seed),
            pruner=make_pruner(pruner),
            load_if_exists=True,
        )
        if self.multi_objective:
            optuna.logging.get_logger("lcv_tune_optuna").warning(_MULTI_NOTE)
            return
        if len(self.study.directions) > 1:
            raise ConfigError(
                f"Study {self.study_name!r} already exists in this storage as a multi-objective study; "
                "set tune.options.directions or use another study name.",
                "tune.direction",
            )
        stored = self.study.direction.name.lower()
        if stored != direction:
            raise ConfigError(
                f"Study {self.study_name!r} already exists in this storage with direction {stored!r}, "
                f"not {direction!r}. Use another study name or the stored direction.",
                "tune.direction",
            )

    def optimize(self, objective: Objective, n_trials: int | None = None, timeout: float | None = None) -> None:
        """Run trials of ``objective`` until ``n_trials`` finished or ``timeout`` seconds passed.

        An objective that raises [`lcv_config.TrialPruned`][lcv_config.TrialPruned] ends its trial as PRUNED. With
        neither limit, trials run until the process is interrupted, as in Optuna.
        """

        def run(trial: optuna.Trial) -> float:
            wrapped = OptunaTrial(trial, suggest(trial, self.space), prunable=not self.multi_objective)
            try:
                value: Any = objective(wrapped)
            except TrialPruned as exc:
                if isinstance(exc, optuna.TrialPruned):
                    raise
                raise optuna.TrialPruned(str(exc)) from exc
            if self.multi_objective:
                return [float(v) for v in value]  # type: ignore[return-value]  # Optuna takes a sequence here
            return float(value)

        self.study.optimize(
            run,
            n_trials=n_trials,
            timeout=timeout,
            gc_after_trial=self._options["gc_after_trial"],
            show_progress_bar=self._options["show_progress_bar"],
        )

    @property
    def best_params(self) -> dict[str, Any]:
        """The parameters of the best finished trial, keyed by config path.

        Raises:
            LcvError: No trial of the study has finished yet.
        """
        params = self._best().params
        out: dict[str, Any] = {}
        for key, value in params.items():
            param = self.space.get(key)
            if isinstance(param, CategoricalParam):
                choices, labelled = _encoded_choices(param)
                out[key] = param.choices[choices.index(value)] if labelled and value in choices else value
            else:
                out[key] = value
        return out

    @property
    def best_value(self) -> float:
        """The objective value of the best finished trial.

        Raises:
            LcvError: No trial of the study has finished yet.
        """
        best = self._best()
        value = best.values[0] if self.multi_objective else best.value
        assert value is not None  # a COMPLETE single-objective trial always has one
        return float(value)

    def _best(self) -> optuna.trial.FrozenTrial:
        if self.multi_objective:
            front = self.study.best_trials
            if not front:
                raise LcvError(f"Study {self.study_name!r} has no finished trial yet, so it has no best.")
            # several objectives have a Pareto front, not one best: lcv picks the front's best first objective
            first = self.study.directions[0] == optuna.study.StudyDirection.MINIMIZE
            return sorted(front, key=lambda t: t.values[0] if first else -t.values[0])[0]
        try:
            return self.study.best_trial
        except ValueError:
            raise LcvError(f"Study {self.study_name!r} has no finished trial yet, so it has no best.") from None

    def __repr__(self) -> str:
        return f"OptunaTuner(study={self.study_name!r}, direction={self.direction!r}, params={list(self.space)})"


def _check_directions(directions: Any, pruner: Any) -> None:
    valid = ("minimize", "maximize")
    if not isinstance(directions, (list, tuple)) or len(directions) < 2 or any(d not in valid for d in directions):
        raise ConfigError(
            f"tune.options.directions must list at least two of 'minimize'/'maximize', got {directions!r}.",
            "tune.options.directions",
        )
    if pruner is not None:
        raise ConfigError(f"{_MULTI_NOTE} Remove tune.pruner (got {pruner!r}).", "tune.pruner")


def _is_parsed(space: Mapping[str, Any]) -> bool:
    return bool(space) and all(isinstance(p, (FloatParam, IntParam, CategoricalParam)) for p in space.values())
