"""Build a trainer, a per-fold learner factory and a datamodule from an experiment config."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule
from lightning.pytorch.utilities.model_helpers import is_overridden

import lcv_core.learners.networks  # noqa: F401  # registers the built-in models ("mlp")
from lcv_config import DATAMODULES, ConfigError, ExperimentConfig, build, load_config, load_plugin, resolve
from lcv_config.loading import dump_config
from lcv_core.loop.trainer import CrossValidationTrainer


def build_datamodule(config: ExperimentConfig) -> Any:
    """Build the datamodule the ``data`` section describes, through its ``lcv.datamodules`` plugin."""
    builder = load_plugin(DATAMODULES, config.data.datamodule)
    if not hasattr(builder, "from_config"):
        raise ConfigError(
            f"The datamodule plugin '{config.data.datamodule}' has no from_config(); it cannot be built from a config.",
            "data.datamodule",
        )
    return builder.from_config(config.data, seed=config.seed)


def learner_factory(config: ExperimentConfig) -> Callable[[], LightningModule]:
    """Return a function that builds a new learner per call, checking its arguments once now."""
    target = resolve("learner", config.learner.name, "learner.name")
    sections = {
        "model": config.model.model_dump() if config.model else None,
        "criterion": config.criterion.model_dump() if config.criterion else None,
        "optimizer": _dump(config.optimizer),
        "lr_scheduler": _dump(config.lr_scheduler),
        "metrics": [m.model_dump() for m in config.metrics],
    }
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    accepts_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    # A section written inside learner.cfg wins over the top-level one (which may only be the schema's default).
    extra = {
        k: v
        for k, v in sections.items()
        if v not in (None, []) and (accepts_all or k in params) and k not in config.learner.cfg
    }
    component = {"name": target, "cfg": dict(config.learner.cfg)}

    def factory() -> LightningModule:
        return build("learner", component, "learner", **extra)  # type: ignore[no-any-return]

    return factory


def _as_config(
    config: ExperimentConfig | Mapping[str, Any] | str | Path | Sequence[str | Path], overrides: Sequence[str]
) -> ExperimentConfig:
    """Validate a config given as an object, a dict, a file or a list of files (then apply ``overrides``)."""
    if isinstance(config, ExperimentConfig):
        if not overrides:
            return config
        return load_config((), overrides, base=config.model_dump(mode="python"))
    if isinstance(config, Mapping):
        return load_config((), overrides, base=config)
    if isinstance(config, (str, Path)):
        return load_config([config], overrides)
    if isinstance(config, (list, tuple)) and all(isinstance(c, (str, Path)) for c in config):
        return load_config(list(config), overrides)
    raise ConfigError(
        f"configure_all() takes an ExperimentConfig, a dict, a config file or a list of files; got "
        f"{type(config).__name__}."
    )


def _dump(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [v.model_dump() for v in value]
    return value.model_dump()


def build_callbacks(config: ExperimentConfig) -> list[Any]:
    """Build the ``callbacks`` section."""
    return [build("callback", c, f"callbacks[{i}]") for i, c in enumerate(config.callbacks)]


def build_loggers(config: ExperimentConfig, run_dir: Path | None) -> list[Any]:
    """Build the ``loggers`` section; each logger writes into its own folder, ``<run>/logs/<logger name>/``.

    The folder goes to the constructor's ``root_dir`` or ``save_dir`` (unless the config sets it). A logger that
    takes ``root_dir``, ``name`` and ``version`` (Fabric's) gets ``name=""`` and ``version=""`` unless the config
    sets them, so it writes into that folder itself, not into ``lightning_logs/version_<n>/`` below it.
    """
    loggers = []
    folders: set[str] = set()
    for i, c in enumerate(config.loggers):
        target = resolve("logger", c.name, f"loggers[{i}].name")
        cfg = dict(c.cfg)
        params = inspect.signature(target).parameters
        folder = logger_folder(c.name, folders)
        for key in ("root_dir", "save_dir"):
            if key in params and key not in cfg and run_dir is not None:
                cfg[key] = str(run_dir / "logs" / folder)
                if key == "root_dir" and "name" in params and "version" in params:
                    cfg.setdefault("name", "")
                    cfg.setdefault("version", "")
        loggers.append(build("logger", {"name": target, "cfg": cfg}, f"loggers[{i}]"))
    return loggers


def logger_folder(name: Any, taken: set[str]) -> str:
    """Return the folder under ``<run>/logs/`` of a logger named ``name`` in a config (``csv``, a dotted path).

    A registered name is its own folder (``csv``, ``tensorboard``; ``dist:name`` drops ``dist:``), a dotted path its
    last part, a class its name; a second logger with the same folder gets ``_1`` (``csv_1``). The folder is added
    to ``taken``.
    """
    text = name if isinstance(name, str) else str(getattr(name, "__name__", "logger"))
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", text.rsplit(":", 1)[-1].rsplit(".", 1)[-1]) or "logger"
    folder, n = base, 0
    while folder in taken:
        n += 1
        folder = f"{base}_{n}"
    taken.add(folder)
    return folder


def configure_all(
    config: ExperimentConfig | Mapping[str, Any] | str | Path | Sequence[str | Path],
    run_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> tuple[CrossValidationTrainer, Callable[[], LightningModule], Any]:
    """Return ``(trainer, learner_factory, datamodule)`` for an experiment config.

    ``config`` is an `ExperimentConfig`, a dict with the same content as a config file (torch_mate's
    `configure_all(cfg_dict)`), a config file, or a list of files merged in order; ``overrides`` (``key=value``)
    apply on top, as on the command line. A dict and a file with the same content give the same trainer, learner
    and datamodule.

    The trainer's ``experiment_config_yaml`` holds the resolved config (``dump_config``), which it writes into
    ``last.ckpt`` and every per-fold checkpoint.

    Example:
        >>> trainer, make_learner, datamodule = configure_all("examples/digits/config.yaml")  # doctest: +SKIP
        >>> trainer, make_learner, datamodule = configure_all({"name": "digits", "data": {...}})  # doctest: +SKIP
        >>> result = trainer.fit(make_learner, datamodule)  # doctest: +SKIP
    """
    config = _as_config(config, overrides)
    datamodule = build_datamodule(config)
    factory = learner_factory(config)
    learner = factory()  # build one learner now, so a bad argument fails before anything is written
    if is_overridden("configure_optimizers", learner, LightningModule):
        learner.configure_optimizers()  # and its optimizers: a bad optimizer or parameter pattern fails here too
    path = Path(run_dir) if run_dir is not None else None
    trainer_cfg = config.trainer.model_copy(
        update={
            "seed": config.trainer.seed if config.trainer.seed is not None else config.seed,
            "default_root_dir": str(path) if path is not None else config.trainer.default_root_dir,
            "callbacks": [*(config.trainer.callbacks or []), *build_callbacks(config)],
            "loggers": [*(config.trainer.loggers or []), *build_loggers(config, path)] or None,
        }
    )
    trainer = CrossValidationTrainer(trainer_cfg)
    # The resolved config goes into every checkpoint, so `lcv predict CKPT` / `lcv test` need nothing else.
    trainer.experiment_config_yaml = dump_config(config)
    return trainer, factory, datamodule
