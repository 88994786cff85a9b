"""The NeuroMANCER-style pieces: a simulated parametric system, the model, and the ``Problem`` that trains it.

A damped oscillator ``x'' = -omega^2 x - 2 zeta omega x'`` is simulated for random states and frequencies; the model
learns the state one time step ahead. Samples are dicts: ``X`` = (position, velocity, omega), ``Y`` = next state.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

DT = 0.1
"""The time step the model predicts ahead."""
ZETA = 0.1
"""The damping ratio."""


def simulate(x0: torch.Tensor, omega: torch.Tensor, dt: float = DT, substeps: int = 20) -> torch.Tensor:
    """Integrate from states ``x0`` (n, 2) with frequencies ``omega`` (n,) over ``dt`` (semi-implicit Euler)."""
    pos, vel = x0[:, 0].clone(), x0[:, 1].clone()
    h = dt / substeps
    for _ in range(substeps):
        vel = vel + h * (-(omega**2) * pos - 2 * ZETA * omega * vel)
        pos = pos + h * vel
    return torch.stack([pos, vel], dim=1)


def _sample(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    x0 = torch.rand(n, 2, generator=generator) * 2 - 1
    omega = torch.rand(n, generator=generator) * 2 + 0.5
    return {"X": torch.cat([x0, omega[:, None]], dim=1), "Y": simulate(x0, omega)}


def data_setup_function(nsim: int = 1000, batch_size: int = 32, sim_seed: int = 0) -> tuple[Any, Any, Any, int]:
    """Simulate ``nsim`` transitions; return NeuroMANCER's ``(train, dev, test, batch_size)`` as dicts of tensors."""
    generator = torch.Generator().manual_seed(sim_seed)
    n_train, n_dev = int(nsim * 0.6), int(nsim * 0.2)
    return (
        _sample(n_train, generator),
        _sample(n_dev, generator),
        _sample(nsim - n_train - n_dev, generator),
        batch_size,
    )


class SystemNet(nn.Module):
    """The plain model: (position, velocity, omega) -> the state ``DT`` later, as a residual on the current state."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(3, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the predicted next state."""
        return x[:, :2] + DT * self.net(x)  # type: ignore[no-any-return]  # nn.Sequential is untyped


class Problem(nn.Module):
    """NeuroMANCER's ``Problem``, as its users write it: a dict batch in, every loss and output out.

    As in NeuroMANCER, each returned key is prefixed with the batch's ``name`` (``train_loss``, ``dev_loss``); the
    loss is the reference loss plus a physics residual (position follows velocity). lcv's ``loss_returning``
    learner trains it unchanged.
    """

    def __init__(self, hidden: int = 64, physics_weight: float = 0.1) -> None:
        super().__init__()
        self.system = SystemNet(hidden)
        self.physics_weight = physics_weight

    def forward(self, data: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Return ``<name>_loss``, ``<name>_reference``, ``<name>_physics`` and ``<name>_Y_pred``."""
        x, y = data["X"], data["Y"]
        pred = self.system(x)
        reference = nn.functional.mse_loss(pred, y)
        # Over one step the position moves by about the mean of the old and new velocity times DT.
        physics = nn.functional.mse_loss(pred[:, 0] - x[:, 0], DT * (x[:, 1] + pred[:, 1]) / 2)
        out = {"loss": reference + self.physics_weight * physics, "reference": reference, "physics": physics}
        return {f"{data['name']}_{k}": v for k, v in {**out, "Y_pred": pred}.items()}
