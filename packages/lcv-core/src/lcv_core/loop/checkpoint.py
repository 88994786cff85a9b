"""What ``last.ckpt`` holds of a fit: the whole trainer state, captured and restored, and the resume checks."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lcv_config import LcvError
from lcv_core.core.saving import (
    FORMAT,
    VERSION,
    config_dict,
    global_rng_state,
    pack,
    package_versions,
    plain,
    save,
    set_global_rng_state,
    snapshot,
)

if TYPE_CHECKING:
    from lcv_core.loop.schedules import Schedule
    from lcv_core.loop.trainer import CrossValidationTrainer


def split_indices(datamodule: Any) -> list[list[list[int]]] | None:
    """Return the datamodule's ``folds`` as ``[[train_idx, val_idx], ...]`` lists, or ``None`` if it has none."""
    folds = getattr(datamodule, "folds", None)
    if folds is None or callable(folds):
        return None
    try:
        return [[[int(i) for i in train], [int(i) for i in val]] for train, val in folds]
    except (TypeError, ValueError):
        return None


def check_compatible(state: Mapping[str, Any], path: str | Path, n_folds: int, split: Any) -> None:
    """Refuse a checkpoint whose folds differ from the current datamodule's.

    Raises:
        LcvError: The fold count or the fold indices differ.
    """
    saved = len(state["folds"])
    if saved != n_folds:
        raise LcvError(
            f"Checkpoint {path} holds {saved} folds but the datamodule now gives {n_folds}; resume with the "
            "datamodule (splitter, n_splits, seed) of the checkpointed run."
        )
    saved_split = state.get("split")
    if saved_split is not None and split is not None and saved_split != split:
        differ = [i for i, (a, b) in enumerate(zip(saved_split, split, strict=True)) if a != b]
        raise LcvError(
            f"Checkpoint {path} was trained on other fold indices than the datamodule's (folds {differ} differ); "
            "resuming would leak validation samples into training. Use the splitter and seed of the checkpointed run."
        )


def _callback_key(callback: Any, seen: dict[str, int]) -> str:
    key = getattr(callback, "state_key", None) or type(callback).__name__
    seen[key] = seen.get(key, 0) + 1
    return key if seen[key] == 1 else f"{key}#{seen[key]}"


def trainer_state(trainer: CrossValidationTrainer, frozen: bool = False) -> dict[str, Any]:
    """Return everything ``fit(ckpt_path=...)`` needs to continue ``trainer``'s fit exactly, checkpoint-safe.

    With ``frozen``, nothing in it is shared with the live fit, so it can be written while training goes on: what
    training changes in place (optimizer states, random states, callback states) is cloned; the fold weights are
    copies already, and the best-epoch weights are snapshots nothing changes (only their lists are copied).

    When the best epoch is the epoch just trained (the usual case while a model improves), the best-epoch weights
    are the folds' model weights: ``best_weights`` then says ``states_are_the_models`` instead of holding a second
    copy (a quarter of an Adam checkpoint), and `restore_trainer_state` takes them from the folds.
    """
    seen: dict[str, int] = {}
    callbacks = {
        _callback_key(cb, seen): plain(cb.state_dict())
        for cb in [*trainer.callbacks, *trainer.lightning_callbacks]
        if callable(getattr(cb, "state_dict", None))
    }
    loggers = [
        plain(lg.state_dict()) if callable(getattr(lg, "state_dict", None)) else None  # type: ignore[attr-defined]  # checked
        for lg in trainer.fabric.loggers
    ]
    state = {
        "format": FORMAT,
        "version": VERSION,
        "folds": [f.state_dict() for f in trainer.folds],
        "callbacks": callbacks,
        "loggers": loggers,
        "rng": global_rng_state(),
        "precision": plain(trainer.fabric.strategy.precision.state_dict()),
        "trainer": trainer.state.state_dict(),
        "best_weights": trainer.state.best.state_dict(),
        "split": trainer.state.split,
        "config": config_dict(trainer.config),
        "experiment_config": trainer.experiment_config_yaml,
        "versions": package_versions(),
    }
    if trainer.state.best.are_current(trainer.state.current_epoch):
        # the best epoch is the one just trained: its weights are the folds' models, written once (not twice)
        state["best_weights"] = {**state["best_weights"], "states": [], "states_are_the_models": True}
    if frozen:
        state["folds"] = [{k: v if k == "model" else snapshot(v) for k, v in fold.items()} for fold in state["folds"]]
        state["best_weights"] = snapshot(state["best_weights"], clone=False)
        for key in ("callbacks", "loggers", "rng", "precision", "trainer"):
            state[key] = snapshot(state[key])
    return state


