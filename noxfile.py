"""Every check of the lcv monorepo: one session per package alone, integration, examples, lint, types, docs.

Run all of them with ``nox``, one with ``nox -s lint`` or ``nox -s "test(package='lcv-core')"``.

Environments are made with uv. uv does not read pip's configuration, so pip's configured find-links
(here: a local CPU wheel of torch) are read at run time and handed to uv as ``UV_FIND_LINKS``; every
install also goes through ``constraints.txt``, which pins torch, so no session downloads a CUDA build.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nox

nox.needs_version = ">=2024.10.9"  # nox.project.dependency_groups
nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).resolve().parent
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))
PACKAGES = ("lcv-config", "lcv-core", "lcv-data", "lcv-tune-optuna", "lcv-tune-wandb")
# Test-time packages installed without their dependencies, per lcv package. `sweeps` (W&B's open-source sweep
# engine, for lcv-tune-wandb's offline sweeps) pins numpy<2 but runs on numpy 2; its real dependencies come
# with the `local` extra of lcv-tune-wandb.
NO_DEPS = {"lcv-tune-wandb": ("sweeps",)}
EXTRAS = {"lcv-tune-wandb": "lcv-tune-wandb[local]", "lcv-tune-optuna": "lcv-tune-optuna[postgres]"}
# lcv-core's `onnx` extra, so that `lcv export --format onnx` is tested for real in the integration session.
ONNX = ("onnx>=1.17", "onnxscript>=0.2", "onnxruntime>=1.20")
LINTED = ("packages", "integration-tests", "examples", "benchmarks", "noxfile.py")

# Every session by default, in this order.
nox.options.sessions = ["metadata", "test", "integration", "examples", "build", "lint", "typecheck", "docs"]


def pip_find_links() -> list[str]:
    """Return the find-links locations pip is configured with (files, env), in order, without duplicates."""
    for python in (sys.executable, "python3"):
        try:
            out = subprocess.run(
                [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True, timeout=60
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        links: list[str] = []
        for line in out.splitlines():
            key, _, value = line.partition("=")
            if key.strip().endswith(".find-links"):
                for link in shlex.split(value.strip().strip("'\"")):
                    if link not in links:
                        links.append(link)
        return links
    return []


def _carry_find_links() -> None:
    links = [x for x in os.environ.get("UV_FIND_LINKS", "").split(",") if x]
    links += [x for x in pip_find_links() if x not in links]
    if links:
        os.environ["UV_FIND_LINKS"] = ",".join(links)  # uv's separator for this variable is a comma


_carry_find_links()


def install(session: nox.Session, *args: str) -> None:
    """Install through the constraints file; local lcv packages are always rebuilt from the checkout.

    ``--refresh-package`` keeps uv from reusing a wheel of an lcv package built earlier into its cache,
    whatever uv's rules for noticing changes in a local source tree are.
    """
    refresh = [f"--refresh-package={p}" for p in PACKAGES if any(a.endswith(f"packages/{p}") for a in args)]
    session.install(*CONSTRAINTS, *refresh, *args)


def install_no_deps(session: nox.Session, *packages: str) -> None:
    """Install the ``NO_DEPS`` extras of ``packages``, if any, without their dependencies."""
    extra = [name for p in packages for name in NO_DEPS.get(p, ())]
    if extra:
        session.install(*CONSTRAINTS, "--no-deps", *extra)


def local(package: str) -> str:
    """Return the path of a package of this checkout, as an install argument."""
    return str(ROOT / "packages" / package)


def test_group(package: str) -> tuple[str, ...]:
    """Return the ``test`` dependency group a package's pyproject.toml declares."""
    pyproject = nox.project.load_toml(ROOT / "packages" / package / "pyproject.toml")
    return nox.project.dependency_groups(pyproject, "test")


