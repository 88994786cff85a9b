"""``schedule="parallel"`` on CPU with 2 processes: folds spread over ranks give the same run as one process.

The script (launched once for the module: importing lightning costs seconds per process) fits 3 folds with
``schedule="parallel", devices=2`` (rank 0 trains folds 0 and 2, rank 1 fold 1), then rank 0 fits the same
experiment in one process with the interleaved schedule; each writes what it saw as JSON.
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
import torch

from lcv_config import LcvError
from lcv_core import CrossValidationTrainer

TESTS = Path(__file__).parent

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import torch

    from conftest import FoldData, TinyModule
    from lcv_core.callbacks.base import Callback
    from lcv_core.callbacks.checkpoint import ModelCheckpoint
    from lcv_core.callbacks.early_stopping import EarlyStopping
    from lcv_core.trainer import CrossValidationTrainer

    torch.set_num_threads(1)
    rank = int(os.environ.get("LOCAL_RANK", "0"))  # Fabric sets it for the rank it starts
    out = Path(sys.argv[1])


    class Trained(Callback):
        def __init__(self):
            self.folds = set()
            self.cores = set()

        def on_train_epoch_start_per_fold(self, *, fold, **kwargs):
            self.folds.add(fold)
            self.cores |= os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()


    def cores():
        return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


    def fit(schedule, devices, root, files=True):
        global trainer
        trained = Trained()
        if files:
            callbacks = [EarlyStopping(patience=1, min_delta=0.03), ModelCheckpoint(save_top_k=1), trained]
            extra = {"default_root_dir": str(root)}
        else:  # nothing written, so only the end gathers; the best epoch by the highest val_loss is an early one
            # and the processes are left where the operating system puts them
            callbacks, extra = [trained], {"mode": "max", "max_epochs": 5, "cpu_binding": False}
        trainer = CrossValidationTrainer(
            **{"accelerator": "cpu", "schedule": schedule, "devices": devices, "max_epochs": 8, "seed": 0,
               "enable_progress_bar": False, "callbacks": callbacks, **extra}
        )
        before = cores()
        result = trainer.fit(TinyModule, FoldData(n_folds=3, n=90))
        name = f"{schedule}_{'files' if files else 'nofiles'}_rank{rank}"
        torch.save([m.state_dict() for m in result.models], out / f"models_{name}.pt")
        return {
            "history": result.history,
            "best_epoch": result.best_epoch,
            "stopped_epoch": result.stopped_epoch,
            "stop_reason": result.stop_reason,
            "trained": sorted(trained.folds),
            "world_size": trainer.fabric.world_size,
            "cores": {"before": before, "during": sorted(trained.cores), "after": cores()},
        }


    def resumed():
        # 3 epochs with last.ckpt after each, then the same run resumed from rank 0's last.ckpt to 6 epochs
        kwargs = {"accelerator": "cpu", "schedule": "parallel", "devices": 2, "seed": 0, "enable_progress_bar": False,
                  "checkpoint_every_n_epochs": 1}
        CrossValidationTrainer(max_epochs=3, default_root_dir=str(out / f"first_rank{rank}"), **kwargs).fit(
            TinyModule, FoldData(n_folds=3, n=90)
        )
        torch.distributed.barrier()  # rank 0 has written last.ckpt
        result = CrossValidationTrainer(max_epochs=6, default_root_dir=str(out / f"second_rank{rank}"), **kwargs).fit(
            TinyModule, FoldData(n_folds=3, n=90), ckpt_path=str(out / "first_rank0" / "checkpoints" / "last.ckpt")
        )
        torch.save([m.state_dict() for m in result.models], out / f"models_resumed_rank{rank}.pt")
        return {"history": result.history}


    class Predicting(TinyModule):
        def predict_step(self, batch, batch_idx):
            return self(batch[0]).softmax(-1)


    class SplitData(FoldData):  # its folds known to the trainer: out-of-fold predictions
        @property
        def folds(self):
            return list(zip(self.train_indices, self.val_indices))


    def after_fit():
        # nothing written during the fit and the best epoch is the last: the end of the fit gathers weights only
        # (the best ones as the model's own); save_checkpoint after the fit gathers the rest, and the run resumes
        # from that file as one uninterrupted process
        kwargs = {"accelerator": "cpu", "seed": 0, "enable_progress_bar": False}
        trainer = CrossValidationTrainer(schedule="parallel", devices=2, max_epochs=4, **kwargs)
        result = trainer.fit(Predicting, SplitData(n_folds=3, n=90))
        torch.save([m.state_dict() for m in result.models], out / f"models_after_fit_rank{rank}.pt")
        torch.save(result.oof_predictions, out / f"oof_rank{rank}.pt")
        trainer.save_checkpoint(out / f"after_fit_rank{rank}.ckpt")  # rank 0 writes it
        torch.distributed.barrier()
        resumed = CrossValidationTrainer(schedule="parallel", devices=2, max_epochs=6, **kwargs).fit(
            Predicting, SplitData(n_folds=3, n=90), ckpt_path=str(out / "after_fit_rank0.ckpt")
        )
        torch.save([m.state_dict() for m in resumed.models], out / f"models_after_fit_resumed_rank{rank}.pt")
        return {"best_epoch": result.best_epoch, "resumed_history": resumed.history}


    report = {
        "after_fit": after_fit(),
        "parallel": fit("parallel", 2, out / f"parallel_rank{rank}"),
        "parallel_nofiles": fit("parallel", 2, None, files=False),
        "resumed": resumed(),
    }
    # the fold states' wire format, on every kind of value a state holds (the test builds the same payloads)
    from test_parallel import object_payload, odd_payload
    from lcv_core.distributed import exchange
    calls = []
    counted = exchange.gather_tensors
    exchange.gather_tensors = lambda tensor: calls.append(tensor.numel()) or counted(tensor)
    torch.save(exchange.all_gather_states(trainer.fabric, odd_payload(rank)), out / f"gathered_rank{rank}.pt")
    report["calls_in_memory"] = list(calls)
    # objects of either size: rank 0's fits the first call, rank 1's needs the second (exchange.CAPACITY)
    report["objects"] = exchange.all_gather_objects(trainer.fabric, object_payload(rank))
    # rank 1 cannot leave its long payload in memory for rank 0 (as on another machine): both travel by gloo
    if rank == 1:
        exchange._spill_dir = None
    calls.clear()
    torch.save(exchange.all_gather_states(trainer.fabric, odd_payload(rank)), out / f"gathered_sent_rank{rank}.pt")
    report["calls_sent"] = list(calls)
    torch.distributed.barrier()
    report["spills_left"] = sorted(p.name for p in Path("/dev/shm").glob("lcv-exchange-*"))
    if rank == 0:
        report["interleaved"] = fit("interleaved", 1, out / "interleaved")
        report["interleaved_nofiles"] = fit("interleaved", 1, None, files=False)
        whole = CrossValidationTrainer(
            accelerator="cpu", schedule="interleaved", max_epochs=6, seed=0, enable_progress_bar=False
        ).fit(
            TinyModule, FoldData(n_folds=3, n=90)
        )
        torch.save([m.state_dict() for m in whole.models], out / "models_whole.pt")
        four = CrossValidationTrainer(
            accelerator="cpu", schedule="interleaved", max_epochs=4, seed=0, enable_progress_bar=False
        ).fit(Predicting, SplitData(n_folds=3, n=90))
        torch.save([m.state_dict() for m in four.models], out / "models_four.pt")
        torch.save(four.oof_predictions, out / "oof_four.pt")
        report["whole"] = {"history": whole.history}
    (out / f"rank{rank}.json").write_text(json.dumps(report))

    # how a multi-process script ends (docs: trainer guide): wait for every rank, then destroy the group
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    """
)


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """Run the 2-process parallel fit and the 1-process interleaved fit once; return the folder and reports."""
    out = tmp_path_factory.mktemp("parallel")
    script = out / "fit_parallel.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(script), str(out)], env=env, capture_output=True, text=True, timeout=240, cwd=out
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # every rank exits cleanly: no gloo abort at interpreter exit (the script ends with barrier + destroy)
    assert "terminate called" not in proc.stderr, proc.stderr[-3000:]
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def odd_payload(rank: int) -> dict[str, Any]:
    """What `all_gather_states` must carry unchanged: odd tensors, shared ones, nested containers, plain values."""
    shared = torch.full((2,), float(rank))
    return {
        "transposed": torch.arange(6.0).reshape(2, 3).t() + rank,
        "flags": torch.tensor([True, rank == 1, False]),
        "step": torch.tensor(3.0 + rank),
        "half": torch.ones(3, dtype=torch.float16) * (rank + 0.5),
        "long": torch.arange(5, dtype=torch.int64) * (rank + 7),
        "empty": torch.empty(0, 4),
        "same": [shared, shared],
        "large": torch.arange(2000.0 * (rank + 1)),  # past exchange.CAPACITY, of a different size on each rank
        "sparse": torch.eye(3).to_sparse() * (rank + 1),
        "plain": ("text", rank, None, [1.5, {"deep": torch.zeros(1) + rank}]),
    }


