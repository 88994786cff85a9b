"""Lightning parity (issue #18): each catalogue module, trained by lcv, must do on fold 0 what lightning.Trainer does.

Method. Every variant of :mod:`parity.catalogue` (Lightning's demo classes and the patterns Lightning's docs
teach) is trained twice from the same initial weights on the same unshuffled batches:

- by ``lightning.Trainer`` on fold 0's loaders (no sanity check, no checkpoints, a recording logger), once per
  variant and shared by every schedule (a module-level cache);
- by ``lcv_core.CrossValidationTrainer`` on two folds, under ``interleaved``, ``sequential`` and, for variants
  marked ``vectorize``, ``vectorized`` (a fallback to another schedule is printed and reported with the case).

Three aspects of fold 0 are compared, each its own test case:

- ``weights``: the final state dict (max |Δ| ≤ 1e-6). lcv's ``result.models`` hold the best epoch's weights,
  so a callback keeps fold 0's weights at ``on_train_end``;
- ``metrics``: per epoch, the values Lightning's logger received at epoch end against ``result.history[0]``
  (names and values). Names Lightning logged per step only may appear in lcv's history too: lcv reduces every
  logged value per epoch on purpose;
- ``hooks``: the names of the LightningModule hooks called on the instance, in order (see :mod:`parity.recorder`).

A variant that draws random numbers (dropout) starts Lightning's training from the random state lcv gave fold 0
(lcv gives each fold its own stream, by design); what is compared is how both trainers consume it.

Every case runs and compares. A difference observed today is listed in ``KNOWN_GAPS`` with its reason and
reported as ``xfail`` only after it was observed; a listed case that matches Lightning fails, asking for its
entry to be removed (strict), so the table shrinks as lcv gets fixed. Nothing is skipped.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from lcv_core.loop.fold_loop import STEP_HOOKS, overrides
from parity.catalogue import BY_NAME, CATALOGUE, Variant
from parity.harness import Run, compare, run_lcv, run_lightning

SCHEDULES = ("interleaved", "sequential", "vectorized")
ASPECTS = ("weights", "metrics", "hooks")

_HOOKS_VECTORIZED = (
    "documented difference: vectorized steps every fold as one computation, so it calls no per-batch module hook "
    "(a module whose class overrides one falls back to interleaved, saying why) and its vmap trial runs "
    "training_step/validation_step once before training"
)
_EPOCH_NAME = (
    "documented difference: a value logged with on_step=True and on_epoch=True keeps its plain name in lcv's "
    "history and fold means (as in Lightning's callback_metrics); Lightning's loggers get '<name>_epoch'"
)
_MINUS_ONE = (
    "documented difference: Lightning does not validate an epoch that on_train_batch_start ended with -1; lcv "
    "validates every epoch, so every fold has a score for the fold mean"
)
_DROPOUT_VECTORIZED = (
    "documented difference: vectorized draws dropout under vmap(randomness='different'): same distribution, other "
    "numbers than fold 0's own stream"
)
_GLOBAL_STEP_VECTORIZED = (
    "documented difference: inside a vectorized step self.global_step is the value at the start of the epoch "
    "(one computation for all folds has no per-fold step counter to read)"
)

KNOWN_GAPS: dict[tuple[str, str, str], str] = {
    ("boring_model_logged", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("demo_model_logged", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("sgd", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("sgd_steplr", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("momentum_sgd", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("adam", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("step_interval_frequency", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("one_cycle", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("cosine_max_epochs", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("two_optimizers_manual", "*", "metrics"): _EPOCH_NAME,
    ("gan_manual", "*", "metrics"): _EPOCH_NAME,
    ("log_combinations", "*", "metrics"): _EPOCH_NAME,
    ("log_combinations", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("torchmetrics", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("current_epoch_loss", "*", "metrics"): _EPOCH_NAME,
    ("current_epoch_loss", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("global_step_loss", "vectorized", "weights"): _GLOBAL_STEP_VECTORIZED,
    ("global_step_loss", "vectorized", "metrics"): _GLOBAL_STEP_VECTORIZED,
    ("global_step_loss", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("save_hyperparameters", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("training_step_dict", "*", "metrics"): _EPOCH_NAME,
    ("training_step_dict", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("on_train_batch_start_minus_one", "*", "hooks"): _MINUS_ONE,
    ("on_train_batch_start_minus_one", "*", "metrics"): _MINUS_ONE,
    ("clip_norm", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("clip_value", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("limit_train_batches", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("dropout", "vectorized", "weights"): _DROPOUT_VECTORIZED,
    ("dropout", "vectorized", "metrics"): _DROPOUT_VECTORIZED,
    ("dropout", "vectorized", "hooks"): _HOOKS_VECTORIZED,
}
"""``(variant, schedule or "*", aspect) -> reason`` of every difference from Lightning observed today."""


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for variant in CATALOGUE:
        for schedule in SCHEDULES:
            if schedule == "vectorized" and not variant.vectorize:
                continue
            cases.extend((variant.name, schedule, aspect) for aspect in ASPECTS)
    return cases


CASES = _cases()

_LIGHTNING: dict[str, Run] = {}
_LCV: dict[tuple[str, str], Run] = {}


def lcv_run(variant: Variant, schedule: str) -> Run:
    """Return lcv's run of ``variant`` under ``schedule`` (cached: three aspects share it)."""
    key = (variant.name, schedule)
    if key not in _LCV:
        _LCV[key] = run_lcv(variant, schedule)
    return _LCV[key]


