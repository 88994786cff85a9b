"""``schedule='auto'`` (the default): the rule, the probe's decision on given timings, and a fit that is exactly the
chosen schedule's (per-fold numbers, loader and random states), its choice printed, in ``metrics.json`` and kept on
resume."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Subset

from lcv_config import TrainerConfig
from lcv_core import Callback, CrossValidationTrainer
from lcv_core.core.lightning_compat import unwrap_loader
from lcv_core.loop.auto_schedule import (
    LARGE_STEP,
    MARGIN,
    SMALL_STEP,
    AutoSchedule,
    ProbeTimes,
    StepSize,
    by_size,
    by_times,
    probe_times,
)
from lcv_core.loop.schedules import VECTORIZE_PARAMETERS_CPU

MID = {"hidden": 15_000}
"""A hidden width whose step (180,003 parameters × 64 samples) is neither clearly small nor clearly large: the probe
decides."""
BATCH = {"batch_size": 64}


class EpochCounting(DataLoader[Any]):
    """A loader that counts the epochs it started, from a class default (as lcv-data's ``ResumableDataLoader``)."""

    epoch = 0

    def __iter__(self) -> Any:
        self.epoch = self.epoch + 1
        return super().__iter__()


def test_auto_is_the_default() -> None:
    assert TrainerConfig().schedule == "auto"
    assert isinstance(CrossValidationTrainer(accelerator="cpu").schedule, AutoSchedule)


# -- the rule ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "batch", "device", "expected"),
    [
        (700, 64, "cpu", "vectorized"),  # digits at width 8: clearly small
        (SMALL_STEP // 64, 64, "cpu", "vectorized"),
        (85_000, 64, "cpu", "vectorized"),  # digits at width 256
        (180_000, 64, "cpu", None),  # the probe decides
        (VECTORIZE_PARAMETERS_CPU + 1, 1, "cpu", "interleaved"),  # digits at width 1024 and larger
        (200_000, 128, "cpu", "interleaved"),  # over LARGE_STEP
        (200_000, 128, "cuda", None),  # an accelerator's batched kernels pay off further: probe
        (50_000_000, 64, "cuda", "interleaved"),
    ],
)
def test_the_size_of_a_step_decides_the_clear_cases(
    parameters: int, batch: int, device: str, expected: str | None
) -> None:
    choice = by_size(StepSize(parameters, batch, device, n_folds=5))
    assert (choice.schedule if choice else None) == expected
    if choice is not None:
        assert f"{parameters:,} parameters per fold" in choice.reason


def test_the_thresholds_are_ordered() -> None:
    assert SMALL_STEP < LARGE_STEP


@pytest.mark.parametrize(
    ("interleaved", "vectorized", "expected"),
    [
        (2.0e-3, 1.0e-3, "vectorized"),
        (1.0e-3, 2.0e-3, "interleaved"),
        (1.0e-3, 1.0e-3, "interleaved"),  # a tie goes to interleaved
        (1.0e-3 * (1 + MARGIN) * 0.999, 1.0e-3, "interleaved"),  # not more than MARGIN faster
        (1.0e-3 * (1 + MARGIN) * 1.01, 1.0e-3, "vectorized"),
    ],
)
def test_the_probe_decides_on_its_timings_alone(interleaved: float, vectorized: float, expected: str) -> None:
    size = StepSize(85_000, 64, "cpu", n_folds=5)
    times = ProbeTimes(interleaved, vectorized, steps=6)
    first, again = by_times(times, size), by_times(times, size)
    assert first == again  # deterministic given the measurements
    assert first.schedule == expected
    assert f"{1e3 * vectorized:.2f} ms" in first.reason and f"{1e3 * interleaved:.2f} ms" in first.reason


# -- fits -------------------------------------------------------------------------------------------------


def _fit(
    tiny: type, fold_data: type, trainer_kwargs: dict[str, Any], schedule: str = "auto", probe: Any = None, **kw: Any
) -> tuple[CrossValidationTrainer, Any]:
    trainer = CrossValidationTrainer(**{**trainer_kwargs, "schedule": schedule, **kw.pop("trainer", {})})
    if probe is not None:
        trainer.schedule.probe = probe  # type: ignore[attr-defined]  # AutoSchedule's injectable probe
    result = trainer.fit(tiny, fold_data(**kw.pop("data", {})), model_kwargs=kw.pop("model", None))
    return trainer, result


def test_a_small_model_is_vectorized_with_the_numbers_of_vectorized_alone(
    tiny: type, fold_data: type, trainer_kwargs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _, auto = _fit(tiny, fold_data, trainer_kwargs, trainer={"enable_progress_bar": True})  # it prints the choice
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("schedule='auto'")]
    assert line == [f"schedule='auto' chose 'vectorized': {auto.schedule_reason}"]
    assert "195 parameters per fold × 16 samples per batch on the cpu" in line[0]
    _, alone = _fit(tiny, fold_data, trainer_kwargs, schedule="vectorized")
    assert auto.schedule == "vectorized"
    assert auto.history == alone.history


@pytest.mark.parametrize("chosen", ["interleaved", "vectorized"])
def test_the_probe_leaves_no_trace(
    tiny: type, fold_data: type, trainer_kwargs: dict[str, Any], chosen: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real probe runs (its timings are replaced afterwards, to pick each schedule): weights, per-fold numbers,
    loader generators and the folds' random streams are those of the chosen schedule run alone."""
    measured: list[ProbeTimes] = []

    def probe(trainer: CrossValidationTrainer) -> ProbeTimes:
        measured.append(probe_times(trainer))
        return ProbeTimes(2.0, 1.0, 6) if chosen == "vectorized" else ProbeTimes(1.0, 2.0, 6)

    def loaders() -> list[tuple[DataLoader[Any], DataLoader[Any]]]:
        data = fold_data()
        return [
            (
                EpochCounting(
                    Subset(data.dataset, tr), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(i)
                ),
                DataLoader(Subset(data.dataset, va), batch_size=16),
            )
            for i, (tr, va) in enumerate(zip(data.train_indices, data.val_indices, strict=True))
        ]

    runs = {}
    for schedule in ("auto", chosen):
        trainer = CrossValidationTrainer(**{**trainer_kwargs, "schedule": schedule, "enable_progress_bar": True})
        if schedule == "auto":
            trainer.schedule.probe = probe  # type: ignore[attr-defined]
        pairs = loaders()
        result = trainer.fit(tiny, pairs, model_kwargs=MID)
        runs[schedule] = (
            result,
            [p[0].generator.get_state() for p in pairs],  # type: ignore[union-attr]  # given above
            [f.rng.state_dict()["torch"] for f in trainer.folds],
            [unwrap_loader(f.train_loader).epoch for f in trainer.folds],
            [m.state_dict() for m in result.models],
        )
    assert len(measured) == 1 and measured[0].interleaved > 0 and measured[0].vectorized > 0
    auto, alone = runs["auto"], runs[chosen]
    assert auto[0].schedule == chosen
    assert auto[0].history == alone[0].history
    assert all(torch.equal(a, b) for a, b in zip(auto[1], alone[1], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(auto[2], alone[2], strict=True))
    assert auto[3] == alone[3]  # epochs started: none by the probe
    if chosen == "interleaved":
        assert auto[3] == [2] * 5
    for a, b in zip(auto[4], alone[4], strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert f"schedule='auto' chose '{chosen}': the probe measured" in capsys.readouterr().out


def test_metrics_json_holds_the_choice(
    tiny: type, fold_data: type, trainer_kwargs: dict[str, Any], tmp_path: Any
) -> None:
    _, result = _fit(
        tiny, fold_data, trainer_kwargs, probe=lambda t: ProbeTimes(1.0, 2.0, 6),
        trainer={"default_root_dir": str(tmp_path)}, model=MID, data=BATCH,
    )  # fmt: skip
    saved = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert saved["schedule"] == "interleaved" == result.schedule
    assert saved["schedule_reason"] == result.schedule_reason
    assert (
        "the probe measured 2000.00 ms per step of all 5 folds vectorized against 1000.00 ms interleaved"
        in (saved["schedule_reason"])
    )


def test_a_schedule_given_by_name_is_recorded_without_a_reason(
    tiny: type, fold_data: type, trainer_kwargs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _, result = _fit(tiny, fold_data, trainer_kwargs, schedule="interleaved", trainer={"enable_progress_bar": True})
    assert (result.schedule, result.schedule_reason) == ("interleaved", None)
    assert "schedule='auto'" not in capsys.readouterr().out


def test_resume_keeps_the_saved_choice(
    tiny: type, fold_data: type, trainer_kwargs: dict[str, Any], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run = {"default_root_dir": str(tmp_path)}
    _fit(tiny, fold_data, trainer_kwargs, probe=lambda t: ProbeTimes(2.0, 1.0, 6), trainer={**run, "max_epochs": 1},
         model=MID, data=BATCH)  # fmt: skip
    trainer = CrossValidationTrainer(**{**trainer_kwargs, **run, "max_epochs": 2, "enable_progress_bar": True})
    trainer.schedule.probe = lambda t: pytest.fail("a resumed auto fit does not probe again")  # type: ignore[attr-defined]
    resumed = trainer.fit(tiny, fold_data(**BATCH), ckpt_path="last", model_kwargs=MID)
    assert resumed.schedule == "vectorized"
    assert "schedule='auto' resumes with 'vectorized', the choice stored in the checkpoint" in capsys.readouterr().out
    _, alone = _fit(tiny, fold_data, trainer_kwargs, schedule="vectorized", model=MID, data=BATCH)
    assert [len(h) for h in resumed.history] == [2] * 5
    assert resumed.history[0][0] == alone.history[0][0]  # the first epoch was vectorized too


def test_an_auto_checkpoint_resumes_under_the_chosen_schedule_by_name(
    tiny: type, fold_data: type, trainer_kwargs: dict[str, Any], tmp_path: Any
) -> None:
    run = {"default_root_dir": str(tmp_path)}
    _fit(tiny, fold_data, trainer_kwargs, trainer={**run, "max_epochs": 1})
    trainer = CrossValidationTrainer(**{**trainer_kwargs, **run, "max_epochs": 2, "schedule": "vectorized"})
    assert [len(h) for h in trainer.fit(tiny, fold_data(), ckpt_path="last").history] == [2] * 5


def test_what_cannot_be_vectorized_runs_interleaved_saying_why(
    tiny: type, fold_data: type, trainer_kwargs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    class Counting(tiny):  # type: ignore[misc, valid-type]
        def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
            self.seen = getattr(self, "seen", 0) + 1

    trainer, result = _fit(Counting, fold_data, trainer_kwargs, trainer={"enable_progress_bar": True})
    assert result.schedule == "interleaved"
    assert "the folds cannot be vectorized: Counting overrides on_train_batch_start" in result.schedule_reason
    assert [m.seen for m in result.models] == [2 * 8] * 5  # every batch of both epochs of every fold
    assert "schedule='vectorized' falls back" not in capsys.readouterr().out


def test_a_callback_with_per_fold_hooks_keeps_interleaved(
    tiny: type, fold_data: type, trainer_kwargs: dict[str, Any]
) -> None:
    class Batches(Callback):
        def __init__(self) -> None:
            self.n = 0

        def on_train_batch_end_per_fold(self, **kwargs: Any) -> None:
            self.n += 1

    counter = Batches()
    _, result = _fit(tiny, fold_data, trainer_kwargs, trainer={"callbacks": [counter]})
    assert result.schedule == "interleaved"
    assert "callback Batches implements on_train_batch_end_per_fold" in (result.schedule_reason or "")
    assert counter.n == 2 * 8 * 5


def test_fold_models_that_differ_in_a_plain_attribute_run_interleaved(
    tiny: type, fold_data: type, trainer_kwargs: dict[str, Any]
) -> None:
    """One batched computation reads ``self.<attribute>`` from fold 0's model: per-fold values need ``interleaved``."""

    class PerFold(tiny):  # type: ignore[misc, valid-type]
        def __init__(self, fold: int) -> None:
            super().__init__()
            self.fold = fold

    trainer = CrossValidationTrainer(**trainer_kwargs)
    result = trainer.fit(lambda fold: PerFold(fold), fold_data())
    assert result.schedule == "interleaved"
    assert "the fold models differ in fold (0 in fold 0, 1 in fold 1)" in (result.schedule_reason or "")


def test_step_code_that_reads_its_fold_trainer_runs_interleaved(
    tiny: type, fold_data: type, trainer_kwargs: dict[str, Any]
) -> None:
    """Under one batched computation ``self.trainer`` in a step would be fold 0's: such a module keeps its folds."""

    class Fold2Differs(tiny):  # type: ignore[misc, valid-type]
        def validation_step(self, batch: Any, batch_idx: int) -> None:
            super().validation_step(batch, batch_idx)
            self.log("fold", float(self.trainer.fold))

    result = CrossValidationTrainer(**trainer_kwargs).fit(Fold2Differs, fold_data())
    assert result.schedule == "interleaved"
    assert "Fold2Differs.validation_step reads self.trainer" in (result.schedule_reason or "")
    assert [h[-1]["fold"] for h in result.history] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_the_step_code_check_follows_a_method_replaced_between_fits(
    tiny: type, fold_data: type, trainer_kwargs: dict[str, Any]
) -> None:
    """The check is remembered per set of methods (a tuning study fits one class per trial), never past a change."""

    class Patched(tiny):  # type: ignore[misc, valid-type]
        pass

    first = CrossValidationTrainer(**trainer_kwargs).fit(Patched, fold_data())
    assert first.schedule == "vectorized"

    def validation_step(self: Any, batch: Any, batch_idx: int) -> None:
        tiny.validation_step(self, batch, batch_idx)
        self.log("fold", float(self.trainer.fold))

    Patched.validation_step = validation_step  # as a notebook cell redefining the method would
    second = CrossValidationTrainer(**trainer_kwargs).fit(Patched, fold_data())
    assert second.schedule == "interleaved"
    assert "Patched.validation_step reads self.trainer" in (second.schedule_reason or "")
    del Patched.validation_step
    assert CrossValidationTrainer(**trainer_kwargs).fit(Patched, fold_data()).schedule == "vectorized"


@pytest.mark.parametrize("schedule", ["auto", "vectorized"])
def test_the_steps_are_tried_under_vmap_once_per_fit(
    tiny: type, fold_data: type, trainer_kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch, schedule: str
) -> None:
    """``auto`` tries the steps before it chooses ``vectorized``; the engine then does not try them again."""
    from lcv_core.vectorized import check

    trials: list[int] = []
    tried = check._trial
    monkeypatch.setattr(check, "_trial", lambda *args: trials.append(1) or tried(*args))
    for _ in range(2):  # a second fit of the same trainer class tries again: the answer is per fit
        trials.clear()
        result = CrossValidationTrainer(**{**trainer_kwargs, "schedule": schedule}).fit(tiny, fold_data())
        assert result.schedule == "vectorized"
        assert trials == [1]
