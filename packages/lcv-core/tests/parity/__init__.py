"""Lightning parity suite: LightningModules trained under lightning.Trainer and under lcv, compared (issue #18)."""
