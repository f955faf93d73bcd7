"""Reading, writing, listing and matching images by id, with errors that name the file.

Conventions every data regime shares:

* Images are float32 RGB arrays of shape ``(H, W, 3)`` with values in ``[0, 1]``.
  8-bit files are divided by 255, 16-bit files by 65535.
* Grayscale files are replicated to three channels, so every method sees RGB.
* A fourth (alpha) channel is accepted only when it is fully opaque, and then dropped: a
  transparent pixel has no defined colour, so compositing it on any background would invent data.
* EXIF orientation is applied, so arrays are upright as a photo viewer shows them. OpenCV's
  ``IMREAD_UNCHANGED`` ignores EXIF for JPEG and PNG, so the tag is read with Pillow and applied
  here; OpenCV's TIFF decoder (libtiff) already applies the TIFF orientation tag itself, so it is
  not applied twice (``tests/test_io.py`` pins both behaviours).
* Image ids are the leading FiveK ``aNNNN`` of the file stem where present
  (``a0001-jmac_DSC1459.tif`` -> ``a0001``), else the stem. Pairs are matched by id, never by
  the position in a sorted listing.

This module also resolves dataset splits (built-in FiveK id ranges or list files), because both
the datamodules and ``qmap data check`` need it and the checker must not import torch.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

# FiveK ids are exactly four digits; the lookahead keeps a stem such as "a00012" from being
# collapsed onto "a0001".
_FIVEK_ID = re.compile(r"^(a\d{4})(?!\d)")

_EXIF_ORIENTATION = 0x0112
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

# Built-in FiveK id ranges (inclusive). "upe": DeepUPE's first 4500 / last 500.
BUILTIN_SPLITS: dict[str, dict[str, tuple[str, str]]] = {
    "upe": {"train": ("a0001", "a4500"), "test": ("a4501", "a5000")},
}
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
# Unpaired list-file splits (DPE's format, re-shipped by 3D-LUT and AdaInt): training inputs,
# expert targets of *other* images, and a paired test list.
UNPAIRED_SPLIT_NAMES: tuple[str, ...] = ("train_input", "train_label", "test")
# Published sizes of named list-file splits; a mismatch means the wrong files (datasets_protocols.md A.1.4).
EXPECTED_SPLIT_COUNTS: dict[str, dict[str, int]] = {
    "dpe": {"train_input": 2250, "train_label": 2250, "test": 498},
}
TARGET_FALLBACKS: tuple[str, ...] = ("target", "expertC")


class ImageReadError(ValueError):
    """An image file is missing, unreadable or in a form the benchmark does not accept."""


# --------------------------------------------------------------------------------------------
# Reading and writing


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads an image file as upright float32 RGB in ``[0, 1]``.

    Supports 8- and 16-bit PNG, JPEG and TIFF. Grayscale is replicated to three channels;
    an alpha channel is dropped if fully opaque and rejected otherwise; EXIF orientation is
    applied (see the module docstring for how).

    Args:
        path: Image file.

    Returns:
        Array of shape ``(H, W, 3)``, dtype float32, values in ``[0, 1]``.

    Raises:
        ImageReadError: The file is missing, empty, corrupt, float-valued, has transparency or
            an unsupported channel layout. The message names the file.
    """
    path = Path(path)
    data = _read_bytes(path)
    # imdecode instead of imread: works for non-ASCII paths and, with OpenCV 5, for TIFFs that
    # carry an orientation tag (imread fails on those).
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise ImageReadError(f"{path}: cannot decode image (corrupt or unsupported format)")
    rgb = _to_rgb(decoded, path)
    if not data.startswith(_TIFF_MAGIC):
        rgb = apply_orientation(rgb, exif_orientation(path))
    return _normalise(rgb, path)


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise ImageReadError(f"{path}: file does not exist")
    if not path.is_file():
        raise ImageReadError(f"{path}: not a regular file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageReadError(f"{path}: cannot read file ({err})") from err
    if not data:
        raise ImageReadError(f"{path}: file is empty")
    return data


def _to_rgb(decoded: np.ndarray, path: Path) -> np.ndarray:
    """Converts OpenCV's BGR/BGRA/gray layout to RGB, still in the file's dtype."""
    if decoded.ndim == 2:
        decoded = decoded[:, :, None]
    channels = decoded.shape[2]
    if channels in (2, 4):
        alpha = decoded[:, :, -1]
        if not np.all(alpha == _max_value(decoded.dtype, path)):
            raise ImageReadError(
                f"{path}: image has transparent pixels (alpha channel not fully opaque); "
                "flatten it onto a background first"
            )
        decoded = decoded[:, :, :-1]
        channels -= 1
    if channels == 1:
        # Explicit replication: every method and metric expects RGB.
        return np.repeat(decoded, 3, axis=2)
    if channels == 3:
        return decoded[:, :, ::-1]
    raise ImageReadError(f"{path}: unsupported channel count {decoded.shape[2]}")


def _max_value(dtype: np.dtype, path: Path) -> int:
    if dtype == np.uint8:
        return 255
    if dtype == np.uint16:
        return 65535
    if np.issubdtype(dtype, np.floating):
        raise ImageReadError(
            f"{path}: floating-point images (e.g. float TIFF) are not supported; "
            "export 8- or 16-bit integers"
        )
    raise ImageReadError(f"{path}: unsupported sample type {dtype}")


def _normalise(image: np.ndarray, path: Path) -> np.ndarray:
    scale = _max_value(image.dtype, path)
    out = image.astype(np.float32) / np.float32(scale)
    return np.ascontiguousarray(out)


def exif_orientation(path: str | os.PathLike[str]) -> int:
    """Returns the EXIF orientation tag (1-8) of a file, 1 when absent or unreadable."""
    from PIL import Image  # Pillow is only needed for the tag; keep import local and cheap.

    try:
        with Image.open(path) as img:
            value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - any metadata failure means "no orientation"
        return 1
    return int(value) if value in range(1, 9) else 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Applies an EXIF orientation (1-8) to an ``(H, W, C)`` array, as a viewer would.

    Args:
        image: Array as stored in the file.
        orientation: EXIF tag value; values outside 1-8 are treated as 1.

    Returns:
        The upright array (a view where possible).
    """
    if orientation == 2:
        return image[:, ::-1]
    if orientation == 3:
        return image[::-1, ::-1]
    if orientation == 4:
        return image[::-1]
    if orientation == 5:
        return image.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(image, k=-1)  # 90 degrees clockwise
    if orientation == 7:
        return image[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return np.rot90(image, k=1)  # 90 degrees counter-clockwise
    return image


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Quantises a float ``[0, 1]`` image as ``round(clip(x) * 255)``; uint8 passes through.

    ``np.rint`` rounds half to even, like ``torch.round`` used when scoring outputs.

    Raises:
        ValueError: On NaN values or an unsupported dtype.
    """
    if image.dtype == np.uint8:
        return image
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"expected a float or uint8 image, got dtype {image.dtype}")
    if np.isnan(image).any():
        raise ValueError("image contains NaN values")
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_image(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Writes an RGB image as an 8-bit PNG, atomically, creating parent folders.

    Args:
        path: Destination file (``.png`` recommended; the bytes are PNG in any case).
        image: ``(H, W, 3)`` float in ``[0, 1]`` (clamped, then ``round(x * 255)``) or uint8.

    Raises:
        ValueError: Wrong shape, NaN values or unsupported dtype.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{path}: expected an (H, W, 3) image, got shape {image.shape}")
    pixels = to_uint8(image)
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(pixels[:, :, ::-1]))
    if not ok:
        raise ValueError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, encoded.tobytes())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Writes bytes to a temporary file beside ``path`` and renames it into place.

    A reader never sees a half-written file and an interrupted write leaves the old file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Dot prefix: list_images skips hidden files, so a leftover temp file is never an image.
    # open(..., "xb") rather than mkstemp: mkstemp makes 0600 files, which teammates on a
    # shared cluster could not read; "xb" honours the umask and still refuses to overwrite.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Writes UTF-8 text atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Returns the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Ids, listing and matching