CHECK_INSTALLED = r"""
import json, sys
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

root, expected, ours = Path(sys.argv[1]).resolve(), set(sys.argv[2].split(",")), set(sys.argv[3].split(","))
found = {}
for dist in metadata.distributions():
    name = (dist.metadata["Name"] or "").lower().replace("_", "-")
    if name in ours:  # lcv's own packages (a third party's lcv-* plugins, such as the test one, are not checked)
        found[name] = dist
problems = []
if set(found) != expected:
    problems.append(
        f"installed lcv packages are {sorted(found)}; expected exactly {sorted(expected)}"
        f" (extra: {sorted(set(found) - expected)}, missing: {sorted(expected - set(found))})"
    )
for name, dist in sorted(found.items()):
    text = dist.read_text("direct_url.json")
    if not text:
        problems.append(f"{name} {dist.version} was installed from an index, not from this checkout")
        continue
    url = json.loads(text).get("url", "")
    path = Path(unquote(urlparse(url).path)).resolve()
    if path != root / "packages" / name:
        problems.append(f"{name} {dist.version} came from {url}, not from {root / 'packages' / name}")
    else:
        print(f"  {name} {dist.version} from {path.relative_to(root)}")
if problems:
    sys.exit("Wrong lcv packages in this environment:\n  " + "\n  ".join(problems))
"""


def check_installed(session: nox.Session, packages: tuple[str, ...]) -> None:
    """Fail unless exactly ``packages`` of lcv are installed, each from this checkout."""
    script = Path(session.create_tmp()) / "check_installed.py"
    script.write_text(CHECK_INSTALLED, encoding="utf-8")
    session.run("python", str(script), str(ROOT), ",".join(packages), ",".join(PACKAGES))


def require_tests(session: nox.Session, path: str) -> None:
    """Fail at once when ``path`` holds no test files: a session that tests nothing must not pass."""
    folder = ROOT / path
    if not any(folder.rglob("test_*.py")) and not any(folder.rglob("*_test.py")):
        session.error(f"{path} holds no test files (test_*.py): nothing would be tested.")


def run_pytest(session: nox.Session, path: str, *args: str) -> None:
    """Run pytest on ``path``; pytest's exit code 5 (no tests collected) fails the session like any other."""
    session.run("pytest", path, *args, *session.posargs, success_codes=[0])


@nox.session
@nox.parametrize("package", PACKAGES)
def test(session: nox.Session, package: str) -> None:
    """Test one package alone: only it, lcv-config and their declared dependencies are installed."""
    require_tests(session, f"packages/{package}/tests")
    expected = tuple(dict.fromkeys(("lcv-config", package)))
    install(session, *(local(p) for p in expected), *test_group(package))
    install_no_deps(session, package)
    check_installed(session, expected)
    run_pytest(session, f"packages/{package}/tests")


@nox.session
def integration(session: nox.Session) -> None:
    """Test the packages together: they find each other only through entry points."""
    require_tests(session, "integration-tests")
    # lcv-example-plugins: a third party's plugins of every kind, one of them clashing with lcv-data's
    third_party = str(ROOT / "integration-tests" / "third_party_plugins")
    install(
        session,
        *(local(p) for p in PACKAGES),
        third_party,
        *EXTRAS.values(),
        "pytest>=8",
        "pandas>=2.0",
        *ONNX,
        "tensorboard>=2.14",
    )
    install_no_deps(session, *PACKAGES)
    check_installed(session, PACKAGES)
    run_pytest(session, "integration-tests")


@nox.session
def examples(session: nox.Session) -> None:
    """Run every example, with tiny settings, in one pytest process."""
    require_tests(session, "examples")
    install(session, *(local(p) for p in PACKAGES), *EXTRAS.values(), "pytest>=8", "pandas>=2.0", "tensorboard>=2.14")
    install_no_deps(session, *PACKAGES)
    check_installed(session, PACKAGES)
    run_pytest(session, "examples")


