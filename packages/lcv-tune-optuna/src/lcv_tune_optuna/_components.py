"""Build Optuna samplers and pruners from names with arguments, as a config writes them."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import optuna

from lcv_config import ConfigError
from lcv_config.errors import did_you_mean
from lcv_config.registry import split_component
from lcv_config.space import CategoricalParam, FloatParam, IntParam

Space = Mapping[str, FloatParam | IntParam | CategoricalParam]

SAMPLER_ALIASES = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "cmaes": "CmaEsSampler",
    "cma-es": "CmaEsSampler",
    "cma_es": "CmaEsSampler",
    "grid": "GridSampler",
    "qmc": "QMCSampler",
    "gp": "GPSampler",
    "nsga2": "NSGAIISampler",
    "nsgaii": "NSGAIISampler",
    "nsga3": "NSGAIIISampler",
    "nsgaiii": "NSGAIIISampler",
    "brute_force": "BruteForceSampler",
    "bruteforce": "BruteForceSampler",
}
"""Short names accepted for Optuna's samplers."""

PRUNER_ALIASES = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "asha": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "patient": "PatientPruner",
    "threshold": "ThresholdPruner",
    "wilcoxon": "WilcoxonPruner",
    "nop": "NopPruner",
    "none": "NopPruner",
}
"""Short names accepted for Optuna's pruners."""


def _classes(module: Any, suffix: str, base: type) -> dict[str, type]:
    out: dict[str, type] = {}
    for name in dir(module):
        obj = getattr(module, name)
        if name.endswith(suffix) and not name.startswith("Base") and isinstance(obj, type) and issubclass(obj, base):
            out[name] = obj
    return out


def _split(spec: Any, what: str) -> tuple[str, dict[str, Any]]:
    """Return ``(name, kwargs)`` of a bare name, a ``{name, cfg}`` mapping or an lcv ``Component``."""
    name, cfg = split_component(spec, f"tune.{what}")
    if not isinstance(name, str):
        message = f"Cannot build a {what} from {spec!r}; give a name or {{name: ..., cfg: {{...}}}}."
        raise ConfigError(message, f"tune.{what}")
    return name, cfg


def _lookup(name: str, classes: Mapping[str, type], aliases: Mapping[str, str], what: str) -> type:
    key = aliases.get(name.lower(), name)
    if key in classes:
        return classes[key]
    by_lower = {c.lower(): c for c in classes}
    if key.lower() in by_lower:
        return classes[by_lower[key.lower()]]
    names = sorted(classes) + sorted(aliases)
    raise ConfigError(
        f"Unknown {what} {name!r}.{did_you_mean(name, names)} Available: {', '.join(sorted(classes))} "
        f"(short names: {', '.join(sorted(aliases))}).",
        f"tune.{what}.name",
    )


def _construct(cls: type, cfg: dict[str, Any], what: str) -> Any:
    try:
        inspect.signature(cls).bind(**cfg)
    except TypeError as exc:
        params = [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
        raise ConfigError(
            f"Invalid arguments for {what} {cls.__name__}: {exc}. Accepted: {', '.join(params)}.", f"tune.{what}.cfg"
        ) from None
    try:
        return cls(**cfg)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Cannot build {what} {cls.__name__} with {cfg!r}: {exc}", f"tune.{what}.cfg") from None


def grid_of(space: Space) -> dict[str, list[Any]]:
    """Return the grid of a space whose every parameter is discrete, for ``GridSampler``.

    Raises:
        ConfigError: A float parameter has no ``step``, so it has no grid.
    """
    grid: dict[str, list[Any]] = {}
    for key, param in space.items():
        if isinstance(param, CategoricalParam):
            grid[key] = list(param.choices)
        elif isinstance(param, IntParam) and not param.log:
            grid[key] = list(range(param.low, param.high + 1, param.step))
        elif isinstance(param, FloatParam) and param.step is not None:
            n = int(round((param.high - param.low) / param.step))
            grid[key] = [param.low + i * param.step for i in range(n + 1)]
        else:
            raise ConfigError(
                f"GridSampler needs a finite grid, but '{key}' is a continuous or log-scale range; give it a 'step', "
                "make it categorical, or pass 'search_space' in the sampler's cfg.",
                f"tune.space.{key}",
            )
    return grid


def make_sampler(spec: Any, space: Space, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """Return the sampler a config names: ``"tpe"``, ``"TPESampler"`` or ``{name: TPESampler, cfg: {...}}``.

    ``None`` is a seeded TPE sampler. ``seed`` goes to every sampler that accepts one and has none in its ``cfg``;
    ``GridSampler`` takes its grid from the space when its ``cfg`` has no ``search_space``.

    Raises:
        ConfigError: Unknown sampler name (with the closest names) or invalid arguments.
    """
    if isinstance(spec, optuna.samplers.BaseSampler):
        return spec
    if spec is None:
        return optuna.samplers.TPESampler(seed=seed)
    name, cfg = _split(spec, "sampler")
    cls = _lookup(name, _classes(optuna.samplers, "Sampler", optuna.samplers.BaseSampler), SAMPLER_ALIASES, "sampler")
    params = inspect.signature(cls).parameters
    if cls is optuna.samplers.GridSampler and "search_space" not in cfg:
        cfg["search_space"] = grid_of(space)
    if seed is not None and "seed" in params and "seed" not in cfg:
        cfg["seed"] = seed
    sampler: optuna.samplers.BaseSampler = _construct(cls, cfg, "sampler")
    return sampler


def make_pruner(spec: Any) -> optuna.pruners.BasePruner | None:
    """Return the pruner a config names: ``"median"``, ``"MedianPruner"`` or ``{name: ..., cfg: {...}}``.

    ``None`` keeps Optuna's default (``MedianPruner``). A ``wrapped_pruner`` argument (``PatientPruner``) may itself be
    a name or ``{name, cfg}``.

    Raises:
        ConfigError: Unknown pruner name (with the closest names) or invalid arguments.
    """
    if spec is None or isinstance(spec, optuna.pruners.BasePruner):
        return spec
    name, cfg = _split(spec, "pruner")
    cls = _lookup(name, _classes(optuna.pruners, "Pruner", optuna.pruners.BasePruner), PRUNER_ALIASES, "pruner")
    if "wrapped_pruner" in cfg:
        cfg["wrapped_pruner"] = make_pruner(cfg["wrapped_pruner"])
    pruner: optuna.pruners.BasePruner = _construct(cls, cfg, "pruner")
    return pruner
