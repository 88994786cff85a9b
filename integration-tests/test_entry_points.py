"""The packages find each other only through entry points, and every entry point loads."""

from __future__ import annotations

import ast
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lcv_config import GROUPS, list_plugins, load_plugins
from lcv_config.groups import is_first_party
from lcv_config.plugins import clashes, qualified_name

if TYPE_CHECKING:
    from conftest import LcvCli  # the fixture's type; conftest is not importable at run time in every import mode

PACKAGES = {
    "lcv-config": "lcv_config",
    "lcv-core": "lcv_core",
    "lcv-data": "lcv_data",
    "lcv-tune-optuna": "lcv_tune_optuna",
    "lcv-tune-wandb": "lcv_tune_wandb",
}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _source_dir(import_name: str) -> Path:
    module = __import__(import_name)
    return Path(module.__file__).parent


@pytest.mark.parametrize("distribution", sorted(PACKAGES))
def test_every_lcv_package_is_installed(distribution: str) -> None:
    assert metadata.version(distribution)


@pytest.mark.parametrize("group", GROUPS)
def test_every_plugin_in_every_group_loads(group: str) -> None:
    loaded, failed = load_plugins(group)
    assert not failed, "\n".join(str(e) for e in failed.values())
    plugins = list_plugins(group)
    # a name two distributions register is loaded under each distribution:name too
    shared = {qualified_name(p) for sharing in clashes(plugins).values() for p in sharing}
    assert set(loaded) == {p.name for p in plugins} | shared


def test_groups_hold_the_plugins_of_each_package() -> None:
    plugins = [p for group in GROUPS for p in list_plugins(group) if is_first_party(p.distribution)]
    owners = {(p.group, p.name): p.distribution for p in plugins}
    assert owners[("lcv.splitters", "stratified_kfold")] == "lcv-data"
    assert owners[("lcv.datamodules", "digits")] == "lcv-data"
    assert owners[("lcv.transforms", "standardize")] == "lcv-data"
    assert owners[("lcv.commands", "cv")] == "lcv-core"
    assert owners[("lcv.tuners", "optuna")] == "lcv-tune-optuna"
    assert owners[("lcv.tuners", "wandb")] == "lcv-tune-wandb"


def test_lcv_components_lists_plugins_of_every_package(lcv_cli: LcvCli, tmp_path: Path) -> None:
    result: subprocess.CompletedProcess[str] = lcv_cli.run(["components"], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {tuple(cell.strip() for cell in line.split("│")[:2]) for line in result.stdout.splitlines() if "│" in line}
    for splitter in ("kfold", "stratified_kfold", "group_kfold", "time_series"):
        assert (splitter, "lcv-data") in rows, result.stdout
    assert ("cv", "lcv-core") in rows, result.stdout


@pytest.mark.parametrize(("distribution", "import_name"), sorted(PACKAGES.items()))
def test_no_package_imports_a_sibling_other_than_lcv_config(distribution: str, import_name: str) -> None:
    siblings = {name for name in PACKAGES.values() if name not in (import_name, "lcv_config")}
    sources = sorted(_source_dir(import_name).rglob("*.py"))
    assert sources, f"no source files found for {distribution}"
    offending = {
        f"{path.name}: {module}"
        for path in sources
        for module in _imported_modules(path)
        if module.split(".")[0] in siblings
    }
    assert not offending, f"{distribution} imports a sibling directly; use an entry point instead: {sorted(offending)}"


def test_lcv_config_never_imports_heavy_libraries() -> None:
    heavy = {"torch", "lightning", "optuna", "wandb", "sklearn"}
    offending = {
        f"{path.name}: {module}"
        for path in sorted(_source_dir("lcv_config").rglob("*.py"))
        for module in _imported_modules(path)
        if module.split(".")[0] in heavy
    }
    assert not offending, sorted(offending)
