"""The validated experiment config: one pydantic model for a whole cross-validation experiment."""

from __future__ import annotations

import math
import os
import unicodedata
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

from lcv_config.errors import did_you_mean

DATALOADER_SPLITS: tuple[str, ...] = ("default", "train", "val", "test", "predict")
"""The keys of ``data.dataloaders``: settings for every split (``default``) or for one."""

DATALOADER_KEYS: tuple[str, ...] = (
    "batch_size",
    "shuffle",
    "sampler",
    "batch_sampler",
    "num_workers",
    "collate_fn",
    "pin_memory",
    "drop_last",
    "timeout",
    "worker_init_fn",
    "multiprocessing_context",
    "generator",
    "prefetch_factor",
    "persistent_workers",
    "pin_memory_device",
    "in_order",
)
"""The arguments of ``torch.utils.data.DataLoader`` a config may set (listed here so validation needs no torch)."""


class FieldError(ValueError):
    """A validator's error about a value below its field; ``subpath`` is relative to it (``train.batch_size``)."""

    def __init__(self, message: str, subpath: str) -> None:
        super().__init__(message)
        self.message = message
        self.subpath = subpath


Schedule = Literal["auto", "interleaved", "sequential", "offload", "vectorized", "parallel"]
"""How the k fold models share the machine; see the trainer docs (``auto`` picks ``interleaved`` or ``vectorized``)."""


MAX_EPOCHS = 1_000_000
"""The largest ``max_epochs`` (and ``min_epochs``) a config may ask for; more is a mistake, not a plan."""
MAX_SEED = 2**32 - 1
"""The largest seed: numpy's and scikit-learn's seeds are unsigned 32-bit integers."""
PRECISIONS: tuple[str | int, ...] = (
    "32-true",
    "16-mixed",
    "bf16-mixed",
    "16-true",
    "bf16-true",
    "64-true",
    "transformer-engine",
    "transformer-engine-float16",
    "32",
    "16",
    "bf16",
    "64",
    32,
    16,
    64,
)
"""The precisions Lightning Fabric accepts (``trainer.precision``), listed here so validation needs no torch."""


class _Strict(BaseModel):
    """A config section: unknown keys are refused, and every refusal is lcv's [`ConfigError`][lcv_config.ConfigError].

    Building a section from Python (``TrainerConfig(max_epoch=5)``), validating a mapping and assigning a field
    raise the same message a config file gets: the key, the closest valid names and the fix.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, validate_assignment=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _lcv_error(exc, data, type(self)) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Validate ``obj`` (a mapping of this section's keys); refusals are lcv's ``ConfigError``."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise _lcv_error(exc, obj, cls) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise _lcv_error(exc, {name: value}, type(self)) from None


def _lcv_error(exc: ValidationError, data: Any, root: type[BaseModel]) -> Exception:
    from lcv_config._validation import ConfigValidationError, config_validation_error

    if isinstance(exc, ConfigValidationError):  # already lcv's (a nested model built by a validator)
        return exc
    return config_validation_error(exc, data, root)


def _whole_number(value: Any, what: str, high: int, low: int | None = None) -> Any:
    """Refuse a float with a fraction or beyond ``high`` (YAML reads ``1e40`` as a float); ints and others pass on.

    The field's own bounds (``ge``/``le``) and type speak for everything else.
    """
    if isinstance(value, float):
        span = f"from {low} to {high:,}" if low is not None else f"up to {high:,}"
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"{what} must be a whole number {span}, got {value!r}")
        if value > high or (low is not None and value < low):
            raise ValueError(f"{what} must be {span}, got {value:.4g}")
        return int(value)
    if low is not None and isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
        raise ValueError(f"{what} must be from {low} to {high:,}, got {value}")
    return value


_UNSAFE_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")  # control, format (incl. bidi overrides), ...


def _unsafe_characters(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in _UNSAFE_CATEGORIES]


class Component(_Strict):
    """A reference to a class or function plus its keyword arguments: ``{name: ..., cfg: {...}}``."""

    name: Any
    """A registered name, an entry-point name, a dotted import path, or the object itself."""
    cfg: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments passed to it."""

    @model_validator(mode="before")
    @classmethod
    def _from_bare_name(cls, value: Any) -> Any:
        if isinstance(value, str) or callable(value):
            return {"name": value}
        return value


COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", "lite")
"""The ``mode`` values of ``torch.compile`` (``trainer.compile.mode``), listed here so validation needs no torch."""


