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

import pytest

from parity.catalogue import BY_NAME, CATALOGUE, Variant
from parity.harness import Run, compare, run_lcv, run_lightning

SCHEDULES = ("interleaved", "sequential", "vectorized")
ASPECTS = ("weights", "metrics", "hooks")

_HOOKS = (
    "setup/teardown/configure_callbacks/on_train_start/on_train_end/on_validation_start/on_validation_end/"
    "on_validation_model_eval/zero_grad and the batch-transfer hooks are never called; optimizer_step/"
    "optimizer_zero_grad/backward/configure_gradient_clipping/clip_gradients are bypassed; on_train_epoch_end "
    "runs before validation instead of after on_validation_end"
)
_HOOKS_MANUAL = (
    "setup/teardown/configure_callbacks/on_train_start/on_train_end/on_validation_start/on_validation_end/"
    "on_validation_model_eval/zero_grad and the batch-transfer hooks are never called; manual_backward skips "
    "on_before_backward/backward/on_after_backward and optimizer.step() skips on_before_optimizer_step; "
    "on_train_epoch_end runs before validation"
)
_HOOKS_VECTORIZED = (
    "vectorized calls no per-batch or epoch hook on the module, and its vmap trial calls training_step/"
    "validation_step once more before training"
)
_EPOCH_NAME = "on_step=True, on_epoch=True logs '<name>_epoch' in Lightning; lcv's history names it '<name>'"
_MONITOR = "lcv refuses a fit whose module logs no 'val_loss' (monitor); Lightning trains it"
_NO_TRAINER = (
    "configure_optimizers() runs before the module has a trainer: self.trainer.estimated_stepping_batches / "
    "max_epochs raise 'not attached to a Trainer'"
)
_TOGGLE = (
    "self.toggle_optimizer() reads self.trainer.optimizers, which Fabric's stand-in trainer lacks (AttributeError)"
)
_LAZY_LAYERS = "lcv never calls setup()/configure_model(): configure_optimizers() gets an empty parameter list"
_VMAP_METRICS = (
    "vectorized falls back (training_step fails under vmap) but its trial left vmapped tensors in the torchmetrics "
    "states: the fallback run raises"
)

_OPTIMIZER_STEP = "an overridden optimizer_step() is never called (lcv steps the optimizer itself): no LR warm-up"
_ZERO_GRAD = "an overridden optimizer_zero_grad() is never called (lcv zeroes gradients after every step)"
_BACKWARD = "an overridden backward() is never called (lcv runs loss.backward() itself)"
_CLIPPING = "an overridden configure_gradient_clipping() is never called (lcv clips only by gradient_clip_val)"
_SCHEDULER_STEP = "an overridden lr_scheduler_step() is never called (lcv steps the scheduler itself every epoch)"
_CURRENT_EPOCH = "self.current_epoch is always 0 in the module under lcv: the epoch-1 L1 penalty never switches on"
_CURRENT_EPOCH_METRICS = f"{_CURRENT_EPOCH}; {_EPOCH_NAME}"
_GLOBAL_STEP = "self.global_step is always 0 in the module under lcv: the loss is never rescaled, seen_step logs 0"
_MINUS_ONE = (
    "Lightning validates no epoch that on_train_batch_start ended with -1 (no epoch metrics are logged); "
    "lcv validates it"
)
_DROPOUT_VECTORIZED = (
    "vectorized draws dropout under vmap(randomness='different'): same distribution, other numbers than fold 0's "
    "own stream (documented in lcv's vectorized engine)"
)
_CLIP_ORDER = (
    "lcv clips gradients before on_before_optimizer_step; Lightning calls the hook first, so the logged gradient "
    "norms are the clipped ones under lcv"
)

