"""The configuration reference page is generated from the schema and committed up to date."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcv_config.reference import config_reference, field_docstrings, render_section
from lcv_config.schema import ExperimentConfig, TrainerConfig

PAGE = Path(__file__).resolve().parents[3] / "docs" / "reference" / "config.md"


def test_the_committed_page_is_up_to_date() -> None:
    if not PAGE.parent.is_dir():
        pytest.skip("not a repository checkout: no docs/ folder")
    assert PAGE.read_text(encoding="utf-8") == config_reference(), (
        "docs/reference/config.md is out of date; run: python scripts/gen_config_reference.py"
    )


def test_every_field_of_every_section_is_documented() -> None:
    page = config_reference()
    for model in (ExperimentConfig, TrainerConfig):
        for name in model.model_fields:
            assert f"| `{name}` |" in page
    assert "## `trainer`" in page and "## `data`" in page and "## `tune`" in page


def test_a_row_shows_type_bounds_default_and_docstring() -> None:
    row = next(line for line in render_section("trainer", TrainerConfig).splitlines() if "`max_epochs`" in line)
    assert row == "| `max_epochs` | `int, ≥ 1, ≤ 1000000` | `10` | Stop after this many epochs. |"
    assert field_docstrings(ExperimentConfig)["seed"] == "Seed of splits, model initialisation and shuffling."
