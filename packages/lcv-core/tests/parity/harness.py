"""Run a catalogue variant under ``lightning.Trainer`` and under lcv on the same fold-0 data and initial weights.

Both runs return a :class:`Run`: fold 0's final weights, its logged epoch metrics and the module hooks called
on its instance. :func:`compare` says, in one message, how an lcv run differs from the Lightning run.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import lightning
import torch
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lcv_core import Callback, CrossValidationTrainer
from parity.catalogue import N_CLASSES, N_FEATURES, Variant
from parity.recorder import record_hooks

N_TRAIN, N_VAL = 22, 10  # batches of 4: 6 training batches (the last of 2 rows), 3 validation batches
BATCH_SIZE = 4
INIT_SEED = 1234
LCV_SEED = 0
WEIGHT_TOL = 1e-6
METRIC_RTOL, METRIC_ATOL = 1e-5, 1e-6


class _Rows(Dataset[torch.Tensor]):
    """Feature rows alone, as Lightning's ``RandomDataset`` serves them to ``BoringModel``."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.x[index]


def _fold_rows() -> list[tuple[slice, slice]]:
    """Fold 0 trains on the first 22 rows and validates on the next 10; fold 1 uses the rows after them."""
    n = N_TRAIN + N_VAL
    return [(slice(0, N_TRAIN), slice(N_TRAIN, n)), (slice(n, n + N_TRAIN), slice(n + N_TRAIN, 2 * n))]


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2 * (N_TRAIN + N_VAL), N_FEATURES, generator=g)
    y = (x @ torch.randn(N_FEATURES, N_CLASSES, generator=g)).argmax(dim=1)
    return x, y


def fold_loaders(kind: str) -> list[tuple[DataLoader[Any], DataLoader[Any]]]:
    """Return fresh ``(train, val)`` loaders of both folds: unshuffled, each with its own generator.

    A loader's own generator keeps its iterators from drawing their base seed from torch's global stream.
    """
    x, y = _data()

    def dataset(rows: slice) -> Dataset[Any]:
        return _Rows(x[rows]) if kind == "x" else TensorDataset(x[rows], y[rows])

    def loader(rows: slice) -> DataLoader[Any]:
        return DataLoader(dataset(rows), batch_size=BATCH_SIZE, shuffle=False, generator=torch.Generator())

    return [(loader(train), loader(val)) for train, val in _fold_rows()]


_INITIAL: dict[str, dict[str, torch.Tensor]] = {}


def initial_state(variant: Variant) -> dict[str, torch.Tensor]:
    """Return the variant's initial weights (built once under a fixed seed), shared by both trainers."""
    if variant.name not in _INITIAL:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(INIT_SEED)
            module = variant.build()
        _INITIAL[variant.name] = {k: v.detach().clone() for k, v in module.state_dict().items()}
    return _INITIAL[variant.name]


@dataclass
class Run:
    """What one trainer did with fold 0."""

    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    """The module's final state dict."""
    metrics: list[dict[str, float]] = field(default_factory=list)
    """Per epoch, the epoch-level metrics the module logged."""
    step_only: set[str] = field(default_factory=set)
    """Names Lightning logged per step only (lcv also reduces them per epoch, on purpose)."""
    hooks: list[str] = field(default_factory=list)
    """The module hooks called on the instance, in order."""
    error: BaseException | None = None
    """The exception the fit raised, if any."""
    output: str = ""
    """What the trainer printed (lcv's schedule fallbacks)."""
    rng_state: torch.Tensor | None = None
    """lcv: torch's random state when fold 0 started training (its own stream)."""


@contextlib.contextmanager
def _deterministic_restored() -> Iterator[None]:
    """Restore torch's deterministic-algorithms flag (``deterministic=True`` sets it globally)."""
    enabled, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


# -- lightning.Trainer ------------------------------------------------------------------------------