def object_payload(rank: int) -> dict[str, Any]:
    """A small object from rank 0 and one larger than `exchange.CAPACITY` from rank 1."""
    return {"rank": rank, "text": "x" * (10 if rank == 0 else 20_000), "rows": [{"val_loss": 0.5 + rank}]}


def test_objects_of_any_size_reach_every_rank(parallel_run: tuple[Path, list[dict[str, Any]]]) -> None:
    """`all_gather_objects` gives every rank every rank's object, small (one call) or large (two), in rank order."""
    from lcv_core.distributed import exchange

    _, reports = parallel_run
    assert len(object_payload(1)["text"]) > exchange.CAPACITY > len(str(object_payload(0)))
    for report in reports:
        assert report["objects"] == [object_payload(0), object_payload(1)]


def test_fold_states_travel_between_ranks_unchanged(parallel_run: tuple[Path, list[dict[str, Any]]]) -> None:
    """Fold states cross ranks as raw tensor bytes (not pickled tensors): every dtype, shape and value arrives,
    through memory between processes of one machine and through gloo when a rank cannot use memory."""
    from lcv_core.distributed import exchange

    out, reports = parallel_run
    for rank, how in ((0, "gathered"), (1, "gathered"), (0, "gathered_sent"), (1, "gathered_sent")):
        got = torch.load(out / f"{how}_rank{rank}.pt", weights_only=False)
        assert len(got) == 2
        for sender, payload in enumerate(got):
            want = odd_payload(sender)
            assert payload.keys() == want.keys()
            for key in want:
                if key == "sparse":
                    torch.testing.assert_close(payload[key].to_dense(), want[key].to_dense(), rtol=0, atol=0)
                    continue
                if key == "plain":
                    assert payload[key][:3] == want[key][:3] and payload[key][3][0] == 1.5
                    assert type(payload[key]) is tuple and type(payload[key][3]) is list
                    torch.testing.assert_close(payload[key][3][1]["deep"], want[key][3][1]["deep"], rtol=0, atol=0)
                    continue
                torch.testing.assert_close(payload[key], want[key], rtol=0, atol=0, msg=f"{rank} <- {sender}: {key}")
            assert payload["transposed"].dtype == torch.float32 and payload["flags"].dtype == torch.bool
            assert payload["step"].shape == () and payload["empty"].shape == (0, 4)
        # what came from the other rank holds one tensor where the sender had one (shared stays shared)
        other = got[1 - rank]
        assert other["same"][0] is other["same"][1]
    for report in reports:  # the payloads left in memory for the other process are gone once it read them
        assert report["spills_left"] == []
        if os.path.isdir("/dev/shm"):  # one machine: the long payloads are read from memory, a 1-byte call says so
            assert report["calls_in_memory"] == [exchange.CAPACITY, 1]
        # rank 1 could not leave its payload in memory: every rank's travels in a third call, sized to the longest
        assert report["calls_sent"][:2] == [exchange.CAPACITY, 1] and len(report["calls_sent"]) == 3
        assert report["calls_sent"][2] > exchange.CAPACITY


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="binding 2 processes to cores of their own needs 2 cores and Linux's sched_setaffinity",
)
def test_processes_run_on_cores_of_their_own_and_get_theirs_back(
    parallel_run: tuple[Path, list[dict[str, Any]]],
) -> None:
    """cpu_binding (the default): during the fit the 2 ranks use disjoint cores; after it, the cores they had."""
    _, (r0, r1) = parallel_run
    bound = [r0["parallel"]["cores"], r1["parallel"]["cores"]]
    allowed = set(bound[0]["before"])
    assert bound[1]["before"] == bound[0]["before"]
    during = [set(c["during"]) for c in bound]
    assert during[0] and during[1] and not during[0] & during[1], during
    assert during[0] | during[1] == allowed  # every core used, each by one rank
    for c in bound:
        assert c["after"] == c["before"]
    for report in (r0, r1):  # cpu_binding=False: the operating system's placement, untouched
        free = report["parallel_nofiles"]["cores"]
        assert free["during"] == free["before"] == free["after"]