KNOWN_GAPS: dict[tuple[str, str, str], str] = {
    ("boring_model", "*", "weights"): _MONITOR,
    ("boring_model", "*", "metrics"): _MONITOR,
    ("boring_model", "*", "hooks"): _MONITOR,
    ("boring_model_logged", "*", "hooks"): _HOOKS,
    ("boring_model_logged", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("manual_optim_boring_model", "*", "hooks"): _HOOKS_MANUAL,
    ("demo_model", "*", "weights"): _MONITOR,
    ("demo_model", "*", "metrics"): _MONITOR,
    ("demo_model", "*", "hooks"): _MONITOR,
    ("demo_model_logged", "*", "hooks"): _HOOKS,
    ("demo_model_logged", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("sgd", "*", "hooks"): _HOOKS,
    ("sgd", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("sgd_steplr", "*", "hooks"): _HOOKS,
    ("sgd_steplr", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("momentum_sgd", "*", "hooks"): _HOOKS,
    ("momentum_sgd", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("adam", "*", "hooks"): _HOOKS,
    ("adam", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("step_interval_frequency", "*", "hooks"): _HOOKS,
    ("step_interval_frequency", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("reduce_on_plateau", "*", "hooks"): _HOOKS,
    ("one_cycle", "*", "weights"): _NO_TRAINER,
    ("one_cycle", "*", "metrics"): _NO_TRAINER,
    ("one_cycle", "*", "hooks"): _NO_TRAINER,
    ("cosine_max_epochs", "*", "weights"): _NO_TRAINER,
    ("cosine_max_epochs", "*", "metrics"): _NO_TRAINER,
    ("cosine_max_epochs", "*", "hooks"): _NO_TRAINER,
    ("warmup_optimizer_step", "*", "hooks"): _HOOKS,
    ("warmup_optimizer_step", "*", "weights"): _OPTIMIZER_STEP,
    ("warmup_optimizer_step", "*", "metrics"): _OPTIMIZER_STEP,
    ("optimizer_zero_grad", "*", "hooks"): _HOOKS,
    ("optimizer_zero_grad", "*", "weights"): _ZERO_GRAD,
    ("optimizer_zero_grad", "*", "metrics"): _ZERO_GRAD,
    ("backward", "*", "hooks"): _HOOKS,
    ("backward", "*", "weights"): _BACKWARD,
    ("backward", "*", "metrics"): _BACKWARD,
    ("configure_gradient_clipping", "*", "hooks"): _HOOKS,
    ("configure_gradient_clipping", "*", "weights"): _CLIPPING,
    ("configure_gradient_clipping", "*", "metrics"): _CLIPPING,
    ("lr_scheduler_step", "*", "hooks"): _HOOKS,
    ("lr_scheduler_step", "*", "weights"): _SCHEDULER_STEP,
    ("lr_scheduler_step", "*", "metrics"): _SCHEDULER_STEP,
    ("two_optimizers_manual", "*", "hooks"): _HOOKS_MANUAL,
    ("two_optimizers_manual", "*", "metrics"): _EPOCH_NAME,
    ("gan_manual", "*", "weights"): _TOGGLE,
    ("gan_manual", "*", "metrics"): _TOGGLE,
    ("gan_manual", "*", "hooks"): _TOGGLE,
    ("log_combinations", "*", "hooks"): _HOOKS,
    ("log_combinations", "*", "metrics"): _EPOCH_NAME,
    ("log_combinations", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("torchmetrics", "*", "hooks"): _HOOKS,
    ("torchmetrics", "vectorized", "weights"): _VMAP_METRICS,
    ("torchmetrics", "vectorized", "metrics"): _VMAP_METRICS,
    ("torchmetrics", "vectorized", "hooks"): _VMAP_METRICS,
    ("epoch_end_outputs", "*", "hooks"): _HOOKS,
    ("grad_norm_clip_norm", "*", "hooks"): _HOOKS,
    ("grad_norm_clip_norm", "*", "metrics"): _CLIP_ORDER,
    ("current_epoch_loss", "*", "hooks"): _HOOKS,
    ("current_epoch_loss", "*", "weights"): _CURRENT_EPOCH,
    ("current_epoch_loss", "*", "metrics"): _CURRENT_EPOCH_METRICS,
    ("current_epoch_loss", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("global_step_loss", "*", "hooks"): _HOOKS,
    ("global_step_loss", "*", "weights"): _GLOBAL_STEP,
    ("global_step_loss", "*", "metrics"): _GLOBAL_STEP,
    ("global_step_loss", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("layers_in_setup", "*", "weights"): _LAZY_LAYERS,
    ("layers_in_setup", "*", "metrics"): _LAZY_LAYERS,
    ("layers_in_setup", "*", "hooks"): _LAZY_LAYERS,
    ("layers_in_configure_model", "*", "weights"): _LAZY_LAYERS,
    ("layers_in_configure_model", "*", "metrics"): _LAZY_LAYERS,
    ("layers_in_configure_model", "*", "hooks"): _LAZY_LAYERS,
    ("save_hyperparameters", "*", "hooks"): _HOOKS,
    ("save_hyperparameters", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("training_step_dict", "*", "hooks"): _HOOKS,
    ("training_step_dict", "*", "metrics"): _EPOCH_NAME,
    ("training_step_dict", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("training_step_none", "*", "hooks"): _HOOKS,
    ("on_train_batch_start_minus_one", "*", "hooks"): _HOOKS,
    ("on_train_batch_start_minus_one", "*", "metrics"): _MINUS_ONE,
    ("accumulate_grad_batches_3", "*", "hooks"): _HOOKS,
    ("clip_norm", "*", "hooks"): _HOOKS,
    ("clip_norm", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("clip_value", "*", "hooks"): _HOOKS,
    ("clip_value", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("limit_train_batches", "*", "hooks"): _HOOKS,
    ("limit_train_batches", "vectorized", "hooks"): _HOOKS_VECTORIZED,
    ("dropout", "*", "hooks"): _HOOKS,
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
