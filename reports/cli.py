"""``qmap report DIR [--out OUT]``: tables, preference matrices, plots and report.html from runs.

Torch-free on purpose, so the command starts fast; ``benchmark.cli`` hands ``report`` here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Summarise the finished runs below DIR (a suite folder runs/<suite>, or a folder of suites) into
method tables: one row per method label, one column per metric and protocol (PSNR_d, SSIM_f,
PSNR_100, ...). Each cell is the mean over images per seed (for video: over the frames of each
video, then over videos), then mean ± std over seeds; the best value per column is bold, the
second best underlined. Writes to DIR/report (or --out):
table.md, table.tex (booktabs) and table.csv (numbers only); table_<layout>.* for every seed
layout that applies (muspe_table1, muspe_table2, upe_fivek, wespe_dped; see --layout);
preference/<dataset>/ with the virtual-rater preference matrix (full-reference metrics as
raters, not human judgements); compare_<dataset>_<label>.* for every run fine-tuned from
another run's checkpoint on a video set (per-frame vs recurrent, with per-video wins/losses);
plots/ (quality vs latency, sample grids); and one
self-contained report.html. Prints the Markdown table with its caption. Runs that failed or are
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
    from reports.tables import LAYOUTS

    parser.add_argument(
        "--layout",
        choices=("auto", "generic", *LAYOUTS),
        default="auto",
        help="auto (default): generic tables plus every seed layout that applies; generic: only the "
        "generic tables; a layout name: the generic tables plus that layout (an error if it does not apply)",
    )
    parser.add_argument(
        "--reported",
        action="store_true",
        help="add the numbers published in the seed beside ours in the layouts that have them, each row "
        "marked 'reported in <source>', with a warning where data, split or protocol differ",
    )
    parser.add_argument(
        "--bootstrap", type=int, default=200, metavar="N", help="bootstrap samples of the virtual-rater JOD intervals"
    )
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also log the tables, preference matrices and plots to a W&B report run in the suite's group "
        "(offline unless WANDB_MODE=online; sync later with `wandb sync`)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``qmap report``; returns the exit code (0 on success, 1 on a reportable error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bootstrap < 2:
        parser.error("--bootstrap must be at least 2")
    from reports.build import build_report
    from reports.tables import NoFinishedRunsError

    try:
        files = build_report(args.dir, args.out, layout=args.layout, reported=args.reported, wandb=args.wandb,
                             bootstrap=args.bootstrap, partial="mark" if args.allow_incomplete else "raise")
    except NoFinishedRunsError as err:
        print(f"qmap report: {err}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as err:
        print(f"qmap report: cannot report {args.dir}: {err}", file=sys.stderr)
        return 1
    paths = files.generic
    print(paths["md"].read_text(encoding="utf-8"))
    folder = paths["md"].parent
    print(f"Report written to {folder}: " + ", ".join(path.name for path in paths.values()))
    for name, layout_paths in files.layouts.items():
        print(f"  layout {name}: " + ", ".join(path.name for path in layout_paths))
    for dataset, preference_paths in files.preference.items():
        print(f"  virtual-rater preference matrix ({dataset}): {preference_paths['summary'].parent}")
    for paths_of_one in files.comparisons.values():
        print("  per-frame vs recurrent comparison: " + ", ".join(path.name for path in paths_of_one))
    for path in files.plots:
        print(f"  plot: {path.relative_to(folder)}")
    for note in files.notes:
        print(f"  note: {note}")
    if files.wandb is not None:
        print(f"  W&B report run (sync later with `wandb sync {files.wandb}`): {files.wandb}")
    timing = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in files.seconds.items())
    print(f"  report.html: {files.html} ({timing})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
