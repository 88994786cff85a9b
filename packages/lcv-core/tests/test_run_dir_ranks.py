"""A command's run directory on several processes: only the first process of a job creates, locks and writes it.

The ranks > 0 (started by Fabric for ``devices > 1``, by ``torchrun`` or ``srun``, maybe on machines that do not share
the filesystem) follow it. The launchers are simulated by their environment variables; the real launches are in
``integration-tests/test_two_nodes.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lcv_core.loop.run_dir import LOCK_FILE, RUN_DIR_VARIABLE, RunLock, start_run


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(RUN_DIR_VARIABLE, raising=False)


def test_the_first_process_locks_and_names_the_run_for_the_processes_it_starts(tmp_path: Path) -> None:
    lock = RunLock.for_command(None, tmp_path / "runs", "digits")
    with lock:
        assert lock.writes and (lock.run_dir / LOCK_FILE).is_file()
        assert lock.run_dir.parent == tmp_path / "runs" / "digits"
        assert os.environ[RUN_DIR_VARIABLE] == str(lock.run_dir)


@pytest.mark.parametrize("variable", ["RANK", "LOCAL_RANK", "SLURM_PROCID", "GROUP_RANK"])
def test_another_rank_follows_the_given_run_dir_while_rank_zero_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    run_dir = tmp_path / "shared" / "run"
    with RunLock.for_command(run_dir, tmp_path, "digits") as first:
        (run_dir / "checkpoints").mkdir()
        # rank 0 writing last.ckpt from another machine: its pid is not running on this one
        in_flight = run_dir / "checkpoints" / ".last.ckpt.lcvtmp-99999999-abc.tmp"
        in_flight.write_text("")
        monkeypatch.setenv(variable, "1")
        follower = RunLock.for_command(run_dir, tmp_path, "digits")  # no RunDirectoryBusyError
        start_run(follower)  # does not clean up rank 0's files
        follower.discard()  # nor remove anything
        assert not follower.writes and follower.run_dir == run_dir
        assert first.writes and (run_dir / LOCK_FILE).is_file() and in_flight.is_file()


def test_a_rank_that_fabric_started_follows_the_inherited_run_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUN_DIR_VARIABLE, str(tmp_path / "runs" / "digits" / "20260101-000000"))
    monkeypatch.setenv("LOCAL_RANK", "1")
    follower = RunLock.for_command(None, tmp_path / "runs", "digits")
    assert follower.run_dir == tmp_path / "runs" / "digits" / "20260101-000000"
    assert not follower.writes and not (tmp_path / "runs").exists()  # nothing created


def test_a_rank_on_another_machine_without_run_dir_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "3")
    follower = RunLock.for_command(None, tmp_path / "runs", "digits")
    assert follower.run_dir.parent == tmp_path / "runs" / "digits"
    assert not follower.writes and not (tmp_path / "runs").exists()
