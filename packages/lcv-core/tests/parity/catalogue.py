"""The parity catalogue: LightningModules as Lightning's demos and docs write them, each with its trainer settings.

Every variant is a small class on 32 generated features (tiny MLPs, CPU, two or three epochs). A
:class:`Variant` names the class, the data it eats (``"xy"``: ``(x, y)`` class labels; ``"x"``: the
feature rows alone, as Lightning's ``BoringModel`` and ``DemoModel`` take them) and the :class:`Settings`
it needs, which map to both ``lightning.Trainer(...)`` and ``lcv_core.CrossValidationTrainer(...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812  # the name every Lightning example uses
import torchmetrics
from lightning.pytorch import LightningModule
from lightning.pytorch.demos.boring_classes import BoringModel, DemoModel, ManualOptimBoringModel
from lightning.pytorch.utilities import grad_norm
from torch import nn

N_FEATURES = 32  # as Lightning's BoringModel and DemoModel take them
N_CLASSES = 3
HIDDEN = 8


@dataclass(frozen=True)
class Settings:
    """Trainer settings a variant needs; the same names in ``lightning.Trainer`` and lcv's ``TrainerConfig``."""

    max_epochs: int = 2
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str | None = None
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    check_val_every_n_epoch: int = 1

    def trainer_kwargs(self) -> dict[str, Any]:
        """Return the settings as keyword arguments of both trainers (unset ones left to each trainer's default)."""
        kwargs: dict[str, Any] = {
            "max_epochs": self.max_epochs,
            "accumulate_grad_batches": self.accumulate_grad_batches,
            "check_val_every_n_epoch": self.check_val_every_n_epoch,
        }
        for name in ("gradient_clip_val", "gradient_clip_algorithm", "limit_train_batches", "limit_val_batches"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        return kwargs


@dataclass(frozen=True)
class Variant:
    """One LightningModule of the catalogue and how to train it."""

    name: str
    build: Callable[[], LightningModule]
    """Makes a fresh module (called once per trainer and fold)."""
    data: str = "xy"
    """``"xy"``: batches are ``[x, y]``; ``"x"``: batches are the feature tensor alone."""
    settings: Settings = field(default_factory=Settings)
    monitor: str = "val_loss"
    """lcv's ``monitor`` (it must be a metric the module logs)."""
    vectorize: bool = False
    """Also run under ``schedule='vectorized'`` (automatic optimization, no per-batch hook overrides)."""
    random_stream: bool = False
    """The module draws from torch's global random stream while training (dropout)."""


# -- Lightning's own demo classes -------------------------------------------------------------------


class BoringLogged(BoringModel):
    """Lightning's BoringModel (SGD + StepLR) with the one line a user adds for a score: ``self.log("val_loss")``."""

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        out = super().validation_step(batch, batch_idx)
        self.log("val_loss", out["x"])
        return out


class ManualOptimBoringLogged(ManualOptimBoringModel):
    """Lightning's ManualOptimBoringModel, logging its validation loss."""

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        out = super().validation_step(batch, batch_idx)
        self.log("val_loss", out["x"])
        return out


class DemoLogged(DemoModel):
    """Lightning's DemoModel (Adam, no validation step) with a validation step that logs ``val_loss``."""

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self(batch).sum())


# -- the everyday module and the patterns Lightning's docs teach ------------------------------------


def mlp(dropout: float = 0.0, hidden: int = HIDDEN) -> nn.Sequential:
    """Return the tiny MLP most variants train."""
    layers: list[nn.Module] = [nn.Linear(N_FEATURES, hidden), nn.Tanh()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, N_CLASSES))
    return nn.Sequential(*layers)


def seeded_mlp() -> nn.Sequential:
    """Return the MLP with weights from its own generator (for layers built in ``setup``/``configure_model``)."""
    net = mlp()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return net


class Classifier(LightningModule):
    """The module a user writes first: an MLP, cross-entropy, SGD; ``train_loss`` per step, ``val_loss``."""

    def __init__(self, lr: float = 0.1) -> None:
        super().__init__()
        self.lr = lr
        self.net = mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def loss(self, batch: Any) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self.loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self.loss(batch))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class SGDStepLR(Classifier):
    """SGD with an epoch-interval StepLR."""

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.2)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)]


class MomentumSGD(Classifier):
    """Nesterov momentum SGD with weight decay."""

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)


class AdamClassifier(Classifier):
    """Adam."""

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class StepIntervalFrequency(Classifier):
    """A step-interval scheduler stepped every second optimizer step (``frequency``)."""

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.2)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.8)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 2}}


