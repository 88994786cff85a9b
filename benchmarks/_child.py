"""One benchmark measurement in a fresh process: ``python benchmarks/_child.py RUNNER SPEC.json RESULT.json``.

Started by ``benchmarks/run.py``, never imported by it: every runner pays the same imports in a process of its
own. This file must run in lightning-cv's separate environment too, so at module level it needs only the
standard library, torch and lightning; lcv and scikit-learn are imported by the runners that use them.

The spec (JSON) names the data file written by ``run.py`` (inputs, targets and the fold indices, so every
runner trains on the very same folds), the width of the MLP, the epochs, the batch size and a seed. The
result (JSON) holds wall and CPU seconds of the training (model construction, data loaders and validation
included, imports and data loading from disk excluded), fold-steps, peak RSS and the per-fold accuracies on the
validation folds after the last epoch, computed here in the same way for every runner.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch._dynamo  # noqa: F401  # lightning imports it, and it speeds plain loops up: import it in every runner
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

Data = dict[str, Any]


def make_net(in_features: int, width: int, n_classes: int) -> nn.Sequential:
    """Return the workload's MLP: ``in → width → width → classes`` with ReLU."""
    return nn.Sequential(
        nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, n_classes)
    )


def make_optimizer(params: Any, lr: float) -> torch.optim.Optimizer:
    """Return the workload's optimizer: Adam with torch's defaults (neither fused nor foreach forced)."""
    return torch.optim.Adam(params, lr=lr)


@torch.no_grad()
def fold_accuracies(nets: list[nn.Module], data: Data) -> list[float]:
    """Return each fold model's accuracy on its validation fold, computed in one batch per fold."""
    accs = []
    for net, (_, val_idx) in zip(nets, data["folds"], strict=True):
        net.eval()
        out = net(data["X"][val_idx])
        accs.append(float((out.argmax(dim=-1) == data["y"][val_idx]).float().mean()))
    return accs


def load_data(path: str | Path) -> Data:
    """Load a data file written by ``run.py``: inputs, targets and the folds as ``(train, val)`` index pairs."""
    raw = torch.load(path, weights_only=True)
    return {"X": raw["X"], "y": raw["y"], "folds": list(zip(raw["train"], raw["val"], strict=True))}


def fold_steps(data: Data, batch_size: int, epochs: int) -> int:
    """Return the optimizer steps of all folds together (no ``drop_last``)."""
    return sum(math.ceil(len(tr) / batch_size) for tr, _ in data["folds"]) * epochs


# -- plain PyTorch -------------------------------------------------------------------------------------


def _tensor_batches(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, bs: int, g: torch.Generator | None) -> Any:
    order = idx[torch.randperm(len(idx), generator=g)] if g is not None else idx
    for b in range(0, len(order), bs):
        sel = order[b : b + bs]
        yield x[sel], y[sel]


