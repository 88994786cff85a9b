"""The learning-rate range test on one fold: Lightning's schedule, smoothing, divergence stop and suggestion."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from lcv_config import LcvError
from lcv_core.lr_finder import LRFinderResult, lr_find

CPU = {"accelerator": "cpu", "seed": 0}


def test_suggestion_lies_inside_the_range_and_the_curve_has_one_point_per_step(tiny: Any, fold_data: Any) -> None:
    data = fold_data(batch_size=8)
    result = lr_find(
        tiny, data, min_lr=1e-5, max_lr=1.0, num_training=30, early_stop_threshold=None, trainer_kwargs=CPU
    )
    assert len(result.results["lr"]) == len(result.results["loss"]) == 30  # 15 batches per epoch: the loader cycles
    lrs = result.results["lr"]
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(lrs, lrs[1:], strict=False))  # exponential: strictly growing
    suggestion = result.suggestion()
    assert suggestion is not None and 1e-5 < suggestion < 1.0
    assert not result.stopped_early


def test_the_sweep_matches_lightnings_schedulers_point_for_point() -> None:
    # Lightning's _ExponentialLR / _LinearLR give min_lr first, then min_lr * ratio ** ((i + 1) / n)
    result = LRFinderResult({"lr": [], "loss": []}, "exponential", 1e-4, 1e-1, 10, 0)
    from lcv_core.lr_finder import _lr_at

    assert [_lr_at(i, 1e-4, 1e-1, 10, "exponential") for i in (0, 1, 9)] == pytest.approx(
        [1e-4, 1e-4 * 1000**0.2, 1e-1]
    )
    assert [_lr_at(i, 0.1, 1.1, 10, "linear") for i in (0, 4, 9)] == pytest.approx([0.1, 0.6, 1.1])
    assert result.suggestion() is None  # no points, no suggestion


def test_a_diverging_loss_stops_the_test_early(tiny: Any, fold_data: Any) -> None:
    # SGD at learning rates up to 1e4 blows the loss up long before 60 steps
    result = lr_find(tiny, fold_data(batch_size=8), min_lr=1e-3, max_lr=1e4, num_training=60, trainer_kwargs=CPU)
    assert result.stopped_early
    assert 2 < len(result.results["loss"]) < 60
    assert result.results["lr"][-1] < 1e4


def test_suggestion_picks_the_steepest_descent() -> None:
    lrs = [10.0 ** (k / 4) for k in range(-20, 0)]  # 1e-5 .. ~0.56
    # flat, then a steep drop between points 12 and 14, then flat again
    losses = [2.0] * 12 + [1.9, 1.0, 0.5] + [0.5] * 5
    result = LRFinderResult({"lr": lrs, "loss": losses}, "exponential", lrs[0], 1.0, 20, 0)
    # the gradient is taken over the learning rate: among the points of the drop, the steepest per unit lr
    assert result.suggestion() in lrs[12:15]
    assert result.suggestion(skip_begin=0, skip_end=0) in lrs[12:15]
    losses[13] = math.nan  # a skipped batch is left out, never suggested
    assert result.suggestion() != lrs[13]


def test_the_given_model_is_left_untouched_and_the_plot_is_written(tiny: Any, fold_data: Any, tmp_path: Path) -> None:
    model = tiny(lr=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_find(model, fold_data(batch_size=8), fold=2, num_training=20, trainer_kwargs=CPU)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.lr == 0.5
    path = result.plot(tmp_path / "plots" / "lr_find.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert result.fold == 2


def test_linear_mode_and_model_kwargs(tiny: Any, fold_data: Any) -> None:
    result = lr_find(
        tiny,
        fold_data(batch_size=16),
        mode="linear",
        min_lr=0.01,
        max_lr=0.2,
        num_training=12,
        model_kwargs={"hidden": 4},
        trainer_kwargs=CPU,
    )
    diffs = [b - a for a, b in zip(result.results["lr"][1:], result.results["lr"][2:], strict=False)]
    assert diffs == pytest.approx([diffs[0]] * len(diffs))  # equal steps after the first point
    assert result.results["lr"][-1] == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "exponentail"}, "Did you mean 'exponential'"),
        ({"min_lr": 1.0, "max_lr": 0.1}, "0 < min_lr < max_lr"),
        ({"num_training": 1}, "num_training=1"),
        ({"fold": 7}, "has 5 folds; use a fold in 0..4"),
        ({"early_stop_threshold": 0}, "early_stop_threshold=0"),
    ],
)
def test_bad_arguments_are_refused_with_the_argument_named(
    tiny: Any, data: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(LcvError, match=message):
        lr_find(tiny, data, trainer_kwargs=CPU, **kwargs)


def test_manual_optimization_is_refused(tiny: Any, data: Any) -> None:
    class Manual(tiny):  # type: ignore[misc, valid-type]  # a fixture class
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False

    with pytest.raises(LcvError, match="Manual sets automatic_optimization=False"):
        lr_find(Manual, data, trainer_kwargs=CPU)
