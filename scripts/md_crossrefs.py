"""Rewrite reST roles in docstrings (``:class:`X` ``) as mkdocstrings Markdown cross-references (``[`X`][a.b.X]``).

mkdocstrings renders docstrings as Markdown, so a Sphinx role shows up raw on the API pages. Each role's target is
resolved by importing it, in the scope of the docstring (its module's globals and imports, including those under
``if TYPE_CHECKING:``, and the enclosing class), to a full dotted path. The target becomes a link when the API
pages document it under that path, i.e. when autorefs can resolve it (else ``mkdocs build --strict`` fails), and
an inline code span otherwise (torch, Lightning, private helpers, members without a docstring)::

    python scripts/md_crossrefs.py packages/lcv-config/src                # rewrite in place, list every change
    python scripts/md_crossrefs.py --check packages/*/src                 # exit 1 while any role is left
    python scripts/md_crossrefs.py --anchors-from site packages/lcv-core/src  # link only anchors a built site has

Run it with the interpreter that has the packages installed (``.venv/bin/python``). What is documented is read
from the ``::: identifier`` blocks of ``docs/api/*.md``; ``--anchors-from`` instead reads the ``id`` attributes of
a site built with ``mkdocs build`` (exact, including members hidden for want of a docstring). Roles whose target
cannot be imported are reported and left for a human.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
API_PAGES = ROOT / "docs" / "api"
ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|attr|data|exc|obj|const):`([^`]+)`")
LCV = ("lcv_config", "lcv_core", "lcv_data", "lcv_tune_optuna", "lcv_tune_wandb")
_MISSING = object()
WIDTH = 120  # ruff's line length in this repository
LINK = re.compile(r"\[(`[^`]+`)\]\[[\w.]+\]")
QUOTES = re.compile(r"\"\"\"|'''")


@dataclass
class Scope:
    """Where a docstring sits: its module, the names the module imports, and the enclosing class if any."""

    module: ModuleType
    imports: dict[str, str]
    cls: str | None


def module_name(path: Path) -> str:
    """Return the dotted module name of a file under a ``src/`` folder."""
    parts = path.resolve().with_suffix("").parts
    parts = parts[len(parts) - parts[::-1].index("src") :]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_map(tree: ast.Module, module: str) -> dict[str, str]:
    """Return ``{local name: dotted origin}`` for every import of a module, ``TYPE_CHECKING`` blocks included."""
    names: dict[str, str] = {}
    package = module if module.count(".") == 0 else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                names[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                names[alias.asname or alias.name] = f"{base}.{alias.name}"
    return names


def lookup(dotted: str) -> Any:
    """Import the longest module prefix of ``dotted`` and get the rest as attributes; ``_MISSING`` if impossible."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        except Exception:  # a module that fails to import for another reason cannot be a target either
            return _MISSING
        for attr in parts[cut:]:
            obj = getattr(obj, attr, _MISSING)
            if obj is _MISSING:
                return _MISSING
        return obj
    return _MISSING


def candidates(target: str, scope: Scope) -> Iterator[str]:
    """Yield the dotted paths a role's target may mean in ``scope``, most local first."""
    head, _, rest = target.partition(".")
    suffix = f".{rest}" if rest else ""
    if scope.cls:
        yield f"{scope.module.__name__}.{scope.cls}.{target}"
    if head in scope.imports:
        yield scope.imports[head] + suffix
    yield f"{scope.module.__name__}.{target}"
    yield target


def is_module(dotted: str) -> bool:
    """Return whether ``dotted`` names an importable module."""
    return isinstance(lookup(dotted), ModuleType)