def image_id(path_or_name: str | os.PathLike[str]) -> str:
    """Returns the stable id of an image file or list-file entry.

    Args:
        path_or_name: A path, file name or bare id (``a0001-jmac_DSC1459.tif``, ``a0001.jpg``,
            ``coffee.png``, ``a0001``).

    Returns:
        The leading FiveK ``aNNNN`` of the file stem where present, else the file stem.
    """
    stem = Path(path_or_name).stem
    match = _FIVEK_ID.match(stem)
    return match.group(1) if match else stem


def is_image_file(path: Path) -> bool:
    """True for visible regular files with an image extension (case-insensitive)."""
    # Hidden files are skipped: macOS "._a0001.jpg" resource forks and our own temp files.
    return (
        path.suffix.lower() in IMAGE_EXTENSIONS
        and not path.name.startswith(".")
        and path.is_file()
    )


def list_images(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Maps id -> path for the image files directly inside a folder (not recursive).

    Args:
        folder: Folder to list.

    Returns:
        Dict sorted by id.

    Raises:
        FileNotFoundError: The folder does not exist.
        ValueError: Two files share an id (both are named).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder does not exist: {folder}")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not is_image_file(path):
            continue
        key = image_id(path.name)
        if key in found:
            raise ValueError(f"two files share the id {key!r}: {found[key]} and {path}")
        found[key] = path
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class PairMatch:
    """Input/target files matched by id.

    Attributes:
        pairs: ``(id, input_path, target_path)`` sorted by id.
        missing_target: Ids that have an input but no target.
        missing_input: Ids that have a target but no input.
    """

    pairs: list[tuple[str, Path, Path]]
    missing_target: list[str] = field(default_factory=list)
    missing_input: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        """Ids of the complete pairs, sorted."""
        return [key for key, _, _ in self.pairs]

    def problems(self) -> list[str]:
        """One message per side with unmatched files, naming the ids (empty when all match)."""
        problems = []
        if self.missing_target:
            problems.append(f"{len(self.missing_target)} input(s) without target: {abbreviate(self.missing_target)}")
        if self.missing_input:
            problems.append(f"{len(self.missing_input)} target(s) without input: {abbreviate(self.missing_input)}")
        return problems


def match_pairs(input_dir: str | os.PathLike[str], target_dir: str | os.PathLike[str]) -> PairMatch:
    """Matches the images of two folders by id.

    Args:
        input_dir: Folder of inputs.
        target_dir: Folder of targets.

    Returns:
        The matched pairs and the ids missing on either side.
    """
    inputs = list_images(input_dir)
    targets = list_images(target_dir)
    pairs = [(key, path, targets[key]) for key, path in inputs.items() if key in targets]
    return PairMatch(
        pairs=pairs,
        missing_target=sorted(set(inputs) - set(targets)),
        missing_input=sorted(set(targets) - set(inputs)),
    )


def read_id_list(path: str | os.PathLike[str]) -> list[str]:
    """Reads a split list file: one id or file name per line.

    Blank lines and ``#`` comments are ignored; each entry is reduced with :func:`image_id`, so
    ``a0001``, ``a0001.jpg`` and ``a0001-jmac_DSC1459`` all give ``a0001``.

    Args:
        path: List file.

    Returns:
        Ids in file order.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: An id occurs twice (the file and id are named).
    """
    path = Path(path)
    ids: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        key = image_id(entry)
        if key in seen:
            raise ValueError(
                f"{path}: id {key!r} listed twice (lines {seen[key]} and {number})"
            )
        seen[key] = number
        ids.append(key)
    return ids


def abbreviate(ids: Iterable[str], limit: int = 5) -> str:
    """Formats a few ids for an error message: ``a0001, a0002, ... (12 in all)``."""
    items = list(ids)
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... ({len(items)} in all)"


# --------------------------------------------------------------------------------------------
# Dataset folders and splits


def find_target_dir(root: str | os.PathLike[str], target_dir: str | None = None) -> Path:
    """Returns the target folder of a paired dataset.

    Args:
        root: Dataset root holding ``input/``.
        target_dir: Explicit folder (relative to ``root`` or absolute); overrides the search.

    Returns:
        ``target_dir`` if given, else ``root/target``, else ``root/expertC`` (FiveK naming).

    Raises:
        FileNotFoundError: No target folder exists (the candidates are named).
    """
    root = Path(root)
    candidates = [root / target_dir] if target_dir else [root / name for name in TARGET_FALLBACKS]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "no target folder found; looked for " + ", ".join(str(c) for c in candidates)
    )


