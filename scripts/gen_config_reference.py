"""Write docs/reference/config.md from the experiment config schema (lcv_config.schema).

Run it after changing the schema: ``python scripts/gen_config_reference.py``; ``--check`` exits 1 when the
committed page is out of date instead of writing it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lcv_config.reference import config_reference

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "config.md"


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the configuration reference page; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page differs instead of writing it")
    parser.add_argument("--output", type=Path, default=PAGE, help=f"where to write the page (default: {PAGE})")
    args = parser.parse_args(argv)
    text = config_reference()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; run: python scripts/gen_config_reference.py", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
