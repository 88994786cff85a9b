"""Translate lcv's backend-neutral search space into a W&B sweep config, and validate sweep configs.

The validation is the ``sweeps`` engine's own JSON-schema check (the one W&B's server runs); errors name the
offending key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lcv_config import ConfigError, parse_space
from lcv_config.errors import did_you_mean
from lcv_config.space import CategoricalParam, FloatParam, IntParam

Space = Mapping[str, FloatParam | IntParam | CategoricalParam]

METHODS = ("grid", "random", "bayes")
"""The proposal methods of the local ``sweeps`` engine."""

DEFAULT_METRIC = "objective"
"""The name under which a trial's reported values are logged when the sweep config names no metric."""


def _param(key: str, param: FloatParam | IntParam | CategoricalParam, method: str) -> dict[str, Any]:
    if isinstance(param, CategoricalParam):
        return {"values": list(param.choices)}
    if isinstance(param, IntParam):
        if method == "grid" or param.step != 1:
            if param.log and method != "grid":
                raise ConfigError(f"'{key}': an int range cannot be both log-scale and stepped.", f"tune.space.{key}")
            return {"values": list(range(param.low, param.high + 1, param.step))}
        if param.log:
            return {"distribution": "q_log_uniform_values", "min": param.low, "max": param.high, "q": 1}
        return {"distribution": "int_uniform", "min": param.low, "max": param.high}
    if param.step is not None:
        n = int(round((param.high - param.low) / param.step))
        return {"values": [param.low + i * param.step for i in range(n + 1)]}
    if method == "grid":
        raise ConfigError(
            f"A grid sweep needs a finite grid, but '{key}' is a continuous range; give it a 'step', make it "
            "categorical, or use the random or bayes method.",
            f"tune.space.{key}",
        )
    if param.log:
        return {"distribution": "log_uniform_values", "min": param.low, "max": param.high}
    return {"distribution": "uniform", "min": param.low, "max": param.high}


def space_to_sweep(
    space: Mapping[str, Any], method: str = "random", metric: str = DEFAULT_METRIC, goal: str = "minimize"
) -> dict[str, Any]:
    """Return the W&B sweep config that searches ``space`` (raw or parsed) with ``method``.

    W&B sweeps have no conditional parameters: a parameter with ``when`` is proposed in every run and dropped from
    the trial's parameters when its condition does not hold.

    Raises:
        ConfigError: Unknown method, or a continuous range in a grid sweep.
    """
    if method not in METHODS:
        raise ConfigError(
            f"Unknown W&B sweep method {method!r}.{did_you_mean(method, METHODS)} Available: {', '.join(METHODS)}.",
            "tune.sampler",
        )
    parsed = space if _is_parsed(space) else parse_space(space)
    return {
        "method": method,
        "metric": {"name": metric, "goal": goal},
        "parameters": {key: _param(key, p, method) for key, p in parsed.items()},
    }


def flatten_parameters(parameters: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Turn W&B's nested ``parameters: {optimizer: {parameters: {lr: ...}}}`` into config paths (``optimizer.lr``)."""
    flat: dict[str, Any] = {}
    for key, spec in parameters.items():
        path = f"{prefix}{key}"
        if isinstance(spec, Mapping) and isinstance(spec.get("parameters"), Mapping) and set(spec) <= {"parameters"}:
            flat.update(flatten_parameters(spec["parameters"], f"{path}."))
        else:
            flat[path] = spec
    return flat


def validate_sweep(config: Mapping[str, Any], path: str = "tune.options.sweep") -> dict[str, Any]:
    """Check a W&B sweep config with the ``sweeps`` engine's schema; return it with nested parameters flattened.

    Raises:
        ConfigError: The config breaks the schema; the message names the offending key and quotes the engine.
    """
    from lcv_tune_wandb._engine import import_sweeps

    sweeps = import_sweeps()
    from sweeps.config.schema import validator

    config = dict(config)
    if isinstance(config.get("parameters"), Mapping):
        config["parameters"] = flatten_parameters(config["parameters"])
    problems: list[tuple[str, str]] = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in error.absolute_path)
        message = error.message
        if error.validator == "additionalProperties":
            unexpected = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            if unexpected:
                where = ".".join(filter(None, [where, unexpected[0]]))
                known = list(error.schema.get("properties", {}))
                message += f".{did_you_mean(unexpected[0], known)} Allowed: {', '.join(sorted(known))}"
        problems.append((where, message))
    for message in sweeps.schema_violations_from_proposed_config(config):
        if not any(message == m for _, m in problems):
            key = message.split(":", 1)[0] if ": " in message and " " not in message.split(":", 1)[0] else ""
            problems.append((f"parameters.{key}" if key in config.get("parameters", {}) else "", message))
    if problems:
        where, message = problems[0]
        more = "; ".join(f"{w or '<top>'}: {m}" for w, m in problems[1:])
        raise ConfigError(
            f"Invalid W&B sweep config at '{where or '<top>'}': {message}." + (f" Also: {more}." if more else ""),
            f"{path}.{where}" if where else path,
        )
    if config.get("method") not in METHODS:
        raise ConfigError(
            f"Sweep method {config.get('method')!r} cannot run locally; use one of {', '.join(METHODS)}.",
            f"{path}.method",
        )
    return config


def _is_parsed(space: Mapping[str, Any]) -> bool:
    return bool(space) and all(isinstance(p, (FloatParam, IntParam, CategoricalParam)) for p in space.values())
