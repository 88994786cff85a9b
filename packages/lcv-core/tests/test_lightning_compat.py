"""Every private Lightning/Fabric name lcv uses, through its one compatibility module, on the installed Lightning."""

from __future__ import annotations

import torch
from lightning.fabric import Fabric
from lightning.pytorch.demos.boring_classes import BoringModel
from torch.utils.data import DataLoader, SequentialSampler, TensorDataset

from lcv_core.core import lightning_compat as compat


def _fabric() -> Fabric:
    return Fabric(accelerator="cpu", devices=1)


def test_parse_optimizers_and_scheduler_configs_read_every_configure_optimizers_shape() -> None:
    params = [torch.nn.Parameter(torch.zeros(2))]
    opt = torch.optim.SGD(params, lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    optimizers, schedulers, monitor = compat.parse_optimizers(
        {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 3}}
    )
    assert optimizers == [opt] and monitor is None
    (config,) = compat.scheduler_configs(schedulers, monitor, automatic=True)
    assert config.scheduler is sched and config.interval == "step" and config.frequency == 3
    (manual,) = compat.scheduler_configs([sched], None, automatic=False)
    assert manual.scheduler is sched


def test_with_sampler_rebuilds_a_dataloader_with_another_sampler() -> None:
    data = TensorDataset(torch.arange(6.0))
    loader = DataLoader(data, batch_size=2, shuffle=True)
    rebuilt = compat.with_sampler(loader, SequentialSampler(data))
    assert [b[0].tolist() for b in rebuilt] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    assert rebuilt.batch_size == 2


def test_fabric_wrappers_are_recognised_and_unwrapped() -> None:
    fabric = _fabric()
    module = BoringModel()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    wrapped, fab_optimizer = fabric.setup(module, optimizer)
    loader = DataLoader(TensorDataset(torch.zeros(4, 32)), batch_size=2)
    fab_loader = fabric.setup_dataloaders(loader)
    assert compat.is_fabric_loader(fab_loader) and not compat.is_fabric_loader(loader)
    assert compat.unwrap_loader(fab_loader) is loader and compat.unwrap_loader(loader) is loader
    assert compat.unwrap_optimizer(fab_optimizer) is optimizer and compat.unwrap_optimizer(optimizer) is optimizer
    assert compat.forward_is_redirected(wrapped) is False  # one device: Fabric calls the module itself


def test_fabric_callbacks_is_the_dispatch_list_and_forget_callback_removes_from_it() -> None:
    fabric = _fabric()
    module = BoringModel()
    fabric.setup(module, torch.optim.SGD(module.parameters(), lr=0.1))
    assert module in compat.fabric_callbacks(fabric)  # fabric.setup registers a LightningModule as a callback
    compat.forget_callback(fabric, module)
    assert module not in compat.fabric_callbacks(fabric)
    compat.forget_callback(fabric, module)  # a second call is a no-op


def test_launch_state_and_spawning_launchers_are_read() -> None:
    fabric = _fabric()
    assert compat.fabric_launched(fabric) is False
    assert compat.spawns_processes(fabric) is None
    spawn = Fabric(accelerator="cpu", devices=2, strategy="ddp_spawn")
    assert compat.spawns_processes(spawn) == "spawn"
