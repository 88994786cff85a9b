"""Exact resume on the path users take: `lcv cv` on the digits example (shuffled loaders), SIGKILLed, then --resume.

A run is killed at random moments after its first ``last.ckpt`` exists — inside epochs, and inside checkpoint
writes (a ``sitecustomize`` holds each write open for a moment between writing the temporary file and renaming it,
so that kills land there too). ``lcv cv --resume`` then finishes it; every fold's history, the best epoch and the
stop epoch must equal those of the run that was never interrupted, bit for bit.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "digits" / "config.yaml"
LCV = str(Path(sys.executable).with_name("lcv"))
# 4 epochs keep the test short; patience 1 makes early stopping likely to decide within them.
OVERRIDES = ["trainer.max_epochs=4", "callbacks.0.cfg.patience=1", "model.cfg.hidden=[64]"]
KILLS = 10

SLOW_WRITES = """
import os, time

_delay = float(os.environ.get("LCV_TEST_WRITE_DELAY", "0"))
if _delay:
    _replace = os.replace

    def _slow_replace(src, dst, *args, **kwargs):
        if str(dst).endswith(".ckpt"):
            time.sleep(_delay)  # the temporary checkpoint is written, the rename not done yet
        return _replace(src, dst, *args, **kwargs)

    os.replace = _slow_replace
"""


def _cv(run_dir: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [LCV, "cv", str(CONFIG), *OVERRIDES, "--run-dir", str(run_dir), *extra],
        cwd=run_dir.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _outcome(run_dir: Path) -> dict[str, object]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {key: metrics.get(key) for key in ("history", "best_epoch", "stopped_epoch", "stop_reason")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    run_dir = tmp_path_factory.mktemp("resume") / "uninterrupted"
    proc = _cv(run_dir)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return _outcome(run_dir)


def test_resume_after_sigkill_is_exact_at_random_points(reference: dict[str, object], tmp_path: Path) -> None:
    rng = random.Random(20261207)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    (tmp_path / "sitecustomize.py").write_text(SLOW_WRITES, encoding="utf-8")
    during_writes = 0
    for kill in range(KILLS):
        run_dir = tmp_path / f"killed_{kill}"
        slow = kill % 2 == 1  # every other run holds its checkpoint writes open, and is killed inside one
        proc = _cv(run_dir, env={**env, "LCV_TEST_WRITE_DELAY": "0.6" if slow else "0"})
        last = run_dir / "checkpoints" / "last.ckpt"
        deadline = time.monotonic() + 300
        while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is not None:
            pytest.fail(f"kill {kill}: the run ended before it could be killed: {proc.stderr.read()[-2000:]}")
        if slow:  # wait for the next write to start: a temporary file next to last.ckpt
            while proc.poll() is None and not any(p.name.endswith(".tmp") for p in last.parent.iterdir()):
                time.sleep(0.01)
            during_writes += proc.poll() is None
        else:
            time.sleep(rng.uniform(0.0, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        if proc.returncode == 0:
            continue  # it finished before the kill: nothing to resume (still compared below)
        resumed = subprocess.run(
            [LCV, "cv", "--resume", str(last)], cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert resumed.returncode == 0, f"kill {kill}: {resumed.stderr[-3000:]}"
        assert _outcome(run_dir) == reference, f"kill {kill} (slow writes: {slow}): resumed run differs"
        assert not list(last.parent.glob("*.tmp")), "a leftover temporary checkpoint file was not removed"
    assert during_writes >= KILLS // 2 - 1, f"only {during_writes} kills landed inside a checkpoint write"
