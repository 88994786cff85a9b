"""Release tooling of the lcv monorepo: the project's URLs, a version bump per package, and the release checks.

Each package has its own version (``src/<module>/__about__.py``) and changelog (``CHANGELOG.md``)::

    python scripts/release.py bump lcv-core 0.2.0   # set the version; add "## 0.2.0 (unreleased)" to the changelog
    python scripts/release.py date lcv-core         # on release day: "(unreleased)" becomes today's date
    python scripts/release.py check                 # what `nox -s metadata` runs: exit 1 naming every problem

``check`` fails when a package's changelog has no entry (a heading with at least one item) for its current
version, when a sibling's ``lcv-config>=a,<b`` range excludes lcv-config's current version, when a package's
URLs, license file, classifiers or README drift from what is published, or when ``mkdocs.yml`` names another site.

The project's URLs live here and nowhere else: ``pyproject.toml``, the package READMEs and ``mkdocs.yml``
are checked against ``REPOSITORY_URL`` and ``DOCS_URL``.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lcv-config", "lcv-core", "lcv-data", "lcv-tune-optuna", "lcv-tune-wandb")

REPOSITORY_URL = "https://github.com/lcv-dev/lcv"
"""The source repository: the packages' Homepage, and the base of their Changelog and Issues URLs."""
DOCS_URL = "https://lcv-dev.github.io/lcv/"
"""The published documentation: the packages' Documentation URL and ``site_url`` in ``mkdocs.yml``."""

VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"$', re.M)
HEADING = re.compile(r"^## (\S+)(.*)$", re.M)
RELATIVE_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)]+)\)")


def project_urls(package: str) -> dict[str, str]:
    """Return the ``[project.urls]`` table every package's pyproject.toml must hold."""
    return {
        "Homepage": REPOSITORY_URL,
        "Documentation": DOCS_URL,
        "Changelog": f"{REPOSITORY_URL}/blob/main/packages/{package}/CHANGELOG.md",
        "Issues": f"{REPOSITORY_URL}/issues",
    }


def package_dir(package: str) -> Path:
    """Return the folder of ``package``, or exit with the list of packages when it is not one."""
    if package not in PACKAGES:
        sys.exit(f"Unknown package {package!r}; one of: {', '.join(PACKAGES)}")
    return ROOT / "packages" / package


def about_file(package: str) -> Path:
    """Return the ``__about__.py`` hatchling reads the version of ``package`` from."""
    pyproject = tomllib.loads((package_dir(package) / "pyproject.toml").read_text(encoding="utf-8"))
    return package_dir(package) / pyproject["tool"]["hatch"]["version"]["path"]


def version_of(package: str) -> str:
    """Return the current version of ``package``, read from its ``__about__.py``."""
    match = VERSION_LINE.search(about_file(package).read_text(encoding="utf-8"))
    if match is None:
        sys.exit(f'{about_file(package)}: no line `__version__ = "..."`')
    return match.group(1)


def changelog_entry(text: str, version: str) -> list[str] | None:
    """Return the items under the ``## <version>`` heading of a changelog, or ``None`` without that heading."""
    headings = list(HEADING.finditer(text))
    for i, heading in enumerate(headings):
        if heading.group(1) == version:
            end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
            return [line for line in text[heading.end() : end].splitlines() if line.lstrip().startswith(("- ", "* "))]
    return None


def bump(package: str, version: str) -> None:
    """Set the version of ``package`` and open its changelog entry for that version."""
    try:
        new = Version(version)
    except InvalidVersion:
        sys.exit(f"{version!r} is not a valid version (PEP 440), e.g. 0.2.0 or 0.2.0rc1")
    old = version_of(package)
    if new <= Version(old):
        sys.exit(f"{package} is at {old}; the new version must be higher than that, not {version}")
    about = about_file(package)
    about.write_text(VERSION_LINE.sub(f'__version__ = "{version}"', about.read_text(encoding="utf-8")), "utf-8")
    changelog = package_dir(package) / "CHANGELOG.md"
    text = changelog.read_text(encoding="utf-8")
    if changelog_entry(text, version) is None:
        first = HEADING.search(text)
        at = first.start() if first else len(text)
        text = f"{text[:at]}## {version} (unreleased)\n\n{text[at:]}"
        changelog.write_text(text, encoding="utf-8")
    print(f"{package}: {old} -> {version} in {about.relative_to(ROOT)}")
    print(f"Now list the changes under '## {version}' in {changelog.relative_to(ROOT)}; `nox -s metadata` checks it.")
    if package == "lcv-config":
        for problem in sibling_range_problems():
            print(problem)


def date(package: str) -> None:
    """Replace ``(unreleased)`` in the changelog heading of the current version with today's date."""
    version = version_of(package)
    changelog = package_dir(package) / "CHANGELOG.md"
    text = changelog.read_text(encoding="utf-8")
    heading = f"## {version} (unreleased)"
    if heading not in text:
        sys.exit(f"{changelog.relative_to(ROOT)} has no heading '{heading}'")
    changelog.write_text(text.replace(heading, f"## {version} ({datetime.date.today().isoformat()})", 1), "utf-8")
    print(f"{changelog.relative_to(ROOT)}: {version} dated {datetime.date.today().isoformat()}")


