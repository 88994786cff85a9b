"""CVResult.plot: learning curves written as a PNG, with clear errors for bad metric names and missing paths."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lcv_config import LcvError
from lcv_core.results import CVResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk follows the signature
    return width, height


def _result(run_dir: Path | None = None) -> CVResult:
    # 3 folds, 4 epochs; fold 2 stops after 3 epochs; val_loss is best at epoch 3 (index 2) on the mean
    history = [
        [{"train_loss": 1.0 - 0.1 * e + 0.01 * f, "val_loss": [0.9, 0.7, 0.5, 0.6][e] + 0.02 * f} for e in range(4)]
        for f in range(3)
    ]
    history[2] = history[2][:3]
    return CVResult(history=history, monitor="val_loss", mode="min", run_dir=run_dir)


def test_plot_writes_a_png_in_the_run_directory(tmp_path: Path) -> None:
    result = _result(run_dir=tmp_path / "run")
    path = result.plot()
    assert path == tmp_path / "run" / "learning_curves.png"
    width, height = _png_size(path)
    # two metrics side by side, 4.5 x 3.2 inches each at 100 dpi
    assert (width, height) == (900, 320)
    assert path.stat().st_size > 5_000


def test_plot_to_a_path_with_chosen_metrics(tmp_path: Path) -> None:
    result = _result()
    path = result.plot(tmp_path / "sub" / "val.png", metrics="val_loss")
    assert path.is_file() and _png_size(path) == (450, 320)


def test_plot_from_a_real_fit(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    from lcv_core.trainer import CrossValidationTrainer

    kwargs = {**trainer_kwargs, "limit_train_batches": 2, "default_root_dir": str(tmp_path)}
    result = CrossValidationTrainer(**kwargs).fit(tiny, data)
    path = result.plot()
    assert path == tmp_path / "learning_curves.png"
    # train_loss, val_acc, val_loss → three subplots in one row
    assert _png_size(path) == (1350, 320)


def test_unknown_metric_names_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(LcvError) as err:
        _result().plot(tmp_path / "x.png", metrics=["val_los"])
    message = str(err.value)
    assert "'val_los'" in message and "Did you mean 'val_loss'" in message
    assert "Available: val_loss, train_loss" in message
    assert not (tmp_path / "x.png").exists()


def test_no_run_dir_and_no_path_is_an_error() -> None:
    with pytest.raises(LcvError, match=r"no run_dir .* Pass path="):
        _result().plot()
