"""Saved sample outputs beside their inputs and targets, for image grids and W&B panels.

A run keeps 8-bit outputs for a fixed set of test ids in ``samples/<protocol>/<key>.png`` (a
video run: the middle frame of each sample video, ``key`` being the video id). The input and
target come, in order of preference:

1. from the run folder itself, ``references/<protocol>/<key>/input.png`` and ``target.png``
   (``benchmark.results.REFERENCES_DIR``): the input and target exactly as scored at that
   protocol, the same size as the sample, shown as they are. Every panel is then available even
   for unpaired or weakly paired data, and the dataset is not needed at all;
2. else from the dataset root recorded in run.json (``data.root``, paired layout ``root/input/``
   and ``root/target/`` or ``data.target_dir``; files matched by image id: the leading ``aNNNN``
   of the stem, else the stem — ``datamodules.io``, which imports no torch).

Which protocol: grids show protocol ``f`` when every run saved it — full resolution is what
the methods output there, and the dataset's input/target files are shown as they are, with no
resampling. When ``f`` is missing the first protocol all runs share is used; inputs and targets
read from the dataset root are then resized to the sample's exact size with area interpolation:
for protocol ``d`` that is the scorer's own resize (same size, same interpolation,
``datamodules.transforms``).

Relative dataset roots (``data/demo/paired``) are relative to the folder the suite ran in;
they are looked up from the current folder, then from each parent of the runs folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.results import REFERENCES_DIR, SAMPLES_DIR

__all__ = ["GRID_LONG_SIDE", "dataset_folders", "grid_rows", "read_sample", "reference_files", "reference_pair",
           "saved_references", "sample_keys", "sample_protocol", "thumbnail", "triplet"]

GRID_LONG_SIDE = 320  # display size of one grid panel (pixels, long side)


def sample_protocol(run_dirs: Sequence[Path]) -> str | None:
    """``"f"`` when every run saved protocol-f samples, else the first protocol all share."""
    shared: list[str] | None = None
    for run_dir in run_dirs:
        folder = Path(run_dir) / SAMPLES_DIR
        found = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        shared = found if shared is None else [p for p in shared if p in found]
    if not shared:
        return None
    return "f" if "f" in shared else shared[0]


def sample_keys(run_dirs: Sequence[Path], protocol: str) -> list[str]:
    """Ids with a saved sample in every run (sorted)."""
    keys: set[str] | None = None
    for run_dir in run_dirs:
        found = {p.stem for p in (Path(run_dir) / SAMPLES_DIR / protocol).glob("*.png")}
        keys = found if keys is None else keys & found
    return sorted(keys or ())


def _resolve(path: str, search_from: Sequence[Path]) -> Path | None:
    candidate = Path(path)
    if candidate.is_absolute():
        return candidate if candidate.exists() else None
    for base in [Path.cwd(), *search_from]:
        if (base / candidate).exists():
            return base / candidate
    return None


def dataset_folders(info: Mapping[str, Any], search_from: Sequence[Path] = ()) -> tuple[Path | None, Path | None, str]:
    """The input and target folders of a run's dataset, and a note when they cannot be found.

    Args:
        info: run.json content (``data.root``, optional ``data.target_dir``).
        search_from: folders against which relative paths are tried after the current folder.
    """
    from datamodules.io import find_target_dir

    data = info.get("data") or {}
    root_text = data.get("root")
    if not root_text:
        return None, None, "run.json records no data.root"
    root = _resolve(str(root_text), search_from)
    if root is None or not (root / "input").is_dir():
        return None, None, f"dataset root {root_text} (from run.json) not found"
    target = _resolve(str(data["target_dir"]), search_from) if data.get("target_dir") else None
    if target is None:
        try:
            target = find_target_dir(root)
        except FileNotFoundError as err:
            return root / "input", None, str(err)
    return root / "input", target, ""


def _read_rgb(path: Path) -> np.ndarray:
    """Float RGB in [0, 1] through the project's reader (EXIF, 16-bit, alpha rules)."""
    from datamodules.io import read_image

    return read_image(path)