class CompileConfig(_Strict):
    """The arguments of ``torch.compile`` for each fold's module (``trainer.compile``); torch's defaults.

    lcv checks the backend's name and the option names against the installed torch when the trainer is built.
    """

    mode: str | None = None
    """``default``, ``reduce-overhead``, ``max-autotune``, ``max-autotune-no-cudagraphs`` (inductor); not with
    ``options``."""
    fullgraph: bool = False
    """Refuse graph breaks: the step must compile into one graph."""
    dynamic: bool | None = None
    """Dynamic shapes: ``None`` marks a dimension dynamic once it changes, ``True`` from the start, ``False`` never."""
    backend: Any = "inductor"
    """A backend name (``inductor``, ``aot_eager``, ``eager``: ``torch.compiler.list_backends()``) or a callable."""
    options: dict[str, Any] | None = None
    """Backend options (inductor: ``torch._inductor.list_options()``); not with ``mode``."""

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, value: str | None) -> str | None:
        if value is None or value in COMPILE_MODES:
            return value
        raise ValueError(
            f"unknown compile mode {value!r}.{did_you_mean(value, COMPILE_MODES)} Valid modes: "
            f"{', '.join(COMPILE_MODES)} (or leave it unset)"
        )

    @model_validator(mode="after")
    def _mode_or_options(self) -> Self:
        if self.mode is not None and self.options:
            raise FieldError(
                f"mode={self.mode!r} and options={self.options!r} are both set; torch.compile takes one of them "
                "(a mode is a preset of options): keep mode, or put its options into options.",
                "options",
            )
        return self


def _compile_form(value: Any) -> str:
    """Tell pydantic which form of ``trainer.compile`` to validate, so an error names only that form's problem."""
    return "arguments" if isinstance(value, (Mapping, CompileConfig)) else "switch"


