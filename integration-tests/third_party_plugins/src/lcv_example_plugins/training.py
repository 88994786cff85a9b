"""A callback (``example_epoch_counter``) and a logger (``example_jsonl``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class EpochCounter:
    """Count finished epochs and remember the best fold-mean of ``monitor``; the count survives a resume."""

    def __init__(self, monitor: str = "val_loss") -> None:
        self.monitor = monitor
        self.epochs = 0
        self.best: float | None = None

    def on_validation_end(self, *, epoch: int, metrics: dict[str, float], **kwargs: Any) -> None:
        self.epochs += 1
        value = metrics.get(f"cv/{self.monitor}_mean")
        if value is not None:
            self.best = value if self.best is None else min(self.best, float(value))

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs, self.best = int(state["epochs"]), state["best"]


class JsonLinesLogger:
    """Write one JSON line per call to ``<root_dir>/metrics.jsonl`` (lcv gives each logger ``<run>/logs/<name>``)."""

    def __init__(self, root_dir: str | Path = ".") -> None:
        self.root_dir = Path(root_dir)
        self.path = self.root_dir / "metrics.jsonl"

    @property
    def name(self) -> str:
        return "example_jsonl"

    @property
    def version(self) -> str:
        return "0"

    def _write(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=str) + "\n")

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self._write({"hparams": params})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._write({"step": step, **{k: float(v) for k, v in metrics.items()}})

    def save(self) -> None:
        pass

    def finalize(self, status: str) -> None:
        self._write({"status": status})
