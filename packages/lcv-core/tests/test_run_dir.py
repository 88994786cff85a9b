"""One run per directory: new run directories never collide, a live run's directory is refused, a dead one's taken."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lcv_config import ConfigError
from lcv_core.loop.run_dir import LOCK_FILE, RunDirectoryBusyError, RunLock, create_run_dir


def test_run_directories_created_in_the_same_second_differ(tmp_path: Path) -> None:
    made = [create_run_dir(tmp_path / "runs", "digits") for _ in range(5)]
    assert len(set(made)) == 5 and all(p.is_dir() for p in made)
    assert {p.parent for p in made} == {tmp_path / "runs" / "digits"}


@pytest.mark.parametrize("name", ["../../x", "/etc/x", "a/../../b", "bad\x00name", "tab\there"])
def test_a_name_cannot_escape_the_output_dir(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="plain run name") as info:
        create_run_dir(tmp_path / "runs", name)
    assert info.value.path == "name"
    assert not (tmp_path / "x").exists()


def test_an_output_dir_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="a file stands in the way"):
        create_run_dir(tmp_path / "runs", "digits")


def _hold(run_dir: Path) -> subprocess.Popen[str]:
    """Another process that locks ``run_dir`` and waits until killed."""
    code = (
        "import sys, time; from lcv_core.loop.run_dir import RunLock; lock = RunLock.claim(sys.argv[1]); "
        "print('locked', flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_is_refused_naming_the_owner_then_takes_over_when_it_died(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    owner = _hold(run_dir)
    try:
        with pytest.raises(RunDirectoryBusyError, match=rf"in use by pid {owner.pid} on host "):
            RunLock.claim(run_dir)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert json.loads((run_dir / LOCK_FILE).read_text(encoding="utf-8"))["pid"] == owner.pid  # left by the kill
    with RunLock.claim(run_dir) as lock:
        assert lock.stale is not None and lock.stale["pid"] == owner.pid
        assert json.loads(lock.path.read_text(encoding="utf-8"))["pid"] == os.getpid()
        with pytest.raises(RunDirectoryBusyError):
            RunLock.claim(run_dir)  # one lock per directory, also within one process
    assert not (run_dir / LOCK_FILE).exists()  # released at the end
    with RunLock.claim(run_dir) as again:
        assert again.stale is None


def test_many_processes_racing_for_one_directory_get_one_lock(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code = (
        "import sys, time; from lcv_core.loop.run_dir import RunLock, RunDirectoryBusyError\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "try:\n    lock = RunLock.claim(sys.argv[1])\nexcept RunDirectoryBusyError:\n    sys.exit(2)\n"
        "time.sleep(2)\nlock.release()\n"
    )
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", code, str(run_dir), str(start)]) for _ in range(6)]
    codes = sorted(p.wait(timeout=120) for p in procs)
    assert codes == [0, 2, 2, 2, 2, 2]


def test_discard_removes_only_what_the_run_created_and_left_empty(tmp_path: Path) -> None:
    lock = RunLock.new(tmp_path / "runs", "digits")
    lock.discard()
    assert not (tmp_path / "runs").exists()
    kept = RunLock.new(tmp_path / "runs", "digits")
    (kept.run_dir / "config.yaml").write_text("", encoding="utf-8")
    kept.discard()
    assert (kept.run_dir / "config.yaml").is_file() and not (kept.run_dir / LOCK_FILE).exists()


def test_a_fit_from_python_holds_its_run_directory(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    from lcv_core import Callback, CrossValidationTrainer

    run_dir = tmp_path / "run"
    seen: list[dict[str, object]] = []

    class LockSeen(Callback):
        def on_train_start(self, **kwargs: object) -> None:
            seen.append(json.loads((run_dir / LOCK_FILE).read_text(encoding="utf-8")))

    kwargs = {**trainer_kwargs, "default_root_dir": str(run_dir), "callbacks": [LockSeen()]}
    result = CrossValidationTrainer(**kwargs).fit(tiny, data)
    assert seen and seen[0]["pid"] == os.getpid()  # locked while it trains
    assert not (run_dir / LOCK_FILE).exists() and (run_dir / "metrics.json").is_file()  # released at the end
    assert result.n_epochs == trainer_kwargs["max_epochs"]

    # a second process on the same directory is refused, naming the owner, and writes nothing
    other = tmp_path / "other"
    owner = _hold(other)
    try:
        with pytest.raises(RunDirectoryBusyError, match=rf"in use by pid {owner.pid} on host "):
            CrossValidationTrainer(**{**kwargs, "default_root_dir": str(other)}).fit(tiny, data)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert sorted(p.name for p in other.iterdir()) == [LOCK_FILE]

    # inside `lcv cv` the command holds the lock already: the fit reuses it instead of refusing itself
    with RunLock.claim(run_dir) as lock:
        CrossValidationTrainer(**kwargs).fit(tiny, data)
        assert json.loads(lock.path.read_text(encoding="utf-8"))["pid"] == os.getpid()
    assert not (run_dir / LOCK_FILE).exists()
