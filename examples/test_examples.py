"""Every example runs, with tiny settings, in this pytest process (the ``examples`` nox session)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lcv_config.cli import main

EXAMPLES = Path(__file__).resolve().parent


def test_digits_example_reaches_high_accuracy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``lcv cv examples/digits/config.yaml`` for 2 epochs scores above 0.85 mean validation accuracy."""
    run_dir = tmp_path / "run"
    code = main(
        [
            "cv",
            str(EXAMPLES / "digits" / "config.yaml"),
            "trainer.max_epochs=2",
            f"output_dir={tmp_path / 'runs'}",
            "--run-dir",
            str(run_dir),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    assert "mean ± std" in out
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n_folds"] == 5
    assert metrics["n_epochs"] == 2
    assert metrics["summary"]["val_acc"]["mean"] > 0.85, metrics["summary"]["val_acc"]
    assert not (tmp_path / "runs").exists(), "the run went to output_dir instead of --run-dir"


def test_every_example_config_is_valid() -> None:
    """Each example's config loads and validates (names, keys and values) without training."""
    from lcv_config import load_config

    configs = sorted(EXAMPLES.glob("*/config.yaml"))
    assert configs, "no example configs found"
    for config in configs:
        assert load_config([str(config)]).name
