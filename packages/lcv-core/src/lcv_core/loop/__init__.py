"""The fold loop: the trainer, its run state, the schedules, one fold's epoch, metric logging, checkpoints.

Everything here runs one cross-validation fit; [`CrossValidationTrainer`][lcv_core.CrossValidationTrainer] is the entry
point. The other modules are the parts it is composed of.
"""