def test_each_rank_trains_its_own_folds(parallel_run: tuple[Path, list[dict[str, Any]]]) -> None:
    _, (r0, r1) = parallel_run
    assert r0["parallel"]["world_size"] == 2
    assert r0["parallel"]["trained"] == [0, 2]
    assert r1["parallel"]["trained"] == [1]
    assert r0["interleaved"]["trained"] == [0, 1, 2]


def test_parallel_gives_the_per_fold_metrics_of_one_process(parallel_run: tuple[Path, list[dict[str, Any]]]) -> None:
    _, (r0, r1) = parallel_run
    one = r0["interleaved"]["history"]
    for report in (r0, r1):
        history = report["parallel"]["history"]
        assert len(history) == len(one) == 3
        for fold, (got, want) in enumerate(zip(history, one, strict=True)):
            assert len(got) == len(want), f"fold {fold}: {len(got)} epochs, one process ran {len(want)}"
            for epoch, (row, ref) in enumerate(zip(got, want, strict=True)):
                assert row.keys() == ref.keys()
                for name in ref:
                    assert row[name] == pytest.approx(ref[name], abs=1e-6), (fold, epoch, name)


@pytest.mark.parametrize("files", ["files", "nofiles"])
def test_every_rank_returns_every_folds_best_model_of_one_process(
    parallel_run: tuple[Path, list[dict[str, Any]]], files: str
) -> None:
    """Each rank holds only its own folds' weights between epochs; the fit still ends with every fold's best model.

    ``files``: checkpoints gather the folds as they are written; ``nofiles``: nothing is written, so the other
    ranks' folds (and their best-epoch weights) arrive only when the fit ends.
    """
    out, (r0, _) = parallel_run
    key = "interleaved" if files == "files" else "interleaved_nofiles"
    if files == "nofiles":  # the best weights are not simply the last ones
        assert r0[key]["best_epoch"] < len(r0[key]["history"][0]) - 1
    want = torch.load(out / f"models_interleaved_{files}_rank0.pt", weights_only=True)
    for rank in (0, 1):
        got = torch.load(out / f"models_parallel_{files}_rank{rank}.pt", weights_only=True)
        assert len(got) == len(want) == 3
        for fold, (mine, ref) in enumerate(zip(got, want, strict=True)):
            for name, tensor in ref.items():
                torch.testing.assert_close(mine[name], tensor, atol=1e-6, rtol=0, msg=f"rank {rank} fold {fold}")


