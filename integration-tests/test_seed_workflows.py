"""What users of the seed tools write, with lcv-core and lcv-data together (issue 20).

torch_mate: ``configure_all(cfg_dict)`` is ``configure_all(file)``; NeuroMANCER: ``from_setup_function`` without a
splitter trains its one train/dev fold with ``fit_holdout`` and says so when given to ``fit``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from lcv_config import LcvError
from lcv_core import CrossValidationTrainer, LossReturningLearner
from lcv_core.configure import configure_all

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits" / "config.yaml"


def _built(config: Any, run_dir: Path) -> tuple[Any, Any, Any]:
    trainer, make_learner, datamodule = configure_all(config, run_dir=run_dir)
    torch.manual_seed(0)  # the learner's initial weights come from the global stream here
    return trainer, make_learner(), datamodule


def test_configure_all_of_a_dict_equals_configure_all_of_the_file(tmp_path: Path) -> None:
    """torch_mate users write ``configure_all(cfg_dict)``: the same trainer config, learner and datamodule."""
    as_dict = yaml.safe_load(DIGITS.read_text(encoding="utf-8"))
    from_file = _built(DIGITS, tmp_path / "file")
    from_dict = _built(as_dict, tmp_path / "dict")
    from_list = _built([DIGITS], tmp_path / "list")
    for trainer, learner, datamodule in (from_dict, from_list):
        ref_trainer, ref_learner, ref_dm = from_file
        assert trainer.experiment_config_yaml == ref_trainer.experiment_config_yaml
        skip = {"default_root_dir", "callbacks", "loggers"}
        assert trainer.config.model_dump(exclude=skip) == ref_trainer.config.model_dump(exclude=skip)
        assert [type(c) for c in trainer.callbacks] == [type(c) for c in ref_trainer.callbacks]
        assert [vars(c).get("patience") for c in trainer.callbacks] == [
            vars(c).get("patience") for c in ref_trainer.callbacks
        ]
        assert type(learner) is type(ref_learner) and learner.task == ref_learner.task
        state, ref_state = learner.state_dict(), ref_learner.state_dict()
        assert state.keys() == ref_state.keys() and all(torch.equal(state[k], ref_state[k]) for k in state)
        assert repr(learner.configure_optimizers()) == repr(ref_learner.configure_optimizers())
        datamodule.setup("fit")
        ref_dm.setup("fit")
        assert datamodule.loader_settings == ref_dm.loader_settings
        for (tr, va), (ref_tr, ref_va) in zip(datamodule.folds, ref_dm.folds, strict=True):
            assert np.array_equal(tr, ref_tr) and np.array_equal(va, ref_va)
        assert [type(t).__name__ for t in datamodule.fitted_transforms] == ["Standardize"]


def test_configure_all_takes_overrides_and_files_merged_in_order(tmp_path: Path) -> None:
    extra = tmp_path / "short.yaml"
    extra.write_text("trainer: {max_epochs: 3}\n", encoding="utf-8")
    trainer, _, _ = configure_all([DIGITS, extra], overrides=["optimizer.cfg.lr=0.01"])
    assert trainer.config.max_epochs == 3
    assert "lr: 0.01" in (trainer.experiment_config_yaml or "")
    dict_trainer, _, _ = configure_all(yaml.safe_load(DIGITS.read_text()), overrides=["trainer.max_epochs=3"])
    assert dict_trainer.config.max_epochs == 3


# -- NeuroMANCER: a setup function without a splitter ----------------------------------------------------------------


def setup(nsim: int = 200, batch_size: int = 16) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], int]:
    g = torch.Generator().manual_seed(0)

    def part(n: int) -> dict[str, torch.Tensor]:
        x = torch.randn(n, 2, generator=g)
        return {"X": x, "Y": x[:, :1] * 2 - x[:, 1:]}

    return part(nsim // 2), part(nsim // 4), part(nsim // 4), batch_size


class Problem(nn.Module):
    """NeuroMANCER's ``Problem`` interface: a dict batch in, losses keyed by ``data["name"]`` out."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def forward(self, data: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {f"{data['name']}_loss": nn.functional.mse_loss(self.lin(data["X"]), data["Y"])}


def _trainer() -> CrossValidationTrainer:
    return CrossValidationTrainer(accelerator="cpu", max_epochs=3, seed=0, enable_progress_bar=False)


def test_a_setup_function_without_a_splitter_trains_its_train_dev_fold_with_fit_holdout() -> None:
    """The Problem trains unchanged on the function's train part and validates on its dev part."""
    from lcv_data.adapters import from_setup_function

    learner = LossReturningLearner(Problem(), optimizer={"name": "Adam", "cfg": {"lr": 0.05}})
    result = _trainer().fit_holdout(learner, from_setup_function(setup))
    assert result.n_folds == 1
    assert result.history[0][-1]["val_loss"] < result.history[0][0]["val_loss"]


def test_fit_on_one_fold_points_to_fit_holdout_and_lcv_fit() -> None:
    from lcv_data.adapters import from_setup_function

    learner = LossReturningLearner(Problem())
    with pytest.raises(LcvError, match=r"fit_holdout\(model, datamodule\).*lcv fit"):
        _trainer().fit(learner, from_setup_function(setup))