@nox.session
def lint(session: nox.Session) -> None:
    """Lint and check formatting with ruff (configured in the root pyproject.toml)."""
    session.install(*CONSTRAINTS, "ruff")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", "--diff", *LINTED)


@nox.session
def typecheck(session: nox.Session) -> None:
    """Check types with mypy in strict mode, and the package boundaries with import-linter."""
    editable = [arg for p in PACKAGES for arg in ("-e", local(p))]
    install(session, *editable, "mypy>=1.11", "types-PyYAML", "import-linter>=2.1")
    session.run("lint-imports", "--no-cache")  # first: a broken boundary is reported even when mypy fails
    session.run("mypy", *(f"packages/{p}/src" for p in PACKAGES))


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation with mkdocs-material (every warning an error), then check the built site."""
    session.install(*CONSTRAINTS, "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26")
    site = Path(session.create_tmp()) / "site"
    session.run("mkdocs", "build", "--strict", "--site-dir", str(site), env={"NO_MKDOCS_2_WARNING": "1"})
    session.run("python", "scripts/check_site.py", str(site))  # raw reST roles, broken links and anchors, CDNs


@nox.session
def metadata(session: nox.Session) -> None:
    """Check what a release needs: changelog entries, sibling ranges, URLs, license files, classifiers, READMEs."""
    session.install(*CONSTRAINTS, "packaging>=24", "trove-classifiers")
    session.run("python", "scripts/release.py", "check")


@nox.session(venv_backend="none")
def release(session: nox.Session) -> None:
    """Bump one package's version and open its changelog entry: ``nox -s release -- lcv-core 0.2.0``."""
    if len(session.posargs) != 2:
        session.error("usage: nox -s release -- PACKAGE VERSION   (e.g. nox -s release -- lcv-core 0.2.0)")
    session.run(sys.executable, "scripts/release.py", "bump", *session.posargs)


# `lcv tune` in the build session: 2 trials of the digits example, 1 epoch on 2 folds, for each backend.
TUNE_SMOKE = """
tune:
  backend: {backend}
  space:
    optimizer.cfg.lr: {{type: float, low: 0.001, high: 0.1, log: true}}
"""
TINY = (
    "trainer.max_epochs=1",
    "data.splitter.cfg.n_splits=2",
    "model.cfg.hidden=[32]",
    "trainer.enable_progress_bar=false",
)
# The README quickstart of a tuner package, run with only it and lcv-config installed.
TUNER_SMOKE = """
import sys
from {module} import {cls}
tuner = {cls}(space={{"x": {{"type": "float", "low": -1, "high": 1}}}}, direction="minimize", workdir=sys.argv[1])
tuner.optimize(lambda trial: trial.params["x"] ** 2, n_trials=2)
print("{cls}: best", tuner.best_params)
"""
CHECK_DISTS = r"""
import sys, tarfile, zipfile
from pathlib import Path

problems = []
files = sorted(p for p in Path(sys.argv[1]).iterdir() if p.name.endswith((".whl", ".tar.gz")))
for path in files:
    names = zipfile.ZipFile(path).namelist() if path.suffix == ".whl" else tarfile.open(path).getnames()
    if not any(n.endswith(("/licenses/LICENSE", "/LICENSE")) and n.count("/") <= 3 for n in names):
        problems.append(f"{path.name} ships no LICENSE")
    print(f"  {path.name}: {path.stat().st_size / 1024:.0f} KiB, {len(names)} files")
if len([f for f in files if f.suffix == ".whl"]) != int(sys.argv[2]):
    problems.append(f"expected {sys.argv[2]} wheels in {sys.argv[1]}")
if problems:
    sys.exit("\n".join(problems))
"""


