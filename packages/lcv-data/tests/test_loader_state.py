"""Exact resume: a loader restored from its saved state serves the batches the uninterrupted run would.

Each case builds a fresh datamodule the way a resumed run does (new objects, same config and seed), loads
the states saved after epoch 2 (through ``torch.save``/``torch.load(weights_only=True)``, as a checkpoint
goes), and must yield epoch 3's batches bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lcv_config import LcvError
from lcv_data import CrossValDataModule, ResumableDataLoader, TensorBatchLoader, from_setup_function

SHUFFLED = {"default": {"batch_size": 16, "shuffle": True}}  # validation shuffled too: its state counts as well
KFOLD = {"splitter": "kfold", "splitter_kwargs": {"n_splits": 3, "shuffle": True}, "seed": 7}


def _arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(90, 3)).astype(np.float32), np.arange(90) % 3


class _TupleDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """A map-style dataset that is not a TensorDataset: served by a DataLoader."""

    def __init__(self) -> None:
        X, y = _arrays()
        self.X, self.targets = torch.as_tensor(X), torch.as_tensor(y)

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[i], self.targets[i]


def _setup_function(n: int = 90) -> tuple[Any, Any, Any, int]:
    X, y = _arrays()
    data = {"X": torch.as_tensor(X), "Y": torch.as_tensor(y, dtype=torch.float32).unsqueeze(1)}
    train = {k: v[:60] for k, v in data.items()}
    dev = {k: v[60:n] for k, v in data.items()}
    return train, dev, None, 16


def _tensor_arrays() -> CrossValDataModule:
    X, y = _arrays()
    return CrossValDataModule(X=X, y=y, dataloaders=SHUFFLED, **KFOLD)  # type: ignore[arg-type]


def _dataframe() -> CrossValDataModule:
    pd = pytest.importorskip("pandas")
    X, y = _arrays()
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": y})
    return CrossValDataModule(frame, target="label", dataloaders=SHUFFLED, **KFOLD)  # type: ignore[arg-type]


def _per_sample_transform() -> CrossValDataModule:
    X, y = _arrays()
    return CrossValDataModule(
        X=X,
        y=y,
        transforms={"train": [lambda x: x * 2]},  # train needs per-sample work (a DataLoader), val stays fast
        dataloaders=SHUFFLED,
        **KFOLD,  # type: ignore[arg-type]
    )


def _map_style_dataset() -> CrossValDataModule:
    return CrossValDataModule(_TupleDataset(), dataloaders=SHUFFLED, **KFOLD)  # type: ignore[arg-type]


def _workers(persistent: bool) -> Callable[[], CrossValDataModule]:
    def build() -> CrossValDataModule:
        X, y = _arrays()
        settings = {"default": {"batch_size": 16, "shuffle": True, "num_workers": 1, "persistent_workers": persistent}}
        return CrossValDataModule(X=X, y=y, dataloaders=settings, **KFOLD)  # type: ignore[arg-type]

    return build


def _setup_function_pooled() -> CrossValDataModule:
    return from_setup_function(
        _setup_function, "kfold", splitter_kwargs={"n_splits": 3, "shuffle": True}, seed=7, dataloaders=SHUFFLED
    )


def _setup_function_dev_fold() -> CrossValDataModule:
    return from_setup_function(_setup_function, seed=7, dataloaders=SHUFFLED)


KINDS: dict[str, tuple[Callable[[], CrossValDataModule], type]] = {
    "arrays (tensor fast path)": (_tensor_arrays, TensorBatchLoader),
    "dataframe": (_dataframe, TensorBatchLoader),
    "setup function, pooled folds": (_setup_function_pooled, TensorBatchLoader),
    "setup function, dev fold": (_setup_function_dev_fold, TensorBatchLoader),
    "per-sample transform": (_per_sample_transform, ResumableDataLoader),
    "map-style dataset": (_map_style_dataset, ResumableDataLoader),
    "worker processes": (_workers(False), ResumableDataLoader),
    "persistent workers": (_workers(True), ResumableDataLoader),
}


def _epoch(loaders: list[tuple[Any, Any]]) -> list[list[torch.Tensor]]:
    """Iterate every fold's train then val loader once (interleaved, as lcv-core does); return the tensors."""
    served = []
    for train, val in loaders:
        for loader in (train, val):
            served.append(
                [t for batch in loader for t in (batch.values() if isinstance(batch, dict) else batch)]  # noqa: C416
            )
    return served


def _equal(a: list[list[torch.Tensor]], b: list[list[torch.Tensor]]) -> bool:
    return len(a) == len(b) and all(
        len(x) == len(y) and all(s.dtype == t.dtype and torch.equal(s, t) for s, t in zip(x, y, strict=True))
        for x, y in zip(a, b, strict=True)
    )


