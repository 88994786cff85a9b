"""The conformance suite of ``lcv`` subcommands (``lcv.commands``)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from lcv_config.protocols import Command
from lcv_config.testing._helpers import missing_members


class CommandContract:
    """What an ``lcv`` subcommand (``lcv.commands``) must do: a one-line help, options that fit lcv's parser.

    lcv builds ``Command()`` without arguments, adds ``--verbose/-v`` to the command's parser, then calls
    ``configure(parser)``, parses the rest of the command line and calls ``run(args)``, exiting with its return
    value. Implement `make_command()`; set ``argv`` to run it once (``expected_exit``, default 0), and ``target``
    (``"package.module:Class"``) to check that importing it stays light (no torch: ``lcv --help`` imports it).
    """

    argv: list[str] | None = None
    """A command line to run the command with (after ``lcv NAME``); ``None`` skips running it."""
    expected_exit: int = 0
    """The exit code ``argv`` must give."""
    target: str | None = None
    """The entry point's target, checked to import without torch or Lightning."""

    def make_command(self) -> Any:
        """Return the command under test."""
        raise NotImplementedError

    def _parser(self, command: Any) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="lcv test-command", description=command.help, exit_on_error=False)
        parser.add_argument("--verbose", "-v", action="store_true", help="show tracebacks of errors")
        command.configure(parser)
        return parser

    def test_is_a_command_with_a_one_line_help(self) -> None:
        """The object satisfies [`Command`][lcv_config.Command]; ``help`` is one non-empty line."""
        command = self.make_command()
        missing = missing_members(command, Command)
        assert not missing, f"{type(command).__name__} lacks {missing}"
        assert isinstance(command.help, str) and command.help.strip(), "help is empty"
        assert "\n" not in command.help.strip(), "help must be one line (lcv --help lists its first sentence)"

    def test_its_options_fit_lcvs_parser(self) -> None:
        """``configure`` adds options beside lcv's ``--verbose/-v`` without a conflict, and ``--help`` renders."""
        command = self.make_command()
        try:
            parser = self._parser(command)
        except argparse.ArgumentError as exc:
            raise AssertionError(f"configure() clashes with lcv's own options: {exc}") from None
        assert parser.format_help()

    def test_runs_and_returns_an_exit_code(self) -> None:
        """With ``argv`` set, ``run`` returns ``expected_exit`` as an int."""
        if self.argv is None:
            return
        command = self.make_command()
        args = self._parser(command).parse_args(self.argv)
        code = command.run(args)
        assert isinstance(code, int) and not isinstance(code, bool), f"run returned {code!r}, not an int exit code"
        assert code == self.expected_exit, f"exit code {code}, expected {self.expected_exit}"

    def test_importing_it_imports_no_torch(self) -> None:
        """Importing the command's module (``lcv --help`` does) imports neither torch nor Lightning."""
        if self.target is None:
            return
        module, _, attr = self.target.partition(":")
        probe = (
            "import importlib, sys\n"
            f"getattr(importlib.import_module({module!r}), {attr!r})\n"
            "print(','.join(m for m in ('torch', 'lightning') if m in sys.modules))\n"
        )
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        assert not result.stdout.strip(), f"importing {module} imports {result.stdout.strip()}: import it in run()"
