"""Trainer options known under other names (lightning-cv, Lightning, NeuroMANCER) and lcv's name for each.

One table serves the error for an unknown ``TrainerConfig`` key (from a config file or from Python) and the
migration guide (``docs/migrating.md``), which a test keeps identical to `renamed_options_table()`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RenamedOption:
    """A trainer option of another library and what lcv calls it."""

    origin: str
    """The library that uses the name (``lightning-cv``, ``Lightning``, ``NeuroMANCER``)."""
    lcv: str | None
    """lcv's ``trainer`` key for the same setting, or ``None`` when lcv has no key for it."""
    note: str = ""
    """What to write in lcv instead, or how lcv's key differs."""

    def hint(self, key: str) -> str:
        """Return the sentence an error adds for ``key``: its origin, lcv's name and the note."""
        text = f" '{key}' is {self.origin}'s name"
        text += f"; lcv calls it '{self.lcv}'." if self.lcv else "; lcv has no such trainer option."
        return text + (f" {self.note}" if self.note else "")


RENAMED_OPTIONS: dict[str, RenamedOption] = {
    "grad_accum_steps": RenamedOption("lightning-cv", "accumulate_grad_batches"),
    "validation_frequency": RenamedOption("lightning-cv", "check_val_every_n_epoch"),
    "checkpoint_dir": RenamedOption(
        "lightning-cv", "default_root_dir", "Checkpoints go to the checkpoints/ folder inside it."
    ),
    "checkpoint_frequency": RenamedOption(
        "lightning-cv", None, "Add the model_checkpoint callback: callbacks: [{name: model_checkpoint, cfg: {...}}]."
    ),
    "logger": RenamedOption("Lightning", "loggers", "It takes a list: loggers: [csv, tensorboard]."),
    "enable_checkpointing": RenamedOption(
        "Lightning", None, "Add the model_checkpoint callback: callbacks: [{name: model_checkpoint, cfg: {...}}]."
    ),
    "enable_model_summary": RenamedOption(
        "Lightning", None, "Add the model_summary callback: callbacks: [model_summary]."
    ),
    "val_check_interval": RenamedOption(
        "Lightning", "check_val_every_n_epoch", "lcv validates after whole epochs (an integer number of epochs)."
    ),
    "gpus": RenamedOption("Lightning 1.x", "devices", "Set accelerator: gpu (or cuda) and devices: N."),
    "resume_from_checkpoint": RenamedOption(
        "Lightning 1.x", None, "Pass ckpt_path to CrossValidationTrainer.fit, or run lcv cv --resume RUN."
    ),
    "epochs": RenamedOption("NeuroMANCER", "max_epochs"),
    "clip": RenamedOption("NeuroMANCER", "gradient_clip_val"),
    "patience": RenamedOption(
        "NeuroMANCER", None, "Add the early_stopping callback: callbacks: [{name: early_stopping, cfg: {patience: N}}]."
    ),
    "warmup": RenamedOption(
        "NeuroMANCER", None, "Add the early_stopping callback: callbacks: [{name: early_stopping, cfg: {warmup: N}}]."
    ),
}
"""Trainer options of lightning-cv, Lightning and NeuroMANCER that lcv names differently or handles elsewhere."""


def renamed_options_table() -> str:
    """Return [`RENAMED_OPTIONS`][lcv_config.RENAMED_OPTIONS] as the Markdown table the migration guide shows."""
    lines = ["| option | from | lcv | note |", "|---|---|---|---|"]
    for key, option in RENAMED_OPTIONS.items():
        lcv = f"`trainer.{option.lcv}`" if option.lcv else "(none)"
        note = option.note.replace("|", "\\|")
        lines.append(f"| `{key}` | {option.origin} | {lcv} | {note} |")
    return "\n".join(lines) + "\n"


__all__ = ["RENAMED_OPTIONS", "RenamedOption", "renamed_options_table"]
