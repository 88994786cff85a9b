"""SupervisedLearner built from components, as configs describe it."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

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


MLP = {"name": "mlp", "cfg": {"in_features": 8, "out_features": 3, "hidden": [16]}}


def _plain_trainer(**kwargs: Any) -> Any:
    from lightning.pytorch import Trainer

    defaults = dict(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return Trainer(**{**defaults, **kwargs})


def test_param_groups_by_pattern_get_their_own_settings_and_fused_adamw() -> None:
    learner = SupervisedLearner(
        model=MLP,
        optimizer={
            "name": "AdamW",
            "cfg": {
                "lr": 1e-3,
                "weight_decay": 0.01,
                "param_groups": [{"params": ["net.0.*"], "lr": 0.1, "weight_decay": 0.0}],
            },
        },
    )
    opt = learner.configure_optimizers()
    assert type(opt).__name__ == "AdamW"
    first, rest = opt.param_groups
    assert (first["lr"], first["weight_decay"], len(first["params"])) == (0.1, 0.0, 2)
    assert (rest["lr"], rest["weight_decay"], len(rest["params"])) == (1e-3, 0.01, 2)
    assert opt.defaults["fused"] is True  # fused CPU kernels by default
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in learner.parameters())  # every parameter exactly once


def test_fused_can_be_turned_off() -> None:
    opt = SupervisedLearner(
        model=MLP, optimizer={"name": "Adam", "cfg": {"lr": 0.01, "foreach": True}}
    ).configure_optimizers()
    assert opt.defaults["fused"] in (None, False) and opt.defaults["foreach"] is True


def test_unmatched_pattern_names_it_and_lists_the_parameters() -> None:
    from lcv_config import ConfigError

    learner = SupervisedLearner(
        model=MLP, optimizer={"name": "SGD", "cfg": {"lr": 0.1, "param_groups": [{"params": ["encoder.*"], "lr": 1.0}]}}
    )
    with pytest.raises(ConfigError, match=r"Parameter pattern 'encoder\.\*' matches no parameter") as info:
        learner.configure_optimizers()
    assert "net.0.weight, net.0.bias, net.2.weight, net.2.bias" in str(info.value)
    assert info.value.path == "optimizer.cfg.param_groups[0].params"


def test_unknown_group_setting_names_the_valid_ones() -> None:
    from lcv_config import ConfigError

    learner = SupervisedLearner(
        model=MLP, optimizer={"name": "SGD", "cfg": {"lr": 0.1, "param_groups": [{"params": ["net.0.*"], "lrr": 1.0}]}}
    )
    with pytest.raises(ConfigError, match=r"Unknown argument 'lrr'.*Did you mean 'lr'"):
        learner.configure_optimizers()


def test_optimizer_list_with_paired_schedulers() -> None:
    learner = SupervisedLearner(
        model=MLP,
        optimizer=[
            {"name": "SGD", "cfg": {"lr": 0.5, "params": ["net.0.*"]}},
            {"name": "Adam", "cfg": {"lr": 0.01}},
        ],
        lr_scheduler=[
            {"name": "StepLR", "cfg": {"step_size": 1, "interval": "step", "frequency": 2}},
            {"name": "ReduceLROnPlateau", "cfg": {"monitor": "val_loss"}},
        ],
    )
    optimizers, schedulers = learner.configure_optimizers()
    assert [type(o).__name__ for o in optimizers] == ["SGD", "Adam"]
    assert [len(o.param_groups[0]["params"]) for o in optimizers] == [2, 2]
    assert schedulers[0]["scheduler"].optimizer is optimizers[0] and schedulers[0]["interval"] == "step"
    assert schedulers[0]["frequency"] == 2
    assert schedulers[1]["scheduler"].optimizer is optimizers[1] and schedulers[1]["monitor"] == "val_loss"


def test_two_optimizers_without_params_is_an_error() -> None:
    from lcv_config import ConfigError

    learner = SupervisedLearner(model=MLP, optimizer=[{"name": "SGD", "cfg": {"lr": 0.1}}, "Adam"])
    with pytest.raises(ConfigError, match=r"optimizer\[0\], optimizer\[1\] both take the remaining parameters"):
        learner.configure_optimizers()


def _dict_loader(n: int = 64) -> Any:
    from torch.utils.data import DataLoader, Dataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, :3]).argmax(dim=1)

    class Dicts(Dataset[dict[str, torch.Tensor]]):
        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"features": x[i], "label": y[i]}

    return DataLoader(Dicts(), batch_size=16)


def test_configure_model_override_runs_once_under_a_plain_lightning_trainer() -> None:
    builds: list[int] = []

    class Custom(SupervisedLearner):
        def configure_model(self) -> torch.nn.Module:
            builds.append(1)
            return torch.nn.Sequential(torch.nn.Linear(8, 3))

    learner = Custom(
        model=None, optimizer={"name": "SGD", "cfg": {"lr": 0.5}}, input_key="features", target_key="label"
    )
    before = learner.model[0].weight.detach().clone()
    _plain_trainer().fit(learner, _dict_loader())
    assert builds == [1]  # Lightning called configure_model() again; it returned the trained model
    assert not torch.equal(before, learner.model[0].weight.detach())


def test_build_model_is_still_an_override_point() -> None:
    class Old(SupervisedLearner):
        def build_model(self) -> torch.nn.Module:
            return torch.nn.Linear(8, 3)

    assert isinstance(Old(model=None).model, torch.nn.Linear)


def test_custom_training_step_replaces_the_step_with_dict_batches() -> None:
    calls: list[int] = []

    def step(learner: SupervisedLearner, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        calls.append(batch_idx)
        return {"loss": (learner(batch["features"]) ** 2).mean()}

    learner = SupervisedLearner(model=MLP, custom_training_step=step, input_key="features", target_key="label")
    trainer = _plain_trainer()
    trainer.fit(learner, _dict_loader(), _dict_loader(32))
    assert calls == [0, 1, 2, 3]
    assert {"train_loss", "val_loss", "val_acc"} <= set(trainer.callback_metrics)


def test_missing_dict_key_names_the_keys() -> None:
    from lcv_config import LcvError

    learner = SupervisedLearner(model=MLP, input_key="inputs")
    with pytest.raises(LcvError, match=r"no input key 'inputs'.*Keys: features, label"):
        learner.split_batch({"features": 1, "label": 2})


def test_named_classification_metrics_infer_num_classes(data, trainer_kwargs) -> None:
    result = CrossValidationTrainer(**trainer_kwargs).fit(
        lambda: SupervisedLearner(model=MLP, metrics=["accuracy", "top2_accuracy", "f1", {"name": "auroc"}]), data
    )
    acc, top2 = result.metric("val_acc").per_fold, result.metric("val_top2_accuracy").per_fold
    assert all(t >= a for a, t in zip(acc, top2, strict=True)) and any(t > a for a, t in zip(acc, top2, strict=True))
    assert all(0.0 <= v <= 1.0 for v in result.metric("val_auroc").per_fold + result.metric("val_f1").per_fold)


def test_accuracy_is_logged_under_one_name(data, trainer_kwargs) -> None:
    plain = CrossValidationTrainer(**trainer_kwargs).fit(
        lambda: SupervisedLearner(model=MLP, metrics=["accuracy"]), data
    )
    names = {k for row in plain.history[0] for k in row}
    assert "val_acc" in names and "val_accuracy" not in names
    macro = {"name": "accuracy", "cfg": {"average": "macro"}}  # another number: it keeps its own name
    result = CrossValidationTrainer(**trainer_kwargs).fit(lambda: SupervisedLearner(model=MLP, metrics=[macro]), data)
    assert {"val_acc", "val_accuracy"} <= {k for row in result.history[0] for k in row}


def test_regression_task_inferred_from_the_loss_and_named_metrics(fold_data, trainer_kwargs) -> None:
    data = fold_data(val_batch_size=30)  # one validation batch: val_mse equals the batch loss
    x, y = data.dataset.tensors
    data.dataset.tensors = (x, x[:, :1] * 2.0 + 1.0)
    learner = SupervisedLearner(
        model={**MLP, "cfg": {**MLP["cfg"], "out_features": 1}}, criterion="MSELoss", metrics=["mse", "mae", "r2"]
    )
    assert learner.task == "regression"
    result = CrossValidationTrainer(**trainer_kwargs).fit(
        lambda: SupervisedLearner(
            model={**MLP, "cfg": {**MLP["cfg"], "out_features": 1}}, criterion="MSELoss", metrics=["mse", "mae", "r2"]
        ),
        data,
    )
    assert result.metric("val_mse").per_fold == pytest.approx(result.metric("val_loss").per_fold, rel=1e-4)
    assert "val_acc" not in result.metric_names
    assert all(v < 1.0 for v in result.metric("val_r2").per_fold)


def test_named_metric_of_the_wrong_task_lists_the_right_ones() -> None:
    from lcv_config import ConfigError

    with pytest.raises(ConfigError, match=r"Metric 'r2' is not a classification metric.*accuracy"):
        SupervisedLearner(model=MLP, metrics=["r2"])


def test_predict_step_returns_probabilities() -> None:
    learner = SupervisedLearner(model=MLP)
    probs = learner.predict_step((torch.randn(5, 8), torch.zeros(5)), 0)
    assert probs.shape == (5, 3) and torch.allclose(probs.sum(dim=1), torch.ones(5))
    regression = SupervisedLearner(model={**MLP, "cfg": {**MLP["cfg"], "out_features": 1}}, task="regression")
    assert regression.predict_step(torch.randn(5, 8), 0).shape == (5, 1)


def test_a_network_given_as_a_module_is_registered_once_as_model() -> None:
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    learner = SupervisedLearner(model=net, criterion=nn.CrossEntropyLoss(weight=torch.ones(2)))
    # parameter names and checkpoint keys read model.* (what optimizer 'params' patterns match), once each
    names = [n for n, _ in learner.named_parameters()]
    assert names == ["model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias"]
    assert sorted(learner.state_dict()) == sorted([*names, "criterion.weight"])


def test_a_network_passed_in_model_kwargs_is_copied_for_each_fold(data, trainer_kwargs) -> None:
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    start = {k: v.clone() for k, v in net.state_dict().items()}
    trainer = CrossValidationTrainer(**trainer_kwargs)
    trainer.fit(SupervisedLearner, data, model_kwargs={"model": net})
    networks = [fold.module.model for fold in trainer.folds]
    # five folds, five networks trained on their own data; the caller's network keeps its weights
    assert len({id(n) for n in networks}) == 5 and all(n is not net for n in networks)
    first = [n[0].weight for n in networks]
    assert all(not torch.equal(first[0], w) for w in first[1:])
    assert all(torch.equal(v, start[k]) for k, v in net.state_dict().items())
