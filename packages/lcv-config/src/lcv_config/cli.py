"""The ``lcv`` command line: a thin shell whose subcommands are plugins in ``lcv.commands``.

Only the invoked subcommand is imported, so ``lcv --help`` and ``lcv components`` never import torch.
Exit codes: 0 success, 2 invalid config or input, 1 failure while running, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from importlib import metadata

from lcv_config.errors import LcvError, PluginError
from lcv_config.groups import COMMANDS
from lcv_config.plugins import list_plugins, load_plugin, unknown_message


def installed_lcv_packages() -> list[tuple[str, str]]:
    """Return ``(distribution, version)`` of every installed lcv package, sorted by name."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or ""
        if name.lower().replace("_", "-").startswith("lcv-"):
            found[name] = dist.version
    return sorted(found.items())


def _top_parser(commands: list[str]) -> argparse.ArgumentParser:
    listing = "\n".join(f"  {p.name:<12} (from {p.distribution} {p.version})" for p in list_plugins(COMMANDS))
    parser = argparse.ArgumentParser(
        prog="lcv",
        description="Cross-validated training, configuration and tuning for PyTorch Lightning.",
        epilog=f"commands:\n{listing or '  none installed'}\n\nRun 'lcv COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="list every installed lcv package and its version")
    parser.add_argument("--verbose", "-v", action="store_true", help="show tracebacks of errors")
    parser.add_argument("command", nargs="?", metavar="COMMAND", help=f"one of: {', '.join(commands)}")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lcv`` command line and return its exit code (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = sorted({p.name for p in list_plugins(COMMANDS)})
    parser = _top_parser(commands)
    top = parser.parse_args(argv)
    if top.version:
        for name, version in installed_lcv_packages():
            print(f"{name} {version}")
        return 0
    if top.command is None:
        parser.print_help()
        return 2
    verbose = top.verbose or "--verbose" in top.args
    try:
        if top.command not in commands:
            raise PluginError(unknown_message(COMMANDS, top.command, commands, noun="command"))
        command = load_plugin(COMMANDS, top.command)()
        sub = argparse.ArgumentParser(prog=f"lcv {top.command}", description=command.help)
        sub.add_argument("--verbose", "-v", action="store_true", help="show tracebacks of errors")
        command.configure(sub)
        args = sub.parse_args(top.args)
        args.verbose = verbose
        return int(command.run(args))
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
        print(f"lcv: error: {type(exc).__name__}: {exc} (run with --verbose for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