class _RecordingLogger(Logger):
    """Keeps every ``log_metrics`` call with the phase (step or epoch end) it came in and the epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.phase = "step"
        self.epoch = 0
        self.calls: list[tuple[str, int, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "parity"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = {k: float(v) for k, v in metrics.items() if k != "epoch"}
        self.calls.append((self.phase, self.epoch, values))


class _Phases(lightning.pytorch.Callback):
    """Tells the recording logger whether Lightning logs step or epoch-end values, and seeds dropout's stream."""

    def __init__(self, logger: _RecordingLogger, rng_state: torch.Tensor | None) -> None:
        self.logger = logger
        self.rng_state = rng_state

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.logger.phase, self.logger.epoch = "step", trainer.current_epoch
        if self.rng_state is not None and trainer.current_epoch == 0:
            torch.set_rng_state(self.rng_state)

    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.logger.phase = "step"

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.logger.phase = "epoch"

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.logger.phase = "epoch"


def run_lightning(variant: Variant, rng_state: torch.Tensor | None = None) -> Run:
    """Train ``variant`` with ``lightning.Trainer`` on fold 0 from the shared initial weights.

    Args:
        variant: The catalogue entry.
        rng_state: torch's random state to start training from (the stream lcv gave fold 0).
    """
    module = variant.build()
    module.load_state_dict(initial_state(variant))
    run = Run(hooks=record_hooks(module))
    logger = _RecordingLogger()
    train, val = fold_loaders(variant.data)[0]
    with tempfile.TemporaryDirectory() as root, _deterministic_restored(), torch.random.fork_rng(devices=[]):
        trainer = lightning.Trainer(
            accelerator="cpu",
            devices=1,
            logger=logger,
            callbacks=[_Phases(logger, rng_state)],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            deterministic=True,
            log_every_n_steps=1,
            default_root_dir=root,
            **variant.settings.trainer_kwargs(),
        )
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
    run.weights = _cpu_state(module)
    run.metrics = [{} for _ in range(trainer.current_epoch)]  # an epoch that logged nothing still counts
    for phase, epoch, values in logger.calls:
        if phase == "epoch":
            run.metrics[epoch].update(values)
        else:
            run.step_only.update(k for k in values if not k.endswith("_step"))
    return run


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


# -- lcv --------------------------------------------------------------------------------------------


class _FoldZero(Callback):
    """Keeps fold 0's final weights (``result.models`` hold the best epoch's) and its stream's first state."""

    def __init__(self, modules: dict[int, torch.nn.Module], run: Run) -> None:
        self.modules = modules
        self.run = run

    def on_train_epoch_start_per_fold(self, *, trainer: Any, fold: int, epoch: int, **kwargs: Any) -> None:
        if fold == 0 and epoch == 0:
            self.run.rng_state = torch.get_rng_state()

    def on_train_end(self, *, trainer: Any, **kwargs: Any) -> None:
        self.run.weights = _cpu_state(self.modules[0])


def run_lcv(variant: Variant, schedule: str, record: bool = True) -> Run:
    """Train ``variant`` with lcv on two folds; fold 0 gets Lightning's data and initial weights.

    ``record=False`` leaves the module's hooks as its class defines them: the recorder wraps every hook, which
    sends every step through lcv's Lightning path; without it a module that overrides no step hook takes the lean
    path.
    """
    run = Run()
    modules: dict[int, torch.nn.Module] = {}

    def make(fold: int) -> Any:
        module = variant.build()
        if fold == 0:
            module.load_state_dict(initial_state(variant))
            if record:
                run.hooks = record_hooks(module)
        modules[fold] = module
        return module

    trainer = CrossValidationTrainer(
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        deterministic=True,
        seed=LCV_SEED,
        schedule=schedule,
        # the default monitor is left unset, as a Lightning user coming with an unchanged module would
        **({"monitor": variant.monitor} if variant.monitor != "val_loss" else {}),
        callbacks=[_FoldZero(modules, run)],
        **variant.settings.trainer_kwargs(),
    )
    out = io.StringIO()
    with _deterministic_restored(), torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(out):
        try:
            result = trainer.fit(make, fold_loaders(variant.data))
        except Exception as exc:  # a fit that raises is a finding of the suite, reported by every aspect
            run.error = exc
        else:
            run.metrics = [dict(row) for row in result.history[0]]
    run.output = out.getvalue()
    return run