def _hand_loop(data: Data, spec: dict[str, Any], tensor_batches: bool) -> list[nn.Module]:
    x, y, bs, lr = data["X"], data["y"], spec["batch_size"], spec["lr"]
    dataset = TensorDataset(x, y)
    nets: list[nn.Module] = []
    for fold, (tr, va) in enumerate(data["folds"]):
        torch.manual_seed(spec["seed"] + fold)
        net = make_net(x.shape[1], spec["width"], spec["n_classes"])
        opt = make_optimizer(net.parameters(), lr)
        g = torch.Generator().manual_seed(spec["seed"] * 1000 + fold)
        train_loader: Any = None
        val_loader: Any = None
        if not tensor_batches:
            train_loader = DataLoader(Subset(dataset, tr.tolist()), batch_size=bs, shuffle=True, generator=g)
            val_loader = DataLoader(Subset(dataset, va.tolist()), batch_size=bs)
        for _ in range(spec["epochs"]):
            net.train()
            for xb, yb in _tensor_batches(x, y, tr, bs, g) if tensor_batches else train_loader:
                loss = nn.functional.cross_entropy(net(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            net.eval()
            with torch.no_grad():  # a real loop validates every epoch; one host read per epoch
                total, correct = torch.zeros(()), torch.zeros(())
                for xb, yb in _tensor_batches(x, y, va, bs, None) if tensor_batches else val_loader:
                    out = net(xb)
                    total += nn.functional.cross_entropy(out, yb, reduction="sum")
                    correct += (out.argmax(-1) == yb).sum()
                _ = (total / len(va)).item(), (correct / len(va)).item()
        nets.append(net)
    return nets


def run_dataloader_loop(data: Data, spec: dict[str, Any]) -> list[nn.Module]:
    """Hand-written loop, folds one after another, batches from ``DataLoader(Subset(TensorDataset))``."""
    return _hand_loop(data, spec, tensor_batches=False)


def run_tensor_loop(data: Data, spec: dict[str, Any]) -> list[nn.Module]:
    """Hand-written loop B: as above, but every batch is one index gather from the whole tensors."""
    return _hand_loop(data, spec, tensor_batches=True)


# -- Lightning -----------------------------------------------------------------------------------------


def _module_class() -> type:
    import lightning

    class MLPModule(lightning.LightningModule):
        """The workload as a LightningModule; ``config`` is a dict (lightning-cv builds models from one)."""

        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__()
            self.config = dict(config)  # lightning-cv checkpoints read this attribute
            self.net = make_net(self.config["in_features"], self.config["width"], self.config["n_classes"])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)  # type: ignore[no-any-return]

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = nn.functional.cross_entropy(self(x), y)
            self.log("train_loss", loss, on_epoch=True, on_step=False)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
            x, y = batch
            out = self(x)
            loss = nn.functional.cross_entropy(out, y)
            acc = (out.argmax(-1) == y).float().mean()
            self.log("val_loss", loss)
            self.log("val_acc", acc)
            return {"loss": loss, "acc": acc}

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return make_optimizer(self.parameters(), self.config["lr"])

    return MLPModule


def _module_config(data: Data, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "in_features": int(data["X"].shape[1]),
        "width": spec["width"],
        "n_classes": spec["n_classes"],
        "lr": spec["lr"],
    }


def run_lightning_trainer(data: Data, spec: dict[str, Any]) -> list[nn.Module]:
    """k separate ``lightning.Trainer.fit`` runs (no logger, checkpointing, progress bar or summary)."""
    import lightning

    module_cls = _module_class()
    dataset = TensorDataset(data["X"], data["y"])
    modules = []
    for fold, (tr, va) in enumerate(data["folds"]):
        torch.manual_seed(spec["seed"] + fold)
        module = module_cls(_module_config(data, spec))
        g = torch.Generator().manual_seed(spec["seed"] * 1000 + fold)
        train = DataLoader(Subset(dataset, tr.tolist()), batch_size=spec["batch_size"], shuffle=True, generator=g)
        val = DataLoader(Subset(dataset, va.tolist()), batch_size=spec["batch_size"])
        trainer = lightning.Trainer(
            max_epochs=spec["epochs"],
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(module, train, val)
        modules.append(module)
    return modules


def run_lightning_cv(data: Data, spec: dict[str, Any]) -> list[nn.Module]:
    """lightning-cv 1.2.0's ``CrossValidationTrainer`` with its defaults (runs in its own environment)."""
    import lightning
    from lightning_cv import CrossValidationTrainer, CrossValidationTrainerConfig

    dataset = TensorDataset(data["X"], data["y"])
    bs = spec["batch_size"]

    class FixedFolds(lightning.LightningDataModule):
        """The benchmark's folds as lightning-cv wants them: DataLoaders over Subsets, made every epoch."""

        def setup(self, stage: str) -> None:
            pass

        def train_val_dataloaders(self, **kwargs: Any) -> Iterator[tuple[DataLoader[Any], DataLoader[Any]]]:
            shuffle = kwargs.get("shuffle", True)
            for tr, va in data["folds"]:
                yield (
                    DataLoader(Subset(dataset, tr.tolist()), batch_size=bs, shuffle=shuffle),
                    DataLoader(Subset(dataset, va.tolist()), batch_size=bs),
                )

    torch.manual_seed(spec["seed"])
    with tempfile.TemporaryDirectory() as tmp:
        config = CrossValidationTrainerConfig(
            max_epochs=spec["epochs"], accelerator="cpu", devices=1, checkpoint_dir=Path(tmp)
        )
        trainer = CrossValidationTrainer(model_type=_module_class(), config=config)
        trainer.train_with_cross_validation(datamodule=FixedFolds(), model_config=_module_config(data, spec))
        return [state.model for state in trainer.fold_manager.values()]


def _lcv_schedule_implemented(schedule: str) -> bool:
    # The trainer of this checkout may accept a schedule name it has no code for (and run it as interleaved):
    # count a schedule as implemented only when lcv_core's source mentions it outside the config schema.
    import lcv_core

    root = Path(lcv_core.__file__).parent
    return any(f'"{schedule}"' in p.read_text(encoding="utf-8") for p in root.rglob("*.py"))


def run_lcv(data: Data, spec: dict[str, Any]) -> list[nn.Module]:
    """lcv's ``CrossValidationTrainer`` with ``spec['schedule']``, on lcv-data's ``CrossValDataModule``."""
    from sklearn.model_selection import PredefinedSplit

    from lcv_core.trainer import CrossValidationTrainer
    from lcv_data.datamodule import CrossValDataModule

    schedule = spec["schedule"]
    if schedule != "interleaved" and not _lcv_schedule_implemented(schedule):
        raise NotImplementedError(f"schedule={schedule!r} is not implemented in this checkout of lcv-core")
    test_fold = torch.empty(len(data["y"]), dtype=torch.long)
    for i, (_, va) in enumerate(data["folds"]):
        test_fold[va] = i
    datamodule = CrossValDataModule(
        X=data["X"],
        y=data["y"],
        splitter=PredefinedSplit(test_fold.numpy()),  # the benchmark's very folds
        dataloaders={"default": {"batch_size": spec["batch_size"]}},
        seed=spec["seed"],
    )
    trainer = CrossValidationTrainer(
        max_epochs=spec["epochs"], accelerator="cpu", devices=1, seed=spec["seed"], schedule=schedule,
        enable_progress_bar=False,
    )  # fmt: skip
    if spec.get("learner"):
        # lcv's configurable learner, as `lcv cv` builds it from a config: model mlp, CrossEntropyLoss, Adam
        from lcv_core import SupervisedLearner

        n_in, width = int(data["X"].shape[1]), spec["width"]
        mlp = {"name": "mlp", "cfg": {"in_features": n_in, "out_features": spec["n_classes"], "hidden": [width] * 2}}
        kwargs = {
            "model": mlp,
            "optimizer": {"name": "Adam", "cfg": {"lr": spec["lr"]}},
        }
        result = trainer.fit(SupervisedLearner, datamodule, model_kwargs=kwargs)
    else:
        result = trainer.fit(_module_class(), datamodule, model_kwargs={"config": _module_config(data, spec)})
    spec["schedule_chosen"] = getattr(result, "schedule", None) or schedule  # what `auto` chose
    folds = getattr(trainer, "folds", [])
    if len(folds) == len(data["folds"]) and all(isinstance(getattr(f, "module", None), nn.Module) for f in folds):
        return [f.module for f in folds]
    # a schedule without per-fold modules (vectorized): fall back to the accuracies the fit itself reported
    spec["reported_accuracies"] = [h[-1].get("val_acc", float("nan")) for h in result.history]
    return []


IMPORTS: dict[str, tuple[str, ...]] = {
    "dataloader_loop": (),
    "tensor_loop": (),
    "lightning_trainer": ("lightning",),
    "lightning_cv": ("lightning", "lightning_cv"),
    "lcv": (
        "lightning",
        "lcv_core",
        "lcv_core.trainer",
        "lcv_core.vectorized.engine",
        "lcv_data.datamodule",
        "sklearn.model_selection",
    ),
}
"""Modules a runner imports, imported before the clock starts: timings exclude imports."""

RUNNERS: dict[str, Callable[[Data, dict[str, Any]], list[nn.Module]]] = {
    "dataloader_loop": run_dataloader_loop,
    "tensor_loop": run_tensor_loop,
    "lightning_trainer": run_lightning_trainer,
    "lightning_cv": run_lightning_cv,
    "lcv": run_lcv,
}


def main(argv: list[str]) -> int:
    """Run one runner on one spec and write its measurements as JSON."""
    runner, spec_path, out_path = argv
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    data = load_data(spec["data"])
    torch.set_num_threads(spec.get("threads", torch.get_num_threads()))
    result: dict[str, Any] = {"runner": runner, "threads": torch.get_num_threads()}
    os.chdir(tempfile.mkdtemp(prefix="lcv-bench-"))  # whatever a runner writes (logs, checkpoints) lands here
    for name in IMPORTS[runner]:
        with contextlib.suppress(ImportError):  # the runner itself reports it
            importlib.import_module(name)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        nets = RUNNERS[runner](data, spec)
    except NotImplementedError as exc:
        result["skipped"] = str(exc)
    except Exception as exc:  # report any failure of a peer as a row, not a crash of the whole benchmark
        result["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        result["traceback"] = traceback.format_exc()[-4000:]
    else:
        result["wall_s"] = time.perf_counter() - wall0
        result["cpu_s"] = time.process_time() - cpu0
        result["fold_steps"] = fold_steps(data, spec["batch_size"], spec["epochs"])
        result["accuracies"] = fold_accuracies(nets, data) if nets else spec.get("reported_accuracies", [])
        if "schedule_chosen" in spec:
            result["schedule_chosen"] = spec["schedule_chosen"]
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    Path(out_path).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
