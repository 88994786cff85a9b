"""lcv-config checks optimizer, scheduler and loss names without importing torch, from lists made from torch: they
must equal the installed torch's (here, where torch is installed; lcv-config's own session has no torch)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_static_torch_names_match_the_installed_torch() -> None:
    probe = """
import inspect, json
import torch.nn as nn, torch.optim as optim, torch.optim.lr_scheduler as sched
def classes(module, base):
    return sorted(n for n in dir(module) if not n.startswith("_") and inspect.isclass(getattr(module, n))
                  and issubclass(getattr(module, n), base) and getattr(module, n).__module__.startswith("torch"))
print(json.dumps({"optimizer": classes(optim, optim.Optimizer),
                  "lr_scheduler": classes(sched, (sched.LRScheduler, sched.ReduceLROnPlateau)),
                  "criterion": classes(nn, nn.Module)}))
"""
    from importlib.metadata import version

    from lcv_config._static_names import STATIC_NAMES, TORCH_VERSION

    installed = version("torch").split("+")[0]
    assert installed == TORCH_VERSION, f"lcv_config's name lists come from torch {TORCH_VERSION}, {installed} is here"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for kind, names in json.loads(result.stdout).items():
        assert sorted(STATIC_NAMES[kind][1]) == names, kind