def _save_and_load(states: Any, tmp_path: Path) -> Any:
    torch.save(states, tmp_path / "last.ckpt")
    return torch.load(tmp_path / "last.ckpt", weights_only=True)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_restored_loader_serves_the_next_epoch_of_the_uninterrupted_run(kind: str, tmp_path: Path) -> None:
    build, inner = KINDS[kind]
    uninterrupted = build().train_val_dataloaders()
    epochs = [_epoch(uninterrupted) for _ in range(3)]
    assert any(isinstance(loader.loader, inner) for pair in uninterrupted for loader in pair)
    assert not _equal(epochs[0], epochs[2])  # shuffling is on: epoch 3 is not epoch 1 again

    interrupted = build().train_val_dataloaders()
    _epoch(interrupted), _epoch(interrupted)
    states = _save_and_load([(train.state_dict(), val.state_dict()) for train, val in interrupted], tmp_path)

    resumed = build().train_val_dataloaders()  # a new process: new datamodule, new loaders, same config and seed
    assert not _equal(_epoch(build().train_val_dataloaders()), epochs[2])  # without the state: epoch 1 again
    for (train, val), (train_state, val_state) in zip(resumed, states, strict=True):
        train.load_state_dict(train_state)
        val.load_state_dict(val_state)
    assert _equal(_epoch(resumed), epochs[2])


def test_the_vectorized_epoch_order_resumes_too(tmp_path: Path) -> None:
    """lcv-core's vectorized schedule draws whole epochs with ``epoch_order()``; the state follows it."""
    uninterrupted = [train for train, _ in _tensor_arrays().train_val_dataloaders()]
    third = [[loader.epoch_order() for loader in uninterrupted] for _ in range(3)][2]
    interrupted = [train for train, _ in _tensor_arrays().train_val_dataloaders()]
    for _ in range(2):
        [loader.epoch_order() for loader in interrupted]
    states = _save_and_load([loader.state_dict() for loader in interrupted], tmp_path)
    resumed = [train for train, _ in _tensor_arrays().train_val_dataloaders()]
    for loader, state in zip(resumed, states, strict=True):
        loader.load_state_dict(state)
    assert all(torch.equal(a, loader.epoch_order()) for a, loader in zip(third, resumed, strict=True))


def test_the_state_holds_only_what_weights_only_loading_accepts() -> None:
    train, val = _map_style_dataset().train_val_dataloaders()[1]
    state = train.state_dict()
    assert state["split"] == "train" and state["fold"] == 1
    assert state["loader"]["kind"] == "DataLoader" and state["loader"]["epoch"] == 0
    assert [g.dtype for g in state["loader"]["generators"]] == [torch.uint8]
    tensor_state = _tensor_arrays().train_val_dataloaders()[0][0].state_dict()["loader"]
    assert tensor_state == {"kind": "TensorBatchLoader", "epoch": 0, "seed": 7000, "num_samples": 60}


def test_a_state_from_another_fold_is_refused() -> None:
    loaders = _tensor_arrays().train_val_dataloaders()
    with pytest.raises(LcvError, match="split 'train', fold 0 cannot be loaded into the train loader of fold 1"):
        loaders[1][0].load_state_dict(loaders[0][0].state_dict())
    with pytest.raises(LcvError, match="split 'val', fold 1 cannot be loaded into the train loader of fold 1"):
        loaders[1][0].load_state_dict(loaders[1][1].state_dict())


def test_a_state_from_another_kind_of_loader_is_refused() -> None:
    tensor_state = _tensor_arrays().train_val_dataloaders()[0][0].state_dict()
    dataloader = _map_style_dataset().train_val_dataloaders()[0][0]
    with pytest.raises(LcvError, match="A state of a TensorBatchLoader loader cannot be loaded into a DataLoader"):
        dataloader.load_state_dict(tensor_state)


def test_a_state_over_other_samples_is_refused() -> None:
    X, y = _arrays()
    small = TensorBatchLoader((torch.as_tensor(X), torch.as_tensor(y)), torch.arange(10), batch_size=4)
    other = TensorBatchLoader((torch.as_tensor(X), torch.as_tensor(y)), torch.arange(20), batch_size=4)
    with pytest.raises(LcvError, match="over 10 samples; this one serves 20: a different fold or dataset"):
        other.load_state_dict(small.state_dict())


def test_the_resumable_dataloader_serves_the_batches_of_a_plain_dataloader() -> None:
    X, y = _arrays()
    dataset = TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
    plain = DataLoader(dataset, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(3))
    resumable = ResumableDataLoader(dataset, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(3))
    for _ in range(2):
        assert _equal([[t for b in plain for t in b]], [[t for b in resumable for t in b]])
    assert resumable.epoch == 2


def test_the_one_private_torch_attribute_read_means_live_persistent_workers() -> None:
    """``persistent_iterator_alive`` reads torch's private ``DataLoader._iterator``: pinned here."""
    from lcv_data.loaders._state import persistent_iterator_alive

    X, y = _arrays()
    dataset = TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
    loader = ResumableDataLoader(dataset, batch_size=30, num_workers=1, persistent_workers=True)
    assert not persistent_iterator_alive(loader)
    list(loader)
    assert persistent_iterator_alive(loader)
    assert not persistent_iterator_alive(ResumableDataLoader(dataset, batch_size=30))


def test_validation_batches_are_never_shuffled_and_asking_for_it_is_refused() -> None:
    """Out-of-fold predictions line up with the validation order: `default: {shuffle: true}` shuffles training only."""
    from lcv_config import ConfigError
    from lcv_data.loaders._build import split_settings

    assert split_settings({"default": {"shuffle": True}}, "val")["shuffle"] is False
    assert split_settings({"default": {"shuffle": True}}, "train")["shuffle"] is True
    with pytest.raises(ConfigError, match=r"data\.dataloaders\.val\.shuffle is true"):
        split_settings({"val": {"shuffle": True}}, "val")