@dataclass(frozen=True)
class SplitSpec:
    """The ids of one dataset split and where they came from.

    Attributes:
        name: Split name as given (``upe``, ``dpe``, or a folder path).
        ids: ``{"train": [...], "test": [...]}`` plus ``"val"`` when the split defines it, or
            ``{"train_input", "train_label", "test"}`` for an unpaired list split; sorted.
        source: Human-readable origin (id ranges or list-file folder).
        list_files: List file -> SHA-256, empty for built-in ranges.
    """

    name: str
    ids: dict[str, list[str]]
    source: str
    list_files: dict[str, str] = field(default_factory=dict)


def split_list_dir(root: str | os.PathLike[str], split: str) -> Path | None:
    """Folder holding the list files of a split, or None.

    ``root/splits/<split>/`` is preferred; otherwise ``split`` itself may be such a folder. A
    folder counts when it holds ``train.txt``, ``test.txt`` or ``train_input.txt``.
    """
    for folder in (Path(root) / "splits" / split, Path(split)):
        if any((folder / name).is_file() for name in ("train.txt", "test.txt", "train_input.txt")):
            return folder
    return None


def is_unpaired_split_dir(folder: Path) -> bool:
    """True when a split folder uses the unpaired lists (``train_input.txt``, ``train_label.txt``)."""
    return (folder / "train_input.txt").is_file() or (folder / "train_label.txt").is_file()


def available_splits(root: str | os.PathLike[str]) -> list[str]:
    """Names of the built-in splits and of the list-file splits under ``root/splits``."""
    names = list(BUILTIN_SPLITS)
    splits_dir = Path(root) / "splits"
    if splits_dir.is_dir():
        names += sorted(
            p.name for p in splits_dir.iterdir() if (p / "train.txt").is_file() or is_unpaired_split_dir(p)
        )
    return names


