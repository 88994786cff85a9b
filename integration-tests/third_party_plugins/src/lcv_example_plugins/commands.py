"""An ``lcv`` subcommand (``lcv example_folds CONFIG``): print the size of every fold a config makes."""

from __future__ import annotations

import argparse


class FoldSizesCommand:
    """Print each fold's training and validation size for a config (imports torch only in ``run``)."""

    help = "Print the training and validation size of every fold a config's data section makes."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config", nargs="+", help="config files, then key=value overrides")

    def run(self, args: argparse.Namespace) -> int:
        from lcv_config import DATAMODULES, load_config, load_plugin
        from lcv_config.loading import split_arguments

        files, overrides = split_arguments(args.config)
        config = load_config(files, overrides)
        datamodule = load_plugin(DATAMODULES, config.data.datamodule).from_config(config.data, seed=config.seed)
        if callable(getattr(datamodule, "setup", None)):
            datamodule.setup("fit")
        for i, (train, val) in enumerate(datamodule.folds):
            print(f"fold {i}: {len(train)} training, {len(val)} validation")
        return 0
