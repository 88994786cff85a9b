"""Several processes: DDP across devices, and the ``parallel`` schedule that spreads the folds over processes."""
