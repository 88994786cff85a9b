"""Plugin precedence: a name two distributions register stays usable, by its bare name and as ``distribution:name``."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from lcv_config import (
    ConfigError,
    ExperimentConfig,
    PluginClashWarning,
    UnknownPluginError,
    check_names,
    find_plugin,
    list_plugins,
    load_plugin,
    load_plugins,
    registered_names,
    resolve,
)
from lcv_config import plugins as plugins_module
from lcv_config.cli import main
from lcv_config.groups import FIRST_PARTY, MODELS, is_first_party
from lcv_config.plugins import PluginInfo, display_name, split_qualified

GROUP = "lcv.splitters"
SPLITTER = "class KFold:\n    source = {source!r}\n"


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the once-per-process warning anew."""
    monkeypatch.setattr(plugins_module, "_WARNED", set())


@pytest.fixture
def clash(fake_dist) -> None:
    """lcv-data and a third party, ``acme-splits``, both register ``twin_kfold``."""
    fake_dist(
        "lcv-data", {GROUP: {"twin_kfold": "fake_own:KFold"}}, {"fake_own": SPLITTER.format(source="own")}, "0.1.0"
    )
    fake_dist("acme_splits", {GROUP: {"twin_kfold": "fake_acme:KFold"}}, {"fake_acme": SPLITTER.format(source="acme")})


def test_first_party_is_a_fixed_list_not_a_prefix() -> None:
    assert {"lcv-config", "lcv-core", "lcv-data", "lcv-tune-optuna", "lcv-tune-wandb"} == FIRST_PARTY
    assert is_first_party("lcv_data") and is_first_party("LCV.Core")
    assert not is_first_party("lcv-example-plugins")


def test_the_bare_name_keeps_lcvs_own_plugin_with_one_warning_naming_the_other(clash: None) -> None:
    with pytest.warns(PluginClashWarning) as record:
        assert load_plugin(GROUP, "twin_kfold").source == "own"
        assert load_plugin(GROUP, "twin_kfold").source == "own"  # once per process
    assert len(record) == 1
    message = str(record[0].message)
    assert message == (
        "'twin_kfold' (lcv.splitters) is also registered by acme_splits; using lcv-data's. "
        "Write 'acme_splits:twin_kfold' for the other."
    )


