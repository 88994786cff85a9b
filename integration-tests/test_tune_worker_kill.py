"""``lcv tune --workers 4`` on a private PostgreSQL server: one worker SIGKILLed mid-trial loses nothing.

The killed worker's trial is marked FAILED once its heartbeat is stale and run again with the same parameters; the
dead worker is started again for the trials it had left; the study ends with the requested number of finished
trials, ``best.yaml`` is written and the command exits 0.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pytest
import yaml
from optuna.trial import TrialState

if TYPE_CHECKING:
    from conftest import LcvCli

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
N_TRIALS = 8
CONFIG = {
    "name": "iris-kill",
    "seed": 0,
    "data": {
        "dataset": "iris",
        "splitter": {"name": "stratified_kfold", "cfg": {"n_splits": 2, "shuffle": True}},
        "dataloaders": {"default": {"batch_size": 16}},
    },
    "model": {"name": "mlp", "cfg": {"in_features": 4, "out_features": 3, "hidden": [16]}},
    "criterion": "CrossEntropyLoss",
    "optimizer": {"name": "SGD", "cfg": {"lr": 0.05}},
    "trainer": {"accelerator": "cpu", "max_epochs": 40, "enable_progress_bar": False},
    "tune": {
        "space": {"optimizer.cfg.lr": {"type": "float", "low": 0.01, "high": 0.3, "log": True}},
        "pruner": "nop",
        "options": {"heartbeat_interval": 1, "grace_period": 2, "failed_trial_max_retry": 2},
    },
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A private PostgreSQL cluster (initdb into a temp folder), as the tuning guide describes."""
    if not PG_BIN or not (PG_BIN[-1] / "pg_ctl").exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL binaries missing (apt-get install postgresql); under CI=true this test must run.")
        pytest.skip("needs Debian's postgresql binaries under /usr/lib/postgresql/*/bin")
    bin_dir = PG_BIN[-1]
    root = Path(tempfile.mkdtemp(prefix="lcv-pg-", dir="/tmp"))  # short: it holds the socket (~107-byte path limit)
    os.chmod(root, 0o777)
    data, port = root / "data", _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        as_user = ["runuser", "-u", "postgres", "--"]
        a = root
        while a != a.parent:  # the postgres user must reach the folder
            os.chmod(a, os.stat(a).st_mode | 0o001)
            a = a.parent
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, cwd="/")  # noqa: E731
    run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "lcv")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root}"
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        yield f"postgresql+psycopg://lcv@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], cwd="/")
        shutil.rmtree(root, ignore_errors=True)


def _training(pid: int) -> int | None:
    """The trial a worker process is training: the trial directory whose run lock (``trial_<n>/.lock``) it holds."""
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            match = re.search(r"/trial_(\d+)/\.lock$", os.readlink(fd))
            if match:
                return int(match.group(1))
    except OSError:  # the process or the descriptor is gone
        return None
    return None


def _worker_pids(run_dir: Path) -> dict[int, int]:
    """``{worker index: pid}`` of the local worker processes of ``run_dir`` (read from /proc)."""
    pids = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "--worker" in argv and str(run_dir) in argv and any("worker_main" in a for a in argv):
            pids[int(argv[argv.index("--worker") + 1])] = int(proc.name)
    return pids


def test_a_killed_worker_loses_nothing(lcv_cli: LcvCli, pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "tune.yaml").write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    run_dir = tmp_path / "run"
    study_name = f"kill-{os.getpid()}-{time.monotonic_ns()}"
    args = ["tune", "tune.yaml", "--n-trials", str(N_TRIALS), "--workers", "4", "--storage", pg_url]
    proc = lcv_cli.start([*args, "--study", study_name, "--run-dir", str(run_dir)], cwd=tmp_path)
    deadline = time.monotonic() + 300
    killed = None
    # one storage (one connection pool) for every poll: load_study(storage=<url>) opens a new engine each time, and
    # their idle connections exhausted the server's max_connections on a slow machine
    storage = optuna.storages.RDBStorage(pg_url)
    while killed is None:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "worker 1 never trained a trial"
        time.sleep(0.2)
        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
        except KeyError:
            continue  # not created yet
        running = {t.number: t.params for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        pid = _worker_pids(run_dir).get(1)
        trial = _training(pid) if pid is not None else None
        # worker 1 is training a trial that has suggested its parameters (RUNNING a moment before it has them)
        if trial is not None and running.get(trial):
            os.kill(pid, signal.SIGKILL)
            killed = {trial: running[trial]}
    done = lcv_cli.wait(proc, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "worker 1 died (killed by signal 9)" in done.stderr

    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) >= N_TRIALS
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].number in killed  # the killed worker's trial, marked stale
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert retry.state == TrialState.COMPLETE
    assert retry.params == pytest.approx(killed[failed[0].number])  # the same parameters, run again
    best = yaml.safe_load((run_dir / "best.yaml").read_text(encoding="utf-8"))
    assert best["optimizer"]["cfg"]["lr"] == pytest.approx(
        min(finished, key=lambda t: t.value).params["optimizer.cfg.lr"]
    )
