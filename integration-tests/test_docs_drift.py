"""The docs against what is installed and what a run really writes: they fail when the docs drift.

- ``docs/concepts.md``'s plugin table against the entry points of the installed lcv distributions;
- the run-directory tables (getting started, tuning guide) against a real run of ``examples/digits``;
- the configuration reference's logger names against the ``lcv.loggers`` entry points.
"""

from __future__ import annotations

import re
from collections import defaultdict
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from lcv_config.groups import GROUPS, is_first_party

if TYPE_CHECKING:
    from conftest import LcvCli

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits" / "config.yaml"
TINY = [
    "trainer.max_epochs=1",
    "data.splitter.cfg.n_splits=2",
    "model.cfg.hidden=[16]",
    "trainer.enable_progress_bar=false",
]
CODE = re.compile(r"`([^`]+)`")


def installed_entry_points() -> dict[str, dict[str, set[str]]]:
    """Return ``{group: {distribution: names}}`` for the lcv groups registered by lcv's own distributions.

    A third party's (lcv-example-plugins, installed for the plugin tests) is not documented there.
    """
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if is_first_party(name):
            for entry in dist.entry_points:
                if entry.group in GROUPS:
                    found[entry.group][name].add(entry.name)
    return found


def table(page: Path, header: str) -> list[list[str]]:
    """Return the rows (cells) of the Markdown table whose header row starts with ``header``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_concepts_plugin_table_lists_every_installed_entry_point() -> None:
    rows = table(REPO / "docs" / "concepts.md", "| group | registers |")
    documented: dict[str, dict[str, set[str]]] = {}
    for cells in rows:
        group = CODE.fullmatch(cells[0])
        assert group, f"first cell of {cells} is not a `group`"
        # "`a`, `b` (lcv-data); `c` (lcv-core)": names, then the distribution registering them
        documented[group.group(1)] = {
            dist: set(CODE.findall(names)) for names, dist in re.findall(r"([^;()]+)\((lcv-[\w-]+)\)", cells[2])
        }
    installed = {group: {d: set(n) for d, n in dists.items()} for group, dists in installed_entry_points().items()}
    assert set(documented) == set(GROUPS), "docs/concepts.md must have one row per group of lcv_config.groups.GROUPS"
    for group in GROUPS:
        expected = "; ".join(
            f"{', '.join(f'`{n}`' for n in sorted(names))} ({dist})" for dist, names in sorted(installed[group].items())
        )
        assert documented[group] == installed.get(group, {}), f"docs/concepts.md, row {group}: write {expected}"


def documented_files(page: Path, header: str) -> tuple[dict[str, str], set[str]]:
    """Return ``{path pattern: description}`` of a run-directory table, and the patterns that may be absent."""
    entries, optional = {}, set()
    for cells in table(page, header):
        name = CODE.fullmatch(cells[0])
        assert name, f"{page.name}: first cell of {cells} is not a `path`"
        entries[name.group(1)] = cells[1]
        if cells[1].startswith("Only when"):
            optional.add(name.group(1))
    return entries, optional


def compare(run_dir: Path, page: Path, header: str) -> None:
    """Fail unless the table in ``page`` names exactly what ``run_dir`` holds (directories with a trailing ``/``)."""
    entries, optional = documented_files(page, header)
    patterns = {
        e: re.compile(re.escape(e).replace(re.escape("<n>"), r"\d+").replace(re.escape("<i>"), r"\d+")) for e in entries
    }
    actual = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    covered = set()
    for path in actual:
        hits = [e for e, rx in patterns.items() if rx.fullmatch(path) or (e.endswith("/") and rx.match(path))]
        assert hits, f"{path} is in a real run directory but not in the table of {page.relative_to(REPO)}"
        covered.update(hits)
        for entry in (e for e in hits if e.endswith("/")):
            inner = path[rx_end(patterns[entry], path) :].split("/")[0]
            assert inner in CODE.findall(entries[entry]) or f"{inner}/" in CODE.findall(entries[entry]), (
                f"{page.relative_to(REPO)}: the row {entry} does not name `{inner}`, which a real run writes there"
            )
    missing = set(entries) - covered - optional
    assert not missing, f"{page.relative_to(REPO)} lists {sorted(missing)}, which a real run does not write"


def rx_end(pattern: re.Pattern[str], path: str) -> int:
    match = pattern.match(path)
    assert match
    return match.end()


def test_the_run_directory_table_matches_a_real_run(tmp_path: Path, lcv_cli: LcvCli) -> None:
    run_dir = tmp_path / "run"
    result = lcv_cli.run(["cv", str(DIGITS), *TINY, "--run-dir", str(run_dir)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    compare(run_dir, REPO / "docs" / "getting-started.md", "| file | contents |")


def test_the_tuning_run_directory_table_matches_a_real_study(tmp_path: Path, lcv_cli: LcvCli) -> None:
    tune = tmp_path / "tune.yaml"
    space = {"optimizer.cfg.lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}}
    tune.write_text(yaml.safe_dump({"tune": {"backend": "optuna", "space": space}}), encoding="utf-8")
    run_dir = tmp_path / "run"
    args = ["tune", str(DIGITS), str(tune), *TINY, "--n-trials", "1", "--run-dir", str(run_dir)]
    result = lcv_cli.run(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    compare(run_dir, REPO / "docs" / "guides" / "tuning.md", "| file | what |")


def test_the_config_reference_names_the_registered_loggers() -> None:
    row = next(
        line
        for line in (REPO / "docs/reference/config.md").read_text("utf-8").splitlines()
        if line.startswith("| `loggers`")
    )
    names = {n for dists in installed_entry_points()["lcv.loggers"].values() for n in dists}
    assert "WandbLogger" not in row, "the W&B guide says Lightning's WandbLogger drops rows: name `wandb` instead"
    assert names <= set(CODE.findall(row)) | set(re.findall(r"``(\w+)``", row)), (
        f"name every lcv.loggers plugin: {names}"
    )
