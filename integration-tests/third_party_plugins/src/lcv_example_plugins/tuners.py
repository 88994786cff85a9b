"""A random-search tuner backend (``example_random``), constructed with the keywords ``lcv tune`` passes."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lcv_config import TrialPruned
from lcv_config.space import parse_space


class RandomTrial:
    """One trial: its number, parameters, reported values and attributes."""

    def __init__(self, number: int, params: dict[str, Any]) -> None:
        self._number, self._params = number, params
        self.values: dict[int, float] = {}
        self.user_attrs: dict[str, Any] = {}

    @property
    def number(self) -> int:
        return self._number

    @property
    def params(self) -> Mapping[str, Any]:
        return self._params

    def report(self, value: float, step: int) -> None:
        self.values[step] = value

    def should_prune(self) -> bool:
        return False

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value


class RandomSearchTuner:
    """Sample every parameter uniformly (log-uniformly where ``log``); results go to ``<workdir>/trials.jsonl``."""

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
        self.space = parse_space(space)
        self.direction = direction
        self.path = Path(workdir) / f"{study or 'example_random'}.jsonl"
        self.rng = random.Random(seed)
        self.results: list[tuple[float, dict[str, Any]]] = []
        self.count = 0

    def _sample(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for key, p in self.space.items():
            if p.type == "categorical":
                params[key] = self.rng.choice(p.choices)
            elif p.type == "int":
                params[key] = self.rng.randrange(p.low, p.high + 1, p.step)
            elif p.log:
                params[key] = math.exp(self.rng.uniform(math.log(p.low), math.log(p.high)))
            else:
                params[key] = self.rng.uniform(p.low, p.high)
        return params

    def optimize(
        self, objective: Callable[[Any], float], n_trials: int | None = None, timeout: float | None = None
    ) -> None:
        for _ in range(n_trials if n_trials is not None else 10):
            trial = RandomTrial(self.count, self._sample())
            self.count += 1
            try:
                value = float(objective(trial))
            except TrialPruned:
                continue
            self.results.append((value, dict(trial.params)))
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"number": trial.number, "value": value, "params": trial.params}) + "\n")

    def _best(self) -> tuple[float, dict[str, Any]]:
        if not self.results:
            raise ValueError("no trial finished yet")
        pick = min if self.direction == "minimize" else max
        return pick(self.results, key=lambda r: r[0])

    @property
    def best_params(self) -> dict[str, Any]:
        return self._best()[1]

    @property
    def best_value(self) -> float:
        return self._best()[0]
