"""The plugin loader, against real distributions written to a temporary site folder."""

from __future__ import annotations

import sys

import pytest

from lcv_config import (
    DuplicatePluginError,
    PluginImportError,
    UnknownPluginError,
    find_plugin,
    list_plugins,
    load_plugin,
    load_plugins,
)
from lcv_config.groups import TUNERS
from lcv_config.plugins import list_all_plugins, unknown_message

GROUP = "lcv.tuners"

TUNER_SOURCE = """
class RandomTuner:
    kind = "random"
"""


def test_listing_reads_metadata_and_never_imports(fake_dist) -> None:
    fake_dist(
        "fakepkg",
        {GROUP: {"rnd": "fakepkg_tuners:RandomTuner"}},
        modules={"fakepkg_tuners": "raise RuntimeError('imported while listing')\n"},
        version="1.2.3",
    )
    listed = [p for p in list_plugins(GROUP) if p.distribution == "fakepkg"]
    assert [(p.name, p.value, p.version) for p in listed] == [("rnd", "fakepkg_tuners:RandomTuner", "1.2.3")]
    assert "fakepkg_tuners" not in sys.modules
    assert "rnd" in {p.name for p in list_all_plugins()[GROUP]}
    assert find_plugin(GROUP, "rnd").distribution == "fakepkg"
    assert "fakepkg_tuners" not in sys.modules


def test_loading_imports_the_plugin(fake_dist) -> None:
    fake_dist("fakepkg", {GROUP: {"rnd": "fakepkg_load:RandomTuner"}}, modules={"fakepkg_load": TUNER_SOURCE})
    cls = load_plugin(GROUP, "rnd")
    assert cls.__name__ == "RandomTuner" and cls.kind == "random"
    assert "fakepkg_load" in sys.modules


def test_unknown_name_suggests_and_lists_installed(fake_dist) -> None:
    fake_dist("fakepkg", {GROUP: {"random_search": "fakepkg_x:T"}})
    with pytest.raises(UnknownPluginError) as info:
        load_plugin(GROUP, "random_serch")
    message = str(info.value)
    assert message.startswith("Unknown tuner 'random_serch'. Did you mean 'random_search'?")
    assert "Installed: " in message and "random_search" in message.split("Installed: ")[1]


def test_unknown_first_party_name_names_the_package_to_install() -> None:
    message = unknown_message(TUNERS, "optuna", ["random_search"])
    assert "Unknown tuner 'optuna'." in message
    assert "Installed: random_search." in message
    assert "'optuna' is provided by lcv-tune-optuna: pip install lcv-tune-optuna" in message
    nothing = unknown_message("lcv.splitters", "kfold", [])
    assert "No splitters are installed." in nothing and "pip install lcv-data" in nothing


def test_two_third_parties_with_one_name_is_an_error_naming_both_and_the_qualified_names(fake_dist) -> None:
    fake_dist("fake-one", {GROUP: {"twin": "fake_one_mod:T"}}, modules={"fake_one_mod": "class T: ...\n"})
    fake_dist("fake-two", {GROUP: {"twin": "fake_two_mod:T"}}, modules={"fake_two_mod": "class T: ...\n"})
    assert [p.distribution for p in list_plugins(GROUP) if p.name == "twin"] == ["fake-one", "fake-two"]
    with pytest.raises(DuplicatePluginError) as info:
        load_plugin(GROUP, "twin")
    message = str(info.value)
    assert "'twin' is registered by 2 distributions in lcv.tuners" in message
    assert "fake-one 1.0 (fake_one_mod:T)" in message and "fake-two 1.0 (fake_two_mod:T)" in message
    assert "Write 'fake-one:twin' or 'fake-two:twin' to pick one" in message
    assert "fake_one_mod" not in sys.modules  # nothing was imported to find out
    assert load_plugin(GROUP, "fake-two:twin").__module__ == "fake_two_mod"


def test_a_plugin_that_raises_on_import_is_named_and_the_others_still_load(fake_dist) -> None:
    fake_dist(
        "fakepkg",
        {GROUP: {"good": "fake_good:RandomTuner", "broken": "fake_broken:Tuner", "missing": "fake_good:Nope"}},
        modules={"fake_good": TUNER_SOURCE, "fake_broken": "import not_a_module_anywhere_xyz\n"},
    )
    with pytest.raises(PluginImportError) as info:
        load_plugin(GROUP, "broken")
    message = str(info.value)
    assert (
        "Plugin 'broken' in group lcv.tuners (from fakepkg 1.0, target fake_broken:Tuner) failed to import" in message
    )
    assert "ModuleNotFoundError" in message and "not_a_module_anywhere_xyz" in message

    loaded, failed = load_plugins(GROUP)
    assert loaded["good"].kind == "random"
    assert set(failed) >= {"broken", "missing"}
    assert "good" not in failed
    assert "AttributeError" in str(failed["missing"])


def test_load_plugins_reports_a_duplicate_without_stopping(fake_dist) -> None:
    fake_dist("fake-one", {GROUP: {"twin": "fake_d1:T", "solo": "fake_d1:T"}}, modules={"fake_d1": "class T: ...\n"})
    fake_dist("fake-two", {GROUP: {"twin": "fake_d2:T"}})
    loaded, failed = load_plugins(GROUP)
    assert loaded["solo"].__name__ == "T"
    assert "registered by 2 distributions" in str(failed["twin"])
    assert loaded["fake-one:twin"].__module__ == "fake_d1"
    assert "fake_d2" in str(failed["fake-two:twin"])  # its module does not exist


def test_the_same_distribution_twice_on_the_path_is_not_a_duplicate(fake_dist, tmp_path, monkeypatch) -> None:
    info = fake_dist("fakepkg", {GROUP: {"rnd": "fake_same:T"}}, modules={"fake_same": "class T: ...\n"})
    monkeypatch.syspath_prepend(str(info.parent))  # the same folder again, as happens with .pth files
    assert [p.name for p in list_plugins(GROUP)].count("rnd") == 1
    assert load_plugin(GROUP, "rnd").__name__ == "T"