class TrainerConfig(_Strict):
    """Settings of the cross-validation trainer; Fabric's own arguments pass through unchanged."""

    accelerator: str = "auto"
    """Fabric accelerator: ``cpu``, ``cuda``, ``mps``, ``auto``."""
    strategy: Any = "auto"
    """Fabric strategy: ``auto``, ``ddp``, ``fsdp``, or a strategy object."""
    devices: int | str | list[int] = 1
    """Devices per node: a count (``-1``: all), ``auto``, or a list of device indices."""
    num_nodes: int = Field(default=1, ge=1)
    """Number of nodes."""
    precision: str | int | None = None
    """Fabric precision (``32-true``, ``bf16-mixed``, ``16-mixed``)."""
    plugins: Any = None
    """Fabric plugins."""
    loggers: Any = None
    """Lightning loggers (objects); the experiment config's ``loggers`` builds them from names."""
    callbacks: Any = None
    """lcv callbacks (objects); the experiment config's ``callbacks`` builds them from names."""
    max_epochs: int = Field(default=10, ge=1, le=MAX_EPOCHS)
    """Stop after this many epochs."""
    min_epochs: int = Field(default=0, ge=0, le=MAX_EPOCHS)
    """Early stopping cannot stop before this many epochs."""
    accumulate_grad_batches: int = Field(default=1, ge=1)
    """Step the optimizer every this many batches."""
    gradient_clip_val: int | float | None = Field(default=None, ge=0)
    """Clip gradients to this norm or value; ``None`` does not clip."""
    gradient_clip_algorithm: Literal["norm", "value"] = "norm"
    """How ``gradient_clip_val`` clips."""
    limit_train_batches: int | float | None = Field(default=None, gt=0)
    """At most this many (int) or this fraction (float) of training batches per epoch; 0 would train nothing."""
    limit_val_batches: int | float | None = Field(default=None, ge=0)
    """At most this many (int) or this fraction (float) of validation batches per epoch."""
    check_val_every_n_epoch: int = Field(default=1, ge=1)
    """Validate every this many epochs."""
    fast_dev_run: bool | int = False
    """Run this many batches (``True``: 1) of one epoch, to find bugs quickly."""
    overfit_batches: int | float = Field(default=0, ge=0)
    """Train and validate on this many training batches, to check the model can overfit."""
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    """Seed of the run; each fold's model gets a seed derived from it."""
    deterministic: bool = False
    """Ask torch for deterministic algorithms."""
    schedule: Schedule = "auto"
    """How folds share the machine: ``auto`` (the default) picks ``vectorized`` or ``interleaved`` from the model, the
    data and a short timed probe, and says why; a name overrides it."""
    compile: Annotated[
        Annotated[bool, Tag("switch")] | Annotated[CompileConfig, Tag("arguments")],
        Discriminator(_compile_form),
    ] = False
    """Compile each fold's module with ``torch.compile`` for training and validation (``true``: torch's defaults, or
    the arguments of ``torch.compile``: ``{mode, fullgraph, dynamic, backend, options}``); the fold models returned,
    checkpointed and exported stay plain modules."""
    cpu_binding: bool = True
    """Multi-process fits on CPU (``schedule: parallel``, DDP): while the fit runs, each process on a machine is
    bound to its own share of the cores the processes may use (as Lightning gives each its share of torch threads),
    so that the exchanges between epochs do not wait for a busy core. ``false`` leaves placement to the operating
    system; nothing is bound when a launcher already placed the processes (``srun --cpu-bind``)."""
    default_root_dir: str | None = None
    """Run directory for logs and checkpoints."""
    checkpoint_every_n_epochs: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    """When to write ``last.ckpt`` (in ``default_root_dir``): after every this many epochs, or ``auto``: after an
    epoch once the training since the previous write took at least 19 times what that write cost the training loop
    (so checkpoints take at most 5% of the fit; every epoch unless the checkpoint is slow against the epochs). Always
    after the fit's last epoch; a resumed fit continues exactly from the last one written."""
    enable_progress_bar: bool = True
    """Show the progress bar."""
    profiler: Any = None
    """``simple`` or ``advanced`` (Lightning's profilers), a ``lightning.pytorch.profilers.Profiler``, or ``None``."""
    monitor: str = "val_loss"
    """The metric whose fold mean picks the best epoch."""
    mode: Literal["min", "max"] = "min"
    """Whether a lower or a higher ``monitor`` is better."""

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_switch_or_arguments(cls, value: Any) -> Any:
        if isinstance(value, (bool, Mapping, CompileConfig)):
            return value
        raise ValueError(
            f"compile={value!r} is neither a switch nor torch.compile's arguments; use true, false or a mapping "
            f"with some of {', '.join(CompileConfig.model_fields)}"
        )

    @field_validator("max_epochs", "min_epochs", mode="before")
    @classmethod
    def _epoch_count(cls, value: Any) -> Any:
        return _whole_number(value, "a number of epochs", MAX_EPOCHS)

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_range(cls, value: Any) -> Any:
        return None if value is None else _whole_number(value, "the seed", MAX_SEED, low=0)

    @field_validator("precision")
    @classmethod
    def _known_precision(cls, value: str | int | None) -> str | int | None:
        if value is None or value in PRECISIONS:
            return value
        valid = [str(p) for p in PRECISIONS if isinstance(p, str)]
        raise ValueError(
            f"unknown precision {value!r}.{did_you_mean(str(value), valid)} Valid precisions: {', '.join(valid)} "
            "(or the integers 64, 32, 16)"
        )

    @field_validator("devices")
    @classmethod
    def _valid_devices(cls, value: int | str | list[int]) -> int | str | list[int]:
        fix = "use a count of devices (1, 2, ...), -1 for all, 'auto', or a list of device indices like [0, 1]"
        if isinstance(value, bool):
            raise ValueError(f"devices={value!r} is not a device count; {fix}")
        if isinstance(value, int) and value != -1 and value < 1:
            raise ValueError(f"devices={value} selects no device; {fix}")
        if isinstance(value, str):
            text = value.strip()
            parts = [p.strip() for p in text.split(",") if p.strip()]
            if text != "auto" and text != "-1" and not (parts and all(p.isdigit() for p in parts)):
                raise ValueError(f"devices={value!r} is not understood; {fix}")
            if text.isdigit() and "," not in text and int(text) < 1:
                raise ValueError(f"devices={value!r} selects no device; {fix}")
        if isinstance(value, list) and (
            not value or any(isinstance(i, bool) or i < 0 for i in value) or len(set(value)) != len(value)
        ):
            raise ValueError(f"devices={value!r} must be a non-empty list of distinct device indices; {fix}")
        return value

    @model_validator(mode="after")
    def _min_at_most_max(self) -> Self:
        if self.min_epochs > self.max_epochs:
            raise FieldError(
                f"min_epochs={self.min_epochs} is more than max_epochs={self.max_epochs}; lower min_epochs or "
                "raise max_epochs.",
                "min_epochs",
            )
        return self

    @field_validator("limit_train_batches", "limit_val_batches", "overfit_batches")
    @classmethod
    def _fraction_at_most_one(cls, value: int | float | None) -> int | float | None:
        if isinstance(value, float) and value > 1.0:
            raise ValueError("a float is a fraction of the batches and must be at most 1.0; use an int for a count")
        return value

    @field_validator("profiler")
    @classmethod
    def _known_profiler(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            if value.strip().lower() not in ("simple", "advanced"):
                hint = did_you_mean(value.strip().lower(), ("simple", "advanced"))
                raise ValueError(f"unknown profiler {value!r}.{hint} Use 'simple', 'advanced', a Profiler or None")
            return value.strip().lower()
        if not callable(getattr(value, "profile", None)):
            raise ValueError(
                f"a {type(value).__name__} is not a profiler; use 'simple', 'advanced', a "
                "lightning.pytorch.profilers.Profiler object or None"
            )
        return value

    @field_validator("fast_dev_run")
    @classmethod
    def _non_negative_batches(cls, value: bool | int) -> bool | int:
        if not isinstance(value, bool) and value < 0:
            raise ValueError(f"fast_dev_run={value} is negative; use True (1 batch), a number of batches or False")
        return value


CrossValidationTrainerConfig = TrainerConfig
"""The name lightning-cv users know for [`TrainerConfig`][lcv_config.TrainerConfig]."""


_DATALOADER_COUNTS: tuple[tuple[str, int, str], ...] = (
    ("num_workers", 0, "0 loads in the main process"),
    ("prefetch_factor", 1, "batches loaded ahead per worker"),
)
_DATALOADER_FLAGS: tuple[str, ...] = ("shuffle", "pin_memory", "drop_last", "persistent_workers", "in_order")


class OuterConfig(_Strict):
    """One outer fold of nested cross-validation (written by ``lcv tune --nested`` into each outer fold's config).

    The datamodule splits the whole dataset with this splitter and keeps outer fold ``fold``: its training rows are
    split again into the inner folds, its test rows are only the test data (``test_dataloader()``), never seen by a
    fold's training or validation.
    """

    splitter: str = "stratified_kfold"
    """The outer splitter: a name in ``lcv.splitters`` (``kfold``)."""
    cfg: dict[str, Any] = Field(default_factory=lambda: {"n_splits": 5, "shuffle": True})
    """The outer splitter's arguments (its ``random_state`` comes from the experiment's ``seed``)."""
    fold: int = Field(default=0, ge=0)
    """The outer fold served."""


class DataConfig(_Strict):
    """The data of an experiment: one dataset, a splitter, transforms and dataloader settings."""

    datamodule: str = "cross_val"
    """The ``lcv.datamodules`` plugin that builds the datamodule from this section."""
    dataset: Component | None = None
    """The dataset: an ``lcv.datamodules`` source (``digits``), a dotted path or an object; ``lightning``: its class."""
    splitter: Component = Field(default_factory=lambda: Component(name="stratified_kfold", cfg={"n_splits": 5}))
    """The splitter: a name in ``lcv.splitters`` (``kfold``) with its arguments."""
    holdout: float | int | None = None
    """A test split carved off before splitting (fraction or count)."""
    transforms: dict[str, list[Component]] = Field(default_factory=dict)
    """Sample transforms per stage: ``pre``, ``train``, ``val``, ``test``, ``predict``, ``post``."""
    target_transforms: dict[str, list[Component]] = Field(default_factory=dict)
    """Target transforms per stage, same keys as ``transforms``."""
    fitted_transforms: list[Component] = Field(default_factory=list)
    """Transforms fitted on each fold's training data only (``standardize``)."""
    dataloaders: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"default": {"batch_size": 32}})
    """Dataloader settings per split, with ``default`` for all."""
    batch_transforms: dict[str, dict[str, list[Component]]] = Field(default_factory=dict)
    """Batch transforms per split (``default``, ``train``...): ``{before: [...], after: [...]}`` the device transfer."""
    test_dataset: Component | None = None
    """A separate test dataset (instead of ``holdout``), written like ``dataset``."""
    labels: str | None = None
    """Stratification labels: an attribute, DataFrame column or sample key of the dataset (default: its targets)."""
    groups: str | None = None
    """Group labels for group splitters: an attribute, DataFrame column or sample key of the dataset."""
    features: list[str] | None = None
    """DataFrame columns used as inputs (default: every column but ``target``)."""
    target: str | None = None
    """The DataFrame column used as target."""
    fold: int = 0
    """The fold a plain ``lightning.Trainer`` trains on (``train_dataloader()``/``val_dataloader()``)."""
    pool_validation: bool = False
    """With ``datamodule: lightning``: split the LightningDataModule's training and validation datasets together."""
    outer: OuterConfig | None = None
    """Set per outer fold by ``lcv tune --nested``: ``{splitter, cfg, fold}``; folds from its training rows only,
    its test rows as test data (``cross_val``)."""

    @field_validator("transforms", "target_transforms")
    @classmethod
    def _known_stages(cls, value: dict[str, list[Component]]) -> dict[str, list[Component]]:
        stages = ("pre", "train", "val", "test", "predict", "post")
        for stage in value:
            if stage not in stages:
                raise FieldError(
                    f"Unknown transform stage '{stage}'.{did_you_mean(stage, stages)} "
                    f"Valid stages: {', '.join(stages)}.",
                    stage,
                )
        return value

    @field_validator("dataloaders")
    @classmethod
    def _known_dataloader_keys(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for split, settings in value.items():
            if split not in DATALOADER_SPLITS:
                raise FieldError(
                    f"Unknown dataloader split '{split}'.{did_you_mean(split, DATALOADER_SPLITS)} "
                    f"Valid splits: {', '.join(DATALOADER_SPLITS)}.",
                    split,
                )
            for key in settings:
                if key not in DATALOADER_KEYS:
                    raise FieldError(
                        f"Unknown dataloader argument '{key}'.{did_you_mean(key, DATALOADER_KEYS)} "
                        f"Valid arguments: {', '.join(DATALOADER_KEYS)}.",
                        f"{split}.{key}",
                    )
            size = settings.get("batch_size")
            if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
                raise FieldError(f"batch_size must be a positive integer, got {size!r}.", f"{split}.batch_size")
            for key, low, meaning in _DATALOADER_COUNTS:
                number = settings.get(key)
                if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < low):
                    raise FieldError(
                        f"{key} must be an integer of at least {low} ({meaning}), got {number!r}.", f"{split}.{key}"
                    )
            timeout = settings.get("timeout")
            if timeout is not None and (
                isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0
            ):
                raise FieldError(
                    f"timeout must be a number of seconds, 0 or more, got {timeout!r}.", f"{split}.timeout"
                )
            for key in _DATALOADER_FLAGS:
                flag = settings.get(key)
                if flag is not None and not isinstance(flag, bool):
                    raise FieldError(f"{key} must be true or false, got {flag!r}.", f"{split}.{key}")
        return value