def restore_trainer_state(trainer: CrossValidationTrainer, state: Mapping[str, Any]) -> None:
    """Load a checkpoint's state into a trainer whose folds are set up (same models, optimizers, callbacks)."""
    for f, saved in zip(trainer.folds, state["folds"], strict=True):
        f.load_state_dict(saved)
        # Lightning's on_load_checkpoint hooks, per fold, with that fold's part in Lightning's key names
        fold_checkpoint = {"state_dict": saved["model"], "epoch": saved["epoch"], "global_step": saved["global_step"]}
        for callback in trainer.lightning_callbacks:
            callback.on_load_checkpoint(f.view, f.module, fold_checkpoint)
        f.module.on_load_checkpoint(fold_checkpoint)
    seen: dict[str, int] = {}
    for cb in [*trainer.callbacks, *trainer.lightning_callbacks]:
        if callable(getattr(cb, "load_state_dict", None)):
            key = _callback_key(cb, seen)
            if key in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][key])
    for logger, logger_state in zip(trainer.fabric.loggers, state["loggers"], strict=False):
        if logger_state is not None and callable(getattr(logger, "load_state_dict", None)):
            logger.load_state_dict(logger_state)  # type: ignore[attr-defined]  # checked: loggers that have one
    set_global_rng_state(state["rng"])
    if state.get("precision"):
        trainer.fabric.strategy.precision.load_state_dict(state["precision"])
    trainer.state.load_state_dict(state["trainer"])
    best = dict(state["best_weights"])
    if best.get("states_are_the_models"):  # written once, as the folds' models (`trainer_state`)
        best["states"] = [fold["model"] for fold in state["folds"]]
    trainer.state.best.load_state_dict(best)


def resolve_path(ckpt_path: str | Path, run_dir: Path | None) -> Path:
    """Return the file ``ckpt_path`` names: ``"last"`` is ``<run_dir>/checkpoints/last.ckpt``.

    Raises:
        LcvError: ``"last"`` without a run directory.
    """
    if str(ckpt_path) != "last":
        return Path(ckpt_path)
    if run_dir is None:
        raise LcvError("ckpt_path='last' needs default_root_dir (where checkpoints/last.ckpt is); pass a path.")
    return run_dir / "checkpoints" / "last.ckpt"


def check_schedule(state: Mapping[str, Any], path: str, schedule: Schedule) -> None:
    """Refuse to resume a checkpoint written by a schedule of the other kind (fold-major vs epoch-major).

    Raises:
        LcvError: The schedules differ in kind.
    """
    # the schedule that trained the folds: auto's choice when the checkpoint holds one, else the configured one
    saved = str(state.get("trainer", {}).get("schedule") or state["config"].get("schedule"))
    if not schedule.resumes(saved):
        raise LcvError(
            f"Checkpoint {path} was written by schedule={saved!r}; resume it with that schedule, not {schedule.name!r}."
        )


CHECKPOINT_SHARE = 0.05
"""With ``checkpoint_every_n_epochs="auto"``, the most of the fit's time that writing ``last.ckpt`` may take."""

BACKGROUND_BYTES = 1 << 20
"""A ``last.ckpt`` whose tensors hold more bytes than this is written by a background thread while training goes on.

Below it, writing is bound by Python (pickling, the GIL) and a thread would save nothing: such a file is written
in place (a few milliseconds, measured in ``benchmarks/checkpoint_cost.py``)."""


