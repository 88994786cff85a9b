"""The search space of ``lcv tune``: parsing, conditions, and errors that name the parameter's path."""

from __future__ import annotations

import pytest

from lcv_config import ConfigError, parse_space
from lcv_config.space import CategoricalParam, FloatParam, IntParam, active, ordered

SPACE = {
    "optimizer.cfg.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "model.cfg.hidden": {"type": "int", "low": 16, "high": 256, "step": 16},
    "optimizer.name": {"type": "categorical", "choices": ["Adam", "SGD"]},
    "optimizer.cfg.momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer.name": "SGD"}},
    "batch": [16, 32],
}


def test_parse_a_full_space() -> None:
    space = parse_space(SPACE)
    assert space["optimizer.cfg.lr"] == FloatParam(low=1e-4, high=1e-1, log=True)
    assert space["model.cfg.hidden"] == IntParam(low=16, high=256, step=16)
    assert space["batch"] == CategoricalParam(choices=[16, 32])  # a bare list is a categorical
    momentum = space["optimizer.cfg.momentum"]
    assert active(momentum, {"optimizer.name": "SGD"}) and not active(momentum, {"optimizer.name": "Adam"})
    order = ordered(space)
    assert order.index("optimizer.name") < order.index("optimizer.cfg.momentum")


ERRORS = [
    ({"lr": {"type": "float", "low": 1.0, "high": 0.1}}, "tune.space.lr", "low (1.0) must not exceed high (0.1)"),
    ({"n": {"type": "int", "low": 5, "high": 1}}, "tune.space.n", "low (5) must not exceed high (1)"),
    (
        {"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}},
        "tune.space.lr",
        "a log-scale range needs low > 0",
    ),
    (
        {"lr": {"type": "float", "low": 0.1, "high": 1.0, "log": True, "step": 0.1}},
        "tune.space.lr",
        "both log-scale and stepped",
    ),
    ({"c": {"type": "categorical", "choices": []}}, "tune.space.c.choices", "at least 1 item"),
    ({"c": []}, "tune.space.c.choices", "at least 1 item"),
    (
        {"x": {"type": "flaot", "low": 0, "high": 1}},
        "tune.space.x.type",
        "Did you mean 'float'? Types: float, int, categorical",
    ),
    ({"x": {"low": 0, "high": 1}}, "tune.space.x", "needs a 'type' (float, int or categorical)"),
    ({"x": 0.5}, "tune.space.x", "needs a 'type'"),
    ({"n": {"type": "int", "low": 1, "high": 9, "stepp": 2}}, "tune.space.n.stepp", "Did you mean 'step'?"),
    ({"n": {"type": "int", "low": "one", "high": 9}}, "tune.space.n.low", "valid integer"),
    ({"n": {"type": "int", "low": 1}}, "tune.space.n.high", "Field required"),
    (
        {"m": {"type": "float", "low": 0.1, "high": 0.9, "when": {"optimizer.name": "SGD"}}},
        "tune.space.m.when",
        "'m' is conditional on 'optimizer.name', which is not in the search space",
    ),
]


@pytest.mark.parametrize(("space", "path", "fix"), ERRORS)
def test_parse_errors_name_the_path(space: dict[str, object], path: str, fix: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_space(space)
    assert info.value.path == path
    assert path in str(info.value) and fix in str(info.value)


def test_conditions_in_a_cycle_are_an_error() -> None:
    space = parse_space(
        {
            "a": {"type": "categorical", "choices": [1, 2], "when": {"b": 1}},
            "b": {"type": "categorical", "choices": [1, 2], "when": {"a": 1}},
        }
    )
    with pytest.raises(ConfigError, match="Search-space conditions form a cycle among: a, b"):
        ordered(space)
