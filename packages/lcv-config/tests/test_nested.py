"""Nested components: ``{name, cfg}`` mappings inside ``cfg`` are built first; data stays data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lcv_config import ConfigError, build, register
from lcv_config.registry import KINDS, Kind, is_component


@pytest.fixture
def kinds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two scratch kinds, ``widget`` and ``part``, with a few registered classes."""
    from lcv_config import registry

    monkeypatch.setitem(KINDS, "widget", Kind("widget"))
    monkeypatch.setitem(KINDS, "part", Kind("part"))

    @register("part", "gear")
    class Gear:
        def __init__(self, teeth: int = 10) -> None:
            self.teeth = teeth

    @register("widget", "box")
    class Box:
        def __init__(self, part: Any = None, parts: Any = (), extras: Any = None, meta: dict[str, Any] | None = None):
            self.part, self.parts, self.extras, self.meta = part, parts, extras, meta

    yield
    registry._REGISTERED.pop("widget", None)
    registry._REGISTERED.pop("part", None)


def test_a_nested_component_is_built_with_the_kind_its_argument_names(kinds: None) -> None:
    box = build("widget", {"name": "box", "cfg": {"part": {"name": "gear", "cfg": {"teeth": 12}}}})
    assert type(box.part).__name__ == "Gear" and box.part.teeth == 12


def test_nested_components_in_lists_and_at_depth(kinds: None) -> None:
    box = build(
        "widget",
        {
            "name": "box",
            "cfg": {
                "parts": [{"name": "gear", "cfg": {"teeth": 1}}, {"name": "gear", "cfg": {}}],
                "extras": {"inner": [{"name": "collections.OrderedDict", "cfg": {"a": 1}}]},
            },
        },
    )
    assert [p.teeth for p in box.parts] == [1, 10]
    inner = box.extras["inner"][0]
    assert type(inner).__name__ == "OrderedDict" and inner == {"a": 1}


def test_a_nested_registered_name_under_an_unrelated_argument_is_found_in_its_kind(kinds: None) -> None:
    box = build("widget", {"name": "box", "cfg": {"extras": {"name": "gear", "cfg": {"teeth": 3}}}})
    assert box.extras.teeth == 3


def test_mappings_that_are_data_are_passed_unchanged(kinds: None) -> None:
    only_name = {"name": "gear"}  # no cfg: data
    more_keys = {"name": "gear", "cfg": {}, "note": "x"}  # other keys: data
    box = build("widget", {"name": "box", "cfg": {"extras": [only_name, more_keys]}})
    assert box.extras == [only_name, more_keys]
    annotated = build("widget", {"name": "box", "cfg": {"meta": {"name": "gear", "cfg": {}}}})
    assert annotated.meta == {"name": "gear", "cfg": {}}  # meta is annotated dict: never built


def test_an_unknown_nested_name_names_its_path(kinds: None) -> None:
    with pytest.raises(ConfigError, match=r"Unknown part 'gaer' at widget.cfg.part.name. Did you mean 'gear'\?"):
        build("widget", {"name": "box", "cfg": {"part": {"name": "gaer", "cfg": {}}}})
    with pytest.raises(ConfigError, match=r"Unknown component 'gaer'.*Did you mean 'gear'.*dotted path") as info:
        build("widget", {"name": "box", "cfg": {"extras": [{"name": "gaer", "cfg": {}}]}})
    assert info.value.path == "widget.cfg.extras[0].name"


def test_a_nested_argument_error_names_the_nested_path(kinds: None) -> None:
    with pytest.raises(ConfigError, match=r"Unknown argument 'teth'.*Did you mean 'teeth'") as info:
        build("widget", {"name": "box", "cfg": {"part": {"name": "gear", "cfg": {"teth": 3}}}})
    assert info.value.path == "widget.cfg.part.cfg.teth"


def test_is_component() -> None:
    assert is_component({"name": "x", "cfg": {}})
    assert not is_component({"name": "x"})
    assert not is_component({"name": 3, "cfg": {}})
    assert not is_component({"name": "x", "cfg": [1]})


def test_arguments_the_target_builds_itself_are_passed_as_written(kinds: None) -> None:
    @register("widget", "lazy_box")
    class LazyBox:
        lcv_spec_arguments = ("part",)

        def __init__(self, part: Any = None) -> None:
            self.part = part

    spec = {"name": "gear", "cfg": {"teeth": 5}}
    assert build("widget", {"name": "lazy_box", "cfg": {"part": spec}}).part == spec