class Plateau(Classifier):
    """ReduceLROnPlateau on ``val_loss`` (a threshold no epoch meets, so the rate halves after epoch 1)."""

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.2)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0, threshold=1.0)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


class OneCycle(Classifier):
    """OneCycleLR over ``self.trainer.estimated_stepping_batches``, stepped every optimizer step."""

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=0.5, total_steps=int(self.trainer.estimated_stepping_batches)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class CosineOverMaxEpochs(Classifier):
    """CosineAnnealingLR over ``self.trainer.max_epochs`` (epoch interval)."""

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.2)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


class GradNormLogging(Classifier):
    """Lightning's documented gradient-norm logging in ``on_before_optimizer_step`` (before clipping)."""

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        self.log_dict(grad_norm(self.net, norm_type=2), on_step=False, on_epoch=True)


class WarmupOptimizerStep(Classifier):
    """Lightning's documented learning-rate warm-up in an overridden ``optimizer_step``."""

    WARMUP = 8

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        optimizer.step(closure=optimizer_closure)
        if self.trainer.global_step < self.WARMUP:
            lr_scale = min(1.0, float(self.trainer.global_step + 1) / self.WARMUP)
            for pg in optimizer.param_groups:
                pg["lr"] = lr_scale * self.lr


class ZeroGradEveryOther(Classifier):
    """An overridden ``optimizer_zero_grad`` that clears gradients on even batches only."""

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: Any) -> None:
        if batch_idx % 2 == 0:
            optimizer.zero_grad()


class HalfBackward(Classifier):
    """An overridden ``backward`` that halves the loss's gradient."""

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        (0.5 * loss).backward(*args, **kwargs)


class OwnClipping(Classifier):
    """An overridden ``configure_gradient_clipping`` clipping by value from epoch 1 on."""

    def configure_gradient_clipping(
        self, optimizer: Any, gradient_clip_val: Any = None, gradient_clip_algorithm: Any = None
    ) -> None:
        if self.current_epoch >= 1:
            self.clip_gradients(optimizer, gradient_clip_val=0.01, gradient_clip_algorithm="value")


class OwnSchedulerStep(Classifier):
    """An overridden ``lr_scheduler_step`` that steps the (epoch) scheduler only from epoch 1 on."""

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.2)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)]

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        if self.current_epoch >= 1:
            scheduler.step()


