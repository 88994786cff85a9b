"""The public surface of lcv_core is what __all__ lists; this pins it."""

from __future__ import annotations

import lcv_core


def test_public_api_is_pinned() -> None:
    assert sorted(lcv_core.__all__) == sorted(
        [
            "CLASSIFICATION_METRICS",
            "MLP",
            "REGRESSION_METRICS",
            "CVResult",
            "Callback",
            "CrossValidationTrainer",
            "CrossValidationTrainerConfig",
            "EarlyStopping",
            "GradientAccumulationScheduler",
            "LRFinderResult",
            "LearningRateMonitor",
            "LossReturningLearner",
            "MetricSummary",
            "ModelCheckpoint",
            "NestedResult",
            "ModelSummary",
            "PredictResult",
            "RichProgressBar",
            "SupervisedLearner",
            "TestResult",
            "Timer",
            "TrainerConfig",
            "TuneResult",
            "TunerPruning",
            "__version__",
            "configure_all",
            "lr_find",
            "nested_tune",
            "out_of_fold_predictions",
            "predict",
            "refit",
            "scale_batch_size",
            "test",
            "tune",
        ]
    )
    assert all(hasattr(lcv_core, name) for name in lcv_core.__all__)
    assert lcv_core.CrossValidationTrainerConfig is lcv_core.TrainerConfig
