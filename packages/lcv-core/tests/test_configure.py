"""configure.learner_factory: a config's model, optimizer list and nested components reach the learner."""

from __future__ import annotations

import pytest
import torch

from lcv_config import ConfigError, ExperimentConfig
from lcv_core.configure import learner_factory
from lcv_core.learners import SupervisedLearner


def _config(**sections: object) -> ExperimentConfig:
    base = {"model": {"name": "mlp", "cfg": {"in_features": 8, "out_features": 3, "hidden": [16]}}}
    return ExperimentConfig.model_validate({**base, **sections})


def test_each_call_builds_a_new_learner_from_the_config() -> None:
    make = learner_factory(_config(criterion="MSELoss", metrics=["mse"]))
    first, second = make(), make()
    assert isinstance(first, SupervisedLearner) and first is not second
    assert first.task == "regression"  # inferred from the loss
    assert not torch.equal(first.model.net[0].weight, second.model.net[0].weight)  # fresh weights per fold


def test_an_optimizer_list_with_patterns_reaches_configure_optimizers() -> None:
    config = _config(
        optimizer=[
            {"name": "SGD", "cfg": {"lr": 0.1, "params": ["net.0.*"]}},
            {"name": "AdamW", "cfg": {"lr": 0.01, "param_groups": [{"params": ["net.2.bias"], "weight_decay": 0.0}]}},
        ]
    )
    optimizers = learner_factory(config)().configure_optimizers()
    assert [type(o).__name__ for o in optimizers] == ["SGD", "AdamW"]
    assert [len(g["params"]) for g in optimizers[1].param_groups] == [1, 1]
    assert optimizers[1].param_groups[0]["weight_decay"] == 0.0


def test_nested_components_in_the_model_cfg_are_built() -> None:
    from lcv_config import register
    from lcv_config.registry import unregister

    @register("model", "body_and_head")
    def body_and_head(body: torch.nn.Module, head: torch.nn.Module) -> torch.nn.Module:
        return torch.nn.Sequential(body, head)

    try:
        mlp = {"name": "mlp", "cfg": {"in_features": 8, "out_features": 3, "hidden": [4]}}
        config = _config(
            model={
                "name": "body_and_head",
                "cfg": {"body": mlp, "head": {"name": "torch.nn.Softmax", "cfg": {"dim": -1}}},
            }
        )
        learner = learner_factory(config)()
    finally:
        unregister("model", "body_and_head")
    body, head = learner.model
    assert type(body).__name__ == "MLP" and body.net[0].out_features == 4
    assert isinstance(head, torch.nn.Softmax) and head.dim == -1
    assert torch.allclose(learner(torch.randn(2, 8)).sum(dim=1), torch.ones(2))


def test_a_bad_learner_argument_names_the_valid_ones() -> None:
    make = learner_factory(_config(learner={"name": "supervised", "cfg": {"input_kye": "x"}}))
    with pytest.raises(ConfigError, match=r"Unknown argument 'input_kye'.*Did you mean 'input_key'"):
        make()


def test_sections_written_inside_the_learner_cfg_are_built_by_the_learner() -> None:
    config = _config(
        learner={
            "name": "supervised",
            "cfg": {"optimizer": {"name": "SGD", "cfg": {"lr": 0.3}}, "metrics": [{"name": "f1", "cfg": {}}]},
        }
    )
    learner = learner_factory(config)()
    assert learner.configure_optimizers().param_groups[0]["lr"] == 0.3  # not built early without its parameters
    assert [name for name, _, _ in learner._metric_specs] == ["f1"]