def sibling_range_problems() -> list[str]:
    """Return a message for each package whose requirement on a sibling excludes that sibling's current version."""
    problems = []
    for package in PACKAGES:
        pyproject = tomllib.loads((package_dir(package) / "pyproject.toml").read_text(encoding="utf-8"))
        for line in pyproject["project"].get("dependencies", []):
            requirement = Requirement(line)
            if requirement.name in PACKAGES:
                current = version_of(requirement.name)
                if not requirement.specifier.contains(current, prereleases=True):
                    problems.append(
                        f"packages/{package}/pyproject.toml requires '{requirement}', which excludes "
                        f"{requirement.name} {current} (its current version): widen the range"
                    )
    return problems


def package_problems(package: str) -> list[str]:
    """Return what is wrong with the release metadata of ``package``."""
    folder = package_dir(package)
    where = f"packages/{package}"
    pyproject = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    problems = []
    version = version_of(package)
    changelog = (folder / "CHANGELOG.md").read_text(encoding="utf-8")
    entry = changelog_entry(changelog, version)
    if not entry:
        what = "no heading" if entry is None else "a heading but no item (a line starting with '- ')"
        problems.append(f"{where}/CHANGELOG.md has {what} for the current version {version} ('## {version} ...')")
    if project.get("urls") != project_urls(package):
        problems.append(f"{where}/pyproject.toml [project.urls] must be {project_urls(package)} (scripts/release.py)")
    if project.get("license") != "Apache-2.0" or "LICENSE" not in project.get("license-files", []):
        problems.append(f'{where}/pyproject.toml needs license = "Apache-2.0" and license-files = ["LICENSE"]')
    if (folder / "LICENSE").read_bytes() != (ROOT / "LICENSE").read_bytes():
        problems.append(f"{where}/LICENSE differs from the repository's LICENSE: copy it over")
    if not project.get("authors") or not project.get("maintainers"):
        problems.append(f"{where}/pyproject.toml needs authors and maintainers")
    problems += classifier_problems(where, project.get("classifiers", []))
    readme = (folder / project["readme"]).read_text(encoding="utf-8")
    for link in RELATIVE_LINK.findall(readme):
        problems.append(f"{where}/{project['readme']} links to {link!r}, which breaks on the package index")
    if DOCS_URL not in readme:
        problems.append(f"{where}/{project['readme']} never links the documentation ({DOCS_URL})")
    return problems


def classifier_problems(where: str, classifiers: list[str]) -> list[str]:
    """Return a message for each classifier PyPI would refuse."""
    problems = []
    if not classifiers:
        problems.append(f"{where}/pyproject.toml has no classifiers")
    try:
        from trove_classifiers import classifiers as known
    except ImportError:  # the nox session installs it; a bare run checks everything else
        known = None
    for classifier in classifiers:
        if known is not None and classifier not in known:
            problems.append(f"{where}/pyproject.toml: {classifier!r} is not a trove classifier (PyPI refuses it)")
        if classifier.startswith("License ::"):
            problems.append(f"{where}/pyproject.toml: {classifier!r}: PEP 639 `license` replaces license classifiers")
    return problems


def site_problems() -> list[str]:
    """Return a message when ``mkdocs.yml`` names another site or repository than ``DOCS_URL``/``REPOSITORY_URL``."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    problems = []
    for key, url in (("site_url", DOCS_URL), ("repo_url", REPOSITORY_URL)):
        match = re.search(rf"^{key}:\s*(\S+)\s*$", text, re.M)
        if match is None or match.group(1) != url:
            problems.append(f"mkdocs.yml: {key} must be {url} (scripts/release.py)")
    return problems


def check() -> int:
    """Print every release problem of every package; return 1 if there is any."""
    problems = [p for package in PACKAGES for p in package_problems(package)]
    problems += sibling_range_problems() + site_problems()
    for package in PACKAGES:
        print(f"{package} {version_of(package)}")
    if problems:
        print("\n".join(["", "Release check failed:", *(f"  {p}" for p in problems)]), file=sys.stderr)
        return 1
    print("Release check passed: changelog entries, sibling ranges, URLs, license files, classifiers, READMEs.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``bump``, ``date`` or ``check`` command; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    bump_parser = commands.add_parser("bump", help="set a package's version and open its changelog entry")
    bump_parser.add_argument("package", choices=PACKAGES)
    bump_parser.add_argument("version")
    date_parser = commands.add_parser("date", help="date the changelog entry of a package's current version")
    date_parser.add_argument("package", choices=PACKAGES)
    commands.add_parser("check", help="check changelogs, sibling ranges and published metadata")
    args = parser.parse_args(argv)
    if args.command == "bump":
        bump(args.package, args.version)
        return 0
    if args.command == "date":
        date(args.package)
        return 0
    return check()


if __name__ == "__main__":
    sys.exit(main())
