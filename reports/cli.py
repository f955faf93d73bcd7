"""``qmap report DIR [--out OUT]``: method tables (Markdown, LaTeX, CSV) from a folder of runs.

Torch-free on purpose, so the command starts fast; ``benchmark.cli`` hands ``report`` here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Summarise the finished runs below DIR (a suite folder runs/<suite>, or a folder of suites) into
method tables: one row per method label, one column per metric and protocol (PSNR_d, SSIM_f,
PSNR_100, ...). Each cell is the mean over images per seed, then mean ± std over seeds; the best
value per column is bold. Writes table.md, table.tex (booktabs) and table.csv (numbers only) to
DIR/report (or --out) and prints the Markdown table with its caption. Runs that failed or are
still running are left out and named in a warning line.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qmap report",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dir", metavar="DIR", type=Path, help="runs folder: runs/<suite> or a folder of suites")
    parser.add_argument(
        "--out", metavar="OUT", type=Path, default=None, help="where to write the tables (default: DIR/report)"
    )
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="report a cell whose images are partly n/a as 'incomplete' instead of stopping with an error",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``qmap report``; returns the exit code (0 on success, 1 on a reportable error)."""
    args = build_parser().parse_args(argv)
    from reports.tables import NoFinishedRunsError, write_report

    try:
        paths = write_report(args.dir, args.out, partial="mark" if args.allow_incomplete else "raise")
    except NoFinishedRunsError as err:
        print(f"qmap report: {err}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as err:
        print(f"qmap report: cannot report {args.dir}: {err}", file=sys.stderr)
        return 1
    print(paths["md"].read_text(encoding="utf-8"))
    folder = paths["md"].parent
    print(f"Report written to {folder}: " + ", ".join(path.name for path in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
