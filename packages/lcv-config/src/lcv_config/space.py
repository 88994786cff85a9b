"""The backend-neutral search space of ``lcv tune``, keyed by config path.

Written in a config as::

    space:
      optimizer.cfg.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
      model.cfg.hidden: {type: int, low: 16, high: 256, step: 16}
      optimizer.name: {type: categorical, choices: [Adam, SGD]}
      optimizer.cfg.momentum: {type: float, low: 0.5, high: 0.99, when: {optimizer.name: SGD}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from lcv_config.errors import ConfigError, did_you_mean


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: dict[str, Any] | None = None
    """Sample this parameter only when every other path listed here has the given value."""


class FloatParam(_Param):
    """A float in ``[low, high]``, on a log scale or a grid of ``step``."""

    type: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("a range cannot be both log-scale and stepped")
        return self


class IntParam(_Param):
    """An integer in ``[low, high]``, on a log scale or a grid of ``step``."""

    type: Literal["int"] = "int"
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0, got {self.low}")
        return self


class CategoricalParam(_Param):
    """One of ``choices``."""

    type: Literal["categorical"] = "categorical"
    choices: list[Any] = Field(min_length=1)


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]
"""One dimension of a search space."""

_PARAM: TypeAdapter[FloatParam | IntParam | CategoricalParam] = TypeAdapter(Param)
_TYPES: dict[str, type[_Param]] = {"float": FloatParam, "int": IntParam, "categorical": CategoricalParam}


def parse_space(
    space: Mapping[str, Any], path: str = "tune.space"
) -> dict[str, FloatParam | IntParam | CategoricalParam]:
    """Validate a search space; every error names the parameter's config path.

    Raises:
        ConfigError: A parameter has an unknown type, low > high, no choices, or a condition on an unknown path.
    """
    parsed: dict[str, FloatParam | IntParam | CategoricalParam] = {}
    for key, spec in space.items():
        if isinstance(spec, list):
            spec = {"type": "categorical", "choices": spec}
        if not isinstance(spec, Mapping) or "type" not in spec:
            raise ConfigError(
                f"Search-space entry '{key}' needs a 'type' (float, int or categorical); got {spec!r}.", f"{path}.{key}"
            )
        kind = spec["type"]
        if kind not in _TYPES:
            raise ConfigError(
                f"Unknown search-space type {kind!r} for '{key}'.{did_you_mean(str(kind), _TYPES)} "
                f"Types: {', '.join(_TYPES)}.",
                f"{path}.{key}.type",
            )
        try:
            parsed[key] = _PARAM.validate_python(dict(spec))
        except ValidationError as exc:
            err = exc.errors()[0]
            fields = [str(p) for p in err["loc"][1:]]
            where = ".".join([path, key, *fields])
            if err["type"] == "extra_forbidden":
                valid = list(_TYPES[kind].model_fields)
                raise ConfigError(
                    f"Unknown key '{fields[-1]}' in search-space entry '{key}' of type {kind}."
                    f"{did_you_mean(fields[-1], valid)} Valid keys: {', '.join(valid)}.",
                    where,
                ) from None
            reason = err["msg"].removeprefix("Value error, ")
            what = f"'{'.'.join(fields)}' of search-space entry '{key}'" if fields else f"search-space entry '{key}'"
            raise ConfigError(f"Invalid {what}: {reason}.", where) from None
    for key, param in parsed.items():
        for other in param.when or {}:
            if other not in parsed:
                raise ConfigError(
                    f"'{key}' is conditional on '{other}', which is not in the search space.", f"{path}.{key}.when"
                )
    return parsed


def active(param: FloatParam | IntParam | CategoricalParam, chosen: Mapping[str, Any]) -> bool:
    """Return whether a conditional parameter applies, given the values chosen so far."""
    return all(chosen.get(k) == v for k, v in (param.when or {}).items())


def ordered(space: Mapping[str, FloatParam | IntParam | CategoricalParam]) -> list[str]:
    """Return the space's keys so that every condition's parameter comes before the ones that depend on it."""
    done: list[str] = []
    pending = list(space)
    while pending:
        progressed = False
        for key in list(pending):
            if all(dep in done for dep in space[key].when or {}):
                done.append(key)
                pending.remove(key)
                progressed = True
        if not progressed:
            raise ConfigError(f"Search-space conditions form a cycle among: {', '.join(pending)}.", "tune.space")
    return done


def check_tuner_arguments(backend: str, direction: str, options: Mapping[str, Any], accepted: Iterable[str]) -> None:
    """Check what every tuner backend is constructed with: the direction and its backend options.

    Raises:
        ConfigError: A direction other than ``minimize``/``maximize``, or an option the backend does not
            accept (with the closest accepted name).
    """
    from lcv_config.errors import did_you_mean

    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"direction must be 'minimize' or 'maximize', got {direction!r}.", "tune.direction")
    valid = sorted(accepted)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"Unknown {backend} tuner option {unknown[0]!r}.{did_you_mean(unknown[0], valid)} "
            f"Accepted: {', '.join(valid)}.",
            f"tune.options.{unknown[0]}",
        )
