"""Keep the top-k epochs by fold mean, one weights file per fold, plus the full resume checkpoint ``last.ckpt``."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from lcv_config import LcvError
from lcv_core.callbacks.base import Callback
from lcv_core.core import saving
from lcv_core.core.lightning_compat import unwrap_optimizer

if TYPE_CHECKING:
    from lcv_core.loop.trainer import CrossValidationTrainer


def lightning_checkpoint(trainer: CrossValidationTrainer, fold: int, epoch: int) -> dict[str, Any]:
    """Return fold ``fold``'s state after ``epoch`` as a Lightning checkpoint of its module.

    ``MyModule.load_from_checkpoint(path)`` rebuilds the fold's model (``hyper_parameters`` from
    ``save_hyperparameters``); ``lightning.Trainer.fit(model, ckpt_path=path)`` continues that fold alone at the next
    epoch (weights, optimizers, schedulers, steps, loops). Everything loads with ``torch.load(weights_only=True)``.
    """
    from lightning.pytorch.utilities.migration.utils import migrate_checkpoint

    state = trainer.folds[fold]
    module = state.module
    checkpoint: dict[str, Any] = {
        "epoch": epoch,
        "global_step": state.global_step,
        "pytorch-lightning_version": "1.5.0",  # the loops below are derived from epoch and global_step (migration)
        "state_dict": saving.cpu_state(module.state_dict()),
        "optimizer_states": [saving.cpu_tree(unwrap_optimizer(o).state_dict()) for o in state.optimizers],
        "lr_schedulers": [s.scheduler.state_dict() for s in state.schedulers],
        "callbacks": {
            cb.state_key: saving.plain(cb.state_dict()) for cb in trainer.lightning_callbacks if cb.state_dict()
        },
    }
    checkpoint, _ = migrate_checkpoint(checkpoint)
    checkpoint.pop("legacy_pytorch-lightning_version", None)
    progress = checkpoint["loops"]["fit_loop"]["epoch_progress"]
    for part in ("current", "total"):  # epoch + 1 epochs done: Lightning continues with the next one
        progress[part] = dict.fromkeys(progress[part], epoch + 1)
    hparams = dict(module.hparams)
    if hparams and _plain(hparams):
        checkpoint[module.CHECKPOINT_HYPER_PARAMS_KEY] = hparams
        name = getattr(module, "_hparams_name", None)
        if name:
            checkpoint[module.CHECKPOINT_HYPER_PARAMS_NAME] = name
    for callback in trainer.lightning_callbacks:  # as Lightning: the callbacks' hook, then the module's
        callback.on_save_checkpoint(state.view, module, checkpoint)
    module.on_save_checkpoint(checkpoint)
    return checkpoint


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only what ``torch.load(weights_only=True)`` reads (no arbitrary objects)."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return False


class ModelCheckpoint(Callback):
    """Save the ``save_top_k`` best epochs by the fold mean of ``monitor``, and ``last.ckpt`` after every epoch.

    Each kept epoch is a folder ``<dirpath>/<filename>/`` with one file per fold, ``fold_<i>.ckpt``, holding
    ``{"state_dict", "fold", "epoch", "monitor", "score", "config", "experiment_config", "versions"}`` (read it with
    ``torch.load(path, weights_only=True)``). The folder is written under a temporary name and renamed, so a
    crash never leaves half an epoch. ``last.ckpt`` is the trainer's full resume checkpoint
    (``fit(..., ckpt_path=...)``), written after every epoch, also the one an early stop ends on.

    With ``schedule="sequential"`` fold means exist only after the last fold: each fold's epochs are staged
    in ``<dirpath>/.staging/`` and the top-k are picked while the trainer replays the fold means.

    Args:
        dirpath: Where to write; default ``<default_root_dir>/checkpoints``.
        monitor: A validation metric; its fold mean ``cv/<monitor>_mean`` ranks epochs. Default: the
            trainer's ``monitor``.
        mode: ``min`` or ``max``; default: the trainer's ``mode`` when ``monitor`` is not given, else ``min``.
        save_top_k: How many epochs to keep; ``-1`` keeps every epoch, ``0`` none (``last.ckpt`` only).
        save_last: Also write ``<dirpath>/last.ckpt``.
        filename: The folder name of a kept epoch, formatted with ``epoch`` (0-based) and every fold-mean
            metric by name, e.g. ``"epoch={epoch}-{val_loss:.3f}"``. A name a kept epoch already has gets a
            version suffix, ``best-v1``, ``best-v2``..., as in Lightning; the epoch pushed out of the top k gives its
            name up, so ``filename="best"`` with ``save_top_k=1`` is overwritten by each new best.

    Attributes:
        best_model_paths: Per fold, the file of the best epoch.
        best_model_score: The best fold mean of ``monitor``.
    """

    def __init__(
        self,
        dirpath: str | Path | None = None,
        monitor: str | None = None,
        mode: Literal["min", "max"] | None = None,
        save_top_k: int = 1,
        save_last: bool = True,
        filename: str = "epoch={epoch}",
    ) -> None:
        if mode not in ("min", "max", None):
            raise LcvError(f"ModelCheckpoint(mode={mode!r}): expected 'min' or 'max'.")
        if save_top_k < -1:
            raise LcvError(f"ModelCheckpoint(save_top_k={save_top_k}): expected -1 (all), 0 or a positive number.")
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.monitor = monitor
        self.mode: Literal["min", "max"] = mode or "min"
        self._mode_given = mode is not None
        self.save_top_k = save_top_k
        self.save_last = save_last
        self.filename = filename
        self.kept: list[tuple[float, int, str]] = []
        """The kept epochs as ``(score, epoch, folder)``, best first."""
        self.best_model_paths: list[str] = []
        self.best_model_score: float | None = None

    # -- hooks --------------------------------------------------------------------------------------

    def on_train_start(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Resolve ``dirpath``, ``monitor`` and ``mode`` from the trainer; register ``last.ckpt``."""
        if self.dirpath is None:
            if trainer.run_dir is None:
                raise LcvError("ModelCheckpoint has no dirpath and the trainer no default_root_dir; give one of them.")
            self.dirpath = Path(trainer.run_dir) / "checkpoints"
        if self.monitor is None:
            self.monitor = str(trainer.config.monitor)
            if not self._mode_given:
                self.mode = trainer.config.mode
        if self.save_last and self.dirpath not in trainer.last_checkpoint_dirs:
            trainer.last_checkpoint_dirs.append(self.dirpath)
        if trainer.fabric.is_global_zero:
            saving.remove_leftovers(self.dirpath)  # temporary files of a killed run: never renamed, never needed
        self._sequential = not trainer.schedule.epoch_major
        self._publish(trainer)

    def on_validation_end_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, epoch: int, **kwargs: Any
    ) -> None:
        """Sequential schedule: stage this fold's weights of ``epoch`` until the fold mean is known."""
        if self._sequential and self.save_top_k != 0 and trainer.fabric.is_global_zero:
            self._write_fold(trainer, fold, epoch, self._staging(epoch) / f"fold_{fold}.ckpt", math.nan)

    def on_validation_end(
        self, *, trainer: CrossValidationTrainer, epoch: int, metrics: dict[str, float], **kwargs: Any
    ) -> None:
        """Rank ``epoch`` by the fold mean of ``monitor``; write it if it is in the top k, drop the one it beats."""
        if self.save_top_k == 0:
            return
        key = f"cv/{self.monitor}_mean"
        if key not in metrics:
            logged = sorted({k.split("/", 1)[1] for k in metrics if k.startswith("fold_")})
            raise LcvError(
                f"ModelCheckpoint monitors '{self.monitor}', which no fold logged. Logged: {', '.join(logged)}."
            )
        score = metrics[key]
        if math.isnan(score) or not self._qualifies(score):
            self._drop_staging(epoch)
            return
        name = self._free_name(
            self.filename.format(
                epoch=epoch, **{k[3:-5]: v for k, v in metrics.items() if k.startswith("cv/") and k.endswith("_mean")}
            )
        )
        trainer.gather_folds()  # parallel on several processes: rank 0 writes folds the others trained
        if trainer.fabric.is_global_zero:
            self._write_epoch(trainer, epoch, score, name)
        self.kept.append((score, epoch, name))
        self.kept.sort(key=lambda item: item[0] if self.mode == "min" else -item[0])
        if self.save_top_k > 0:
            for _, _, dropped in self.kept[self.save_top_k :]:
                if trainer.fabric.is_global_zero and dropped != name:  # never the folder just written
                    shutil.rmtree(self._dir / dropped, ignore_errors=True)
            del self.kept[self.save_top_k :]
        self._publish(trainer)

    def _free_name(self, name: str) -> str:
        """Return ``name``, or ``name-v1``, ``name-v2``... when a kept epoch has it, as Lightning versions files.

        The epoch this one pushes out of the top k gives its name up: a fixed ``filename`` with ``save_top_k=1`` is
        overwritten by each new best, as in Lightning.
        """
        full = self.save_top_k > 0 and len(self.kept) >= self.save_top_k
        leaving = self.kept[-1][2] if full else None
        taken = {n for _, _, n in self.kept if n != leaving}
        candidate, version = name, 1
        while candidate in taken:
            candidate, version = f"{name}-v{version}", version + 1
        return candidate

    def on_train_end(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Remove what the sequential schedule staged and did not keep."""
        if trainer.fabric.is_global_zero and self.dirpath is not None:
            shutil.rmtree(self.dirpath / ".staging", ignore_errors=True)
        self._publish(trainer)

    # -- writing ------------------------------------------------------------------------------------

    @property
    def _dir(self) -> Path:
        assert self.dirpath is not None, "resolved in on_train_start"
        return self.dirpath

    def _staging(self, epoch: int) -> Path:
        return self._dir / ".staging" / f"epoch={epoch}"

    def _drop_staging(self, epoch: int) -> None:
        if self._sequential:
            shutil.rmtree(self._staging(epoch), ignore_errors=True)

    def _qualifies(self, score: float) -> bool:
        if self.save_top_k < 0 or len(self.kept) < self.save_top_k:
            return True
        worst = self.kept[-1][0]
        return score < worst if self.mode == "min" else score > worst

    def _write_fold(self, trainer: CrossValidationTrainer, fold: int, epoch: int, path: Path, score: float) -> None:
        state = lightning_checkpoint(trainer, fold, epoch)
        state.update(
            {
                "format": "lcv-fold-weights",
                "fold": fold,
                "monitor": self.monitor,
                "score": score,
                "config": saving.config_dict(trainer.config),
                "experiment_config": getattr(trainer, "experiment_config_yaml", None),
                "versions": saving.package_versions(),
            }
        )
        saving.save(state, path)

    def _write_epoch(self, trainer: CrossValidationTrainer, epoch: int, score: float, name: str) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=saving.temp_prefix(name), dir=self._dir))
        for fold in range(len(trainer.folds)):
            if self._sequential:
                # a fold that stopped early has no file for this epoch: it contributes its last one
                source = next(
                    (
                        self._staging(e) / f"fold_{fold}.ckpt"
                        for e in range(epoch, -1, -1)
                        if (self._staging(e) / f"fold_{fold}.ckpt").is_file()
                    ),
                    None,
                )
                if source is not None:
                    shutil.copyfile(source, tmp / f"fold_{fold}.ckpt")
                    continue
            self._write_fold(trainer, fold, epoch, tmp / f"fold_{fold}.ckpt", score)
        target = self._dir / name
        old = None
        if target.exists():  # the same name again: a new best under a fixed filename, or an epoch redone on resume
            old = Path(tempfile.mkdtemp(prefix=saving.temp_prefix(name), dir=self._dir))
            os.replace(target, old / name)  # aside first: a crash now leaves a hidden folder, removed at next start
        os.replace(tmp, target)  # staged files stay until on_train_end: a stopped fold may need them later
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _publish(self, trainer: CrossValidationTrainer) -> None:
        if self.kept:
            score, _, name = self.kept[0]
            self.best_model_score = score
            self.best_model_paths = [str(self._dir / name / f"fold_{i}.ckpt") for i in range(len(trainer.folds))]
            trainer.checkpoint_paths["best"] = list(self.best_model_paths)

    # -- state --------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Return the kept epochs and the resolved settings, so a resumed fit keeps the same top k."""
        return {
            "kept": [[s, e, n] for s, e, n in self.kept],
            "dirpath": str(self.dirpath) if self.dirpath is not None else None,
            "monitor": self.monitor,
            "mode": self.mode,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the kept epochs."""
        self.kept = [(float(s), int(e), str(n)) for s, e, n in state_dict["kept"]]
        if self.dirpath is None and state_dict.get("dirpath"):
            self.dirpath = Path(state_dict["dirpath"])