class NestedConfig(_Strict):
    """Nested cross-validation (``lcv tune --nested``): tune inside each outer fold, score on its outer test rows."""

    splitter: str = "stratified_kfold"
    """The outer splitter: a name in ``lcv.splitters``; the inner folds are ``data.splitter``'s."""
    cfg: dict[str, Any] = Field(default_factory=lambda: {"n_splits": 5, "shuffle": True})
    """The outer splitter's arguments (its ``random_state`` comes from the experiment's ``seed``)."""
    final: Literal["ensemble", "refit"] = "ensemble"
    """What is scored on an outer test part: the inner fold models of the best config (``ensemble``: each fold model
    and their ensemble) or one model refitted on the whole outer training part for the best epoch count (``refit``)."""
    non_nested: bool = True
    """Also tune once on all the data and report that (optimistic) estimate beside the nested one."""


class TuneConfig(_Strict):
    """How ``lcv tune`` searches: backend, search space and study settings."""

    backend: str = "optuna"
    """The ``lcv.tuners`` plugin."""
    space: dict[str, Any] = Field(default_factory=dict)
    """The search space, keyed by config path (``optimizer.cfg.lr``); see `lcv_config.space.parse_space()`."""

    @field_validator("space")
    @classmethod
    def _valid_space(cls, value: dict[str, Any]) -> dict[str, Any]:
        from lcv_config.errors import ConfigError
        from lcv_config.space import parse_space

        try:
            parse_space(value, "tune.space")
        except ConfigError as exc:
            raise FieldError(exc.message, (exc.path or "").removeprefix("tune.space").lstrip(".")) from None
        return value

    n_trials: int | None = Field(default=None, ge=1)
    """Number of trials."""
    timeout: float | None = Field(default=None, gt=0)
    """Time budget in seconds."""
    direction: Literal["minimize", "maximize"] | None = None
    """Direction; default from ``trainer.mode``."""
    storage: str | None = None
    """Study storage URL; default a SQLite file in the run directory."""
    study: str | None = None
    """Study name."""
    pruner: Component | None = None
    """Pruner by name with arguments."""
    sampler: Component | None = None
    """Sampler by name with arguments."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Backend-specific options."""
    keep_checkpoints: int | None = Field(default=1, ge=-1)
    """How many of the best completed trials keep their ``checkpoints/`` folder; the others' are deleted when they end
    (pruned and failed trials keep none; every trial's metrics and config stay). ``-1`` or ``null``: keep all."""
    nested: NestedConfig | None = None
    """Nested CV (``lcv tune --nested``): ``{splitter, cfg, final: ensemble | refit, non_nested: true}``; default
    5 stratified outer folds."""


