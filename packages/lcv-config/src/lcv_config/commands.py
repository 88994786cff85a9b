"""The subcommands lcv-config provides itself: ``lcv components`` and ``lcv config``."""

from __future__ import annotations

import argparse
import fnmatch
import os

from lcv_config.groups import GROUPS, resolve_group, short_name
from lcv_config.plugins import PluginInfo, clashes, display_name, list_all_plugins, preferred, qualified_name


class ComponentsCommand:
    """``lcv components [GROUP] [PATTERN]``: list installed plugins without importing them.

    A name several distributions register is listed bare for the plugin it means (lcv's own) and as
    ``distribution:name`` for the others, with a ``clash:`` line under the table.

    Each row is one line. On a terminal narrower than a row, a cut value ends with ``…``; piped (and no
    ``COLUMNS`` set) the table is as wide as its longest row, so ``lcv components | grep`` sees whole targets.
    """

    help = "List installed plugins (name, distribution, version) per group, without importing them."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the optional GROUP and PATTERN arguments."""
        parser.add_argument(
            "group", nargs="?", help="a group such as 'splitters' or 'lcv.tuners'; default: all (or 'all')"
        )
        parser.add_argument("pattern", nargs="?", default="*", help="a glob over names, e.g. '*kfold*'; default: *")

    def run(self, args: argparse.Namespace) -> int:
        """Print one table per group."""
        from rich.console import Console  # imported here: ``lcv --help`` must not pay for rich
        from rich.table import Table

        groups = [resolve_group(args.group)] if args.group and args.group != "all" else list(GROUPS)
        listing = list_all_plugins(groups)
        pattern = args.pattern
        console = Console(highlight=False)
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console = Console(highlight=False, width=_PIPED_WIDTH)  # the table keeps its natural width
        for group in groups:
            plugins = listing[group]
            rows = [
                (display_name(p, plugins), p.distribution, p.version, p.value)
                for p in plugins
                if fnmatch.fnmatchcase(p.name, pattern)
            ]
            if not rows:
                none = "none installed" if pattern == "*" else f"none matches {pattern!r}"
                rows = [(f"({none}: {short_name(group)})", "", "", "")]
            widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(_COLUMNS[:3])]
            # names stay whole; the target gives way on a narrow terminal, and a cut target ends with "…"
            room = max(_MIN_TARGET, console.width - sum(w + 3 for w in widths) - 2)
            table = Table(title=group, title_justify="left", show_edge=False)
            for column in _COLUMNS:
                table.add_column(column, no_wrap=True)
            for *cells, target in rows:
                table.add_row(*cells, target if len(target) <= room else target[: room - 1] + "…")
            console.print(table)
            for name, sharing in clashes(plugins).items():
                if fnmatch.fnmatchcase(name, pattern):
                    console.print(f"  clash: {_clash_note(name, sharing)}", soft_wrap=True)
        return 0


_PIPED_WIDTH = 1000
"""Console width when piped: wider than any row, so no value is cut."""
_COLUMNS = ("name", "distribution", "version", "target")
_MIN_TARGET = 12
"""The fewest characters of a target shown, however narrow the terminal."""


def _clash_note(name: str, sharing: list[PluginInfo]) -> str:
    """Say who registers ``name`` and what the bare name means."""
    owners = " and ".join(p.distribution for p in sharing)
    chosen = preferred(sharing)
    if chosen is None:
        forms = " or ".join(qualified_name(p) for p in sharing)
        return f"'{name}' is registered by {owners}; the bare name is ambiguous: write {forms}."
    others = " or ".join(qualified_name(p) for p in sharing if p is not chosen)
    return f"'{name}' is registered by {owners}; '{name}' means {chosen.distribution}'s, {others} the other."


class ConfigCommand:
    """``lcv config show|validate CONFIG [overrides]``: print or check a resolved config."""

    help = "Show the resolved config (files merged, overrides and ${...} references applied), or validate it."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the action, the config files, the overrides and ``--no-imports``."""
        parser.add_argument("action", choices=["show", "validate"])
        parser.add_argument("config", nargs="+", help="config files, then key=value overrides")
        parser.add_argument(
            "--no-imports",
            action="store_true",
            help="validate: check the structure only (keys, types, values); skip resolving component names, "
            "plugins and dotted paths",
        )

    def run(self, args: argparse.Namespace) -> int:
        """Load the config; print it (show) or check its structure and every name it holds (validate).

        ``validate`` reports every unresolvable name at once (exit 2): plugins from entry-point metadata, torch
        classes from lcv_config's lists, and dotted paths by importing their module (unless ``--no-imports``).
        """
        from lcv_config.loading import dump_config, load_config, split_arguments  # pydantic only for this command

        files, overrides = split_arguments(args.config)
        config = load_config(files, overrides)
        if args.action == "show":
            print(dump_config(config), end="")
            return 0
        if not args.no_imports:
            from lcv_config.checking import check_names
            from lcv_config.errors import ConfigProblemsError

            problems = check_names(config, imports=True)
            if problems:
                raise ConfigProblemsError(problems, ", ".join(files) or "the config")
        print(f"{', '.join(files)}: valid")
        return 0
