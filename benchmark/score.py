"""``qmap score``: score a folder of released outputs against targets, without retraining.

Outputs and targets are matched by image id (the leading ``aNNNN`` where present, else the file
stem), never by listing order. Both sides go through the same conventions as the Evaluator:
the protocol's resizing (``d``: long side 512, area interpolation; ``f``: as is), clamping and
8-bit quantisation, then ``benchmark.metrics``. Files that cannot be paired or read are reported
by name; the rows of everything else are written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from benchmark import results


def score_folders(pred_dir: Path, target_dir: Path, protocol: str = "f", label: str | None = None,
                  dataset: str | None = None, lpips_weights: str | None = None,
                  progress: bool = True) -> tuple[Any, dict[str, list[str]], dict[str, str]]:
    """Score matched images; returns (rows DataFrame, problems by kind, unavailable metrics)."""
    import torch

    from benchmark.metrics import ImageScorer, quantize
    from datamodules.io import ImageReadError, match_pairs, read_image
    from datamodules.transforms import apply_protocol, to_tensor

    match = match_pairs(pred_dir, target_dir)
    problems: dict[str, list[str]] = {
        "no target for output": match.missing_target,
        "no output for target": match.missing_input,
        "unreadable": [],
        "size mismatch": [],
    }
    scorer = ImageScorer(lpips_weights=lpips_weights)
    label = label or pred_dir.name
    dataset = dataset or target_dir.name
    rows: list[dict[str, Any]] = []
    for index, (key, pred_path, target_path) in enumerate(match.pairs, start=1):
        try:
            pred_img, target_img = read_image(pred_path), read_image(target_path)
        except ImageReadError as err:
            problems["unreadable"].append(str(err))
            continue
        if pred_img.shape != target_img.shape:
            problems["size mismatch"].append(f"{pred_path.name} {pred_img.shape[:2]} vs {target_path.name} "
                                             f"{target_img.shape[:2]}")
            continue
        pred = quantize(to_tensor(apply_protocol(pred_img, protocol)))
        target = quantize(to_tensor(apply_protocol(target_img, protocol)))
        with torch.no_grad():
            scores = scorer.score(pred, target)
        for metric, value in scores.items():
            rows.append({"suite": "score", "run_id": results.make_run_id(label, dataset, 0), "label": label,
                         "method": "external", "dataset": dataset, "protocol": protocol, "split": "",
                         "seed": 0, "key": key, "frame": 0, "metric": metric, "value": float(value),
                         "higher_is_better": results.HIGHER_IS_BETTER[metric]})
        if progress:
            print(f"\r  scored {index}/{len(match.pairs)}", end="", file=sys.stderr, flush=True)
    if progress and match.pairs:
        print(file=sys.stderr)
    return results.rows_frame(rows), problems, scorer.unavailable


def main(argv: list[str] | None = None) -> int:
    """``qmap score PRED_DIR TARGET_DIR --out DIR [--protocol d|f]``."""
    parser = argparse.ArgumentParser(prog="qmap score", description=__doc__.split("\n\n")[0])
    parser.add_argument("pred_dir", type=Path, help="folder of method outputs (PNG, JPEG or TIFF)")
    parser.add_argument("target_dir", type=Path, help="folder of ground-truth targets")
    parser.add_argument("--out", type=Path, required=True, help="folder for rows.csv and summary.md")
    parser.add_argument("--protocol", choices=("d", "f"), default="f",
                        help="d: both resized to long side 512 (area); f: full resolution (default)")
    parser.add_argument("--label", help="method label in the rows (default: the output folder's name)")
    parser.add_argument("--dataset", help="dataset label in the rows (default: the target folder's name)")
    parser.add_argument("--lpips-weights", help="explicit path of alexnet-owt-7be5be79.pth (default: TORCH_HOME)")
    args = parser.parse_args(argv)
    for folder in (args.pred_dir, args.target_dir):
        if not folder.is_dir():
            print(f"qmap score: {folder} is not a folder", file=sys.stderr)
            return 2

    rows, problems, unavailable = score_folders(args.pred_dir, args.target_dir, args.protocol, args.label,
                                                args.dataset, args.lpips_weights)
    args.out.mkdir(parents=True, exist_ok=True)
    results.write_rows(args.out / results.ROWS_FILE, rows)
    summary = _summary(rows, problems, unavailable, args)
    results.atomic_write_text(args.out / "summary.md", summary)
    print(summary)
    print(f"Rows written to {args.out / results.ROWS_FILE}; summary in {args.out / 'summary.md'}")
    return 1 if rows.empty else 0


def _summary(rows: Any, problems: dict[str, list[str]], unavailable: dict[str, str], args: argparse.Namespace) -> str:
    lines = [f"# qmap score: {args.pred_dir} vs {args.target_dir} (protocol {args.protocol})", ""]
    images = rows["key"].nunique() if not rows.empty else 0
    lines.append(f"{images} image pairs scored. Outputs clamped to [0, 1] and quantised as round(x*255); "
                 "PSNR per image, then averaged.")
    lines.append("")
    if not rows.empty:
        lines += ["| metric | mean | images |", "|---|---|---|"]
        for metric, group in rows.groupby("metric", sort=False):
            values = group["value"].dropna()
            mean = f"{values.mean():.4f}" if len(values) else "n/a"
            lines.append(f"| {metric} | {mean} | {len(values)} |")
        lines.append("")
    for metric, message in unavailable.items():
        lines.append(f"- {metric} n/a: {message}")
    for kind, names in problems.items():
        if names:
            lines.append(f"- {len(names)} {kind}: {', '.join(names[:20])}{' ...' if len(names) > 20 else ''}")
    return "\n".join(lines) + "\n"
