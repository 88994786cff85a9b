"""The configurable learner's optimizers: parameters assigned by name patterns to optimizers and groups, then built."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import nn

from lcv_config import ConfigError, build, resolve
from lcv_config.errors import did_you_mean
from lcv_config.registry import check_arguments, split_component

_FUSED = ("Adam", "AdamW", "SGD")
_LIGHTNING_SCHEDULER_KEYS = ("interval", "frequency", "monitor", "strict")


def _patterns(value: Any, path: str) -> list[str]:
    patterns = [value] if isinstance(value, str) else value
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
        raise ConfigError(f"'params' is a list of parameter name patterns (e.g. ['encoder.*']), got {value!r}.", path)
    return patterns


def _claim(
    patterns: list[str], free: dict[str, nn.Parameter], all_names: list[str], path: str
) -> dict[str, nn.Parameter]:
    """Take the free parameters matching any pattern; a pattern matching no parameter at all is an error."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in all_names):
            listing = ", ".join(all_names[:30]) + (", ..." if len(all_names) > 30 else "")
            raise ConfigError(
                f"Parameter pattern '{pattern}' matches no parameter.{did_you_mean(pattern, all_names)} "
                f"Parameter names: {listing}.",
                path,
            )
    taken = {n: p for n, p in free.items() if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)}
    if not taken:
        raise ConfigError(
            f"Parameter patterns {patterns} match only parameters an earlier optimizer or group already has; "
            "each parameter is assigned once, to the first pattern that matches it.",
            path,
        )
    for n in taken:
        del free[n]
    return taken


def assign_parameters(
    specs: list[Any], paths: list[str], named: list[tuple[str, nn.Parameter]]
) -> list[list[dict[str, Any]]]:
    """Return each optimizer's parameter groups; every trainable parameter lands in exactly one."""
    all_names = [n for n, _ in named]
    free = dict(named)
    cfgs = [split_component(s, p)[1] for s, p in zip(specs, paths, strict=True)]
    owned: list[dict[str, nn.Parameter] | None] = []
    for cfg, path in zip(cfgs, paths, strict=True):
        owned.append(
            _claim(_patterns(cfg["params"], f"{path}.cfg.params"), free, all_names, f"{path}.cfg.params")
            if "params" in cfg
            else None
        )
    rest = [i for i, o in enumerate(owned) if o is None]
    if len(rest) > 1:
        raise ConfigError(
            f"Optimizers {', '.join(paths[i] for i in rest)} both take the remaining parameters; give all but "
            "one of them 'params' patterns.",
            paths[rest[1]],
        )
    if rest:
        owned[rest[0]] = dict(free)
        free.clear()
    if free:
        raise ConfigError(
            f"Parameters {', '.join(free)} match no optimizer's 'params'; add a pattern for them or leave one "
            "optimizer without 'params' to take the rest.",
            "optimizer",
        )
    result = []
    for cfg, path, params in zip(cfgs, paths, owned, strict=True):
        mine = dict(params or {})
        names = list(mine)
        groups = []
        for j, group in enumerate(cfg.get("param_groups") or []):
            gpath = f"{path}.cfg.param_groups[{j}]"
            if not isinstance(group, Mapping) or "params" not in group:
                raise ConfigError("A parameter group is a mapping with 'params' patterns and its settings.", gpath)
            taken = _claim(_patterns(group["params"], f"{gpath}.params"), mine, names, f"{gpath}.params")
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": list(taken.values())})
        if mine:
            groups.append({"params": list(mine.values())})
        if not groups:
            raise ConfigError("This optimizer has no parameters to optimize.", path)
        result.append(groups)
    return result


def build_optimizer(spec: Any, path: str, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """Build one optimizer over its parameter groups, with the fused kernels where torch has them and none is chosen."""
    name, cfg = split_component(spec, path)
    target = resolve("optimizer", name, f"{path}.name")
    kwargs = {k: v for k, v in cfg.items() if k not in ("params", "param_groups")}
    for j, group in enumerate(groups):
        settings = {k: v for k, v in group.items() if k != "params"}
        if settings:
            check_arguments(target, settings, "optimizer", f"{path}.cfg.param_groups[{j}]", provided=("params",))
    params = [p for g in groups for p in g["params"]]
    if (
        getattr(target, "__name__", "") in _FUSED
        and getattr(target, "__module__", "").startswith("torch.optim")
        and not {"fused", "foreach", "differentiable"} & set(kwargs)
        and _fused_supported(params)
    ):
        kwargs["fused"] = True
    optimizer = build("optimizer", {"name": target, "cfg": kwargs}, path, groups)
    return cast(torch.optim.Optimizer, optimizer)


def _fused_supported(params: list[nn.Parameter]) -> bool:
    try:
        from torch.optim.optimizer import (  # type: ignore[attr-defined]  # private, but torch's own source of truth
            _get_fused_kernels_supported_devices,
        )

        devices = set(_get_fused_kernels_supported_devices())
    except ImportError:  # an older torch without the helper: leave the default
        return False
    return bool(params) and all(p.is_floating_point() and p.device.type in devices for p in params)


def configure_from_specs(
    optimizer_spec: Any, scheduler_spec: Any, named_parameters: list[tuple[str, nn.Parameter]]
) -> Any:
    """Return what ``configure_optimizers`` returns for optimizer and scheduler components (one or a list of each).

    ``named_parameters`` are the trainable parameters under the names the ``params`` patterns match. Schedulers pair
    with optimizers by position or by ``cfg.optimizer`` (an index); ``interval``, ``frequency``, ``monitor`` and
    ``strict`` in a scheduler's ``cfg`` are Lightning's scheduler keys.
    """
    specs = list(optimizer_spec) if isinstance(optimizer_spec, (list, tuple)) else [optimizer_spec]
    prefix = [f"optimizer[{i}]" if len(specs) > 1 else "optimizer" for i in range(len(specs))]
    groups = assign_parameters(specs, prefix, named_parameters)
    optimizers = [
        build_optimizer(spec, path, opt_groups) for spec, path, opt_groups in zip(specs, prefix, groups, strict=True)
    ]
    if scheduler_spec is None:
        return optimizers[0] if len(optimizers) == 1 else optimizers
    sched_specs = list(scheduler_spec) if isinstance(scheduler_spec, (list, tuple)) else [scheduler_spec]
    configs = []
    for i, spec in enumerate(sched_specs):
        path = f"lr_scheduler[{i}]" if len(sched_specs) > 1 else "lr_scheduler"
        name, cfg = split_component(spec, path)
        keys = {k: cfg.pop(k) for k in _LIGHTNING_SCHEDULER_KEYS if k in cfg}
        index = cfg.pop("optimizer", i if len(sched_specs) == len(optimizers) else 0)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(optimizers):
            raise ConfigError(
                f"lr_scheduler 'optimizer' must be an optimizer index 0..{len(optimizers) - 1}, got {index!r}.",
                f"{path}.cfg.optimizer",
            )
        scheduler = build("lr_scheduler", {"name": name, "cfg": cfg}, path, optimizers[index])
        configs.append({"scheduler": scheduler, **keys})
    if len(optimizers) == 1 and len(configs) == 1:
        return {"optimizer": optimizers[0], "lr_scheduler": configs[0]}
    return optimizers, configs
