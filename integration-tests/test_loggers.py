"""`lcv cv` with `loggers: [csv, tensorboard]`: each logger in its own folder under `logs/`, TensorBoard by fold."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

if TYPE_CHECKING:
    from conftest import LcvCli

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "trainer.max_epochs=2",
    "data.splitter.cfg.n_splits=2",
    "model.cfg.hidden=[16]",
    "trainer.enable_progress_bar=false",
]


def test_cv_writes_every_logger_under_logs_and_tensorboard_by_fold(tmp_path: Path, lcv_cli: LcvCli) -> None:
    config = yaml.safe_load((REPO / "examples" / "digits" / "config.yaml").read_text(encoding="utf-8"))
    config["loggers"] = ["csv", "tensorboard"]
    path = tmp_path / "cv.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    run_dir = tmp_path / "run"
    result = lcv_cli.run(["cv", str(path), *TINY, "--run-dir", str(run_dir)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not list(run_dir.rglob("lightning_logs")) and not list(run_dir.glob("version_*"))
    assert sorted(p.name for p in (run_dir / "logs").iterdir()) == ["csv", "tensorboard"]
    assert "cv/val_loss_mean" in (run_dir / "logs" / "csv" / "metrics.csv").read_text(encoding="utf-8")
    board = run_dir / "logs" / "tensorboard"
    assert sorted(p.name for p in board.iterdir()) == ["fold_0", "fold_1", "mean"]
    for run in ("fold_0", "fold_1", "mean"):
        events = EventAccumulator(str(board / run))
        events.Reload()
        assert {"val_loss", "val_acc", "train_loss"} <= set(events.Tags()["scalars"])  # one chart per metric
    events = EventAccumulator(str(board / "mean"))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["model.cfg.hidden"].string_value == "[16]"
    assert start.hparams["trainer.max_epochs"].number_value == 2
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert "best/val_loss" in {m.name.tag for m in experiment.metric_infos}
