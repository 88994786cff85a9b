"""Exact resume on the path users take: `lcv cv` on the digits example (shuffled loaders), SIGKILLed, then --resume.

One run is killed again and again — once per epoch, at a random moment inside the epoch or inside the checkpoint
write (a ``sitecustomize`` holds every other write open between writing the temporary file and renaming it, so
kills land there) — and each time continued with ``lcv cv --resume``. At the end every fold's history, the best
epoch and the stop epoch must equal those of the run that was never interrupted, bit for bit.
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

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "digits" / "config.yaml"
LCV = str(Path(sys.executable).with_name("lcv"))
# The example's network trains an epoch of all five folds in about 55 ms under the default schedule (auto picks
# vectorized for it); a process lives a few epochs between its first new checkpoint and the kill, so 300 epochs leave
# room for 10 kills. Early stopping stays in the run (its state must resume too) but with a patience it never uses.
OVERRIDES = ["trainer.max_epochs=300", "callbacks.0.cfg.patience=1000"]
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


def _start(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([LCV, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _outcome(run_dir: Path) -> dict[str, object]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {key: metrics.get(key) for key in ("history", "best_epoch", "stopped_epoch", "stop_reason")}


def _epoch(last: Path) -> int:
    """The epoch ``last.ckpt`` was written after (-1 before the first), read as data."""
    if not last.exists():
        return -1
    import torch

    try:
        return int(torch.load(last, weights_only=True, map_location="cpu")["trainer"]["current_epoch"])
    except Exception:  # being replaced right now: ask again
        return -1


def test_resume_after_sigkill_is_exact_at_ten_points(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    (tmp_path / "sitecustomize.py").write_text(SLOW_WRITES, encoding="utf-8")
    reference_dir = tmp_path / "uninterrupted"
    done = subprocess.run(
        [LCV, "cv", str(CONFIG), *OVERRIDES, "--run-dir", str(reference_dir)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    reference = _outcome(reference_dir)

    rng = random.Random(20261207)
    run_dir = tmp_path / "killed"
    last = run_dir / "checkpoints" / "last.ckpt"
    args = ["cv", str(CONFIG), *OVERRIDES, "--run-dir", str(run_dir)]
    kills = inside_writes = 0
    while True:
        slow = kills % 2 == 1  # every other process holds its checkpoint writes open and is killed inside one
        proc = _start(args, tmp_path, {**env, "LCV_TEST_WRITE_DELAY": "1.0" if slow else "0"})
        start_epoch = _epoch(last)
        deadline = time.monotonic() + 600
        while proc.poll() is None and _epoch(last) <= start_epoch and time.monotonic() < deadline:
            time.sleep(0.05)  # wait for this process's first new checkpoint: the kill must come after progress
        if proc.poll() is not None or kills >= KILLS:
            out, err = proc.communicate(timeout=900)
            assert proc.returncode == 0, err[-3000:]
            break
        if slow:  # inside the next write: its temporary file is there, the rename not done
            while proc.poll() is None and not any(".tmp" in p.name for p in last.parent.iterdir()):
                time.sleep(0.01)
            inside_writes += proc.poll() is None
        else:
            time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        kills += proc.returncode != 0
        args = ["cv", "--resume", str(last)]
    assert _outcome(run_dir) == reference
    assert kills >= KILLS, f"only {kills} kills landed before the run finished"
    assert inside_writes >= KILLS // 2 - 1, f"only {inside_writes} kills landed inside a checkpoint write"
    assert not [p for p in last.parent.iterdir() if ".tmp" in p.name], "a leftover temporary file was not removed"
