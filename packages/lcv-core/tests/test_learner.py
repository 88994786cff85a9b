"""SupervisedLearner built from components, as configs describe it."""

from __future__ import annotations

from typing import Any

import pytest

from lcv_core import Callback, CrossValidationTrainer, SupervisedLearner


def test_supervised_learner_from_components(data, trainer_kwargs) -> None:
    lrs: list[float] = []

    class LR(Callback):
        def on_train_epoch_start_per_fold(self, *, trainer: Any, fold: int, **kwargs: Any) -> None:
            if fold == 0:
                lrs.append(trainer.folds[0].optimizers[0].param_groups[0]["lr"])

    def factory() -> SupervisedLearner:
        return SupervisedLearner(
            model={"name": "mlp", "cfg": {"in_features": 8, "out_features": 3, "hidden": [16]}},
            optimizer={"name": "SGD", "cfg": {"lr": 0.1}},
            lr_scheduler={"name": "StepLR", "cfg": {"step_size": 1, "gamma": 0.5, "interval": "epoch"}},
            metrics=[{"name": "torchmetrics.classification.MulticlassF1Score", "cfg": {"num_classes": 3}}],
        )

    result = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3}, callbacks=[LR()]).fit(factory, data)
    assert lrs == pytest.approx([0.1, 0.05, 0.025])
    names = result.metric_names
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "val_multiclass_f1_score"} <= set(names)
    f1 = result.metric("val_multiclass_f1_score")
    assert len(f1.per_fold) == 5 and all(0.0 <= v <= 1.0 for v in f1.per_fold)
    # micro-free macro F1 differs from accuracy in general; at least one fold shows it is its own number
    assert any(v != a for v, a in zip(f1.per_fold, result.metric("val_acc").per_fold, strict=True))


def test_unknown_component_names_the_closest(data, trainer_kwargs) -> None:
    from lcv_config import LcvError

    with pytest.raises(LcvError, match=r"Unknown optimizer 'SDG' at optimizer.name. Did you mean 'SGD'\?"):
        SupervisedLearner(
            model={"name": "mlp", "cfg": {"in_features": 8, "out_features": 3}},
            optimizer={"name": "SDG", "cfg": {"lr": 0.1}},
        ).configure_optimizers()