# -- comparison -------------------------------------------------------------------------------------


def compare(aspect: str, reference: Run, candidate: Run) -> str | None:
    """Return how ``candidate`` (lcv) differs from ``reference`` (Lightning) in ``aspect``, or ``None``."""
    if candidate.error is not None:
        first = str(candidate.error).strip().splitlines()[0] if str(candidate.error).strip() else ""
        return f"lcv raised {type(candidate.error).__name__}: {first[:300]}"
    if aspect == "weights":
        return _compare_weights(reference.weights, candidate.weights)
    if aspect == "metrics":
        return _compare_metrics(reference, candidate)
    if aspect == "hooks":
        return _compare_hooks(reference.hooks, candidate.hooks)
    raise ValueError(f"Unknown aspect {aspect!r}; use weights, metrics or hooks.")


def _compare_weights(ref: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> str | None:
    if not got:
        return "lcv never finished training fold 0 (no final weights)"
    if set(ref) != set(got):
        return f"state dict keys differ: Lightning {sorted(ref)}, lcv {sorted(got)}"
    deltas = {k: (ref[k].double() - got[k].double()).abs().max().item() for k in ref if ref[k].numel()}
    worst = max(deltas, key=lambda k: deltas[k], default=None)
    if worst is None or deltas[worst] <= WEIGHT_TOL:
        return None
    return f"final weights differ: max |Δ| = {deltas[worst]:.3g} in '{worst}'"


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= METRIC_ATOL + METRIC_RTOL * abs(a)


def _compare_metrics(reference: Run, candidate: Run) -> str | None:
    ref, got = reference.metrics, candidate.metrics
    problems: list[str] = []
    if len(ref) != len(got):
        problems.append(f"{len(ref)} epochs logged under Lightning, {len(got)} under lcv")
    for epoch, (r, g) in enumerate(zip(ref, got, strict=False)):
        missing = sorted(set(r) - set(g))
        if missing:
            problems.append(f"epoch {epoch}: lcv lacks {missing} (lcv logged {sorted(g)})")
        for name in missing:  # Lightning's '<name>_epoch' (on_step and on_epoch) against lcv's '<name>'
            plain = name.removesuffix("_epoch")
            if plain != name and plain in g:
                same = "the same value" if _close(r[name], g[plain]) else f"{g[plain]:.6g} against {r[name]:.6g}"
                problems.append(f"epoch {epoch}: lcv has {same} as '{plain}'")
        renamed = {name.removesuffix("_epoch") for name in missing}
        extra = sorted(set(g) - set(r) - reference.step_only - renamed)
        if extra:
            problems.append(f"epoch {epoch}: lcv logged {extra}, which Lightning did not log")
        for name in sorted(set(r) & set(g)):
            if not _close(r[name], g[name]):
                problems.append(f"epoch {epoch}: {name} = {g[name]:.6g} under lcv, {r[name]:.6g} under Lightning")
    return "; ".join(problems) or None


def _compare_hooks(ref: list[str], got: list[str]) -> str | None:
    if ref == got:
        return None
    first = next((i for i, (a, b) in enumerate(zip(ref, got, strict=False)) if a != b), min(len(ref), len(got)))
    never = sorted(set(ref) - set(got))
    unexpected = sorted(set(got) - set(ref))
    parts = [
        f"hook sequences differ from call {first}: Lightning {ref[first : first + 4]}, lcv {got[first : first + 4]}"
    ]
    if never:
        parts.append(f"never called by lcv: {never}")
    if unexpected:
        parts.append(f"called only by lcv: {unexpected}")
    parts.append(f"{len(ref)} calls under Lightning, {len(got)} under lcv")
    return "; ".join(parts)