def lightning_run(variant: Variant) -> Run:
    """Return Lightning's run of ``variant`` (cached: every schedule and aspect shares it)."""
    if variant.name not in _LIGHTNING:
        rng_state = lcv_run(variant, "interleaved").rng_state if variant.random_stream else None
        if variant.random_stream and rng_state is None:
            pytest.fail(f"{variant.name}: lcv never started fold 0's training, so its random stream is unknown")
        _LIGHTNING[variant.name] = run_lightning(variant, rng_state)
    return _LIGHTNING[variant.name]


def known_gap(variant: str, schedule: str, aspect: str) -> str | None:
    """Return the listed reason for this case (its schedule's entry first, then the ``"*"`` one)."""
    return KNOWN_GAPS.get((variant, schedule, aspect), KNOWN_GAPS.get((variant, "*", aspect)))


def test_known_gaps_name_real_cases() -> None:
    """Every KNOWN_GAPS entry names a catalogue variant, a schedule it runs under, and an aspect."""
    stale = [
        key for key in KNOWN_GAPS if not any((v, a) == (key[0], key[2]) and key[1] in ("*", s) for v, s, a in CASES)
    ]
    assert not stale, f"KNOWN_GAPS entries that match no case: {stale}"


def test_catalogue_is_large_enough() -> None:
    """The issue asks for at least 25 variants, each name once."""
    assert len(CATALOGUE) >= 25
    assert len(BY_NAME) == len(CATALOGUE)


@pytest.mark.parametrize(("variant", "schedule", "aspect"), CASES, ids=["-".join(c) for c in CASES])
def test_parity(variant: str, schedule: str, aspect: str, record_property: pytest.RecordProperty) -> None:
    """Fold 0 under lcv ends with Lightning's weights, logs Lightning's epoch metrics and sees its hook calls."""
    entry = BY_NAME[variant]
    reference = lightning_run(entry)
    run = lcv_run(entry, schedule)
    fallback = next((line for line in run.output.splitlines() if "falls back" in line), None)
    if fallback:  # the schedule ran as another one: say so with the case, whatever the outcome
        record_property("fallback", fallback)
        warnings.warn(f"{variant}: {fallback}", UserWarning, stacklevel=1)
    problem = compare(aspect, reference, run)
    gap = known_gap(variant, schedule, aspect)
    if gap is None:
        assert problem is None, f"{variant} under {schedule}: {problem}"
    elif problem is None:
        pytest.fail(
            f"{(variant, schedule, aspect)} matches Lightning now; remove it from KNOWN_GAPS (listed as: {gap})"
        )
    else:
        pytest.xfail(f"{gap} [observed: {problem[:400]}]")


