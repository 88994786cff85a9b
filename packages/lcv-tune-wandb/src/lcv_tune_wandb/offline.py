"""Read back what an offline W&B run wrote, without a server: its config, history rows and summary.

An offline run keeps everything in one ``run-<id>.wandb`` file (W&B writes no ``wandb-summary.json`` offline): a
7-byte W&B header, then LevelDB-log framed records (32 KiB blocks, 7-byte record headers), each a
``wandb.proto.wandb_internal_pb2.Record`` protobuf.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcv_config import LcvError

_BLOCK = 32 * 1024
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    """The contents of one offline W&B run."""

    run_id: str = ""
    """The run's id."""
    group: str = ""
    """The run's group (the study)."""
    name: str = ""
    """The run's display name."""
    config: dict[str, Any] = field(default_factory=dict)
    """The run's config (the trial's parameters)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One dict per logged row, with ``_step``."""
    summary: dict[str, Any] = field(default_factory=dict)
    """The run's final summary."""
    exit_code: int | None = None
    """The exit code ``run.finish`` recorded, or ``None`` if the run never finished."""


def _records(data: bytes) -> list[bytes]:
    if data[:4] != b":W&B":
        raise LcvError("Not a W&B run file: it does not start with the ':W&B' header.")
    out: list[bytes] = []
    pos, pending = _HEADER, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # the writer pads a block's tail that cannot hold a record header
            pos += left
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        if kind == 0 and length == 0:
            pos += left
            continue
        body = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == _FULL:
            out.append(body)
        elif kind == _FIRST:
            pending = body
        elif kind == _MIDDLE:
            pending += body
        elif kind == _LAST:
            out.append(pending + body)
            pending = b""
    return out


def _key(item: Any) -> str:
    return ".".join(item.nested_key) if item.nested_key else str(item.key)


def read_offline_run(run_dir: str | Path, wait: float = 0.0) -> OfflineRun:
    """Read an offline run directory (``wandb/offline-run-<time>-<id>``) or its ``run-<id>.wandb`` file.

    Args:
        run_dir: The run's directory or its ``.wandb`` file.
        wait: Seconds to wait for the run's exit record: W&B's service process writes the file after
            ``run.finish()`` returns, so a run read right away may still be incomplete.

    Raises:
        LcvError: No run file is there, or it is not a W&B run file.
    """
    deadline = time.monotonic() + wait
    run = _read_once(run_dir)
    while run.exit_code is None and time.monotonic() < deadline:
        time.sleep(0.1)
        run = _read_once(run_dir)
    return run


def _read_once(run_dir: str | Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(run_dir)
    files = [path] if path.is_file() else sorted(path.glob("run-*.wandb"))
    if not files:
        raise LcvError(f"No 'run-*.wandb' file in {path}; is it an offline W&B run directory?")
    run = OfflineRun()
    for blob in _records(files[0].read_bytes()):
        record = pb.Record()  # type: ignore[attr-defined]  # generated protobuf module, no stubs
        record.ParseFromString(blob)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.group, run.name = record.run.run_id, record.run.run_group, record.run.display_name
            for item in record.run.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            row = {_key(i): json.loads(i.value_json) for i in record.history.item}
            if record.history.HasField("step") and "_step" not in row:
                row["_step"] = record.history.step.num
            run.history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[_key(item)] = json.loads(item.value_json)
            for item in record.summary.remove:
                run.summary.pop(_key(item), None)
        elif kind == "exit":
            run.exit_code = int(record.exit.exit_code)
    run.config = {
        k: v.get("value", v) if isinstance(v, dict) and set(v) <= {"value", "desc"} else v
        for k, v in run.config.items()
        if not k.startswith("_")
    }
    return run
