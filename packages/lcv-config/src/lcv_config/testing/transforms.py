"""The conformance suites of plain (per-sample) and fitted transforms (``lcv.transforms``)."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

from lcv_config.protocols import FittedTransform, Transform
from lcv_config.testing._helpers import missing_members
from lcv_config.testing.assertions import assert_close, plain


class TransformContract:
    """What every plain (per-sample) transform must do: deterministic, input left untouched, picklable.

    Implement `make_transform()` and `make_input()` (one sample, as the transform receives it).
    """

    def make_transform(self) -> Any:
        """Return the transform under test."""
        raise NotImplementedError

    def make_input(self) -> Any:
        """Return one sample to transform (a tensor, an array, an image...)."""
        raise NotImplementedError

    def test_is_a_transform(self) -> None:
        """The object is callable ([`Transform`][lcv_config.Transform])."""
        transform = self.make_transform()
        assert isinstance(transform, Transform), f"{type(transform).__name__} is not callable"

    def test_same_input_same_output(self) -> None:
        """Two calls on the same sample give the same result (random augmentations: set ``deterministic = False``)."""
        if not getattr(self, "deterministic", True):
            return
        transform, x = self.make_transform(), self.make_input()
        assert_close(transform(x), transform(x), "two calls on the same sample")

    def test_leaves_its_input_unchanged(self) -> None:
        """The transform returns a new value; the sample it was given (the dataset's) is not modified in place."""
        transform, x = self.make_transform(), self.make_input()
        before = plain(x)
        transform(x)
        assert_close(x, before, "the input after the call (modified in place)")

    def test_can_be_pickled(self) -> None:
        """DataLoader worker processes receive the transform pickled."""
        transform = self.make_transform()
        try:
            clone = pickle.loads(pickle.dumps(transform))
        except Exception as exc:  # noqa: BLE001  # any pickling failure is the finding
            raise AssertionError(f"{type(transform).__name__} cannot be pickled: {type(exc).__name__}: {exc}") from exc
        if getattr(self, "deterministic", True):
            x = self.make_input()
            assert_close(clone(x), transform(x), "the unpickled transform's output")


class FittedTransformContract:
    """What every fitted transform must do, as lcv calls it (see [`FittedTransform`][lcv_config.FittedTransform]).

    Implement `make_transform()` and `make_data()` (training data: samples along dimension 0, as a tensor or
    array). `make_other_data()` defaults to ``data * 3 + 1``; override it when that does not apply.
    """

    def make_transform(self) -> Any:
        """Return an unfitted transform."""
        raise NotImplementedError

    def make_data(self) -> Any:
        """Return training data: samples along dimension 0 (at least 4 samples)."""
        raise NotImplementedError

    def make_other_data(self) -> Any:
        """Return another fold's training data: it must fit a different state, which can transform ``make_data()``."""
        return self.make_data() * 3 + 1

    def _fitted(self, data: Any = None) -> Any:
        transform = copy.deepcopy(self.make_transform())
        transform.fit(self.make_data() if data is None else data)
        return transform

    def test_is_a_fitted_transform(self) -> None:
        """The object has ``fit``, ``transform``, ``state_dict`` and ``load_state_dict``."""
        transform = self.make_transform()
        missing = missing_members(transform, FittedTransform)
        assert not missing, f"{type(transform).__name__} lacks {missing}: lcv calls them (see FittedTransform)"
        on = getattr(transform, "on", "input")
        assert on in ("input", "target"), f"'on' is {on!r}; lcv accepts 'input' or 'target'"

    def test_keeps_the_batch_dimension(self) -> None:
        """``transform`` of a batch of n samples returns n samples."""
        data = self.make_data()
        out = self._fitted().transform(data)
        assert len(out) == len(data), f"a batch of {len(data)} samples became {len(out)}"

    def test_a_sample_does_not_depend_on_its_batch(self) -> None:
        """A sample transformed alone (a batch of one, as lcv does per sample) equals it transformed in a batch."""
        data, transform = self.make_data(), self._fitted()
        whole = plain(transform.transform(data))
        for i in (0, len(data) - 1):
            alone = plain(transform.transform(data[i : i + 1]))[0]
            assert_close(alone, whole[i], f"sample {i} alone vs in its batch (batch statistics at transform time?)")

    def test_transform_does_not_refit(self) -> None:
        """Transforming another batch (half of the training data, as a validation batch) leaves the state as it was."""
        transform = self._fitted()
        before = json.loads(json.dumps(transform.state_dict()))
        data = self.make_data()
        transform.transform(data[: len(data) // 2])
        assert_close(transform.state_dict(), before, "the state after transforming validation data")

    def test_each_copy_fits_its_own_state(self) -> None:
        """Fitting one deep copy (lcv copies the transform per fold) leaves another unchanged: no shared state."""
        original = self.make_transform()
        fold_0, fold_1 = copy.deepcopy(original), copy.deepcopy(original)
        fold_0.fit(self.make_data())
        x = self.make_data()
        expected = plain(fold_0.transform(x))
        fold_1.fit(self.make_other_data())
        assert_close(fold_0.transform(x), expected, "fold 0's output after fold 1 was fitted")
        assert plain(fold_1.transform(x)) != expected, "fitting on other data gave the same state: is it fitted?"

    def test_state_survives_json_and_a_fresh_copy(self) -> None:
        """``state_dict()`` is JSON-serialisable; a fresh copy loaded with it transforms exactly as the fitted one."""
        transform = self._fitted()
        state = transform.state_dict()
        try:
            text = json.dumps(state)
        except (TypeError, ValueError) as exc:
            raise AssertionError(f"state_dict() is not JSON-serialisable ({exc}); lcv writes it to JSON") from None
        fresh = copy.deepcopy(self.make_transform())
        fresh.load_state_dict(json.loads(text))
        x = self.make_data()
        assert_close(fresh.transform(x), transform.transform(x), "output after load_state_dict")
