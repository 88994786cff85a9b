"""The W&B tuner backend: local sweeps (the ``sweeps`` engine, offline runs) or W&B's hosted sweep controller."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lcv_config import ConfigError, LcvError, TrialPruned, parse_space
from lcv_config.protocols import Objective
from lcv_config.space import IntParam, active, check_tuner_arguments
from lcv_tune_wandb._controller_lock import controller_lock
from lcv_tune_wandb._engine import import_sweeps, import_wandb
from lcv_tune_wandb._trial import WandbTrial as WandbTrial
from lcv_tune_wandb._trial import terminate_prunes
from lcv_tune_wandb._tuner_options import MODES as MODES
from lcv_tune_wandb._tuner_options import early_terminate, is_parsed, plain, resolve_tuner_mode, sweep_method
from lcv_tune_wandb.sweep_config import DEFAULT_METRIC, space_to_sweep, validate_sweep

DEFAULT_STUDY = "lcv"
"""The study (W&B group) name used when none is given."""

_OPTIONS = ("mode", "project", "entity", "metric", "sweep", "tags", "sweep_id")


class WandbTuner:
    """Tune with W&B sweeps: locally and offline (W&B's open-source ``sweeps`` engine), or with W&B's hosted controller.

    In ``local`` mode (the default without an API key), every trial is a W&B run in offline mode under
    ``<workdir>/wandb/`` (``group`` = the study, ``config`` = the trial's parameters) that ``wandb sync`` can upload
    later. The study's runs are also kept in ``<workdir>/<study>.sweep.json``, so a later tuner on the same work
    directory and study continues the sweep (a grid resumes where it stopped). In ``online`` mode, ``wandb.sweep``
    creates the sweep (or ``sweep_id`` joins one) and ``wandb.agent`` runs the trials the hosted controller proposes.
    In both modes a SIGTERM during a trial (how W&B's agent stops a run) prunes it: the run ends cleanly after the
    current epoch and is recorded as pruned.

    Args:
        space: The backend-neutral search space (raw or parsed); may be empty when ``options["sweep"]`` is given.
        direction: ``"minimize"`` or ``"maximize"`` (the sweep metric's goal).
        study: The study name: the W&B group, and the project unless ``project`` is given. Default ``"lcv"``.
        storage: Unused by W&B (the runs live in ``workdir``); must be ``None``.
        workdir: Where the offline runs and the sweep state go.
        sampler: The sweep method: ``"random"`` (default), ``"grid"`` or ``"bayes"`` (a name or ``{name: ...}``).
        pruner: Early termination, e.g. ``{name: hyperband, cfg: {min_iter: 2, eta: 2}}``.
        seed: Seed of the engine's proposals (numpy's and Python's global generators, restored afterwards).
        **options: ``mode`` (``"auto"``, ``"local"`` or ``"online"``, see `MODES`), ``sweep_id`` (join an
            existing online sweep), ``project``, ``entity``, ``metric`` (the name the
            objective is logged under, default ``"objective"``), ``tags``, and ``sweep``: a native W&B sweep config
            (``method``, ``metric``, ``parameters`` incl. nested ones, ``early_terminate``, ``run_cap``) used instead
            of or merged over the one built from ``space``.

    Raises:
        ConfigError: Invalid space, sweep config or option; the message names the key.
        LcvError: The ``sweeps`` engine is not installed.
    """

    def __init__(
        self,
        space: Mapping[str, Any],
        direction: str = "minimize",
        study: str | None = None,
        storage: str | None = None,
        workdir: str | Path = ".",
        sampler: Any = None,
        pruner: Any = None,
        seed: int | None = None,
        **options: Any,
    ) -> None:
        check_tuner_arguments("W&B", direction, options, _OPTIONS)
        self.mode = resolve_tuner_mode(str(options.get("mode", "auto")))
        if storage is not None:
            raise ConfigError(
                "The W&B backend keeps its runs in the work directory and takes no storage URL; remove 'storage' "
                "or use backend: optuna for a shared database.",
                "tune.storage",
            )
        self.direction = direction
        self.study_name = study or DEFAULT_STUDY
        self.workdir = Path(workdir)
        self.project = str(options.get("project") or self.study_name)
        self.entity = options.get("entity")
        self.tags = list(options.get("tags") or [])
        self.seed = seed
        self.space = dict(space) if is_parsed(space) else parse_space(space)
        native = options.get("sweep") or {}
        if not isinstance(native, Mapping):
            raise ConfigError(
                f"options.sweep must be a W&B sweep config (a mapping), got {native!r}.", "tune.options.sweep"
            )
        method = sweep_method(sampler) if sampler is not None else str(native.get("method", "random"))
        metric = str(options.get("metric") or (native.get("metric") or {}).get("name") or DEFAULT_METRIC)
        config: dict[str, Any] = {"method": method, "metric": {"name": metric, "goal": direction}, "parameters": {}}
        if self.space:
            config = space_to_sweep(self.space, method, metric, direction)
        config = {**config, **{k: v for k, v in native.items() if k != "parameters"}}
        config["parameters"] = {**config["parameters"], **dict(native.get("parameters") or {})}
        if pruner is not None:
            config["early_terminate"] = early_terminate(pruner)
        self.sweep_config: dict[str, Any] = validate_sweep(config)
        self.metric = str(self.sweep_config.get("metric", {}).get("name", metric))
        goal = self.sweep_config.get("metric", {}).get("goal", direction)
        if goal != direction:
            raise ConfigError(
                f"The sweep metric's goal {goal!r} contradicts direction {direction!r}; set one of them.",
                "tune.options.sweep.metric.goal",
            )
        self.sweep_id: str | None = options.get("sweep_id")
        self._sweeps: Any = import_sweeps() if self.mode == "local" else None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_file = self.workdir / f"{self.study_name}.sweep.json"
        self.runs: list[dict[str, Any]] = self._load_state()

    # --- state -----------------------------------------------------------------------------------------------------

    def _load_state(self) -> list[dict[str, Any]]:
        if not self.state_file.is_file():
            return []
        state = json.loads(self.state_file.read_text())
        if state.get("sweep_config") != json.loads(json.dumps(self.sweep_config)):
            raise ConfigError(
                f"Study {self.study_name!r} in {self.workdir} was started with another sweep config; use another "
                f"study name or delete {self.state_file}.",
                "tune.study",
            )
        runs: list[dict[str, Any]] = state["runs"]
        return runs

    def _save_state(self) -> None:
        state = {"study": self.study_name, "sweep_config": self.sweep_config, "runs": self.runs}
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=1, default=plain))
        tmp.replace(self.state_file)

    def _sweep_runs(self, current: WandbTrial | None = None) -> list[Any]:
        sweeps = self._sweeps
        out = [
            sweeps.SweepRun(
                name=r["name"],
                state=r["state"],
                config=r["engine_config"],
                history=r["history"],
                summary_metrics=r["summary"],
                search_info=r.get("search_info"),
            )
            for r in self.runs
        ]
        if current is not None:
            out.append(
                sweeps.SweepRun(
                    name=self._run_name(current.number),
                    state=sweeps.RunState.running,
                    config={k: {"value": v} for k, v in current.params.items()},
                    history=current.history,
                )
            )
        return out

    def _run_name(self, number: int) -> str:
        return f"{self.study_name}-trial-{number}"

    # --- proposing ---------------------------------------------------------------------------------------------------

    @contextmanager
    def _seeded(self, number: int) -> Iterator[None]:
        if self.seed is None:
            yield
            return
        import numpy as np

        np_state, py_state = np.random.get_state(), random.getstate()
        np.random.seed((self.seed * 1_000_003 + number) % 2**32)
        random.seed(self.seed * 1_000_003 + number)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)

    def _propose(self) -> dict[str, Any] | None:
        with self._seeded(len(self.runs)):
            suggestion = self._sweeps.next_run(self.sweep_config, self._sweep_runs())
        if suggestion is None:
            return None
        return {key: plain(item["value"]) for key, item in suggestion.config.items()}

    def _active(self, proposed: Mapping[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for key, value in proposed.items():
            param = self.space.get(key)
            if isinstance(param, IntParam):
                value = int(value)
            if param is None or active(param, proposed):
                params[key] = value
        return params

    def _should_stop(self, trial: WandbTrial) -> bool:
        if "early_terminate" not in self.sweep_config or not trial.history:
            return False
        stop = self._sweeps.stop_runs(self.sweep_config, self._sweep_runs(trial))
        return any(r.name == self._run_name(trial.number) for r in stop)

    # --- running ---------------------------------------------------------------------------------------------------

    def optimize(self, objective: Objective, n_trials: int | None = None, timeout: float | None = None) -> None:
        """Run trials of ``objective`` until ``n_trials`` finished, ``timeout`` seconds passed, or the sweep is done.

        A grid sweep is done when every grid point ran; ``run_cap`` in the sweep config also ends it. An objective
        that raises [`lcv_config.TrialPruned`][lcv_config.TrialPruned] (after ``should_prune``) ends its run as pruned.
        """
        wandb = import_wandb()
        if self.mode == "online":
            self._optimize_online(wandb, objective, n_trials, timeout)
            return
        start = time.monotonic()
        done = 0
        run_cap = self.sweep_config.get("run_cap")
        with controller_lock(self.workdir, self.study_name):
            self.runs = self._load_state()  # another controller may have run trials since this tuner was made
            while n_trials is None or done < n_trials:
                if timeout is not None and time.monotonic() - start >= timeout:
                    break
                if run_cap is not None and len(self.runs) >= int(run_cap):
                    break
                proposed = self._propose()
                if proposed is None:
                    break
                self._run_trial(wandb, objective, proposed)
                done += 1

    def _run_trial(self, wandb: Any, objective: Objective, proposed: dict[str, Any]) -> None:
        number = len(self.runs)
        params = self._active(proposed)
        run = wandb.init(
            dir=str(self.workdir),
            project=self.project,
            entity=self.entity,
            group=self.study_name,
            job_type="trial",
            name=self._run_name(number),
            config=params,
            tags=self.tags,
            reinit="create_new",
            settings=wandb.Settings(mode="offline", silent=True, console="off", save_code=False, disable_git=True),
        )
        trial = WandbTrial(number, params, run, self.metric, pruner=self._should_stop)
        record: dict[str, Any] = {
            "number": number,
            "name": self._run_name(number),
            "run_id": run.id,
            "run_dir": str(Path(run.dir).parent),
            "params": params,
            "engine_config": {k: {"value": v} for k, v in proposed.items()},
        }
        state, value, exit_code = "failed", None, 1
        try:
            with terminate_prunes(trial):
                value = float(objective(trial))
            state, exit_code = "finished", 0
        except TrialPruned:
            state, exit_code = "pruned", 0
        finally:
            if trial.history:
                run.log({}, commit=True)  # flush the last row now, or finish() would overwrite the summary with it
            run.summary["lcv_state"] = state
            if value is not None and math.isfinite(value):
                run.summary[self.metric] = value
            run.finish(exit_code=exit_code)
            summary = {self.metric: value} if value is not None else {}
            record.update(
                state={"finished": "finished", "pruned": "killed"}.get(state, "failed"),
                lcv_state=state,
                value=value,
                history=trial.history,
                summary={**summary, **trial.user_attrs},
                user_attrs=trial.user_attrs,
            )
            self.runs.append(record)
            self._save_state()

    def _optimize_online(self, wandb: Any, objective: Objective, n_trials: int | None, timeout: float | None) -> None:
        """Run trials from W&B's hosted sweep controller through ``wandb.agent`` (needs an account and network)."""
        if timeout is not None:
            raise ConfigError(
                "An online W&B sweep is bounded by trial count (n_trials or run_cap), not by a timeout.", "tune.timeout"
            )
        if self.sweep_id is None:
            self.sweep_id = wandb.sweep(sweep=self.sweep_config, project=self.project, entity=self.entity)

        def run_one() -> None:
            run = wandb.init(group=self.study_name, job_type="trial", tags=self.tags)
            params = {k: plain(v) for k, v in dict(run.config).items() if not k.startswith("_")}
            trial = WandbTrial(len(self.runs), params, run, self.metric)
            state, value = "failed", None
            try:
                with terminate_prunes(trial):
                    value = float(objective(trial))
                state = "finished"
            except TrialPruned:
                state = "pruned"
            finally:
                run.summary["lcv_state"] = state
                if value is not None and math.isfinite(value):
                    run.summary[self.metric] = value
                self.runs.append(
                    {"number": trial.number, "name": run.name, "run_id": run.id, "params": params, "lcv_state": state,
                     "value": value, "history": trial.history, "user_attrs": trial.user_attrs}
                )  # fmt: skip
                run.finish(exit_code=0 if state != "failed" else 1)

        wandb.agent(self.sweep_id, function=run_one, count=n_trials, project=self.project, entity=self.entity)

    # --- results -----------------------------------------------------------------------------------------------------

    def _best(self) -> dict[str, Any]:
        finished = [r for r in self.runs if r["lcv_state"] == "finished" and r["value"] is not None]
        finished = [r for r in finished if math.isfinite(r["value"])]
        if not finished:
            raise LcvError(f"Study {self.study_name!r} has no finished trial yet, so it has no best.")
        pick = min if self.direction == "minimize" else max
        return pick(finished, key=lambda r: float(r["value"]))

    @property
    def best_params(self) -> dict[str, Any]:
        """The parameters of the best finished trial, keyed by config path."""
        return dict(self._best()["params"])

    @property
    def best_value(self) -> float:
        """The objective value of the best finished trial."""
        return float(self._best()["value"])

    def __repr__(self) -> str:
        return f"WandbTuner(study={self.study_name!r}, method={self.sweep_config['method']!r}, runs={len(self.runs)})"
