"""A fit on one device inside a ``torchrun`` job of several processes is refused: each would train alone.

torchrun's environment is simulated (``TORCHELASTIC_RUN_ID``, ``WORLD_SIZE``, ranks); the real two-node launches are
in ``integration-tests/test_two_nodes.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lcv_config import LcvError
from lcv_core import CrossValidationTrainer


def _torchrun(monkeypatch: pytest.MonkeyPatch, world_size: int) -> None:
    environment = {"TORCHELASTIC_RUN_ID": "test", "WORLD_SIZE": str(world_size), "RANK": "0", "LOCAL_RANK": "0"}
    environment |= {"GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


def test_a_one_device_fit_in_a_two_process_torchrun_job_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fold_data: Any, tiny: Any, trainer_kwargs: dict[str, Any]
) -> None:
    _torchrun(monkeypatch, 2)
    trainer = CrossValidationTrainer(**trainer_kwargs, default_root_dir=str(tmp_path / "run"))
    with pytest.raises(LcvError, match=r"torchrun started 2 processes.*trainer.devices.*--nproc-per-node") as info:
        trainer.fit(tiny, fold_data(n_folds=3, n=60))
    assert "devices x num_nodes = 2" in str(info.value)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_one_process_torchrun_job_trains(
    monkeypatch: pytest.MonkeyPatch, fold_data: Any, tiny: Any, trainer_kwargs: dict[str, Any]
) -> None:
    _torchrun(monkeypatch, 1)
    result = CrossValidationTrainer(**trainer_kwargs).fit(tiny, fold_data(n_folds=3, n=60))
    assert result.n_folds == 3