class TwoOptimizersManual(Classifier):
    """Manual optimization with two optimizers and a scheduler stepped in ``on_train_epoch_end`` (docs pattern)."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.encoder = nn.Linear(N_FEATURES, HIDDEN)
        self.head = nn.Linear(HIDDEN, N_CLASSES)
        del self.net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.encoder(x)))  # type: ignore[no-any-return]

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        opt_enc, opt_head = self.optimizers()  # type: ignore[misc]
        loss = self.loss(batch)
        opt_enc.zero_grad()
        opt_head.zero_grad()
        self.manual_backward(loss)
        opt_enc.step()
        opt_head.step()
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.lr_schedulers().step()  # type: ignore[union-attr]

    def configure_optimizers(self) -> Any:
        opt_enc = torch.optim.SGD(self.encoder.parameters(), lr=0.2)
        opt_head = torch.optim.Adam(self.head.parameters(), lr=1e-2)
        return [opt_enc, opt_head], [torch.optim.lr_scheduler.StepLR(opt_enc, step_size=1, gamma=0.5)]


class GANStyle(LightningModule):
    """GAN-style alternating optimizers with manual optimization and ``toggle_optimizer`` (Lightning's GAN example).

    The generator's input is a fixed projection of the batch (no noise), so the run is deterministic.
    """

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator = nn.Sequential(nn.Linear(4, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, N_FEATURES))
        self.discriminator = nn.Sequential(nn.Linear(N_FEATURES, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 1))

    def _d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(real.shape[0], 1)
        zeros = torch.zeros(fake.shape[0], 1)
        d = self.discriminator
        return F.binary_cross_entropy_with_logits(d(real), ones) + F.binary_cross_entropy_with_logits(d(fake), zeros)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        real, _ = batch
        z = real[:, :4] * 0.5
        g_opt, d_opt = self.optimizers()  # type: ignore[misc]
        self.toggle_optimizer(d_opt)
        d_loss = self._d_loss(real, self.generator(z).detach())
        d_opt.zero_grad()
        self.manual_backward(d_loss)
        d_opt.step()
        self.untoggle_optimizer(d_opt)
        self.log("d_loss", d_loss, prog_bar=True)
        if batch_idx % 2 == 0:
            self.toggle_optimizer(g_opt)
            fake_logits = self.discriminator(self.generator(z))
            g_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
            g_opt.zero_grad()
            self.manual_backward(g_loss)
            g_opt.step()
            self.untoggle_optimizer(g_opt)
            self.log("g_loss", g_loss, prog_bar=True, on_epoch=True)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        real, _ = batch
        self.log("val_loss", self._d_loss(real, self.generator(real[:, :4] * 0.5)))

    def configure_optimizers(self) -> Any:
        g_opt = torch.optim.Adam(self.generator.parameters(), lr=1e-2)
        d_opt = torch.optim.SGD(self.discriminator.parameters(), lr=0.1)
        return [g_opt, d_opt], []


class LoggingCombinations(Classifier):
    """``self.log``/``self.log_dict`` with the ``on_step``/``on_epoch``/``reduce_fx``/``prog_bar`` combinations."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self.loss(batch)
        self.log("t_default", loss)
        self.log("t_epoch", loss, on_step=False, on_epoch=True)
        self.log("t_both", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("t_sum", loss, on_step=False, on_epoch=True, reduce_fx="sum")
        self.log("t_max", loss, on_epoch=True, reduce_fx="max")
        self.log("t_min", loss, on_step=False, on_epoch=True, reduce_fx=torch.min)
        self.log("t_prog", loss * 3, on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict({"t_twice": loss * 2, "t_plus": loss + 1}, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss = self.loss(batch)
        self.log("val_loss", loss, prog_bar=True)
        self.log("v_both", loss, on_step=True, on_epoch=True)
        self.log("v_max", loss, reduce_fx="max")
        self.log("v_sum", loss, reduce_fx="sum")
        self.log_dict({"v_twice": loss * 2}, prog_bar=True)


class TorchMetrics(Classifier):
    """torchmetrics objects logged by ``self.log`` and a ``MetricCollection`` by ``self.log_dict``."""

    def __init__(self) -> None:
        super().__init__()
        self.train_acc = torchmetrics.classification.MulticlassAccuracy(num_classes=N_CLASSES)
        self.val_metrics = torchmetrics.MetricCollection(
            {
                "acc": torchmetrics.classification.MulticlassAccuracy(num_classes=N_CLASSES),
                "f1": torchmetrics.classification.MulticlassF1Score(num_classes=N_CLASSES, average="macro"),
            },
            prefix="val_",
        )

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        logits = self(x)
        self.train_acc(logits, y)
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True)
        return F.cross_entropy(logits, y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_metrics.update(logits, y)
        self.log_dict(self.val_metrics)
        self.log("val_loss", F.cross_entropy(logits, y))


class EpochWarmupLoss(Classifier):
    """A ``current_epoch``-dependent loss: an L1 penalty switched on after a warm-up epoch (NeuroMANCER style)."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self.loss(batch)
        if self.current_epoch >= 1:
            loss = loss + 0.05 * sum(p.abs().sum() for p in self.parameters())
        self.log("train_loss", loss, on_epoch=True)
        return loss


class GlobalStepScaled(Classifier):
    """A loss scaled by ``1 / (1 + global_step)``, logging the largest step it saw."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self.loss(batch) / (1 + self.global_step)
        self.log("seen_step", float(self.global_step), on_step=False, on_epoch=True, reduce_fx="max")
        return loss


class LayersInSetup(Classifier):
    """The network is built in ``setup`` (from its own generator), as when it depends on the data."""

    def __init__(self) -> None:
        super().__init__()
        del self.net

    def setup(self, stage: str) -> None:
        if not hasattr(self, "net"):
            self.net = seeded_mlp()


class LayersInConfigureModel(Classifier):
    """The network is built in ``configure_model`` (from its own generator), Lightning's hook for large models."""

    def __init__(self) -> None:
        super().__init__()
        del self.net

    def configure_model(self) -> None:
        if not hasattr(self, "net"):
            self.net = seeded_mlp()


class SavedHyperparameters(Classifier):
    """``save_hyperparameters()`` in ``__init__``; the network and the optimizer read ``self.hparams``."""

    def __init__(self, lr: float = 0.15, hidden: int = 6) -> None:
        super().__init__(lr=lr)
        self.save_hyperparameters()
        self.net = mlp(hidden=self.hparams.hidden)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class DictOutput(Classifier):
    """``training_step`` returns a dict with ``loss`` and more."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("train_loss", loss, on_epoch=True)
        return {"loss": loss, "logits": logits.detach()}


class NoneOnSomeBatches(Classifier):
    """``training_step`` returns ``None`` on every third batch: Lightning skips those batches."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if batch_idx % 3 == 1:
            return None
        return super().training_step(batch, batch_idx)


class StopEpochEarly(Classifier):
    """``on_train_batch_start`` returns -1 at batch 3: the rest of the epoch is skipped."""

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> Any:
        return -1 if batch_idx == 3 else None


class EpochEndOutputs(Classifier):
    """Lightning 2's pattern for epoch-end aggregation: keep step outputs, log their mean in ``on_*_epoch_end``."""

    def __init__(self) -> None:
        super().__init__()
        self.train_outputs: list[torch.Tensor] = []
        self.val_outputs: list[torch.Tensor] = []

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self.loss(batch)
        self.train_outputs.append(loss.detach())
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss = self.loss(batch)
        self.val_outputs.append(loss)
        self.log("val_loss", loss)

    def on_train_epoch_end(self) -> None:
        self.log("train_loss_mean", torch.stack(self.train_outputs).mean())
        self.train_outputs.clear()

    def on_validation_epoch_end(self) -> None:
        self.log("val_loss_max", torch.stack(self.val_outputs).max())
        self.val_outputs.clear()


class Dropout(Classifier):
    """Dropout between the layers: training draws from torch's global random stream."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(dropout=0.5)


CATALOGUE: list[Variant] = [
    # Lightning's demo classes, unchanged, and with a logged validation loss
    Variant("boring_model", BoringModel, data="x"),
    Variant("boring_model_logged", BoringLogged, data="x", vectorize=True),
    Variant("manual_optim_boring_model", ManualOptimBoringLogged, data="x"),
    Variant("demo_model", DemoModel, data="x"),
    Variant("demo_model_logged", DemoLogged, data="x", vectorize=True),
    # optimizers and schedulers
    Variant("sgd", Classifier, vectorize=True),
    Variant("sgd_steplr", SGDStepLR, vectorize=True),
    Variant("momentum_sgd", MomentumSGD, vectorize=True),
    Variant("adam", AdamClassifier, vectorize=True),
    Variant("step_interval_frequency", StepIntervalFrequency, vectorize=True),
    Variant("reduce_on_plateau", Plateau, settings=Settings(max_epochs=3)),
    Variant("one_cycle", OneCycle, vectorize=True),
    Variant("cosine_max_epochs", CosineOverMaxEpochs, vectorize=True),
    # overridden optimization hooks
    Variant("warmup_optimizer_step", WarmupOptimizerStep),
    Variant("optimizer_zero_grad", ZeroGradEveryOther),
    Variant("backward", HalfBackward),
    Variant("configure_gradient_clipping", OwnClipping),
    Variant("lr_scheduler_step", OwnSchedulerStep),
    # manual optimization
    Variant("two_optimizers_manual", TwoOptimizersManual),
    Variant("gan_manual", GANStyle),
    # logging
    Variant("log_combinations", LoggingCombinations, vectorize=True),
    Variant("torchmetrics", TorchMetrics, vectorize=True),
    Variant("epoch_end_outputs", EpochEndOutputs),
    Variant("grad_norm_clip_norm", GradNormLogging, settings=Settings(gradient_clip_val=0.05)),
    # modules that read the trainer's state
    Variant("current_epoch_loss", EpochWarmupLoss, vectorize=True),
    Variant("global_step_loss", GlobalStepScaled, vectorize=True),
    # how the module is built
    Variant("layers_in_setup", LayersInSetup),
    Variant("layers_in_configure_model", LayersInConfigureModel),
    Variant("save_hyperparameters", SavedHyperparameters, vectorize=True),
    # what training_step and on_train_batch_start return
    Variant("training_step_dict", DictOutput, vectorize=True),
    Variant("training_step_none", NoneOnSomeBatches),
    Variant("on_train_batch_start_minus_one", StopEpochEarly),
    # trainer settings
    Variant("accumulate_grad_batches_3", Classifier, settings=Settings(accumulate_grad_batches=3)),
    Variant("clip_norm", Classifier, settings=Settings(gradient_clip_val=0.05), vectorize=True),
    Variant(
        "clip_value",
        Classifier,
        settings=Settings(gradient_clip_val=0.01, gradient_clip_algorithm="value"),
        vectorize=True,
    ),
    Variant("limit_train_batches", Classifier, settings=Settings(limit_train_batches=3), vectorize=True),
    # random stream
    Variant("dropout", Dropout, random_stream=True, vectorize=True),
]

BY_NAME: dict[str, Variant] = {v.name: v for v in CATALOGUE}
