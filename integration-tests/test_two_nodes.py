"""Two nodes simulated on one host: ``torchrun --nnodes 2`` (and SLURM's environment) on loopback, gloo on the CPU.

Each "node" is one ``torchrun --nnodes 2 --nproc-per-node 1 --node-rank N`` started in its own working directory,
so the run directories are relative and do not share a folder (nodes of a real cluster may not share a
filesystem): what node 1 writes is what a user would find on that machine.

- ``schedule="parallel"``: fold ``i`` is trained by global rank ``i % 2``, on its whole data, in its own random
  stream; every epoch both ranks exchange their folds' state. The per-fold history and the final weights are
  bitwise those of one process running the same experiment (``interleaved``, ``devices=1``).
- DDP (``strategy="ddp"``): every rank trains every fold on a shard of its data (``DistributedSampler``) and the
  gradients are averaged. That is not the one-process run (other batches, another sample order), so the
  reference is DDP with 2 processes on one node: the same 2 ranks, the same shards, the same all-reduce of 2
  values, hence bitwise the same history and weights.
- ``lcv cv`` with ``trainer.num_nodes: 2``, each process started as SLURM's ``srun`` would (Lightning's
  ``SLURMEnvironment``): the command runs on both nodes; only global rank 0 writes the run, with the per-fold numbers
  of one process.

The three launches run once for the module (importing lightning in every process dominates); the one-process
references run in the test's own process. The module took 85 s on a shared 2-core machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

HERE = Path(__file__).resolve().parent
TORCHRUN = Path(sys.executable).parent / "torchrun"
LCV = Path(sys.executable).parent / "lcv"
TIMEOUT = 300

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import torch

    from lcv_core.demos import IndexFolds, TinyClassifier
    from test_two_nodes import make_trainer

    torch.set_num_threads(1)
    out, devices, num_nodes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    schedules = sys.argv[4].split(",")


    def fit(schedule):
        trainer = make_trainer(schedule, devices, num_nodes)
        result = trainer.fit(TinyClassifier, IndexFolds(n_folds=3, n=90))
        fabric = trainer.fabric
        env = getattr(fabric.strategy, "cluster_environment", None)
        rank = fabric.global_rank
        torch.save([m.state_dict() for m in result.models], out / f"{schedule}_rank{rank}.pt")
        (out / f"{schedule}_rank{rank}.json").write_text(json.dumps({
            "history": result.history,
            "best_epoch": result.best_epoch,
            "stopped_epoch": result.stopped_epoch,
            "world_size": fabric.world_size,
            "node_rank": fabric.node_rank,
            "local_rank": fabric.local_rank,
            "environment": type(env).__name__,
            "strategy": type(fabric.strategy).__name__,
        }))


    for schedule in schedules:
        fit(schedule)
    if torch.distributed.is_initialized():  # how a multi-process script ends (trainer guide)
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    """
)

CONFIG = {
    "name": "digits",
    "seed": 0,
    "output_dir": "runs",  # relative: each node's own working directory
    "data": {
        "dataset": "digits",
        "splitter": {"name": "stratified_kfold", "cfg": {"n_splits": 3, "shuffle": True}},
        "fitted_transforms": ["standardize"],
        "dataloaders": {"default": {"batch_size": 64}},
    },
    "model": {"name": "mlp", "cfg": {"in_features": 64, "out_features": 10, "hidden": [32]}},
    "criterion": "CrossEntropyLoss",
    "optimizer": {"name": "Adam", "cfg": {"lr": 0.001}},
    "trainer": {"accelerator": "cpu", "max_epochs": 3, "enable_progress_bar": False},
}


def make_trainer(schedule: str, devices: int, num_nodes: int, root: str | Path | None = None) -> Any:
    """Return the trainer of the experiment: ``schedule`` is ``parallel``, ``interleaved`` or ``ddp``."""
    from lcv_core import CrossValidationTrainer
    from lcv_core.callbacks.checkpoint import ModelCheckpoint
    from lcv_core.callbacks.early_stopping import EarlyStopping

    return CrossValidationTrainer(
        accelerator="cpu",
        schedule="interleaved" if schedule == "ddp" else schedule,
        strategy="ddp" if schedule == "ddp" else "auto",
        devices=devices,
        num_nodes=num_nodes,
        max_epochs=6,
        seed=0,
        enable_progress_bar=False,
        default_root_dir=str(root) if root is not None else f"run_{schedule}",  # relative: in the node's folder
        callbacks=[EarlyStopping(patience=1, min_delta=0.03), ModelCheckpoint(save_top_k=1)],
    )


