"""DDP on CPU with gloo and 2 processes: every rank agrees, only rank 0 writes, stops are shared, samplers reshuffle.

Fabric's ``ddp`` strategy starts the script again for rank 1, so the fit runs in a script (launched once for the
whole module: importing lightning costs seconds per process) that writes what each rank saw as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from lcv_config import LcvError
from lcv_core.trainer import CrossValidationTrainer

TESTS = Path(__file__).parent

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import torch
    from torch.nn import functional as F

    from conftest import FoldData, TinyModule
    from lcv_core.callbacks.base import Callback
    from lcv_core.callbacks.checkpoint import ModelCheckpoint
    from lcv_core.trainer import CrossValidationTrainer

    torch.set_num_threads(1)
    rank = int(os.environ.get("LOCAL_RANK", "0"))  # Fabric sets it for the rank it starts
    out = Path(sys.argv[1])
    data = FoldData(n_folds=3, n=90)  # 60 training samples per fold: 30 per rank


    class StopOnRankOne(Callback):
        def on_validation_end(self, *, trainer, epoch, **kwargs):
            if epoch == 1:
                trainer.stop("rank 1 asked to stop")


    class Record(Callback):
        def __init__(self):
            self.first, self.seen, self.full_val_gap = {}, {}, 0.0

        def on_train_batch_start_per_fold(self, *, trainer, fold, batch, batch_idx, **kwargs):
            key = f"{fold}/{trainer.current_epoch}"
            self.seen[key] = self.seen.get(key, 0) + len(batch[1])
            if batch_idx == 0:
                self.first[key] = batch[0][:, 0].tolist()

        def on_validation_end_per_fold(self, *, trainer, fold, metrics, module, **kwargs):
            # the reduced val_loss is the loss over the fold's whole validation set, not this rank's shard
            x, y = data.dataset.tensors
            idx = data.val_indices[fold]
            module.eval()
            with torch.no_grad():
                full = F.cross_entropy(module(x[idx]), y[idx]).item()
            module.train()
            self.full_val_gap = max(self.full_val_gap, abs(full - metrics["val_loss"]))


    record = Record()
    callbacks = [ModelCheckpoint(save_top_k=1), record] + ([StopOnRankOne()] if rank == 1 else [])
    trainer = CrossValidationTrainer(
        accelerator="cpu", strategy="ddp", devices=2, max_epochs=4, seed=0, enable_progress_bar=False,
        default_root_dir=str(out / f"run_rank{rank}"), callbacks=callbacks,
    )
    result = trainer.fit(TinyModule, data)


    class PruneAtEpochOne:
        # a tuner trial: counts reports (the storage round trips) and prunes after the second one

        number, params = 0, {}

        def __init__(self):
            self.reports = 0

        def report(self, value, step):
            self.reports += 1

        def should_prune(self):
            return self.reports >= 2

        def set_user_attr(self, key, value):
            pass


    from lcv_config import TrialPruned
    from lcv_core.callbacks.pruning import TunerPruning

    trial = PruneAtEpochOne()
    pruner = CrossValidationTrainer(
        accelerator="cpu", strategy="ddp", devices=2, max_epochs=4, seed=0, enable_progress_bar=False,
        callbacks=[TunerPruning(trial, monitor="val_loss")],
    )
    try:
        pruner.fit(TinyModule, data)
        pruned_after = None
    except TrialPruned:
        pruned_after = pruner.current_epoch
    (out / f"rank{rank}.json").write_text(json.dumps({
        "trial_reports": trial.reports,
        "pruned_after": pruned_after,
        "rank": trainer.fabric.global_rank,
        "world_size": trainer.fabric.world_size,
        "history": result.history,
        "best_epoch": result.best_epoch,
        "stopped_epoch": result.stopped_epoch,
        "stop_reason": result.stop_reason,
        "first": record.first,
        "seen": record.seen,
        "full_val_gap": record.full_val_gap,
    }))

    # how a multi-process script ends (docs: trainer guide): wait for every rank, then destroy the group
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    """
)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """Run the 2-process DDP fit once; return the output folder and each rank's report."""
    out = tmp_path_factory.mktemp("ddp")
    script = out / "fit_ddp.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(script), str(out)], env=env, capture_output=True, text=True, timeout=240, cwd=out
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # every rank exits cleanly: no gloo abort at interpreter exit (the script ends with barrier + destroy)
    assert "terminate called" not in proc.stderr, proc.stderr[-3000:]
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return out, reports


def test_both_ranks_report_the_same_cv_result(ddp_run: tuple[Path, list[dict[str, Any]]]) -> None:
    _, (r0, r1) = ddp_run
    assert (r0["rank"], r1["rank"], r0["world_size"]) == (0, 1, 2)
    assert r0["history"] == r1["history"]
    assert r0["best_epoch"] == r1["best_epoch"]
    assert len(r0["history"]) == 3 and all(len(fold) == 2 for fold in r0["history"])


def test_fold_metrics_are_reduced_over_the_whole_validation_set(ddp_run: tuple[Path, list[dict[str, Any]]]) -> None:
    _, reports = ddp_run
    for report in reports:
        assert report["full_val_gap"] < 1e-5, report["full_val_gap"]


def test_a_stop_asked_for_on_rank_one_stops_both_ranks_after_the_same_epoch(
    ddp_run: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, (r0, r1) = ddp_run
    assert r0["stopped_epoch"] == r1["stopped_epoch"] == 1
    assert r0["stop_reason"] == r1["stop_reason"] == "rank 1 asked to stop"


def test_each_rank_trains_on_its_own_shard_reshuffled_every_epoch(ddp_run: tuple[Path, list[dict[str, Any]]]) -> None:
    _, (r0, r1) = ddp_run
    assert set(r0["seen"].values()) == set(r1["seen"].values()) == {30}  # half of each fold's 60 samples
    for fold in range(3):
        assert r0["first"][f"{fold}/0"] != r0["first"][f"{fold}/1"]  # set_epoch reshuffles
        assert r0["first"][f"{fold}/0"] != r1["first"][f"{fold}/0"]  # disjoint shards


def test_only_rank_zero_talks_to_the_tuner_and_every_rank_prunes(ddp_run: tuple[Path, list[dict[str, Any]]]) -> None:
    _, (r0, r1) = ddp_run
    assert (r0["trial_reports"], r1["trial_reports"]) == (2, 0)
    assert r0["pruned_after"] == r1["pruned_after"] == 1


def test_only_rank_zero_writes_files(ddp_run: tuple[Path, list[dict[str, Any]]]) -> None:
    out, _ = ddp_run
    rank0 = out / "run_rank0"
    written = {p.relative_to(rank0).as_posix() for p in rank0.rglob("*") if p.is_file()}
    assert {"metrics.json", "metrics.csv", "checkpoints/last.ckpt", "logs/csv/metrics.csv"} <= written
    assert {f"fold_{i}.ckpt" for i in range(3)} <= {Path(p).name for p in written if "epoch=" in p}
    assert sorted(p for p in (out / "run_rank1").rglob("*") if p.is_file()) == []


def test_a_spawn_strategy_is_refused_before_any_process_starts(data: Any, tiny: Any) -> None:
    trainer = CrossValidationTrainer(accelerator="cpu", strategy="ddp_spawn", devices=2, max_epochs=1)
    with pytest.raises(LcvError, match=r"cannot launch the spawn-based strategy DDPStrategy.*use strategy='ddp'"):
        trainer.fit(tiny, data)
    assert not trainer.fabric._launched
