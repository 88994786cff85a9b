"""Every splitter registered in ``lcv.splitters`` passes lcv-config's splitter conformance suite.

The classes are generated from ``SPLITTER_CASES``; a splitter registered without a case here fails
``test_every_registered_splitter_has_a_conformance_case``, so a new entry point cannot go untested.
"""

from __future__ import annotations

from typing import Any

import pytest

from lcv_config import SPLITTERS, build, list_plugins, resolve
from lcv_config.testing import SplitterContract

# The contract passes groups to every splitter; those that do not use them say so.
pytestmark = pytest.mark.filterwarnings("ignore:The groups parameter is ignored")

# name -> (constructor arguments, whether the validation folds partition the data, n_samples)
SPLITTER_CASES: dict[str, tuple[dict[str, Any], bool, int]] = {
    "kfold": ({"n_splits": 3, "shuffle": True, "random_state": 0}, True, 60),
    "stratified_kfold": ({"n_splits": 3, "shuffle": True, "random_state": 0}, True, 60),
    "group_kfold": ({"n_splits": 3}, True, 60),
    "stratified_group_kfold": ({"n_splits": 3, "shuffle": True, "random_state": 0}, True, 60),
    "shuffle_split": ({"n_splits": 4, "test_size": 0.25, "random_state": 0}, False, 60),
    "stratified_shuffle_split": ({"n_splits": 4, "test_size": 0.25, "random_state": 0}, False, 60),
    "group_shuffle_split": ({"n_splits": 4, "test_size": 0.34, "random_state": 0}, False, 60),
    "time_series": ({"n_splits": 3}, False, 60),
    "repeated_kfold": ({"n_splits": 3, "n_repeats": 2, "random_state": 0}, False, 60),
    "repeated_stratified_kfold": ({"n_splits": 3, "n_repeats": 2, "random_state": 0}, False, 60),
    "leave_one_out": ({}, True, 12),
    "leave_p_out": ({"p": 2}, False, 8),
    "leave_one_group_out": ({}, True, 60),
    "leave_p_groups_out": ({"n_groups": 2}, False, 60),
    "predefined": ({"test_fold": [i % 3 for i in range(60)]}, True, 60),
}


def _registered() -> set[str]:
    return {p.name for p in list_plugins(SPLITTERS)}


def test_every_registered_splitter_has_a_conformance_case() -> None:
    """The covered names are exactly the names registered in ``lcv.splitters``."""
    registered = _registered()
    assert registered, "lcv-data registers no splitters: is it installed?"
    assert set(SPLITTER_CASES) == registered, (
        f"missing a case: {sorted(registered - set(SPLITTER_CASES))}; "
        f"case for an unregistered name: {sorted(set(SPLITTER_CASES) - registered)}"
    )


def _make_contract(name: str, kwargs: dict[str, Any], partitions: bool, n_samples: int) -> type[SplitterContract]:
    def make_splitter(self: SplitterContract) -> Any:
        return build("splitter", {"name": name, "cfg": dict(kwargs)})

    attrs = {"make_splitter": make_splitter, "partitions": partitions, "n_samples": n_samples, "splitter_name": name}
    return type(f"TestSplitter_{name}", (SplitterContract,), attrs)


for _name, (_kwargs, _partitions, _n) in SPLITTER_CASES.items():
    _cls = _make_contract(_name, _kwargs, _partitions, _n)
    globals()[_cls.__name__] = _cls
del _name, _kwargs, _partitions, _n, _cls


@pytest.mark.parametrize("name", sorted(SPLITTER_CASES))
def test_name_resolves_to_the_scikit_learn_class(name: str) -> None:
    """Each name is scikit-learn's own class, found through the entry point."""
    cls = resolve("splitter", name)
    assert cls.__module__.startswith("sklearn.model_selection")
    assert hasattr(cls, "split") and hasattr(cls, "get_n_splits")


def test_kfold_folds_have_the_promised_sizes() -> None:
    """A 3-fold split of 60 samples has validation folds of 20 and training folds of 40."""
    splitter = build("splitter", {"name": "kfold", "cfg": {"n_splits": 3}})
    sizes = [(len(tr), len(va)) for tr, va in splitter.split(list(range(60)))]
    assert sizes == [(40, 20)] * 3


def test_group_splitter_never_splits_a_group() -> None:
    """With group_kfold, every group's samples are all in validation or all in training."""
    groups = [i % 6 for i in range(60)]
    splitter = build("splitter", {"name": "group_kfold", "cfg": {"n_splits": 3}})
    for train, val in splitter.split(list(range(60)), None, groups):
        assert {groups[i] for i in train}.isdisjoint({groups[i] for i in val})