class ExperimentConfig(_Strict):
    """A whole cross-validation experiment: model, data, training, tuning."""

    name: str = "experiment"
    """The run's name; runs go to ``<output_dir>/<name>/<timestamp>/`` (a relative path that stays inside it)."""
    output_dir: str = "runs"
    """Where run directories are created."""
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    """Seed of splits, model initialisation and shuffling."""

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_range(cls, value: Any) -> Any:
        return _whole_number(value, "the seed", MAX_SEED, low=0)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        bad = _unsafe_characters(value)
        if bad:
            raise ValueError(
                f"name {value!r} holds control or direction-changing characters ({', '.join(bad)}), which hide "
                "what the run directory is really called; use letters, digits, '-', '_' and '.'"
            )
        if not value.strip():
            raise ValueError("name is empty; give the run a name such as 'digits-mlp'")
        posix, windows = PurePosixPath(value), PureWindowsPath(value)
        if posix.is_absolute() or windows.is_absolute() or windows.drive or value.startswith(("/", "\\")):
            raise ValueError(
                f"name {value!r} is an absolute path; the name is a folder inside output_dir. Set output_dir to "
                "choose where runs go, and name to a relative name"
            )
        if ".." in windows.parts:
            raise ValueError(
                f"name {value!r} climbs out of output_dir with '..'; set output_dir to choose where runs go, and "
                "name to a relative name without '..'"
            )
        return value

    @field_validator("output_dir")
    @classmethod
    def _usable_output_dir(cls, value: str) -> str:
        bad = _unsafe_characters(value)
        if bad:
            raise ValueError(
                f"output_dir {value!r} holds control or direction-changing characters ({', '.join(bad)}); "
                "write a plain path"
            )
        if not value.strip():
            raise ValueError("output_dir is empty; use a folder such as 'runs'")
        path = Path(os.path.expanduser(value))
        for folder in (path, *path.parents):
            if folder.exists():
                if not folder.is_dir():
                    raise ValueError(
                        f"output_dir {value!r} cannot hold run folders: '{folder}' is an existing file. Choose "
                        "another output_dir, or move the file away"
                    )
                break
        return value

    model: Component | None = None
    """The network (an ``nn.Module``) the learner trains."""
    learner: Component = Field(default_factory=lambda: Component(name="supervised"))
    """The LightningModule: a name in ``lcv.learners`` or a dotted path."""
    criterion: Component | None = None
    """The loss, e.g. ``CrossEntropyLoss`` from ``torch.nn``."""
    optimizer: Component | list[Component] = Field(default_factory=lambda: Component(name="Adam", cfg={"lr": 1e-3}))
    """The optimizer(s), e.g. ``Adam`` from ``torch.optim``."""
    lr_scheduler: Component | list[Component] | None = None
    """Learning-rate scheduler(s), with Lightning's ``interval``/``frequency``/``monitor`` keys."""
    metrics: list[Component] = Field(default_factory=list)
    """Metrics logged on validation (torchmetrics names)."""
    data: DataConfig = Field(default_factory=lambda: DataConfig())
    """The data section."""
    trainer: TrainerConfig = Field(default_factory=lambda: TrainerConfig())
    """The trainer section."""
    callbacks: list[Component] = Field(default_factory=list)
    """Callbacks by name in ``lcv.callbacks`` with arguments."""
    loggers: list[Component] = Field(default_factory=list)
    """Loggers by name: ``csv``, ``tensorboard`` (lcv-core), ``wandb`` (lcv-tune-wandb); or a dotted path."""
    tune: TuneConfig | None = None
    """The tuning section, used by ``lcv tune``."""