def test_the_qualified_name_picks_a_distribution_in_any_spelling(clash: None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a qualified name never warns
        assert load_plugin(GROUP, "acme_splits:twin_kfold").source == "acme"
        assert load_plugin(GROUP, "acme-splits:twin_kfold").source == "acme"
        assert load_plugin(GROUP, "lcv-data:twin_kfold").source == "own"
    with pytest.raises(UnknownPluginError) as info:
        find_plugin(GROUP, "acme-split:twin_kfold")
    message = str(info.value)
    assert message.startswith("No distribution 'acme-split' registers the splitter 'twin_kfold' in lcv.splitters.")
    assert "Did you mean 'acme_splits:twin_kfold'" in message


def _at(path: str, problems: list[Any]) -> list[Any]:
    """The problems at ``path`` (lcv-config's own tests run without lcv's other packages: their default names, such as
    the ``supervised`` learner, are unknown there)."""
    return [p for p in problems if p.path == path]


def test_the_registry_resolves_both_and_checks_both_from_metadata(clash: None) -> None:
    with pytest.warns(PluginClashWarning):
        assert resolve("splitter", "twin_kfold").source == "own"
    assert resolve("splitter", "acme-splits:twin_kfold", "data.splitter.name").source == "acme"
    for name in ("twin_kfold", "acme-splits:twin_kfold", "lcv-data:twin_kfold"):
        assert _at("data.splitter.name", check_names(ExperimentConfig(data={"splitter": name}))) == [], name
    assert "twin_kfold" in registered_names("splitter", "twin*")


def test_between_two_third_parties_the_bare_name_is_an_error_with_both_qualified_forms(fake_dist) -> None:
    fake_dist("acme-one", {GROUP: {"twin_kfold": "fake_a1:KFold"}}, {"fake_a1": SPLITTER.format(source="one")})
    fake_dist("acme-two", {GROUP: {"twin_kfold": "fake_a2:KFold"}}, {"fake_a2": SPLITTER.format(source="two")})
    with pytest.raises(ConfigError) as info:
        resolve("splitter", "twin_kfold", "data.splitter.name")
    message = str(info.value)
    assert "registered by 2 distributions" in message and "acme-one 1.0" in message and "acme-two 1.0" in message
    assert "Write 'acme-one:twin_kfold' or 'acme-two:twin_kfold' to pick one" in message
    assert resolve("splitter", "acme-two:twin_kfold").source == "two"
    (problem,) = _at("data.splitter.name", check_names(ExperimentConfig(data={"splitter": "twin_kfold"})))
    assert problem.path == "data.splitter.name"
    assert "Ambiguous splitter 'twin_kfold'" in problem.message and "'acme-one:twin_kfold'" in problem.message
    assert _at("data.splitter.name", check_names(ExperimentConfig(data={"splitter": "acme-one:twin_kfold"}))) == []


def test_load_plugins_loads_each_under_its_qualified_name(clash: None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading everything does not warn
        loaded, failed = load_plugins(GROUP)
    assert not {k for k in failed if "twin" in k}
    assert loaded["twin_kfold"].source == "own"
    assert loaded["lcv-data:twin_kfold"].source == "own" and loaded["acme_splits:twin_kfold"].source == "acme"


def test_display_names_and_dotted_paths_that_look_qualified() -> None:
    own = PluginInfo(GROUP, "twin", "a:A", "lcv-data", "1")
    other = PluginInfo(GROUP, "twin", "b:B", "acme", "1")
    assert display_name(own, [own, other]) == "twin" and display_name(other, [own, other]) == "acme:twin"
    assert split_qualified("acme:twin") == ("acme", "twin")
    assert split_qualified("package.module:Class.attr") is None and split_qualified("kfold") is None
    # a dotted path written module:attribute still resolves when no distribution of that name registers it
    assert resolve("splitter", "collections:OrderedDict").__name__ == "OrderedDict"


def test_a_network_by_name_comes_from_the_models_group_and_is_checked_from_metadata(fake_dist) -> None:
    fake_dist("acme-nets", {MODELS: {"tiny_net": "fake_nets:TinyNet"}}, {"fake_nets": "class TinyNet: ...\n"})
    assert [p.name for p in list_plugins(MODELS) if p.distribution == "acme-nets"] == ["tiny_net"]
    assert resolve("model", "tiny_net").__name__ == "TinyNet"
    assert _at("model.name", check_names(ExperimentConfig(model={"name": "tiny_net", "cfg": {}}))) == []
    (problem,) = _at("model.name", check_names(ExperimentConfig(model={"name": "tiny_nte", "cfg": {}})))
    assert problem.path == "model.name" and "Did you mean 'tiny_net'?" in problem.message


COMMANDS = """
class Cv:
    help = "A third party's cv."

    def configure(self, parser):
        pass

    def run(self, args):
        print("acme cv ran")
        return 0


class OwnCv(Cv):
    help = "lcv's own cv."

    def run(self, args):
        print("own cv ran")
        return 0
"""


@pytest.fixture
def command_clash(fake_dist) -> None:
    fake_dist("lcv-core", {"lcv.commands": {"cv": "fake_cmd_own:OwnCv"}}, {"fake_cmd_own": COMMANDS}, "0.1.0")
    fake_dist("acme-tools", {"lcv.commands": {"cv": "fake_cmd_acme:Cv"}}, {"fake_cmd_acme": COMMANDS})


def test_a_clashing_command_keeps_lcvs_own_and_the_other_runs_by_its_qualified_name(
    command_clash: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cv"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "own cv ran\n"
    assert captured.err == (
        "lcv: warning: 'cv' (lcv.commands) is also registered by acme-tools; using lcv-core's. "
        "Write 'acme-tools:cv' for the other.\n"
    )
    assert main(["acme-tools:cv"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "acme cv ran\n" and captured.err == ""


def test_help_and_components_list_each_command_once_and_flag_the_clash(
    command_clash: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.split("commands:")[1].splitlines() if line.startswith("  ")]
    assert rows.count("cv") == 1 and rows.count("acme-tools:cv") == 1, out
    cv_row = next(line for line in out.splitlines() if line.startswith("  cv "))
    assert "lcv-core 0.1.0" in cv_row and "[also in acme-tools]" in cv_row
    assert main(["components", "commands"]) == 0
    out = capsys.readouterr().out
    names = [line.split("│")[0].strip() for line in out.splitlines() if "│" in line]
    assert names.count("cv") == 1 and names.count("acme-tools:cv") == 1, out
    assert "clash: 'cv' is registered by acme-tools and lcv-core; 'cv' means lcv-core's, acme-tools:cv the other." in (
        " ".join(out.split())
    )
