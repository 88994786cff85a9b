"""The conformance suites of networks (``lcv.models``) and learners (``lcv.learners``), checked without torch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lcv_config.testing.assertions import assert_close


def _parameters(module: Any) -> list[Any]:
    return list(module.parameters())


def _eval(module: Any) -> Any:
    if callable(getattr(module, "eval", None)):
        module.eval()
    return module


class ModelContract:
    """What a network (``lcv.models``, a config's ``model``) must do: a ``torch.nn.Module`` built per fold.

    lcv builds one per fold as ``Model(**cfg)`` and hands it to the learner. Implement `make_model()` and
    `make_input()` (a batch the network takes, samples along dimension 0).
    """

    def make_model(self) -> Any:
        """Return a new network."""
        raise NotImplementedError

    def make_input(self) -> Any:
        """Return a batch of inputs (samples along dimension 0)."""
        raise NotImplementedError

    def test_has_trainable_parameters(self) -> None:
        """The network has parameters the optimizer can train."""
        params = _parameters(self.make_model())
        assert params, "the network has no parameters"
        assert any(p.requires_grad for p in params), "no parameter requires grad"

    def test_output_keeps_the_batch_and_carries_gradients(self) -> None:
        """The output has one row per input sample, and a loss on it reaches the parameters."""
        model, x = self.make_model(), self.make_input()
        out = model(x)
        assert len(out) == len(x), f"a batch of {len(x)} gave {len(out)} outputs"
        out.float().sum().backward()
        assert any(p.grad is not None for p in _parameters(model)), "no parameter got a gradient"

    def test_each_fold_gets_its_own_parameters(self) -> None:
        """Two networks built from the same arguments share no parameter (each fold trains its own)."""
        a, b = self.make_model(), self.make_model()
        shared = {id(p) for p in _parameters(a)} & {id(p) for p in _parameters(b)}
        assert not shared, f"{len(shared)} parameter(s) are shared between two instances (a module-level layer?)"

    def test_state_dict_round_trip(self) -> None:
        """A network loaded with another's ``state_dict`` computes the same outputs (checkpoints, ensembles)."""
        a, b = _eval(self.make_model()), _eval(self.make_model())
        b.load_state_dict(a.state_dict())
        x = self.make_input()
        assert_close(b(x), a(x), "output after load_state_dict")


class LearnerContract:
    """What a learner (``lcv.learners``, a config's ``learner``) must do: a LightningModule, one per fold.

    lcv builds it per fold as ``Learner(**cfg, model=..., criterion=..., optimizer=..., lr_scheduler=...,
    metrics=...)``, passing each of those config sections only when the constructor names it (or takes
    ``**kwargs``), and calls Lightning's hooks on it: ``configure_optimizers()``, ``training_step(batch, i)``,
    ``validation_step(batch, i)`` (``self.log`` works as in Lightning). Implement `make_learner()` and
    `make_batch()` (a batch as the datamodule serves it).
    """

    def make_learner(self) -> Any:
        """Return a new learner."""
        raise NotImplementedError

    def make_batch(self) -> Any:
        """Return one training batch."""
        raise NotImplementedError

    @staticmethod
    def _loss(output: Any) -> Any:
        return output["loss"] if isinstance(output, Mapping) else output

    def test_training_step_returns_a_loss_that_trains(self) -> None:
        """``training_step`` returns a scalar loss (or ``{"loss": ...}``) whose backward reaches the parameters."""
        learner = self.make_learner()
        learner.train()
        loss = self._loss(learner.training_step(self.make_batch(), 0))
        assert loss is not None, "training_step returned None: lcv would skip every batch"
        assert getattr(loss, "ndim", None) == 0, f"the loss has shape {getattr(loss, 'shape', '?')}, not a scalar"
        loss.backward()
        assert any(p.grad is not None for p in _parameters(learner)), "no parameter got a gradient"

    def test_validation_step_runs(self) -> None:
        """``validation_step`` runs on a batch (lcv validates every fold every epoch)."""
        learner = _eval(self.make_learner())
        learner.validation_step(self.make_batch(), 0)

    def test_configure_optimizers_returns_an_optimizer(self) -> None:
        """``configure_optimizers`` returns an optimizer (or Lightning's list/dict forms) over its parameters."""
        optimizers = self.make_learner().configure_optimizers()
        assert optimizers is not None, "configure_optimizers returned None"

    def test_each_fold_gets_its_own_parameters(self) -> None:
        """Two learners share no parameter (each fold trains its own model)."""
        a, b = self.make_learner(), self.make_learner()
        shared = {id(p) for p in _parameters(a)} & {id(p) for p in _parameters(b)}
        assert not shared, f"{len(shared)} parameter(s) are shared between two learners (a module built once?)"