def tensor_bytes(value: Any) -> int:
    """Return the bytes of all tensors in ``value`` (in dicts, lists and tuples)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, Mapping):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0


class LastCheckpointWriter:
    """Writes ``last.ckpt`` atomically; a large one in a background thread, so the next epoch need not wait.

    The state is captured when `write()` is called, at the end of the epoch it holds: a background write works on a
    copy (every tensor cloned), so the file holds that epoch exactly, whatever training does meanwhile. Each file is
    written to a temporary name, synced and renamed (`lcv_core.core.saving.save`), so a kill at any moment leaves the
    previous complete file. A write starts only after the previous one ended (files never go back in time), and
    `flush()` waits for the pending one: the schedule flushes at the end of every fit and when it raises. A failed
    background write raises its error at the next `write()` or `flush()`.
    """

    def __init__(self, background_bytes: int = BACKGROUND_BYTES) -> None:
        self.background_bytes = background_bytes
        """Checkpoints with more tensor bytes than this are written in the background."""
        self.blocked_s = 0.0
        """Seconds the training loop spent on ``last.ckpt``: capturing the state, writing in place, waiting."""
        self.background_s = 0.0
        """Seconds the background writes took (beside training)."""
        self.writes = 0
        """Checkpoints written (or being written)."""
        self.last_cost_s = 0.0
        """Seconds the training loop spent on the latest write (capture, write in place, wait for the one before)."""
        self.previous_cost_s = 0.0
        """The same for the write before it (``due`` goes by the smaller: one slow write is no trend)."""
        self.last_end = 0.0
        """``time.perf_counter()`` when the latest write handed control back to the training loop."""
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._background_next = False

    @property
    def pending(self) -> bool:
        """Whether a background write is still running."""
        return self._thread is not None and self._thread.is_alive()

    def due(self, share: float = CHECKPOINT_SHARE) -> bool:
        """Whether a write now keeps ``last.ckpt``'s cost within ``share`` of the training time (``auto``).

        True for the first two writes (the first also pays one-time work), then once the time since the latest write
        ended is at least ``(1 - share) / share`` times what a write costs the loop (19 times at 5%; the smaller of
        the last two writes' costs): a checkpoint that costs 2 ms against 50 ms epochs is written after every
        epoch, one that costs 10 ms after every fourth.
        """
        if self.writes < 2:
            return True
        cost = min(self.last_cost_s, self.previous_cost_s)
        return time.perf_counter() - self.last_end >= cost * (1 - share) / share

    def write(
        self, capture: Callable[[bool], Mapping[str, Any]], targets: Sequence[Path], started: float | None = None
    ) -> None:
        """Capture the state with ``capture(frozen)`` and write it to every path in ``targets``.

        ``capture(True)`` must return a state that shares nothing training changes later (`trainer_state()` with
        ``frozen=True``); it is asked for when this write may go to the background: the first, and those after a
        checkpoint larger than `background_bytes` (sizes hardly change between epochs). A frozen state larger than
        that is written in the background, any other in place.

        ``started``: when the work for this write began (``time.perf_counter()``), if before the call (gathering the
        folds of other processes first); it counts in the write's cost.

        Raises:
            OSError: This write, or the previous background one, failed (the message names the file).
        """
        start = time.perf_counter() if started is None else started
        try:
            self._join()
            frozen = self._background_next or self.writes == 0  # the first: the size is not known yet
            state = pack(capture(frozen))
            self.writes += 1
            self._background_next = tensor_bytes(state) > self.background_bytes
            if not (frozen and self._background_next):
                for target in targets:
                    save(state, target)
                return
            self._thread = threading.Thread(
                target=self._write, args=(state, list(targets)), name="lcv-last-ckpt", daemon=False
            )
            self._thread.start()
        finally:
            self.last_end = time.perf_counter()
            self.previous_cost_s, self.last_cost_s = self.last_cost_s, self.last_end - start
            self.blocked_s += self.last_cost_s

    def flush(self) -> None:
        """Wait for the pending background write.

        Raises:
            OSError: It failed (the message names the file and says how to continue).
        """
        start = time.perf_counter()
        try:
            self._join()
        finally:
            self.blocked_s += time.perf_counter() - start

    def flush_quietly(self) -> None:
        """Wait for the pending background write while another error propagates; its own failure is a warning."""
        try:
            self.flush()
        except Exception as exc:  # the error being raised matters more; this one is still reported
            warnings.warn(f"{exc}", UserWarning, stacklevel=2)

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _write(self, state: Mapping[str, Any], targets: list[Path]) -> None:
        start = time.perf_counter()
        try:
            for target in targets:
                save(state, target)
        except BaseException as exc:  # handed to the training thread, which raises it at its next write or flush
            self._error = exc
        finally:
            self.background_s += time.perf_counter() - start
