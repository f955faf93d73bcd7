"""``qmap data check`` and ``qmap data demo``: verify a paired dataset, build the demo sets.

The check reads image headers only (Pillow's ``Image.open(p).size``), so it stays fast on
full-resolution FiveK; ``--deep`` decodes every file as training would. Nothing here imports
torch, so both commands start quickly.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from datamodules.io import (
    BUILTIN_SPLITS,
    SplitSpec,
    available_splits,
    exif_orientation,
    find_target_dir,
    list_images,
    load_split,
    read_image,
    split_problems,
)

Size = tuple[int, int]  # (width, height), upright


@dataclass
class SplitCheck:
    """One split as checked.

    Attributes:
        name: Split name.
        source: Where its ids come from (ranges or list-file folder).
        counts: Images per part.
        list_files: List file -> SHA-256 (empty for built-in ranges).
        missing: Part -> listed ids that have no input/target pair (all of them).
        problems: Messages that make the split unusable.
    """

    name: str
    source: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    list_files: dict[str, str] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    """Everything ``qmap data check`` found about a paired dataset.

    Attributes:
        root: Dataset root.
        input_dir: Input folder, None when absent.
        target_dir: Target folder used (``target``, ``expertC`` or given), None when absent.
        input_count: Images in the input folder.
        target_count: Images in the target folder.
        pair_count: Ids present on both sides.
        missing_target: Ids with an input but no target.
        missing_input: Ids with a target but no input.
        size_mismatches: ``(id, input (w, h), target (w, h))``.
        unreadable: ``(path, reason)`` per file that could not be read.
        long_side: ``{"input"|"target": {"min", "median", "max"}}`` of the image long sides.
        splits: The checked split(s).
        errors: Problems that prevent using the dataset at all (missing folders, duplicate ids).
        deep: Whether every image was fully decoded.
    """

    root: Path
    input_dir: Path | None = None
    target_dir: Path | None = None
    input_count: int = 0
    target_count: int = 0
    pair_count: int = 0
    missing_target: list[str] = field(default_factory=list)
    missing_input: list[str] = field(default_factory=list)
    size_mismatches: list[tuple[str, Size, Size]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    long_side: dict[str, dict[str, float]] = field(default_factory=dict)
    splits: list[SplitCheck] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    deep: bool = False

    @property
    def ok(self) -> bool:
        """True when the dataset can be used as is."""
        return not (
            self.errors
            or self.missing_target
            or self.missing_input
            or self.size_mismatches
            or self.unreadable
            or any(split.problems for split in self.splits)
        )


def image_size(path: Path, deep: bool = False) -> Size:
    """Upright ``(width, height)`` of an image, from its header unless ``deep``.

    Orientations 5-8 swap the sides, as :func:`datamodules.io.read_image` does when decoding.

    Raises:
        Exception: Whatever the decoder raises for an unreadable file.
    """
    if deep:
        image = read_image(path)
        return image.shape[1], image.shape[0]
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
    except Exception:  # noqa: BLE001 - Pillow lacks some layouts OpenCV reads (48-bit TIFF)
        image = read_image(path)
        return image.shape[1], image.shape[0]
    if exif_orientation(path) in (5, 6, 7, 8):
        width, height = height, width
    return width, height


def _sizes(files: dict[str, Path], deep: bool, unreadable: list[tuple[str, str]]) -> dict[str, Size]:
    sizes = {}
    for key, path in files.items():
        try:
            sizes[key] = image_size(path, deep)
        except Exception as err:  # noqa: BLE001 - every failure is reported, none is fatal
            unreadable.append((str(path), str(err) or type(err).__name__))
    return sizes


def _summary(sizes: dict[str, Size]) -> dict[str, float]:
    if not sizes:
        return {}
    sides = [max(size) for size in sizes.values()]
    return {"min": min(sides), "median": statistics.median(sides), "max": max(sides)}


def _check_split(root: Path, name: str, available: list[str]) -> SplitCheck:
    try:
        spec: SplitSpec = load_split(root, name, available)
    except ValueError as err:
        return SplitCheck(name=name, problems=[str(err)])
    known = set(available)
    return SplitCheck(
        name=name,
        source=spec.source,
        counts={part: len(ids) for part, ids in spec.ids.items()},
        list_files=dict(spec.list_files),
        missing={
            part: [k for k in ids if k not in known] for part, ids in spec.ids.items() if set(ids) - known
        },
        problems=split_problems(spec, available),
    )


def check_dataset(root: str, split: str | None = None, deep: bool = False) -> CheckReport:
    """Checks a paired dataset before a long run.

    Args:
        root: Dataset root holding ``input/`` and ``target/`` (or ``expertC/``).
        split: Split to check; None checks every list-file split under ``root/splits`` and the
            built-in splits that select any image.
        deep: Decode every image instead of reading headers.

    Returns:
        The report; ``report.ok`` says whether the dataset is usable.
    """
    report = CheckReport(root=Path(root), deep=deep)
    if not report.root.is_dir():
        report.errors.append(f"dataset root does not exist: {report.root}")
        return report
    try:
        report.target_dir = find_target_dir(report.root)
        inputs = list_images(report.root / "input")
        report.input_dir = report.root / "input"
        targets = list_images(report.target_dir)
    except (FileNotFoundError, ValueError) as err:
        report.errors.append(str(err))
        return report

    report.input_count, report.target_count = len(inputs), len(targets)
    report.missing_target = sorted(set(inputs) - set(targets))
    report.missing_input = sorted(set(targets) - set(inputs))
    paired = sorted(set(inputs) & set(targets))
    report.pair_count = len(paired)

    input_sizes = _sizes(inputs, deep, report.unreadable)
    target_sizes = _sizes(targets, deep, report.unreadable)
    report.long_side = {"input": _summary(input_sizes), "target": _summary(target_sizes)}
    report.size_mismatches = [
        (key, input_sizes[key], target_sizes[key])
        for key in paired
        if key in input_sizes and key in target_sizes and input_sizes[key] != target_sizes[key]
    ]

    if split is not None:
        report.splits = [_check_split(report.root, split, paired)]
    else:
        names = dict.fromkeys(available_splits(report.root))
        checked = [_check_split(report.root, name, paired) for name in names]
        # Built-in ranges fit only FiveK-named data; show them where they select something.
        report.splits = [c for c in checked if c.name not in BUILTIN_SPLITS or any(c.counts.values())]
    return report


def _ids(ids: list[str], limit: int = 20) -> str:
    shown = ", ".join(ids[:limit])
    return shown if len(ids) <= limit else f"{shown}, ... ({len(ids) - limit} more)"


def format_report(report: CheckReport) -> str:
    """Human-readable report, one finding per line."""
    lines = [f"dataset {report.root}"]
    for error in report.errors:
        lines.append(f"  ERROR {error}")
    if report.input_dir is not None and report.target_dir is not None:
        lines += [
            f"  input   {report.input_dir}  ({report.input_count} images)",
            f"  target  {report.target_dir}  ({report.target_count} images)",
            f"  pairs   {report.pair_count} matched by id",
        ]
        if report.missing_target:
            count = len(report.missing_target)
            lines.append(f"  MISSING target for {count} id(s): {_ids(report.missing_target)}")
        if report.missing_input:
            count = len(report.missing_input)
            lines.append(f"  MISSING input for {count} id(s): {_ids(report.missing_input)}")
        for key, source, target in report.size_mismatches:
            lines.append(
                f"  SIZE MISMATCH {key}: input {source[0]}x{source[1]}, target {target[0]}x{target[1]}"
            )
        for path, reason in report.unreadable:
            lines.append(f"  UNREADABLE {path}: {reason}")
        for side, stats in report.long_side.items():
            if stats:
                lines.append(
                    f"  long side ({side}): min {stats['min']:g}, median {stats['median']:g}, "
                    f"max {stats['max']:g}" + ("" if report.deep else "  (from headers)")
                )
    for split in report.splits:
        counts = ", ".join(f"{part} {count}" for part, count in split.counts.items())
        lines.append(f"  split {split.name}: {counts or '-'}  [{split.source or 'unresolved'}]")
        for path, digest in split.list_files.items():
            lines.append(f"    sha256 {digest}  {path}")
        for part, ids in split.missing.items():
            lines.append(f"    MISSING {len(ids)} {part} id(s) without a pair: {_ids(ids)}")
        for problem in split.problems:
            lines.append(f"    PROBLEM {problem}")
    lines.append("  result: OK" if report.ok else "  result: PROBLEMS FOUND")
    return "\n".join(lines)


def check_video(root: str | Path, layout: str, source_suffix: str = "", deep: bool = False) -> tuple[list[str], bool]:
    """Verify a video dataset the way ``datamodules.video.VideoDataModule`` reads it.

    Lists every video of each split with its frame count (frames matched by stem between input
    and target, known motion covering every frame), and with ``deep`` decodes every frame and
    checks that the frames of a video share one size (and, for pixel-aligned layouts, that input
    and target sizes agree).

    Returns:
        Report lines and whether the dataset is usable.
    """
    from datamodules.video import FrameStore, VideoDataModule, VideoEvalDataset

    module = VideoDataModule(str(root), layout=layout, source_suffix=source_suffix)  # type: ignore[arg-type]
    lines = [f"video dataset {root} (layout {layout}, "
             f"{'pixel-aligned' if module.aligned else 'weakly aligned: no full-reference scores'})"]
    ok = True
    found = 0
    for part in ("train", "test"):
        input_dir, target_dir = module.folders(part)
        if not module.has_split(part):
            lines.append(f"  {part}: no split folder ({input_dir}" + (f", {target_dir})" if target_dir != input_dir
                                                                      else ")"))
            continue
        try:
            videos = module.videos(part)
        except (OSError, ValueError) as err:
            lines.append(f"  ERROR {part}: {err}")
            ok = False
            continue
        found += 1
        frames = sum(video.num_frames for video in videos)
        with_motion = sum(video.motion is not None for video in videos)
        lines.append(f"  {part}: {len(videos)} videos, {frames} frames "
                     f"({min(v.num_frames for v in videos)}-{max(v.num_frames for v in videos)} per video), "
                     f"known motion for {with_motion}")
        if deep:
            # Streams every frame through the evaluation reader, which checks sizes per video.
            stream = VideoEvalDataset(videos, chunk=max(v.num_frames for v in videos), aligned=module.aligned,
                                      store=FrameStore())
            for video in videos:
                try:
                    stream.item(video, 0)
                except (OSError, ValueError) as err:
                    lines.append(f"  ERROR {err}")
                    ok = False
    if not found:
        lines.append("  ERROR neither a train nor a test split was found")
        ok = False
    lines.append(f"  result: {'OK' if ok else 'PROBLEMS FOUND'}")
    return lines, ok


def main_check(argv: list[str]) -> int:
    """``qmap data check ROOT [--split NAME] [--deep] [--video LAYOUT]``: prints the report.

    Returns:
        0 when the dataset is usable, 1 otherwise.
    """
    parser = argparse.ArgumentParser(prog="qmap data check", description="Verify a paired or video dataset.")
    parser.add_argument("root", help="dataset root holding input/ and target/ (or expertC/), or a video dataset root")
    parser.add_argument(
        "--split", default=None,
        help="split to check (built-in name, splits/ folder name or path; `dpe` also checks the "
             "2250/2250/498 counts of DPE's train_input/train_label/test lists)",
    )
    parser.add_argument("--deep", action="store_true", help="decode every image, not just headers")
    parser.add_argument("--video", choices=("generic", "ntire_vqm", "intvid"), default=None, metavar="LAYOUT",
                        help="check a video dataset in this layout (generic, ntire_vqm, intvid)")
    parser.add_argument("--source-suffix", default="", help="intvid: suffix of the source-domain folders")
    args = parser.parse_args(argv)
    if args.video:
        lines, ok = check_video(args.root, args.video, args.source_suffix, deep=args.deep)
        print("\n".join(lines))
        return 0 if ok else 1
    report = check_dataset(args.root, split=args.split, deep=args.deep)
    print(format_report(report))
    return 0 if report.ok else 1


# What `qmap data demo` says about each set it built (build_demo's names), with the data config to use.
DEMO_SET_CONTENTS: dict[str, str] = {
    "paired": "(input/, target/, splits/demo/{train,test}.txt, manifest.json; config data/demo.yaml)",
    "weak": "(DPED layout, phone 'demo': demo/training_data/{demo,canon}/, "
            "demo/test_data/patches/{demo,canon}/, align.json; config data/demo_weak.yaml)",
    "weak_raw": "(simulated captures phone/, dslr/; manifest.json with true and estimated homographies)",
    "unpaired": "(train_source/, train_target/, test/{input,target}/, manifest.json; config data/demo_unpaired.yaml)",
    "video": "({train,test}/<id>/{input,target}/%06d.png, {train,test}/<id>/motion.json, manifest.json; "
             "config data/demo_video.yaml)",
}


def main_demo(argv: list[str]) -> int:
    """``qmap data demo --out DIR [--seed N] [--force]``: builds the offline demo sets.

    Returns:
        0 on success.
    """
    from datamodules.demo import build_demo

    parser = argparse.ArgumentParser(
        prog="qmap data demo",
        description="Build the offline demo sets from photos shipped in the installed wheels.",
    )
    parser.add_argument("--out", default="data/demo", help="output folder (default: data/demo)")
    parser.add_argument("--seed", type=int, default=0, help="degradation seed (default: 0)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache is valid")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    outputs = build_demo(
        Path(args.out), seed=args.seed, force=args.force, progress=lambda line: print(line, flush=True)
    )
    print(f"demo sets ready in {time.perf_counter() - start:.1f} s")
    for name, path in outputs.items():
        print(f"  {name:9s} {path}  {DEMO_SET_CONTENTS.get(name, '')}")
    return 0


if __name__ == "__main__":  # pragma: no cover - convenience for `python -m datamodules.check`
    sys.exit(main_check(sys.argv[1:]))