def _fit(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` at ``shape`` (H, W): unchanged when it already is, else area-resized."""
    import cv2

    if image.shape[:2] == tuple(shape):
        return image
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def reference_files(input_dir: Path | None, target_dir: Path | None) -> tuple[dict[str, Path], dict[str, Path]]:
    """Id -> file of the inputs and of the targets (empty where the folder is unknown)."""
    from datamodules.io import list_images

    return (list_images(input_dir) if input_dir else {}), (list_images(target_dir) if target_dir else {})


def reference_pair(files: tuple[dict[str, Path], dict[str, Path]], key: str,
                   shape: tuple[int, int]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The input and target of ``key`` as uint8 RGB at ``shape`` (None where a file is missing)."""
    from datamodules.io import to_uint8

    inputs, targets = files
    images = [to_uint8(_fit(_read_rgb(found[key]), shape)) if key in found else None for found in (inputs, targets)]
    return images[0], images[1]


def saved_references(run_dir: Path, protocol: str, key: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The input and target a run saved beside sample ``key`` (uint8 RGB, as scored), None where absent.

    ``run_dir/references/<protocol>/<key>/input.png`` and ``target.png``; no resizing (they are
    the scored size).
    """
    from datamodules.io import to_uint8

    folder = Path(run_dir) / REFERENCES_DIR / protocol / key
    found = []
    for name in ("input", "target"):
        path = folder / f"{name}.png"
        found.append(to_uint8(_read_rgb(path)) if path.is_file() else None)
    return found[0], found[1]


def read_sample(run_dir: Path, protocol: str, key: str) -> np.ndarray:
    """A saved 8-bit output as uint8 RGB."""
    from datamodules.io import to_uint8

    return to_uint8(_read_rgb(Path(run_dir) / SAMPLES_DIR / protocol / f"{key}.png"))


def thumbnail(image: np.ndarray | None, long_side: int = GRID_LONG_SIDE) -> np.ndarray | None:
    """Downscale (area interpolation) so the long side is at most ``long_side``; display only."""
    import cv2

    if image is None or max(image.shape[:2]) <= long_side:
        return image
    scale = long_side / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def triplet(info: Mapping[str, Any], run_dir: Path, protocol: str, key: str,
            search_from: Sequence[Path] = ()) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """``(input, output, target)`` of one saved sample (uint8 RGB).

    Input and target from the run's ``references/`` when saved (as scored), else from the
    dataset root resized to the output's size.
    """
    output = read_sample(run_dir, protocol, key)
    source, target = saved_references(run_dir, protocol, key)
    if source is None or target is None:
        input_dir, target_dir, _ = dataset_folders(info, search_from)
        found = reference_pair(reference_files(input_dir, target_dir), key, output.shape[:2])
        source = source if source is not None else found[0]
        target = target if target is not None else found[1]
    return source, output, target


def grid_rows(runs: Sequence[tuple[str, Mapping[str, Any]]], protocol: str, keys: Sequence[str],
              search_from: Sequence[Path] = (), long_side: int = GRID_LONG_SIDE,
              ) -> tuple[list[tuple[str, list[tuple[str, np.ndarray | None]]]], list[str]]:
    """Rows ``input | each run's output | target`` for :func:`reports.plots.image_grid`.

    Args:
        runs: ``(column title, run.json with "path")`` in column order. The input and target of a
            key come from the first run that saved ``references/<protocol>/<key>/`` (as scored,
            not resized), else from the first run's dataset root.
        protocol: which ``samples/<protocol>/``.
        keys: image ids, one grid row each.
        search_from: where relative dataset roots are looked up (after the current folder).
        long_side: display size of every panel.

    Returns:
        The rows, and notes (e.g. a dataset root that was not found).
    """
    notes: list[str] = []
    files: tuple[dict[str, Path], dict[str, Path]] | None = None  # dataset files, read only when needed
    rows = []
    for key in keys:
        # Thumbnails at once: full-resolution outputs of many methods would not fit in memory.
        panels, shape = [], None
        for title, info in runs:
            output = read_sample(Path(info["path"]), protocol, key)
            shape = shape or output.shape[:2]
            panels.append((title, thumbnail(output, long_side)))
        source = target = None
        for _, info in runs:
            saved = saved_references(Path(info["path"]), protocol, key)
            source = source if source is not None else saved[0]
            target = target if target is not None else saved[1]
            if source is not None and target is not None:
                break
        if source is None or target is None:
            if files is None:
                input_dir, target_dir, note = dataset_folders(runs[0][1], search_from)
                if note:
                    notes.append(f"input and target not shown: {note}")
                files = reference_files(input_dir, target_dir)
            found = reference_pair(files, key, shape)
            source = source if source is not None else found[0]
            target = target if target is not None else found[1]
        rows.append((key, [("input", thumbnail(source, long_side)), *panels, ("target", thumbnail(target, long_side))]))
    return rows, notes
