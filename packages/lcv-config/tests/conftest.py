"""Fixtures: real distributions written to a temporary folder that importlib.metadata discovers."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

FakeDist = Callable[..., Path]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on ``sys.path`` (first) that fake distributions and their modules are written to."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.fixture
def fake_dist(site: Path) -> Iterator[FakeDist]:
    """Write an installed distribution: ``NAME-VERSION.dist-info`` with METADATA and entry_points.txt, plus modules.

    Call it as ``fake_dist("fakepkg", {"lcv.tuners": {"rnd": "fakepkg_mod:Tuner"}}, modules={"fakepkg_mod": "..."})``.
    """
    created: list[str] = []

    def make(
        name: str,
        entry_points: Mapping[str, Mapping[str, str]],
        modules: Mapping[str, str] | None = None,
        version: str = "1.0",
    ) -> Path:
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
        lines = []
        for group, entries in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{n} = {target}" for n, target in entries.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for module, source in (modules or {}).items():
            (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            created.append(module)
        return info

    yield make
    for module in created:
        sys.modules.pop(module, None)
