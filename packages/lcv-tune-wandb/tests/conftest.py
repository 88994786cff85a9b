from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("sweeps") is None:
    reason = "the 'sweeps' engine is not installed: pip install 'lcv-tune-wandb[local]' && pip install --no-deps sweeps"
    if os.environ.get("CI") == "true":
        raise RuntimeError(reason)
    pytest.skip(reason, allow_module_level=True)


class _NoNetwork(socket.socket):
    def connect(self, address: Any) -> None:
        if isinstance(address, tuple):  # AF_INET/AF_INET6; W&B's local service socket is allowed
            host = str(address[0])
            if host not in ("127.0.0.1", "::1", "localhost"):
                raise OSError(f"network disabled in tests: connect to {address}")
        super().connect(address)


@pytest.fixture(autouse=True)
def _offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / ".config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / ".cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / ".data"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setattr(socket, "socket", _NoNetwork)
    yield
