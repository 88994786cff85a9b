"""The ``vectorized`` schedule's engine: all k folds stepped as one batched computation (vmap or grouped kernels)."""