def load_split(root: str | os.PathLike[str], split: str, available: Iterable[str]) -> SplitSpec:
    """Reads a split without checking it (see :func:`resolve_split`).

    Built-in id ranges select the ``available`` ids inside each range; list files are read
    as they are, listed ids that have no image included. A folder with ``train_input.txt``
    holds an unpaired split (:data:`UNPAIRED_SPLIT_NAMES`, all three files required).

    Raises:
        ValueError: Unknown split, a missing ``train.txt``/``test.txt``, or an id listed twice.
    """
    if split in BUILTIN_SPLITS:
        ranges = BUILTIN_SPLITS[split]
        keys = sorted(set(available))
        ids = {part: [k for k in keys if _in_range(k, lo, hi)] for part, (lo, hi) in ranges.items()}
        source = "; ".join(f"{part} {lo}-{hi}" for part, (lo, hi) in ranges.items())
        return SplitSpec(name=split, ids=ids, source=f"built-in id ranges ({source})")
    folder = split_list_dir(root, split)
    if folder is None:
        raise ValueError(
            f"unknown split {split!r}: not built in and no {Path(root) / 'splits' / split}/train.txt "
            f"or {split}/train.txt; available: {', '.join(available_splits(root))}"
        )
    return _read_split_lists(split, folder)


def split_problems(spec: SplitSpec, available: Iterable[str]) -> list[str]:
    """Problems of a split: listed ids without an image pair, parts sharing ids, no images, and
    part sizes that differ from the published ones of a named split (:data:`EXPECTED_SPLIT_COUNTS`).

    Returns:
        One message per problem (empty when the split is usable); messages name the ids.
    """
    known = set(available)
    problems = []
    for part, ids in spec.ids.items():
        missing = [k for k in ids if k not in known]
        if missing:
            problems.append(
                f"split {spec.name!r} ({spec.source}): {len(missing)} {part} id(s) have no "
                f"input/target pair: {abbreviate(missing)}"
            )
    parts = list(spec.ids)
    for i, first in enumerate(parts):
        for second in parts[i + 1 :]:
            shared = sorted(set(spec.ids[first]) & set(spec.ids[second]))
            if shared:
                problems.append(
                    f"split {spec.name!r}: {first} and {second} share {len(shared)} id(s): "
                    f"{abbreviate(shared)}"
                )
    for part, expected in EXPECTED_SPLIT_COUNTS.get(spec.name, {}).items():
        found = len(spec.ids.get(part, []))
        if found != expected:
            problems.append(
                f"split {spec.name!r} ({spec.source}): {part} lists {found} ids, the published "
                f"split has {expected}"
            )
    # An empty part is left to the caller (a test-only copy of FiveK is fine for scoring).
    if not any(spec.ids.values()):
        problems.append(f"split {spec.name!r} ({spec.source}) selects no images")
    return problems


def resolve_split(root: str | os.PathLike[str], split: str, available: Iterable[str]) -> SplitSpec:
    """Resolves a split name into id lists and checks them against the available ids.

    Built-in id ranges select the available ids inside each range. List-file splits read
    ``train.txt`` and ``test.txt`` (``val.txt`` optional); every listed id must be available.

    Args:
        root: Dataset root.
        split: Built-in split name, name of a folder under ``root/splits``, or a folder path.
        available: Ids that have a complete input/target pair.

    Returns:
        The resolved split.

    Raises:
        ValueError: Unknown split, listed ids without images, overlapping parts, or a split that
            selects no image. Messages name the ids and files.
    """
    available = list(available)
    spec = load_split(root, split, available)
    problems = split_problems(spec, available)
    if problems:
        raise ValueError("; ".join(problems))
    return spec


def _in_range(key: str, lo: str, hi: str) -> bool:
    # Only FiveK-style ids take part in ranges; "a0001x" or "coffee" never do.
    return bool(_FIVEK_ID.fullmatch(key)) and lo <= key <= hi


def _read_split_lists(split: str, folder: Path) -> SplitSpec:
    ids: dict[str, list[str]] = {}
    files: dict[str, str] = {}
    unpaired = is_unpaired_split_dir(folder)
    for part in UNPAIRED_SPLIT_NAMES if unpaired else SPLIT_NAMES:
        path = folder / f"{part}.txt"
        if not path.is_file():
            if unpaired or part != "val":
                raise ValueError(f"split {split!r}: missing list file {path}")
            continue
        ids[part] = sorted(read_id_list(path))
        files[str(path)] = sha256_file(path)
    return SplitSpec(name=split, ids=ids, source=f"list files in {folder}", list_files=files)