def canonical(dotted: str) -> str:
    """Return the path where the object at ``dotted`` is defined (a re-export resolves to its definition)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        obj = lookup(".".join(parts[:cut]))
        if isinstance(obj, ModuleType):
            return ".".join([obj.__name__, *parts[cut:]])
        if inspect.isclass(obj) or inspect.isfunction(obj):
            return ".".join([f"{obj.__module__}.{obj.__qualname__}", *parts[cut:]])
    return dotted


class Documented:
    """The identifiers the API pages document, as autorefs knows them."""

    def __init__(self, anchors: set[str] | None = None) -> None:
        self.anchors = anchors
        pages = "".join(p.read_text("utf-8") for p in sorted(API_PAGES.glob("*.md")))
        self.roots: list[str] = re.findall(r"^::: *([\w.]+)", pages, re.M)

    def path(self, dotted: str) -> str | None:
        """Return the documented path of the object at ``dotted`` (a canonical path), or ``None``."""
        for path in self._public_paths(dotted):
            if self.anchors is not None:
                if path in self.anchors or canonical(path) in self.anchors:
                    return path
            elif self._rendered(path):
                return path
        return None

    def _public_paths(self, dotted: str) -> Iterator[str]:
        """Yield the paths the API pages may document ``dotted`` under: itself, or a documented module's re-export."""
        parts = dotted.split(".")
        home = next(".".join(parts[:cut]) for cut in range(len(parts), 0, -1) if is_module(".".join(parts[:cut])))
        if home in self.roots:
            yield dotted
        # the object's own package first: lcv_core re-exports lcv_config's TrainerConfig under another name
        for root in sorted(self.roots, key=lambda r: r.split(".")[0] != parts[0]):
            module = lookup(root)
            if not isinstance(module, ModuleType):
                continue
            exported = getattr(module, "__all__", None)
            if exported is None:  # without __all__, mkdocstrings renders what the module defines, not its imports
                exported = [n for n, v in vars(module).items() if getattr(v, "__module__", None) == root]
            for cut in range(len(parts), 1, -1):
                head = lookup(".".join(parts[:cut]))
                if head is _MISSING or isinstance(head, ModuleType):
                    continue
                for name in sorted(exported, key=lambda n: n != parts[cut - 1]):  # its own name before an alias
                    if not name.startswith("_") and getattr(module, name, None) is head:
                        yield ".".join([root, name, *parts[cut:]])

    def _rendered(self, path: str) -> bool:
        """Guess whether mkdocstrings renders ``path``: public, and (for members) with a docstring of its own."""
        parts = path.split(".")
        if any(p.startswith("_") for p in parts):
            return False
        obj = lookup(path)
        if obj is _MISSING:
            return False
        if isinstance(obj, ModuleType) or any(path == root for root in self.roots):
            return path in self.roots or any(path.startswith(f"{root}.") for root in self.roots)
        parent = lookup(".".join(parts[:-1]))
        if inspect.isclass(parent):
            member = inspect.getattr_static(parent, parts[-1], None)
            if member is None or parts[-1] not in vars(parent):
                return False  # inherited members are rendered on their own class only
            doc = getattr(member, "__doc__", None) if callable(member) or isinstance(member, property) else "attr"
            return bool(doc)
        return True


def link(role: str, text: str, scope: Scope, documented: Documented) -> tuple[str, str | None]:
    """Return the Markdown for one role and the full path it resolved to (``None`` when unresolved)."""
    title, target = text, text
    match = re.fullmatch(r"(.*?)\s*<([^>]+)>", text)
    if match:
        title, target = match.groups()
    target = target.lstrip("!.")
    short = target.startswith("~")
    target = target.lstrip("~")
    if not match:
        title = target.rsplit(".", 1)[-1] if short else target
    if role in ("meth", "func") and not title.endswith(")"):
        title += "()"
    for candidate in candidates(target, scope):
        if lookup(candidate) is not _MISSING:
            full = canonical(candidate)
            where = documented.path(full) if full.split(".")[0] in LCV else None
            return (f"[`{title}`][{where}]" if where else f"`{title}`"), full
    return f"`{title}`", None