def test_resuming_from_a_parallel_last_ckpt_continues_as_one_uninterrupted_process(
    parallel_run: tuple[Path, list[dict[str, Any]]],
) -> None:
    """last.ckpt holds every fold (gathered from both ranks before rank 0 writes), so a resumed run goes on exactly."""
    out, (r0, r1) = parallel_run
    want = r0["whole"]["history"]
    assert len(want[0]) == 6
    for rank, report in enumerate((r0, r1)):
        assert report["resumed"]["history"] == want, f"rank {rank}"
        got = torch.load(out / f"models_resumed_rank{rank}.pt", weights_only=True)
        for mine, ref in zip(got, torch.load(out / "models_whole.pt", weights_only=True), strict=True):
            for name, tensor in ref.items():
                torch.testing.assert_close(mine[name], tensor, atol=0, rtol=0)


def test_the_end_of_the_fit_gathers_weights_and_save_checkpoint_the_rest(
    parallel_run: tuple[Path, list[dict[str, Any]]],
) -> None:
    """The fit's end brings only weights (best = last epoch: sent once); a checkpoint after it still resumes exactly."""
    out, (r0, r1) = parallel_run
    assert r0["after_fit"]["best_epoch"] == r1["after_fit"]["best_epoch"] == 3  # the best weights are the last ones
    want = torch.load(out / "models_four.pt", weights_only=True)
    for rank in (0, 1):
        got = torch.load(out / f"models_after_fit_rank{rank}.pt", weights_only=True)
        for fold, (mine, ref) in enumerate(zip(got, want, strict=True)):
            for name, tensor in ref.items():
                torch.testing.assert_close(mine[name], tensor, atol=0, rtol=0, msg=f"rank {rank} fold {fold}")
    oof = torch.load(out / "oof_four.pt", weights_only=True)  # each rank predicted its own folds' samples
    assert oof.shape == (90, 3) and not oof.isnan().any()
    for rank in (0, 1):
        torch.testing.assert_close(torch.load(out / f"oof_rank{rank}.pt", weights_only=True), oof, atol=0, rtol=0)
    whole = torch.load(out / "models_whole.pt", weights_only=True)
    for rank, report in enumerate((r0, r1)):
        # fold 1's optimizer state came from rank 1 with save_checkpoint: without it epochs 4-5 would differ
        assert report["after_fit"]["resumed_history"] == r0["whole"]["history"], f"rank {rank}"
        got = torch.load(out / f"models_after_fit_resumed_rank{rank}.pt", weights_only=True)
        for mine, ref in zip(got, whole, strict=True):
            for name, tensor in ref.items():
                torch.testing.assert_close(mine[name], tensor, atol=0, rtol=0)


