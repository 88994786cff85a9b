"""TensorBoard for cross-validation: one run per fold and one for the fold mean, so TensorBoard overlays them.

Fabric's `TensorBoardLogger` writes every value into one run, with tags such as `fold_0/val_loss`: each fold gets
its own chart and the folds cannot be compared on one. [`TensorBoardCVLogger`][lcv_core.loggers.TensorBoardCVLogger]
writes each fold into a run of its own (`fold_<i>/`) and the fold mean into `mean/`, all under the tag `val_loss`,
so `tensorboard --logdir <its folder>` draws every fold and the mean on the same chart.
"""

from __future__ import annotations

import json
import math
import re
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning.fabric.loggers.logger import Logger
from lightning.fabric.utilities.rank_zero import rank_zero_only

from lcv_config import LcvError

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

MEAN_RUN = "mean"
"""The run that holds the fold means (and the fold std, the run's hyperparameters and their metrics)."""
_FOLD = re.compile(r"(fold_\d+)/(.+)")


def route(key: str) -> tuple[str, str]:
    """Return the run and the tag of a metric lcv logs.

    `fold_<i>/<name>` goes to run `fold_<i>` as `<name>`; `cv/<name>_mean` to run `mean` as `<name>` (the same
    chart as the folds); any other `cv/<name>` (the std) and anything else to run `mean` under its own name.
    """
    fold = _FOLD.fullmatch(key)
    if fold:
        return fold.group(1), fold.group(2)
    name = key.removeprefix("cv/")
    if key.startswith("cv/") and name.endswith("_mean"):
        return MEAN_RUN, name.removesuffix("_mean")
    return MEAN_RUN, name


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return a nested config as TensorBoard's hyperparameters: config paths (`optimizer.cfg.lr`) to plain values.

    Numbers, strings and booleans stay as they are; lists and `None` become their JSON text (`[16, 16]`, `null`).
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path))
        elif isinstance(value, bool | int | float | str):
            out[path] = value
        else:
            out[path] = json.dumps(value, default=str)
    return out


class TensorBoardCVLogger(Logger):
    """Log a cross-validated fit to TensorBoard: one run per fold, one for the fold mean, the config as hparams.

    Under `log_dir` (`root_dir/name/version`) it writes `fold_<i>/` (each fold's values, tags as the module logs
    them: `val_loss`, `train_loss`, `val_loss_step`, ...) and `mean/` (the fold means under the same tags, the std
    as `<name>_std`). `tensorboard --logdir <log_dir>` then shows each metric once, with a curve per fold and one
    for the mean. The resolved config (when the run came from one) is logged as hyperparameters of the `mean` run,
    with the best epoch's fold means (`best/<name>`) as their metrics, so TensorBoard's HParams tab compares runs.

    `loggers: [tensorboard]` in a config builds it writing into `<run>/logs/tensorboard/`.

    Args:
        root_dir: Where the logs go.
        name: A sub-folder of `root_dir`; empty for none.
        version: A sub-folder of `root_dir/name`: a string as it is, an int as `version_<n>`, `None` for the next
            free `version_<n>`, or `""` for none.
        **kwargs: Passed to each run's `torch.utils.tensorboard.SummaryWriter` (`flush_secs`, `max_queue`).

    Raises:
        LcvError: TensorBoard is not installed; the message names the extra to install.
    """

    def __init__(self, root_dir: str | Path, name: str = "", version: int | str | None = None, **kwargs: Any) -> None:
        try:
            import torch.utils.tensorboard  # noqa: F401  # fails without the tensorboard package
        except ImportError:
            raise LcvError(
                "The TensorBoard logger needs the tensorboard package: pip install 'lcv-core[tensorboard]'."
            ) from None
        self._root_dir = Path(root_dir)
        self._name = name or ""
        self._version = version
        self._kwargs = kwargs
        self._writers: dict[str, SummaryWriter] = {}
        self._hparams: dict[str, Any] | None = None
        self._hparams_written = False

    @property
    def name(self) -> str:
        """The sub-folder of `root_dir` (empty for none)."""
        return self._name

    @property
    def version(self) -> str:
        """The sub-folder of `root_dir/name`: `version_<n>`, a given string, or empty."""
        if self._version is None:
            parent = self._root_dir / self._name
            taken = [int(p.name[8:]) for p in parent.glob("version_*") if p.is_dir() and p.name[8:].isdigit()]
            self._version = max(taken, default=-1) + 1
        return self._version if isinstance(self._version, str) else f"version_{self._version}"

    @property
    def root_dir(self) -> str:
        """Where the logs go."""
        return str(self._root_dir)

    @property
    def log_dir(self) -> str:
        """The folder that holds the runs (`fold_<i>/`, `mean/`): give it to `tensorboard --logdir`."""
        return str(Path(self._root_dir, self.name, self.version))

    def writer(self, run: str) -> SummaryWriter:
        """Return the `SummaryWriter` of `run` (`fold_<i>` or `mean`), created at its first use."""
        if run not in self._writers:
            from torch.utils.tensorboard import SummaryWriter

            self._writers[run] = SummaryWriter(log_dir=str(Path(self.log_dir, run)), **self._kwargs)
        return self._writers[run]

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Write each value into its fold's run or the mean run (see [`route`][lcv_core.loggers.route])."""
        for key, value in metrics.items():
            run, tag = route(key)
            number = float(value.item() if hasattr(value, "item") else value)
            self.writer(run).add_scalar(tag, number, global_step=step)

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """Keep the resolved config; `log_summary` writes it at the end, with the best epoch's fold means."""
        self._hparams = flatten(vars(params) if isinstance(params, Namespace) else params)

    @rank_zero_only
    def log_summary(self, summary: Mapping[str, float]) -> None:
        """Write the config as hyperparameters of the mean run, with the best epoch's fold means as their metrics.

        `summary` is what the trainer gives at the end: `cv/<name>_mean`, `cv/<name>_std` and `cv/best_epoch`.
        """
        best = int(summary.get("cv/best_epoch", 0))
        metrics = {
            f"best/{key[3:-5]}": float(value)
            for key, value in summary.items()
            if key.startswith("cv/") and key.endswith("_mean") and math.isfinite(float(value))
        }
        for tag, value in metrics.items():
            self.writer(MEAN_RUN).add_scalar(tag, value, global_step=best)
        self._write_hparams(metrics)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Write the hyperparameters if the run ended before its summary (a pruned trial), then close every run."""
        if not self._hparams_written:
            self._write_hparams({})
        for writer in self._writers.values():
            writer.flush()
            writer.close()
        self._writers.clear()

    def _write_hparams(self, metrics: dict[str, float]) -> None:
        if self._hparams is None or self._hparams_written:
            return
        from torch.utils.tensorboard.summary import hparams

        experiment, start, end = hparams(self._hparams, metrics)  # type: ignore[no-untyped-call]  # torch's is untyped
        files: Any = self.writer(MEAN_RUN).file_writer  # typed Optional; set while the writer is open, as here
        for summary in (experiment, start, end):
            files.add_summary(summary)
        self._hparams_written = True
