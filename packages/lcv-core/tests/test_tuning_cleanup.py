"""Which trial folders lose their checkpoints: ended trials outside the best ``keep``, never a running one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lcv_core.tuning.cleanup import prune_checkpoints


def _study(run_dir: Path, records: list[dict[str, Any]], running: list[int]) -> None:
    for number in [r["number"] for r in records] + running:
        folder = run_dir / f"trial_{number}"
        (folder / "checkpoints" / "epoch=1").mkdir(parents=True)
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"state")
        (folder / "metrics.json").write_text("{}")
        (folder / "config.yaml").write_text("seed: 0\n")
    lines = [json.dumps(r) for r in records]
    (run_dir / "trials.jsonl").write_text("\n".join(lines) + '\n{"number": 9, "sta', encoding="utf-8")  # mid-append


def _kept(run_dir: Path) -> list[int]:
    return sorted(int(p.parent.name.split("_")[1]) for p in run_dir.glob("trial_*/checkpoints"))


RECORDS = [
    {"number": 0, "value": 0.5, "state": "COMPLETE"},
    {"number": 1, "value": 0.2, "state": "COMPLETE"},
    {"number": 2, "value": 0.1, "state": "PRUNED"},  # a pruned trial's last value may be the lowest: never kept
    {"number": 3, "value": None, "state": "FAIL"},
    {"number": 4, "value": 0.2, "state": "COMPLETE"},  # ties with trial 1: the earlier trial ranks first
    {"number": 5, "value": 0.9, "state": "COMPLETE"},
]


@pytest.mark.parametrize(
    ("keep", "direction", "kept"),
    [
        (1, "minimize", [1, 6]),
        (2, "minimize", [1, 4, 6]),
        (2, "maximize", [0, 5, 6]),
        (0, "minimize", [6]),
        (-1, "minimize", [0, 1, 2, 3, 4, 5, 6]),
        (None, "minimize", [0, 1, 2, 3, 4, 5, 6]),
    ],
)
def test_ended_trials_outside_the_best_lose_their_checkpoints_and_a_running_one_keeps_them(
    tmp_path: Path, keep: int | None, direction: str, kept: list[int]
) -> None:
    _study(tmp_path, RECORDS, running=[6])  # trial 6 runs: no record yet
    removed = prune_checkpoints(tmp_path, keep, direction)
    assert _kept(tmp_path) == kept
    assert sorted(int(p.parent.name.split("_")[1]) for p in removed) == sorted(set(range(7)) - set(kept))
    for number in range(7):  # every trial's results stay
        assert (tmp_path / f"trial_{number}" / "metrics.json").is_file()
        assert (tmp_path / f"trial_{number}" / "config.yaml").is_file()
    assert prune_checkpoints(tmp_path, keep, direction) == []  # a second worker cleaning up finds nothing to do


def test_no_trials_file_removes_nothing(tmp_path: Path) -> None:
    (tmp_path / "trial_0" / "checkpoints").mkdir(parents=True)
    assert prune_checkpoints(tmp_path, 1, "minimize") == []
    assert (tmp_path / "trial_0" / "checkpoints").is_dir()