def test_early_stopping_on_the_fold_mean_stops_where_one_process_does(
    parallel_run: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, (r0, r1) = parallel_run
    want = r0["interleaved"]
    assert want["stopped_epoch"] is not None and want["stopped_epoch"] < 7  # the stop really happened early
    for report in (r0, r1):
        got = report["parallel"]
        assert (got["stopped_epoch"], got["stop_reason"], got["best_epoch"]) == (
            want["stopped_epoch"],
            want["stop_reason"],
            want["best_epoch"],
        )


def test_rank_zero_writes_every_folds_checkpoint(parallel_run: tuple[Path, list[dict[str, Any]]]) -> None:
    out, (r0, _) = parallel_run
    best = r0["interleaved"]["best_epoch"]
    for fold in range(3):  # fold 1 was trained on rank 1; rank 0 wrote its weights
        got = torch.load(
            out / "parallel_rank0" / "checkpoints" / f"epoch={best}" / f"fold_{fold}.ckpt", weights_only=True
        )
        want = torch.load(
            out / "interleaved" / "checkpoints" / f"epoch={best}" / f"fold_{fold}.ckpt", weights_only=True
        )
        assert got["fold"] == fold
        for name, tensor in want["state_dict"].items():
            torch.testing.assert_close(got["state_dict"][name], tensor, atol=1e-6, rtol=0)
    assert (out / "parallel_rank0" / "metrics.json").is_file()
    assert sorted(p for p in (out / "parallel_rank1").rglob("*") if p.is_file()) == []


def test_parallel_refuses_a_strategy_it_cannot_spread_folds_with() -> None:
    with pytest.raises(LcvError, match=r"strategy='fsdp' does not go with schedule='parallel'.*'auto' or 'ddp'"):
        CrossValidationTrainer(schedule="parallel", strategy="fsdp", devices=2, accelerator="cpu")


@pytest.mark.parametrize("strategy", ["auto", "ddp"])
def test_parallel_on_one_device_opens_no_process_group(
    monkeypatch: pytest.MonkeyPatch, strategy: str, fold_data: Any, tiny: Any, trainer_kwargs: dict[str, Any]
) -> None:
    # a one-process group would hold a TCP port and leave MASTER_PORT in the user's process, which scripts and
    # subprocesses started afterwards inherit (a later DDP job then failed with EADDRINUSE)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    data = fold_data(n_folds=3, n=60)
    kwargs = {**trainer_kwargs, "devices": 1}
    result = CrossValidationTrainer(**kwargs, schedule="parallel", strategy=strategy).fit(tiny, data)
    assert not torch.distributed.is_initialized()
    assert "MASTER_PORT" not in os.environ
    reference = CrossValidationTrainer(**kwargs, schedule="sequential").fit(tiny, data)
    assert result.history == reference.history