LEAN = [
    v.name
    for v in CATALOGUE
    if v.name
    in (
        "sgd",
        "adam",
        "sgd_steplr",
        "step_interval_frequency",
        "reduce_on_plateau",
        "one_cycle",
        "accumulate_grad_batches_3",
        "clip_norm",
        "clip_value",
        "training_step_none",
        "current_epoch_loss",
        "global_step_loss",
        "torchmetrics",
        "dropout",
    )
]


@pytest.mark.parametrize("name", LEAN)
def test_lean_path_trains_as_lightning(name: str) -> None:
    """A module that overrides no step hook takes lcv's lean path (no recorder): the same weights and metrics."""
    variant = BY_NAME[name]
    assert not overrides(variant.build(), STEP_HOOKS), f"{name} overrides a step hook: it would not take the lean path"
    run = run_lcv(variant, "interleaved", record=False)
    reference = lightning_run(variant)
    for aspect in ("weights", "metrics"):
        problem = compare(aspect, reference, run)
        gap = KNOWN_GAPS.get((name, "interleaved", aspect)) or KNOWN_GAPS.get((name, "*", aspect))
        if gap is None:
            assert problem is None, f"{name} on the lean path: {problem}"


def parity_table() -> str:
    """Return the Markdown table of the docs' parity page: every variant and schedule, identical or why not."""
    lines = [
        "| module | interleaved | sequential | vectorized |",
        "| --- | --- | --- | --- |",
    ]
    for variant in CATALOGUE:
        cells = []
        for schedule in SCHEDULES:
            if schedule == "vectorized" and not variant.vectorize:
                cells.append("not run")
                continue
            gaps = sorted(
                {
                    aspect: KNOWN_GAPS.get((variant.name, schedule, aspect))
                    or KNOWN_GAPS.get((variant.name, "*", aspect))
                    for aspect in ASPECTS
                }.items()
            )
            differing = [aspect for aspect, gap in gaps if gap]
            keys = sorted({_footnote(gap) for _, gap in gaps if gap})
            notes = "".join(f"[^{key}]" for key in keys)
            cells.append("identical" if not differing else f"differs: {', '.join(differing)} {notes}")
        lines.append(f"| `{variant.name}` | " + " | ".join(cells) + " |")
    notes = {}
    for gap in KNOWN_GAPS.values():
        notes[_footnote(gap)] = gap.removeprefix("documented difference: ")
    lines.append("")
    lines.extend(f"[^{key}]: {text}" for key, text in sorted(notes.items()))
    return "\n".join(lines) + "\n"


def _footnote(gap: str) -> str:
    for key, reason in (
        ("vectorized-hooks", _HOOKS_VECTORIZED),
        ("epoch-name", _EPOCH_NAME),
        ("minus-one", _MINUS_ONE),
        ("dropout-vectorized", _DROPOUT_VECTORIZED),
        ("global-step-vectorized", _GLOBAL_STEP_VECTORIZED),
    ):
        if gap == reason:
            return key
    raise AssertionError(f"a KNOWN_GAPS reason without a footnote key: {gap}")


DOCS_PAGE = Path(__file__).resolve().parents[4] / "docs" / "guides" / "parity.md"
TABLE_START, TABLE_END = "<!-- parity table: start -->", "<!-- parity table: end -->"


def test_the_docs_parity_table_is_the_suites() -> None:
    """docs/guides/parity.md shows this suite's table (regenerate: python -m parity.test_parity in tests/)."""
    text = DOCS_PAGE.read_text(encoding="utf-8")
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip("\n") + "\n"
    assert table == parity_table(), "docs/guides/parity.md is out of date: run `python -m parity.test_parity` in tests/"


if __name__ == "__main__":
    page = DOCS_PAGE.read_text(encoding="utf-8")
    head, rest = page.split(TABLE_START, 1)
    DOCS_PAGE.write_text(
        head + TABLE_START + "\n" + parity_table() + TABLE_END + rest.split(TABLE_END, 1)[1], encoding="utf-8"
    )
