"""The component registry: resolution order, errors with suggestions, argument checks, building."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lcv_config import Component, ConfigError, LcvError, build, register, registered_names, resolve
from lcv_config.groups import KNOWN_PROVIDERS, TUNERS
from lcv_config.registry import KINDS, Kind, check_arguments, unregister

OPTIM = """
class Adam:
    def __init__(self, params, lr: float = 0.001, betas=(0.9, 0.999), weight_decay: float = 0.0):
        self.params, self.lr, self.betas, self.weight_decay = params, lr, betas, weight_decay


class SGD:
    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False):
        if momentum < 0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        self.params, self.lr, self.momentum = params, lr, momentum


class AdamW(Adam):
    pass
"""


@pytest.fixture
def fake_optim(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the optimizer kind search a fake module written to disk instead of torch.optim."""
    (site / "fake_optim.py").write_text(OPTIM, encoding="utf-8")
    monkeypatch.setitem(KINDS, "optimizer", Kind("optimizer", None, ("fake_optim",)))
    yield
    sys.modules.pop("fake_optim", None)


@pytest.fixture
def scratch_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh kind with no default modules, so registrations do not leak between tests."""
    monkeypatch.setitem(KINDS, "gadget", Kind("gadget"))
    yield "gadget"
    from lcv_config import registry

    registry._REGISTERED.pop("gadget", None)


def test_register_and_resolve_by_name(scratch_kind: str) -> None:
    @register(scratch_kind)
    class Lamp:
        def __init__(self, watts: int = 40) -> None:
            self.watts = watts

    @register(scratch_kind, name="bulb")
    def make_bulb(watts: int) -> Lamp:
        return Lamp(watts)

    assert resolve(scratch_kind, "Lamp") is Lamp
    assert build(scratch_kind, {"name": "bulb", "cfg": {"watts": 60}}).watts == 60
    assert registered_names(scratch_kind) == ["Lamp", "bulb"]
    assert registered_names(scratch_kind, "b*") == ["bulb"]
    register(scratch_kind)(Lamp)  # the same object again is fine (module reloaded in a notebook)
    with pytest.raises(LcvError, match="The gadget name 'Lamp' is already registered to .*; choose another name"):
        register(scratch_kind, name="Lamp")(make_bulb)
    unregister(scratch_kind, "bulb")
    assert registered_names(scratch_kind) == ["Lamp"]
    with pytest.raises(LcvError, match="No gadget 'bulp' is registered. Did you mean 'Lamp'?|No gadget 'bulp'"):
        unregister(scratch_kind, "bulp")


def test_unknown_kind_suggests() -> None:
    with pytest.raises(LcvError, match="Unknown component kind 'optimiser'. Did you mean 'optimizer'?"):
        register("optimiser")


def test_resolution_order(fake_dist, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dist(
        "fake-tuners",
        {TUNERS: {"grid": "fake_tuner_mod:GridTuner"}},
        modules={"fake_tuner_mod": "class GridTuner: ...\nclass Other: ...\n"},
    )
    from_entry_point = resolve("tuner", "grid")
    assert from_entry_point.__name__ == "GridTuner"  # 2. entry point of the kind's group
    assert resolve("tuner", "fake_tuner_mod.Other").__name__ == "Other"  # 3. dotted path
    assert resolve("tuner", "fake_tuner_mod:Other").__name__ == "Other"  # 3. module:attribute
    assert resolve("tuner", from_entry_point) is from_entry_point  # 4. the object itself

    class Mine: ...

    register("tuner", name="grid")(Mine)
    try:
        assert resolve("tuner", "grid") is Mine  # 1. a registered name comes first
    finally:
        unregister("tuner", "grid")
    assert resolve("tuner", "grid") is from_entry_point


def test_default_modules_come_last(fake_optim: None) -> None:
    adam = resolve("optimizer", "Adam")
    assert adam.__module__ == "fake_optim"

    @register("optimizer", name="Adam")
    class MyAdam: ...

    try:
        assert resolve("optimizer", "Adam") is MyAdam
    finally:
        unregister("optimizer", "Adam")


def test_unknown_name_suggests_the_closest(fake_optim: None) -> None:
    with pytest.raises(ConfigError) as info:
        build("optimizer", {"name": "Adm", "cfg": {"lr": 0.1}}, "optimizer", [])
    message = str(info.value)
    assert message.startswith("Unknown optimizer 'Adm' at optimizer.name. Did you mean 'Adam'")
    assert "Installed: Adam, AdamW, SGD." in message
    assert info.value.path == "optimizer.name"


def test_ambiguous_bare_name_is_an_error(site: Path, fake_optim: None, monkeypatch: pytest.MonkeyPatch) -> None:
    (site / "fake_optim_extra.py").write_text("class Adam: ...\n", encoding="utf-8")
    monkeypatch.setitem(KINDS, "optimizer", Kind("optimizer", None, ("fake_optim", "fake_optim_extra")))
    try:
        with pytest.raises(ConfigError) as info:
            resolve("optimizer", "Adam", "optimizer.name")
        assert str(info.value) == (
            "Ambiguous optimizer 'Adam': found fake_optim.Adam, fake_optim_extra.Adam. Write the full dotted path. "
            "(at optimizer.name)"
        )
        assert resolve("optimizer", "fake_optim_extra.Adam").__module__ == "fake_optim_extra"
        assert resolve("optimizer", "SGD").__module__ == "fake_optim"  # only in one module: no ambiguity
    finally:
        sys.modules.pop("fake_optim_extra", None)


def test_a_default_module_that_is_not_installed_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KINDS, "optimizer", Kind("optimizer", None, ("not_installed_xyz.optim",)))
    with pytest.raises(ConfigError, match=r"Not installed, so not searched: not_installed_xyz\.optim\."):
        resolve("optimizer", "Adam")


def test_unknown_plugin_name_names_the_package_that_provides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KNOWN_PROVIDERS[TUNERS], "hyperfancy", "lcv-tune-hyperfancy")
    with pytest.raises(ConfigError) as info:
        resolve("tuner", "hyperfancy", "tune.backend")
    message = str(info.value)
    assert message.startswith("Unknown tuner 'hyperfancy' at tune.backend.")
    assert "'hyperfancy' is provided by lcv-tune-hyperfancy: pip install lcv-tune-hyperfancy." in message
    assert "'lcv.tuners' entry-point group" in message


def test_dotted_path_whose_module_fails_shows_that_error(site: Path) -> None:
    (site / "fake_broken_model.py").write_text("import numpy_missing_xyz\nclass Net: ...\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        resolve("model", "fake_broken_model.Net", "model.name")
    assert str(info.value) == (
        "Cannot import module 'fake_broken_model' for model 'fake_broken_model.Net': "
        "ModuleNotFoundError: No module named 'numpy_missing_xyz' (at model.name)"
    )


def test_dotted_path_with_a_missing_attribute_suggests(site: Path) -> None:
    (site / "fake_models_ok.py").write_text("class TinyNet: ...\n", encoding="utf-8")
    try:
        with pytest.raises(ConfigError, match=r"has no attribute 'TinyNte' .* Did you mean 'TinyNet'\?"):
            resolve("model", "fake_models_ok.TinyNte")
    finally:
        sys.modules.pop("fake_models_ok", None)


def test_a_reference_that_is_no_name_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"Expected a model name, dotted path or class, got int 3"):
        resolve("model", 3)


def test_stdlib_classes_by_dotted_path_build() -> None:
    counter = build("model", {"name": "collections.Counter", "cfg": {"a": 2}})
    assert counter == {"a": 2}
    fraction = build("model", {"name": "fractions:Fraction", "cfg": {"numerator": 3, "denominator": 6}})
    assert str(fraction) == "1/2"


def test_build_accepts_every_component_form(fake_optim: None) -> None:
    params = [1, 2]
    as_dict = build("optimizer", {"name": "SGD", "cfg": {"lr": 0.1, "momentum": 0.9}}, "optimizer", params)
    as_model = build("optimizer", Component(name="SGD", cfg={"lr": 0.1}), "optimizer", params)
    bare = build("optimizer", "Adam", "optimizer", params)
    extra = build("optimizer", "Adam", "optimizer", params, lr=0.5)
    assert (as_dict.lr, as_dict.momentum, as_dict.params) == (0.1, 0.9, params)
    assert as_model.lr == 0.1 and bare.lr == 0.001 and extra.lr == 0.5


def test_check_arguments_names_the_valid_ones(fake_optim: None) -> None:
    with pytest.raises(ConfigError) as info:
        build("optimizer", {"name": "SGD", "cfg": {"lr": 0.1, "momentun": 0.9}}, "optimizer", [])
    assert str(info.value) == (
        "Unknown argument 'momentun' for optimizer SGD. Did you mean 'momentum'? "
        "Valid arguments: params, lr, momentum, nesterov. (at optimizer.cfg.momentun)"
    )


def test_missing_required_argument_is_named(fake_optim: None) -> None:
    with pytest.raises(ConfigError, match=r"Missing required argument 'lr' for optimizer SGD\. \(at optimizer\.cfg\)"):
        build("optimizer", "SGD", "optimizer", [])


def test_wrong_type_says_what_was_expected(fake_optim: None) -> None:
    with pytest.raises(ConfigError) as info:
        build("optimizer", {"name": "SGD", "cfg": {"lr": "fast"}}, "optimizer", [])
    assert "Wrong type for argument 'lr' of optimizer SGD: expected float, got str 'fast'." in str(info.value)
    assert info.value.path == "optimizer.cfg.lr"
    with pytest.raises(ConfigError, match="expected bool, got int 1"):
        build("optimizer", {"name": "SGD", "cfg": {"lr": 1, "nesterov": 1}}, "optimizer", [])


def test_the_constructor_s_own_error_is_reported_with_the_path(fake_optim: None) -> None:
    with pytest.raises(ConfigError) as info:
        build("optimizer", {"name": "SGD", "cfg": {"lr": 0.1, "momentum": -1.0}}, "optimizer", [])
    assert str(info.value) == ("Cannot build optimizer 'SGD': ValueError: Invalid momentum value: -1.0 (at optimizer)")


def test_check_arguments_accepts_anything_with_var_keyword() -> None:
    def f(a: int, **kwargs: object) -> None: ...

    check_arguments(f, {"a": 1, "whatever": 2}, "model", "model")
    with pytest.raises(ConfigError, match="Missing required argument 'a'"):
        check_arguments(f, {"whatever": 2}, "model", "model")


def test_check_arguments_reads_the_signature_of_an_unhashable_factory_too() -> None:
    # signatures are remembered per target; a callable object without a hash is inspected each time, not refused
    class Factory:
        __hash__ = None  # type: ignore[assignment]  # as a class defining __eq__ only

        def __call__(self, width: int) -> int:
            return width

    check_arguments(Factory(), {"width": 3}, "model", "model")
    with pytest.raises(ConfigError, match="Unknown argument 'widht' for model .*Did you mean 'width'"):
        check_arguments(Factory(), {"widht": 3}, "model", "model")

    def first(a: int) -> None: ...

    def second(b: int) -> None: ...

    check_arguments(first, {"a": 1}, "model", "model")  # each target its own remembered signature
    with pytest.raises(ConfigError, match="Unknown argument 'a' for model"):
        check_arguments(second, {"a": 1}, "model", "model")


def test_a_component_with_extra_keys_is_refused_with_the_fix(fake_optim: None) -> None:
    with pytest.raises(ConfigError) as info:
        build("optimizer", {"name": "SGD", "lr": 0.1}, "optimizer", [])
    message = str(info.value)
    assert "A component is written {name: ..., cfg: {...}}" in message
    assert "(unexpected: lr)" in message and "Put arguments under 'cfg'" in message
    with pytest.raises(ConfigError, match="got keys \\['cfg'\\]"):
        build("optimizer", {"cfg": {"lr": 0.1}}, "optimizer", [])


def test_a_plain_dict_of_data_inside_cfg_is_never_built(scratch_kind: str) -> None:
    @register(scratch_kind)
    class Holder:
        def __init__(self, layers: dict[str, object]) -> None:
            self.layers = layers

    data = {"name": "Holder", "cfg": {"layers": {}}}  # looks like a component, is data for Holder
    built = build(scratch_kind, {"name": "Holder", "cfg": {"layers": data}})
    assert built.layers == data and isinstance(built.layers, dict)


def test_registered_names_lists_entry_points_without_importing(fake_dist) -> None:
    fake_dist("fake-tuners", {TUNERS: {"grid": "fake_never_imported:G", "greedy": "fake_never_imported:G"}})
    assert {"grid", "greedy"} <= set(registered_names("tuner", "g*"))
    assert "fake_never_imported" not in sys.modules
