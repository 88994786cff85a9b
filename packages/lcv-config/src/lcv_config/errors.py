"""Exception types shared by every lcv package."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class LcvError(Exception):
    """Base class of every error lcv raises on purpose; the CLI exits 2 on these (bad input)."""


class ConfigError(LcvError, ValueError):
    """An experiment config, a component reference or an argument is invalid.

    Args:
        message: What is wrong and how to fix it.
        path: The dotted config path of the offending value (``optimizer.cfg.lr``), if known.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        self.message = message
        named = path is not None and any(f"{w}{path}" in message for w in ("at ", "in ", "'"))
        super().__init__(f"{message} (at {path})" if path and not named else message)


@dataclass(frozen=True)
class ConfigProblem:
    """One problem found in a config: where it is and what to do about it."""

    path: str
    """The dotted config path of the offending value (``data.splitter.name``)."""
    message: str
    """What is wrong and how to fix it (closest valid names, what is installed)."""

    def __str__(self) -> str:
        return self.message if self.path in self.message else f"{self.message} (at {self.path})"


class ConfigProblemsError(ConfigError):
    """Several problems found in one config, each with its path; ``problems`` lists them.

    Args:
        problems: The problems, in config order; at least one.
        source: What was checked (the config files), for the heading of the message.
    """

    def __init__(self, problems: Sequence[ConfigProblem], source: str = "the config") -> None:
        self.problems = list(problems)
        first = self.problems[0]
        if len(self.problems) == 1:
            text = str(first)
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            text = f"{len(self.problems)} problems in {source}:\n{lines}"
        super().__init__(text, first.path)
        self.args = (text,)

    def __str__(self) -> str:
        return str(self.args[0])


class PluginError(LcvError):
    """A plugin could not be found, was registered twice, or failed to import."""


class UnknownPluginError(PluginError, KeyError):
    """No plugin of that name is installed in the group."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicatePluginError(PluginError):
    """Two distributions register the same name in one group."""


class PluginImportError(PluginError, ImportError):
    """A plugin's module raised while being imported."""


class PluginClashWarning(UserWarning):
    """A bare name that lcv's own package and a third party both register: lcv's own plugin is used.

    The message names the other distribution and the qualified name (``distribution:name``) that picks it. Python
    shows it once per process; the ``lcv`` command prints it as one ``lcv: warning:`` line on stderr.
    """


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Return the candidates closest to ``name``, best first (case-insensitive)."""
    pool = list(candidates)
    lowered = {c.lower(): c for c in pool}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[h] for h in hits]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest candidate, or an empty string."""
    hits = closest(name, candidates, n=2)
    if not hits:
        return ""
    return " Did you mean " + " or ".join(f"'{h}'" for h in hits) + "?"
