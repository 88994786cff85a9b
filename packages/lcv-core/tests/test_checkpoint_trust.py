"""A checkpoint is data: ``lcv test``, ``lcv predict`` and ``lcv cv --resume`` build only what plugins provide.

Crafted checkpoints whose embedded config names ``os.system``, ``subprocess.call`` or ``builtins.exec`` are run
through the real command line (``lcv_config.cli.main``, and once the ``lcv`` process itself); none of them may run
(a marker file they would create must not appear) unless ``--trust-checkpoint`` is given.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from lcv_config import LcvError
from lcv_config.cli import main
from lcv_core.cli.checkpoint_models import load_models
from lcv_core.cli.checkpoint_trust import untrusted_paths

BASE = """\
name: crafted
seed: 0
data: {holdout: 30}
model: {name: mlp, cfg: {in_features: 8, out_features: 3, hidden: [16]}}
criterion: CrossEntropyLoss
optimizer: {name: Adam, cfg: {lr: 0.05}}
trainer: {accelerator: cpu, max_epochs: 2}
"""


def _payloads(marker: Path) -> dict[str, str]:
    """Config lines that would create ``marker`` if the component they name were built."""
    return {
        "os.system": f"model: {{name: os.system, cfg: {{command: 'touch {marker}'}}}}\n",
        "subprocess.call": f"criterion: {{name: subprocess.call, cfg: {{args: [touch, '{marker}']}}}}\n",
        "builtins.exec": (
            "callbacks:\n  - {name: builtins.exec, cfg: {source: \"open(r'" + str(marker) + "', 'w').close()\"}}\n"
        ),
        "nested": (
            "model:\n  name: mlp\n  cfg: {in_features: 8, out_features: 3, hidden: [16], "
            f"activation: {{name: os.system, cfg: {{command: 'touch {marker}'}}}}}}\n"
        ),
    }


def _config(line: str) -> str:
    kept = [ln for ln in BASE.splitlines(keepends=True) if not ln.startswith(line.split(":")[0] + ":")]
    return "".join(kept) + line


def _fold_file(path: Path, config: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "lcv-fold-weights", "state_dict": {}, "fold": 0, "experiment_config": config}, path)
    return path


def _last_ckpt(path: Path, config: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": "lcv-checkpoint", "version": 1, "folds": [{}, {}], "experiment_config": config}
    torch.save(state, path)
    return path


@pytest.mark.parametrize("payload", ["os.system", "subprocess.call", "builtins.exec", "nested"])
@pytest.mark.parametrize("command", ["test", "predict", "resume"])
def test_a_crafted_checkpoint_runs_nothing_without_the_trust_flag(
    payload: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "MARKER"
    config = _config(_payloads(marker)[payload])
    run = tmp_path / "run"
    if command == "resume":
        ckpt = _last_ckpt(run / "checkpoints" / "last.ckpt", config)
        argv = ["cv", "--resume", str(ckpt)]
    else:
        ckpt = _fold_file(run / "checkpoints" / "epoch=1" / "fold_0.ckpt", config)
        argv = [command, str(ckpt)] + (["--output", str(tmp_path / "p.csv")] if command == "predict" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    name = "os.system" if payload == "nested" else payload
    assert f"'{name}'" in err and "--trust-checkpoint" in err and "a checkpoint is data" in err
    assert not marker.exists()
    assert not (run / "config.yaml").exists()  # a refused resume writes nothing


def test_the_lcv_process_refuses_it_too(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    ckpt = _fold_file(tmp_path / "fold_0.ckpt", _config(_payloads(marker)["os.system"]))
    code = "import sys; from lcv_config.cli import main; sys.exit(main())"
    proc = subprocess.run(
        [sys.executable, "-c", code, "test", str(ckpt)], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "model.name = 'os.system'" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()


@pytest.fixture
def toucher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module ``crafted_parts`` whose ``touch(path)`` creates ``path`` and returns a small network."""
    (tmp_path / "crafted_parts.py").write_text(
        "from pathlib import Path\nimport torch\n\n"
        "def touch(path, **kwargs):\n    Path(path).touch()\n    return torch.nn.Linear(8, 3)\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path / "TOUCHED"


def test_the_trust_flag_lets_the_checkpoint_build_its_dotted_paths(
    toucher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(f"model: {{name: crafted_parts.touch, cfg: {{path: '{toucher}'}}}}\n")
    ckpt = _fold_file(tmp_path / "alone" / "fold_0.ckpt", config)
    assert main(["test", str(ckpt)]) == 2
    assert "model.name = 'crafted_parts.touch'" in capsys.readouterr().err and not toucher.exists()
    with pytest.raises(LcvError, match="trust_checkpoint=True"):
        load_models(ckpt)
    with pytest.raises(Exception):  # noqa: B017, PT011  # the empty state_dict does not fit: only the build matters
        load_models(ckpt, trust_checkpoint=True)
    assert toucher.exists()


def test_an_override_is_the_users_own(toucher: Path, tmp_path: Path) -> None:
    ckpt = _fold_file(tmp_path / "fold_0.ckpt", _config("model: {name: os.system, cfg: {command: 'true'}}\n"))
    with pytest.raises(Exception) as info:  # noqa: PT011  # built (the user chose it), then the weights do not fit
        load_models(ckpt, [f"model={{name: crafted_parts.touch, cfg: {{path: '{toucher}'}}}}"])
    assert toucher.exists() and "trust" not in str(info.value)


def _dump(config: str) -> dict[str, Any]:
    from lcv_config import load_config
    from lcv_config.loading import parse_yaml

    return load_config((), [], base=parse_yaml(config)).model_dump(mode="python")


def test_what_plugins_and_bare_torch_names_provide_is_trusted() -> None:
    import lcv_core.learners.networks  # noqa: F401  # registers mlp, as the commands do

    config = _config(
        "learner: {name: lcv_core.learners.supervised.SupervisedLearner}\n"
        "lr_scheduler: {name: torch.optim.lr_scheduler.StepLR, cfg: {step_size: 2}}\n"
        "callbacks: [{name: 'lcv_core.callbacks:EarlyStopping', cfg: {monitor: val_loss}}]\n"
        "loggers: [{name: csv, cfg: {name: my.run}}]\n"  # a dotted string whose top is no installed package
    ).replace("criterion: CrossEntropyLoss", "criterion: torch.nn.CrossEntropyLoss")
    assert untrusted_paths(_dump(config)) == []
    bad = _dump(_config("model: {name: os.path.join, cfg: {a: lcv_core.core.saving.save}}\n"))
    assert untrusted_paths(bad) == [("model.name", "os.path.join"), ("model.cfg.a", "lcv_core.core.saving.save")]
    assert untrusted_paths(bad, skip=["model.cfg"]) == [("model.name", "os.path.join")]
