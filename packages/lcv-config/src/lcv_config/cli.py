"""The ``lcv`` command line: a thin shell whose subcommands are plugins in ``lcv.commands``.

Only the invoked subcommand is imported, so ``lcv --help`` and ``lcv components`` never import torch.
Exit codes: 0 success, 2 invalid config or input, 1 failure while running, 130 interrupted.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import textwrap
import traceback
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import TextIO

from lcv_config.errors import LcvError, PluginClashWarning, PluginError
from lcv_config.groups import COMMANDS
from lcv_config.plugins import (
    PluginInfo,
    clashes,
    display_name,
    list_plugins,
    match_qualified,
    select_plugin,
    unknown_message,
)


def installed_lcv_packages() -> list[tuple[str, str]]:
    """Return ``(distribution, version)`` of every installed lcv package, sorted by name."""
    found = {}
    for dist in metadata.distributions():
        # The normalised name comes from the dist-info folder's name; it spares parsing every METADATA file.
        cheap = getattr(dist, "_normalized_name", None)
        if isinstance(cheap, str) and not cheap.lower().startswith("lcv"):
            continue
        name = dist.metadata["Name"] or ""
        if name.lower().replace("_", "-").startswith("lcv-"):
            found[name] = dist.version
    return sorted(found.items())


def _summary(plugin: PluginInfo) -> str:
    """Return the first clause of a command's ``help`` (its docstring without one), shortened to one column."""
    try:
        command = plugin.load()  # a command module imports no torch: its run() does
    except PluginError:
        return "(fails to import: run it for the error)"
    text = (getattr(command, "help", None) or inspect.getdoc(command) or "").strip()
    first = re.split(r"; |\. |\.$", text.splitlines()[0] if text else "", maxsplit=1)[0]
    return textwrap.shorten(first, width=60, placeholder="...")


def _asks_for_help(argv: list[str]) -> bool:
    """Return whether ``lcv`` itself (not a command) is asked for help: ``-h`` before any command, or no command."""
    for arg in argv:
        if arg in ("-h", "--help"):
            return True
        if not arg.startswith("-"):
            return False
    return "--version" not in argv


def _command_rows(plugins: list[PluginInfo]) -> list[tuple[str, PluginInfo, str]]:
    """Return ``(name to type, plugin, clash note)`` per command: each once, a shadowed one by its qualified name."""
    shared = clashes(plugins)
    rows = []
    for p in plugins:
        name = display_name(p, plugins)
        others = [o.distribution for o in shared.get(p.name, []) if o is not p]
        if not others:
            note = ""
        elif name == p.name:
            note = f"  [also in {', '.join(others)}]"
        else:
            note = f"  [clashes with {', '.join(others)}]"
        rows.append((name, p, note))
    return sorted(rows, key=lambda r: (r[1].name, r[0] != r[1].name, r[0]))


def _top_parser(plugins: list[PluginInfo], describe: bool = False) -> argparse.ArgumentParser:
    # Each command's help is read from its class, so only when the listing is shown: a run imports one command.
    rows = _command_rows(plugins)
    width = max([12, *(len(name) for name, _, _ in rows)])
    listing = "\n".join(
        f"  {name:<{width}} {_summary(p):<60} {p.distribution} {p.version}{note}"
        if describe
        else f"  {name:<{width}} (from {p.distribution} {p.version}){note}"
        for name, p, note in rows
    )
    names = [name for name, _, _ in rows]
    parser = argparse.ArgumentParser(
        prog="lcv",
        description="Cross-validated training, configuration and tuning for PyTorch Lightning.",
        epilog=f"commands:\n{listing or '  none installed'}\n\nRun 'lcv COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="list every installed lcv package and its version")
    parser.add_argument("--verbose", "-v", action="store_true", help="show tracebacks of errors")
    parser.add_argument("command", nargs="?", metavar="COMMAND", help=f"one of: {', '.join(names)}")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _run(argv: list[str]) -> int:
    plugins = list_plugins(COMMANDS)
    commands = sorted({p.name for p in plugins})
    parser = _top_parser(plugins, describe=_asks_for_help(argv))
    top = parser.parse_args(argv)
    if top.version:
        for name, version in installed_lcv_packages():
            print(f"{name} {version}")
        return 0
    if top.command is None:
        parser.print_help(sys.stderr)
        return 2
    if top.command not in commands and match_qualified(top.command, plugins) is None:
        raise PluginError(unknown_message(COMMANDS, top.command, commands, noun="command"))
    command = select_plugin(COMMANDS, top.command, plugins)  # lcv's own wins a clash; two third parties: an error
    instance = command.load()()
    sub = argparse.ArgumentParser(prog=f"lcv {top.command}", description=instance.help)
    sub.add_argument("--verbose", "-v", action="store_true", help="show tracebacks of errors")
    instance.configure(sub)
    args = sub.parse_args(top.args)
    args.verbose = top.verbose or args.verbose
    return int(instance.run(args))


def _one_line_warnings(previous: Callable[..., None]) -> Callable[..., None]:
    """Return a ``warnings.showwarning`` that prints a plugin clash as one ``lcv: warning:`` line on stderr."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, PluginClashWarning):
            print(f"lcv: warning: {message}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lcv`` command line and return its exit code (the console script exits with it).

    Exit codes: 0 success; 2 invalid config or input (one line on stderr, the traceback only with
    ``--verbose``); 1 an unexpected failure while running; 130 interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("--verbose", "-v") for a in argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            return _run(argv)
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except LcvError as exc:
        if verbose:
            traceback.print_exc()
        print(f"lcv: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lcv: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        hint = "" if verbose else " (run with --verbose for the traceback)"
        print(f"lcv: error: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
