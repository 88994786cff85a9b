"""The ``lcv cv`` command. Heavy imports happen inside ``run`` so that ``lcv --help`` stays fast."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def new_run_dir(output_dir: str, name: str) -> Path:
    """Return a new ``<output_dir>/<name>/<timestamp>`` directory path (not yet created)."""
    base = Path(output_dir) / name / time.strftime("%Y%m%d-%H%M%S")
    path, n = base, 1
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path


class CvCommand:
    """``lcv cv CONFIG... [key=value ...]``: run a k-fold cross-validation from config files."""

    help = "Cross-validate the experiment a config describes; print per-fold scores with mean ± std."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add config files, overrides and the run directory option."""
        parser.add_argument("config", nargs="+", help="config files (YAML/TOML/JSON), then key=value overrides")
        parser.add_argument("--run-dir", help="write the run here instead of runs/<name>/<timestamp>/")

    def run(self, args: argparse.Namespace) -> int:
        """Validate and build everything, create the run directory, train, print the summary."""
        from lcv_config import load_config
        from lcv_config.cli import installed_lcv_packages
        from lcv_config.loading import dump_config, split_arguments

        files, overrides = split_arguments(args.config)
        config = load_config(files, overrides)  # bad input exits 2 here, before torch is imported
        from lcv_core.configure import configure_all

        run_dir = Path(args.run_dir) if args.run_dir else new_run_dir(config.output_dir, config.name)
        trainer, factory, datamodule = configure_all(config, run_dir=run_dir)
        if hasattr(datamodule, "setup"):
            datamodule.setup("fit")  # computes the folds: bad splits fail here, before anything is written
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_config(config), encoding="utf-8")
        (run_dir / "versions.json").write_text(json.dumps(dict(installed_lcv_packages()), indent=2), encoding="utf-8")
        if hasattr(datamodule, "save_folds"):
            datamodule.save_folds(run_dir / "folds.json")
        try:
            result = trainer.fit(factory, datamodule)
        except Exception as exc:
            (run_dir / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
            raise
        text = result.summary()
        (run_dir / "summary.txt").write_text(text, encoding="utf-8")
        print(f"run directory: {run_dir}", file=sys.stderr)
        return 0