@nox.session
def build(session: nox.Session) -> None:
    """Build every wheel and sdist, check them, and run each package installed alone from its own wheel.

    Each environment is fresh and holds only built files of lcv (never this checkout): lcv-config alone runs
    ``lcv components`` without torch; each tuner with lcv-config alone runs its README quickstart; lcv-core and
    lcv-data run ``lcv cv`` on the digits example, then ``lcv tune`` (2 trials) with each tuner added.
    """
    session.install(*CONSTRAINTS, "uv", "twine>=6.1", "check-wheel-contents")
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    for path in (dist, tmp / "envs", tmp / "runs"):
        shutil.rmtree(path, ignore_errors=True)  # create_tmp keeps the last run's files
    for package in PACKAGES:
        session.run("uv", "build", "--quiet", "--out-dir", str(dist), local(package))
    check = tmp / "check_dists.py"
    check.write_text(CHECK_DISTS, encoding="utf-8")
    session.run("python", str(check), str(dist), str(len(PACKAGES)))
    built = sorted([*dist.glob("*.whl"), *dist.glob("*.tar.gz")])
    session.run("twine", "check", "--strict", *map(str, built))
    session.run("check-wheel-contents", *(str(p) for p in built if p.suffix == ".whl"))
    wheels = {p: next(dist.glob(f"{p.replace('-', '_')}-*.whl")) for p in PACKAGES}

    def env(name: str, *packages: str, extras: dict[str, str] | None = None) -> Path:
        """Create a fresh environment holding the wheels of ``packages``; return its bin folder."""
        venv = tmp / "envs" / name
        session.run("uv", "venv", "--quiet", "--python", sys.executable, str(venv))
        add(venv, *packages, extras=extras)
        return venv / "bin"

    def add(venv: Path, *packages: str, extras: dict[str, str] | None = None) -> None:
        """Install the wheels of ``packages`` (with ``extras``) and their dependencies into ``venv``."""
        specs = [
            f"{p}[{(extras or {})[p]}] @ {wheels[p].as_uri()}" if p in (extras or {}) else str(wheels[p])
            for p in packages
        ]
        python = str(venv / "bin" / "python")
        session.run("uv", "pip", "install", "--quiet", "--python", python, *CONSTRAINTS, *specs)
        for name in (n for p in packages for n in NO_DEPS.get(p, ())):
            session.run("uv", "pip", "install", "--quiet", "--python", python, *CONSTRAINTS, "--no-deps", name)

    def run(bin_dir: Path, *args: str, **kwargs: Any) -> None:
        session.run(str(bin_dir / args[0]), *args[1:], external=True, **kwargs)

    runs = tmp / "runs"
    runs.mkdir()
    config_only = env("lcv-config", "lcv-config")
    run(config_only, "lcv", "--help")
    run(config_only, "lcv", "components")
    run(config_only, "python", "-c", "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)")
    offline = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    for package, module, cls in (
        ("lcv-tune-optuna", "lcv_tune_optuna", "OptunaTuner"),
        ("lcv-tune-wandb", "lcv_tune_wandb", "WandbTuner"),
    ):
        alone = env(package, "lcv-config", package, extras={"lcv-tune-wandb": "local"})
        run(alone, "lcv", "components", "tuners")
        smoke = TUNER_SMOKE.format(module=module, cls=cls)
        run(alone, "python", "-c", smoke, str(runs / package), env=offline)
    training = env("lcv-core+lcv-data", "lcv-config", "lcv-core", "lcv-data")
    digits = str(ROOT / "examples" / "digits" / "config.yaml")
    run(training, "lcv", "cv", digits, *TINY, "--run-dir", str(runs / "cv"))
    for backend, package in (("optuna", "lcv-tune-optuna"), ("wandb", "lcv-tune-wandb")):
        add(tmp / "envs" / "lcv-core+lcv-data", package, extras={"lcv-tune-wandb": "local"})
        tune = runs / f"tune-{backend}.yaml"
        tune.write_text(TUNE_SMOKE.format(backend=backend), encoding="utf-8")
        target = runs / f"tune-{backend}"
        run(training, "lcv", "tune", digits, str(tune), *TINY, "--n-trials", "2", "--run-dir", str(target), env=offline)