def one_thread_fit(trainer: Any, model: Any, datamodule: Any) -> Any:
    """Fit in this process with 1 torch thread, as the launched processes do (then restore the thread count)."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        return trainer.fit(model, datamodule)
    finally:
        torch.set_num_threads(threads)


def launch_env() -> dict[str, str]:
    """Return the environment of a launched process: 1 thread, no colours, this folder importable."""
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1", "COLUMNS": "200", "PYTHONPATH": path}


def free_port() -> int:
    """Return a TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def two_nodes(command: list[str], root: Path, launcher: str = "torchrun") -> list[subprocess.CompletedProcess[str]]:
    """Run ``COMMAND`` as node 0 and node 1 (each in ``root/node<N>``), one process per node; wait for both.

    ``launcher="torchrun"`` starts each node with ``torchrun --nnodes 2 --node-rank N``; ``"srun"`` starts each
    process with the environment SLURM's ``srun`` gives a task of a 2-node job with 1 task per node.
    """
    port = free_port()
    procs = []
    for node in (0, 1):
        cwd = root / f"node{node}"
        cwd.mkdir(parents=True)
        env = launch_env()
        if launcher == "torchrun":
            start = [str(TORCHRUN), "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(node)]
            start += ["--master-addr", "127.0.0.1", "--master-port", str(port)]
        else:
            start = [sys.executable]
            env |= {"SLURM_NTASKS": "2", "SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_ID": "4242"}
            env |= {"SLURM_PROCID": str(node), "SLURM_LOCALID": "0", "SLURM_NODEID": str(node)}
            env |= {"SLURM_JOB_NAME": "lcv", "SLURM_NODELIST": "127.0.0.1", "MASTER_ADDR": "127.0.0.1"}
            env |= {"MASTER_PORT": str(port)}
        procs.append(
            subprocess.Popen(
                [*start, *command], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    done = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    for node, proc in enumerate(done):
        assert proc.returncode == 0, f"node {node}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert "terminate called" not in proc.stderr, proc.stderr[-3000:]  # no gloo abort at exit
    return done


def files(folder: Path) -> list[str]:
    """Return the files under ``folder``, relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def report(out: Path, schedule: str, rank: int) -> tuple[dict[str, Any], list[dict[str, torch.Tensor]]]:
    """Return what global rank ``rank`` saw of a fit (JSON report, final weights per fold)."""
    data = json.loads((out / f"{schedule}_rank{rank}.json").read_text())
    return data, torch.load(out / f"{schedule}_rank{rank}.pt", weights_only=True)


def assert_same_weights(got: list[dict[str, torch.Tensor]], want: list[dict[str, torch.Tensor]]) -> None:
    """Assert bitwise equal weights, fold by fold."""
    assert len(got) == len(want)
    for fold, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.keys() == w.keys()
        for name in w:
            assert torch.equal(g[name], w[name]), f"fold {fold}: {name} differs"


@pytest.fixture(scope="module")
def launches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the script on two nodes (``parallel``, then DDP) and on one node, 2 processes (DDP); return the folder."""
    out = tmp_path_factory.mktemp("two_nodes")
    script = out / "fit.py"
    script.write_text(SCRIPT)
    two_nodes([str(script), str(out), "1", "2", "parallel,ddp"], out / "two_nodes")
    port = free_port()
    env = launch_env()
    (out / "one_node").mkdir()
    one_node = [str(TORCHRUN), "--nnodes", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1"]
    one_node += ["--master-port", str(port), str(script), str(out / "one_node"), "2", "1", "ddp"]
    proc = subprocess.run(one_node, cwd=out / "one_node", env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_torchrun_gives_lightning_two_nodes(launches: Path) -> None:
    for rank in (0, 1):
        got, _ = report(launches, "parallel", rank)
        assert (got["world_size"], got["node_rank"], got["local_rank"]) == (2, rank, 0)
        assert got["environment"] == "TorchElasticEnvironment"
        assert got["strategy"] == "FoldParallelStrategy"


def test_parallel_on_two_nodes_is_bitwise_the_one_process_run(launches: Path, tmp_path: Path) -> None:
    from lcv_core.demos import IndexFolds, TinyClassifier

    # the same experiment in this process: one device, the interleaved schedule
    want = one_thread_fit(make_trainer("interleaved", 1, 1, tmp_path), TinyClassifier, IndexFolds(n_folds=3, n=90))
    assert want.stopped_epoch is not None  # early stopping on the fold mean really decided something
    for rank in (0, 1):  # every rank ends with every fold: its own, and those the other node sent
        got, weights = report(launches, "parallel", rank)
        assert got["history"] == want.history  # floats through JSON: equal means bitwise equal
        assert (got["best_epoch"], got["stopped_epoch"]) == (want.best_epoch, want.stopped_epoch)
        assert_same_weights(weights, [m.state_dict() for m in want.models])


def test_ddp_on_two_nodes_is_bitwise_ddp_on_one_node(launches: Path) -> None:
    for rank in (0, 1):
        got, weights = report(launches, "ddp", rank)
        want, want_weights = report(launches / "one_node", "ddp", rank)
        assert got["strategy"] == want["strategy"] == "DDPStrategy"
        assert got["history"] == want["history"]
        assert got["best_epoch"] == want["best_epoch"]
        assert_same_weights(weights, want_weights)
    # and both ranks agree: the epoch metrics are reduced over the ranks, the gradients averaged
    assert report(launches, "ddp", 0)[0]["history"] == report(launches, "ddp", 1)[0]["history"]


def test_only_node_zero_writes_the_run(launches: Path) -> None:
    node0, node1 = launches / "two_nodes" / "node0", launches / "two_nodes" / "node1"
    assert files(node1) == []  # nothing on the second machine: it may not share a filesystem
    for schedule in ("parallel", "ddp"):
        written = files(node0 / f"run_{schedule}")
        assert {"metrics.json", "metrics.csv", "checkpoints/last.ckpt"} <= set(written)
        best = [p for p in written if p.startswith("checkpoints/epoch=")]
        assert sorted(Path(p).name for p in best) == ["fold_0.ckpt", "fold_1.ckpt", "fold_2.ckpt"]
    # fold 1 was trained on node 1; node 0 wrote its checkpoint from the state node 1 sent
    _, weights = report(launches, "parallel", 1)
    ckpt = next((node0 / "run_parallel" / "checkpoints").glob("epoch=*/fold_1.ckpt"))
    stored = torch.load(ckpt, weights_only=True)["state_dict"]
    assert_same_weights([stored], [weights[1]])


def test_lcv_cv_on_two_slurm_nodes(tmp_path: Path) -> None:
    # srun lcv cv ... on 2 nodes, 1 task each: Lightning's SLURMEnvironment reads the ranks from SLURM's variables
    config = {**CONFIG, "trainer": {**CONFIG["trainer"], "schedule": "parallel", "num_nodes": 2, "devices": 1}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    done = two_nodes([str(LCV), "cv", str(path), "--run-dir", "runs/digits"], tmp_path, launcher="srun")
    node0, node1 = tmp_path / "node0", tmp_path / "node1"
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in done[1].stdout + done[1].stderr  # one process group over both nodes
    assert "3-fold CV" in done[0].stdout
    written = files(node0 / "runs" / "digits")
    assert {"config.yaml", "metrics.json", "summary.txt", "checkpoints/last.ckpt"} <= set(written)
    assert files(node1) == []
    history = json.loads((node0 / "runs" / "digits" / "metrics.json").read_text())["history"]

    # the same experiment in this process, one device, the interleaved schedule: the same per-fold numbers
    from lcv_core.configure import configure_all

    one = {**CONFIG, "trainer": {**CONFIG["trainer"], "schedule": "interleaved"}}
    trainer, factory, datamodule = configure_all(one)
    assert history == one_thread_fit(trainer, factory, datamodule).history