def docstrings(tree: ast.Module) -> Iterator[tuple[ast.Constant, str | None]]:
    """Yield every string-literal statement (docstrings, attribute docstrings) with its enclosing class name."""

    def visit(node: ast.AST, cls: str | None) -> Iterator[tuple[ast.Constant, str | None]]:
        for child in ast.iter_child_nodes(node):
            value = child.value if isinstance(child, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                yield value, cls
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{cls}.{child.name}" if cls else child.name)
            else:
                yield from visit(child, cls)

    yield from visit(tree, None)


def offset(lines: list[str], line: int, col: int) -> int:
    """Return the character offset of ``(line, UTF-8 byte column)`` in the text made of ``lines``."""
    return sum(len(x) for x in lines[: line - 1]) + len(lines[line - 1].encode("utf-8")[:col].decode("utf-8"))


def convert_file(path: Path, documented: Documented) -> tuple[str, list[str]]:
    """Return the file's new text and one report line per role (``file:line: old -> new``)."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    name = module_name(path)
    scope_module = importlib.import_module(name)
    imports = import_map(tree, name)
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, str]] = []
    report: list[str] = []
    for node, cls in docstrings(tree):
        assert node.end_lineno is not None and node.end_col_offset is not None
        start = offset(lines, node.lineno, node.col_offset)
        end = offset(lines, node.end_lineno, node.end_col_offset)
        segment = text[start:end]
        if not ROLE.search(segment):
            continue
        scope = Scope(scope_module, imports, cls)

        def replace(match: re.Match[str], *, line0: int = node.lineno, seg: str = segment, sc: Scope = scope) -> str:
            new, full = link(match.group(1), match.group(2), sc, documented)
            line = line0 + seg[: match.start()].count("\n")
            note = full or "UNRESOLVED: check the name"
            report.append(f"{path}:{line}: {match.group(0)} -> {new}  ({note})")
            return new

        edits.append((start, end, ROLE.sub(replace, segment)))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    new_lines = text.splitlines(keepends=True)  # a role is one line, so the line numbers did not move
    for i in reversed(range(len(new_lines))):
        if new_lines[i] == lines[i] or len(new_lines[i].rstrip("\n")) <= WIDTH:
            continue
        if QUOTES.search(new_lines[i]):  # a summary line cannot wrap: keep the names as code
            new_lines[i] = LINK.sub(r"\1", new_lines[i])
            continue
        first, *rest = rewrap(new_lines[i])
        following = new_lines[i + 1] if i + 1 < len(new_lines) else ""
        if rest and continues(rest[-1], following):  # reflow the paragraph's next line instead of leaving a stub
            rest = [*rest[:-1], *rewrap(rest[-1].rstrip("\n") + " " + following.lstrip())]
            new_lines[i : i + 2] = [first, *rest]
        else:
            new_lines[i : i + 1] = [first, *rest]
    return "".join(new_lines), report


def continues(line: str, following: str) -> bool:
    """Return whether ``following`` is the next line of the same plain paragraph as ``line``."""
    indent = len(line) - len(line.lstrip())
    stripped = following.strip()
    return (
        bool(stripped)
        and len(following) - len(following.lstrip()) == indent
        and not QUOTES.search(stripped)
        and not stripped.startswith(("- ", "* ", "```", ">>>", "|"))
        and not re.match(r"[\w.*]+( \([^)]*\))?: ", stripped)
        and not stripped.endswith(":")
    )


def rewrap(line: str, width: int = WIDTH) -> list[str]:
    """Split a docstring line that a longer link pushed past ``width`` at spaces, indenting as Google style does.

    A continuation of a list item (``- ...``) is indented by 2, of an ``Args:``-style entry (``name: ...``) by 4.
    """
    body = line.rstrip("\n")
    end = line[len(body) :]
    indent = len(body) - len(body.lstrip())
    stripped = body.lstrip()
    extra = 2 if stripped.startswith(("- ", "* ")) else 4 if re.match(r"[\w.*]+( \([^)]*\))?: \S", stripped) else 0
    out: list[str] = []
    while len(body) > width:
        cut = body.rfind(" ", indent + extra + 1, width + 1)
        if cut <= len(body) - len(body.lstrip()):
            break  # one word longer than the line: leave it
        out.append(body[:cut].rstrip() + "\n")
        body = " " * (indent + extra) + body[cut + 1 :]
    return [*out, body + end]


def python_files(paths: list[Path]) -> Iterator[Path]:
    """Yield the ``.py`` files among ``paths`` and under the folders among them, sorted."""
    for path in paths:
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def site_anchors(site: Path) -> set[str]:
    """Return every ``id`` attribute of the HTML pages of a built site."""
    found: set[str] = set()
    for page in site.rglob("*.html"):
        found.update(re.findall(r'\sid="([\w.]+)"', page.read_text(encoding="utf-8")))
    return found


def main(argv: list[str] | None = None) -> int:
    """Convert (or with ``--check`` find) the roles in the given files and folders; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="Python files or folders (e.g. packages/lcv-data/src)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if any role is left")
    parser.add_argument("--dry-run", action="store_true", help="print what would change, write nothing")
    parser.add_argument("--anchors-from", type=Path, metavar="SITE", help="a built site: link only its anchors")
    parser.add_argument("--exclude", action="append", default=[], help="skip files whose path contains this")
    args = parser.parse_args(argv)
    files = [f for f in python_files(args.paths) if not any(x in str(f) for x in args.exclude)]
    if args.check:
        left = [
            f"{f}:{i}: {m.group(0)}"
            for f in files
            for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
            for m in ROLE.finditer(line)
        ]
        print("\n".join(left) or "No reST roles left.")
        return 1 if left else 0
    documented = Documented(site_anchors(args.anchors_from) if args.anchors_from else None)
    unresolved = 0
    for path in files:
        text, report = convert_file(path, documented)
        if report and not args.dry_run:
            path.write_text(text, encoding="utf-8")
        if report:
            print("\n".join(report))
            unresolved += sum("UNRESOLVED" in line for line in report)
    if unresolved:
        print(f"{unresolved} role(s) could not be resolved: written as code spans; fix them by hand", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
