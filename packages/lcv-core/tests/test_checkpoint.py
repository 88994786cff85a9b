"""Checkpoints: ModelCheckpoint's top-k fold files, last.ckpt, in-process resume, bad checkpoints, best models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from lcv_config import LcvError
from lcv_core import CrossValidationTrainer
from lcv_core.callbacks.checkpoint import ModelCheckpoint
from lcv_core.callbacks.early_stopping import EarlyStopping


def _fit(tiny: Any, data: Any, kwargs: dict[str, Any], run: Path, **extra: Any) -> Any:
    return CrossValidationTrainer(**{**kwargs, **extra}, default_root_dir=str(run)).fit(tiny, data)


def test_top_k_keeps_the_best_epochs_by_fold_mean_with_one_file_per_fold(
    data, tiny, trainer_kwargs, tmp_path: Path
) -> None:
    ckpt = ModelCheckpoint(save_top_k=2)
    result = _fit(tiny, data, trainer_kwargs, tmp_path / "run", max_epochs=5, callbacks=[ckpt])
    curve = result.curve("val_loss")
    best_two = sorted(range(5), key=lambda e: curve[e])[:2]
    folders = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.is_dir())
    assert folders == sorted(f"epoch={e}" for e in best_two)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints" / f"epoch={best_two[0]}").iterdir()) == [
        f"fold_{i}.ckpt" for i in range(5)
    ]
    assert ckpt.best_model_score == pytest.approx(min(curve))
    assert ckpt.best_model_paths == [
        str(tmp_path / "run" / "checkpoints" / f"epoch={result.best_epoch}" / f"fold_{i}.ckpt") for i in range(5)
    ]
    assert result.checkpoints["best"] == ckpt.best_model_paths
    assert result.checkpoints["last"] == str((tmp_path / "run" / "checkpoints" / "last.ckpt").resolve())
    saved = torch.load(ckpt.best_model_paths[3], weights_only=True)
    assert (saved["fold"], saved["epoch"], saved["monitor"]) == (3, result.best_epoch, "val_loss")
    assert saved["config"]["max_epochs"] == 5 and saved["versions"]["lcv-core"]
    assert not list((tmp_path / "run" / "checkpoints").glob(".*")), "no temporary files are left behind"


def test_fold_file_reproduces_the_fold_score_at_that_epoch(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    ckpt = ModelCheckpoint(monitor="val_acc", mode="max", filename="e{epoch}-{val_acc:.3f}")
    result = _fit(tiny, data, trainer_kwargs, tmp_path / "run", max_epochs=3, callbacks=[ckpt])
    epoch = max(range(3), key=lambda e: result.curve("val_acc")[e])
    assert Path(ckpt.best_model_paths[0]).parent.name == f"e{epoch}-{result.curve('val_acc')[epoch]:.3f}"
    module = tiny()
    module.load_state_dict(torch.load(ckpt.best_model_paths[1], weights_only=True)["state_dict"])
    module.eval()
    _, val = data.train_val_dataloaders()[1]
    correct = sum(int((module(x).argmax(1) == y).sum()) for x, y in val)
    assert correct / 30 == pytest.approx(result.history[1][epoch]["val_acc"], abs=1e-6)


def test_checkpoint_is_written_at_early_stop(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    ckpt = ModelCheckpoint(save_top_k=-1)
    stop = EarlyStopping(stopping_threshold=10.0)  # reached at the first epoch
    result = _fit(tiny, data, trainer_kwargs, tmp_path / "run", max_epochs=5, callbacks=[stop, ckpt])
    assert result.n_epochs == 1 and "stopping threshold" in (result.stop_reason or "")
    assert (tmp_path / "run" / "checkpoints" / "epoch=0" / "fold_4.ckpt").is_file()
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["trainer"]["should_stop"] and state["trainer"]["finished"]
    assert state["callbacks"]["EarlyStopping"]["stopped_epoch"] == 0


def test_sequential_schedule_keeps_the_same_top_k_as_interleaved(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    kept = {}
    for schedule in ("interleaved", "sequential"):
        ckpt = ModelCheckpoint(save_top_k=2)
        _fit(tiny, data, trainer_kwargs, tmp_path / schedule, max_epochs=4, schedule=schedule, callbacks=[ckpt])
        kept[schedule] = [(round(s, 6), e) for s, e, _ in ckpt.kept]
        fold2 = torch.load(ckpt.best_model_paths[2], weights_only=True)["state_dict"]
        kept[schedule + "_w"] = fold2["net.0.weight"]
        assert not (tmp_path / schedule / "checkpoints" / ".staging").exists()
    assert kept["interleaved"] == kept["sequential"]
    assert torch.allclose(kept["interleaved_w"], kept["sequential_w"], atol=1e-6)


def test_resume_from_last_continues_to_the_same_history(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    full = _fit(tiny, data, trainer_kwargs, tmp_path / "full", max_epochs=4)
    _fit(tiny, data, trainer_kwargs, tmp_path / "part", max_epochs=2)
    resumed = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 4}, default_root_dir=str(tmp_path / "part"))
    result = resumed.fit(tiny, data, ckpt_path="last")
    assert len(result.history[0]) == 4
    for a, b in zip(full.history, result.history, strict=True):
        for row_a, row_b in zip(a, b, strict=True):
            assert row_a == pytest.approx(row_b, abs=1e-6)


def test_resume_refuses_a_checkpoint_with_other_folds(data, fold_data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    _fit(tiny, data, trainer_kwargs, tmp_path / "run", max_epochs=1)
    trainer = CrossValidationTrainer(**trainer_kwargs, default_root_dir=str(tmp_path / "run"))
    with pytest.raises(LcvError, match="holds 5 folds but the datamodule now gives 3"):
        trainer.fit(tiny, fold_data(n_folds=3), ckpt_path="last")

    class WithIndices(type(data)):  # type: ignore[misc]
        @property
        def folds(self) -> list[tuple[list[int], list[int]]]:
            return list(zip(self.train_indices, self.val_indices, strict=True))

    with_idx = WithIndices()
    _fit(tiny, with_idx, trainer_kwargs, tmp_path / "idx", max_epochs=1)
    other = WithIndices()
    other.val_indices[0], other.val_indices[1] = other.val_indices[1], other.val_indices[0]
    trainer = CrossValidationTrainer(**trainer_kwargs, default_root_dir=str(tmp_path / "idx"))
    with pytest.raises(LcvError, match=r"other fold indices than the datamodule's \(folds \[0, 1\] differ\)"):
        trainer.fit(tiny, other, ckpt_path="last")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "cannot be read: it is truncated or corrupt"),
        ("garbage", "cannot be read: it is truncated or corrupt"),
        ("foreign", "is not an lcv checkpoint"),
    ],
)
def test_a_damaged_checkpoint_is_refused(data, tiny, trainer_kwargs, tmp_path: Path, damage: str, message: str) -> None:
    _fit(tiny, data, trainer_kwargs, tmp_path / "run", max_epochs=1)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    if damage == "truncate":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "garbage":
        last.write_bytes(b"\x00not a checkpoint" * 100)
    else:
        torch.save({"state_dict": {}}, last)
    trainer = CrossValidationTrainer(**trainer_kwargs, default_root_dir=str(tmp_path / "run"))
    with pytest.raises(LcvError, match=message) as info:
        trainer.fit(tiny, data, ckpt_path=str(last))
    assert str(last) in str(info.value)


@pytest.mark.parametrize("schedule", ["interleaved", "sequential"])
def test_models_hold_each_folds_best_epoch_weights(data, tiny, trainer_kwargs, schedule: str) -> None:
    trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 4}, schedule=schedule)
    result = trainer.fit(tiny(lr=0.8, dropout=0.0), data)
    best = result.best_epoch
    assert len(result.models) == 5 and not any(m.training for m in result.models)
    for i, (model, (_, val)) in enumerate(zip(result.models, data.train_val_dataloaders(), strict=True)):
        with torch.no_grad():
            loss = sum(float(torch.nn.functional.cross_entropy(model(x), y)) * len(y) for x, y in val) / 30
        assert loss == pytest.approx(result.history[i][best]["val_loss"], abs=1e-5)
