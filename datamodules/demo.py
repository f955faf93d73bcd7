"""Offline demo benchmark built from the photos that scikit-image and scikit-learn ship.

Smoke scale only (11 images from 10 photos): it exercises every code path without any
download; the real datasets plug in by path.

One photo-level split serves every demo set (``DEMO_SPLIT``): the stereo motorcycle pair is one
photo, so its two views always sit on the same side and nothing seen in training is tested.
The test side holds the largest photos (retina 1411x1411, Hubble 872x1000) so that protocols
``d`` (long side 512) and ``f`` (full resolution) differ.

Layout written by :func:`build_paired_demo`::

    out/paired/input/<id>.png         degraded by datamodules.degrade (seed, id)
    out/paired/target/<id>.png        the clean photo
    out/paired/splits/demo/{train,test}.txt
    out/paired/manifest.json          written last: its presence marks a complete build

Weakly-paired set (:func:`build_weak_demo`). Every photo becomes a simulated capture pair: the
"dslr" capture is the clean photo; the "phone" capture sees a smaller, slightly rotated, scaled
and perspective-distorted part of the scene (a homography drawn per (seed, id) by
:func:`capture_homography`) and is then degraded by ``degrade.py`` with the same per-id
parameters as the paired set. Degrading *after* the warp is the documented variant: vignetting
is centred on the phone frame and noise and JPEG blocks sit on the phone's pixel grid, as in a
real capture. The aligner (``datamodules.align``) then recovers the homography from the images
alone and cuts 100x100 patch pairs, train photos into ``training_data`` and test photos into
``test_data/patches``::

    out/weak_raw/{phone,dslr}/<id>.png              the captures (input of `qmap data align`)
    out/weak_raw/manifest.json                      written last: true and estimated homographies,
                                                    corner errors, patch counts per scene
    out/dped/demo/training_data/{demo,canon}/N.png  aligned training patches + align.json
    out/dped/demo/test_data/patches/{demo,canon}/N.png

Unpaired set (:func:`build_unpaired_demo`): training sources are the degraded train photos of
one half (``UNPAIRED_HALVES["source"]``), training targets the clean train photos of the other
half, so no training target shows a source's scene; the paired test split is the paired demo's
test set, byte for byte (the files are copied from ``out/paired``)::

    out/unpaired/train_source/<id>.png   out/unpaired/train_target/<id>.png
    out/unpaired/test/input/<id>.png     out/unpaired/test/target/<id>.png
    out/unpaired/manifest.json
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from datamodules.align import (
    DSLR_FOLDER,
    align_folder,
    alignment_settings,
    corner_error,
    frame_corners,
    part_dir,
    read_align_status,
)
from datamodules.degrade import (
    DEFAULT_RANGES,
    DegradationParams,
    degrade,
    params_for,
    ranges_hash,
    stable_rng,
)
from datamodules.io import atomic_write_bytes, atomic_write_text, is_image_file, list_images, write_image

# Bump when the demo content changes for a reason the other cache keys do not see.
DEMO_VERSION = "1"
# The same for the weakly-paired and unpaired sets (separate, so the paired set's key never moves).
WEAK_VERSION = "1"
UNPAIRED_VERSION = "1"
WEAK_PHONE = "demo"  # phone name of the weakly-paired demo: data/demo/dped/demo/...
WEAK_PATCH = 100  # DPED's patch side: the test patches define protocol "100"

DEMO_PHOTOS: dict[str, list[str]] = {
    "astronaut": ["astronaut"],
    "chelsea": ["chelsea"],
    "coffee": ["coffee"],
    "rocket": ["rocket"],
    "hubble_deep_field": ["hubble_deep_field"],
    "retina": ["retina"],
    "immunohistochemistry": ["immunohistochemistry"],
    "motorcycle": ["motorcycle_left", "motorcycle_right"],
    "china": ["china"],
    "flower": ["flower"],
}

DEMO_SPLIT: dict[str, list[str]] = {
    "train": ["astronaut", "chelsea", "rocket", "immunohistochemistry", "china", "flower"],
    "test": ["coffee", "hubble_deep_field", "retina", "motorcycle"],
}

# The unpaired set's training halves: disjoint, together the train side of DEMO_SPLIT; each
# half mixes content kinds (people/animals, objects, nature/microscopy) so neither domain is one genre.
UNPAIRED_HALVES: dict[str, list[str]] = {
    "source": ["astronaut", "immunohistochemistry", "china"],
    "target": ["chelsea", "rocket", "flower"],
}

_SKIMAGE_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry",
)
_SKLEARN_PHOTOS = {"china": "china.jpg", "flower": "flower.jpg"}


def demo_split_ids(split: str) -> list[str]:
    """Sorted image ids of one side of the demo split (``train`` or ``test``).

    Raises:
        ValueError: Unknown split name.
    """
    if split not in DEMO_SPLIT:
        raise ValueError(f"unknown demo split {split!r}; known: {', '.join(DEMO_SPLIT)}")
    return sorted(key for photo in DEMO_SPLIT[split] for key in DEMO_PHOTOS[photo])


def _photo_split(photo: str) -> str:
    return next(part for part, photos in DEMO_SPLIT.items() if photo in photos)


def _raw_photo(name: str) -> list[np.ndarray]:
    # Imports stay local: scikit-learn costs about a second and most callers need neither.
    if name in _SKIMAGE_PHOTOS:
        import skimage.data

        return [getattr(skimage.data, name)()]
    if name == "motorcycle":
        import skimage.data

        left, right, _disparity = skimage.data.stereo_motorcycle()
        return [left, right]
    if name in _SKLEARN_PHOTOS:
        from sklearn.datasets import load_sample_image

        return [load_sample_image(_SKLEARN_PHOTOS[name])]
    raise ValueError(f"unknown demo photo {name!r}; known: {', '.join(DEMO_PHOTOS)}")


def _all_image_ids() -> set[str]:
    """Every image id the demo photos produce (stale files outside it are removed)."""
    return {image_id for ids in DEMO_PHOTOS.values() for image_id in ids}


def load_demo_photo(name: str) -> list[tuple[str, np.ndarray]]:
    """Loads one demo photo from the installed packages.

    Args:
        name: A key of ``DEMO_PHOTOS``.

    Returns:
        ``(image id, float32 RGB in [0, 1])`` per image of the photo.

    Raises:
        ValueError: Unknown name, or the package returned something other than 8-bit RGB.
    """
    arrays = _raw_photo(name)
    ids = DEMO_PHOTOS[name]
    if len(arrays) != len(ids):
        raise ValueError(f"demo photo {name!r}: expected {len(ids)} images, got {len(arrays)}")
    images = []
    for key, array in zip(ids, arrays):
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"demo photo {name!r}: expected 8-bit RGB, got {array.dtype} {array.shape}")
        images.append((key, array.astype(np.float32) / np.float32(255.0)))
    return images


def source_versions() -> dict[str, str]:
    """Versions of everything that shapes the demo bytes (photos, resampling, JPEG, RNG)."""
    # Distribution metadata, not imports: a cache hit should not pay for importing scikit-learn.
    return {
        "scikit-image": metadata.version("scikit-image"),
        "scikit-learn": metadata.version("scikit-learn"),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "python": platform.python_version(),
    }


def _cache_key(seed: int) -> dict[str, object]:
    return {
        "demo_version": DEMO_VERSION,
        "seed": seed,
        "ranges_hash": ranges_hash(DEFAULT_RANGES),
        "sources": source_versions(),
    }


def _matching_manifest(root: Path, key: dict[str, object]) -> dict[str, object] | None:
    """The manifest of a previous build when it records exactly ``key``, else None."""
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if any(manifest.get(name) != value for name, value in key.items()):
        return None
    return manifest


def _is_cached(root: Path, key: dict[str, object]) -> bool:
    manifest = _matching_manifest(root, key)
    if manifest is None:
        return False
    # A file deleted by hand since the build also invalidates it.
    images = manifest.get("images", {})
    files = [root / part / f"{image}.png" for image in images for part in ("input", "target")]
    files += [root / "splits" / "demo" / f"{part}.txt" for part in DEMO_SPLIT]
    return all(path.is_file() for path in files)


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Deletes images of earlier demo versions so listings hold only the current ids."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if is_image_file(path) and path.stem not in keep:
            path.unlink()


def build_paired_demo(
    out: Path,
    seed: int = 0,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Builds (or reuses) the paired demo set under ``out/paired``.

    The build is skipped when ``manifest.json`` records the same seed, degradation ranges hash,
    ``DEMO_VERSION`` and source versions and every file is present, unless ``force``. Files are
    written atomically and the manifest last, so an interrupted build is rebuilt next time.
    The same seed gives byte-identical PNGs.

    Args:
        out: Demo root folder.
        seed: Degradation seed.
        force: Rebuild even when the cache is valid.
        progress: Called with one line per image (and one when the cache is used).

    Returns:
        ``out/paired``.
    """
    report = progress or (lambda line: None)
    root = Path(out) / "paired"
    key = _cache_key(seed)
    if not force and _is_cached(root, key):
        report(f"paired demo: cached in {root} (seed {seed})")
        return root
    # The old manifest goes first: from here until the new one is written the set is incomplete.
    (root / "manifest.json").unlink(missing_ok=True)
    all_ids = _all_image_ids()
    for part in ("input", "target"):
        _remove_stale(root / part, all_ids)

    images: dict[str, dict[str, object]] = {}
    for photo in DEMO_PHOTOS:
        split = _photo_split(photo)
        for image_id, clean in load_demo_photo(photo):
            params = params_for(image_id, seed)
            degraded = degrade(clean, params, stable_rng(seed, image_id, "noise"))
            write_image(root / "input" / f"{image_id}.png", degraded)
            write_image(root / "target" / f"{image_id}.png", clean)
            height, width = clean.shape[:2]
            images[image_id] = {
                "photo": photo,
                "split": split,
                "height": height,
                "width": width,
                "params": params.to_dict(),
            }
            report(f"paired {split:5s} {image_id:22s} {width}x{height}")

    for part in DEMO_SPLIT:
        lines = "".join(f"{key}\n" for key in demo_split_ids(part))
        atomic_write_text(root / "splits" / "demo" / f"{part}.txt", lines)
    manifest = {
        **key,
        "name": "qmap-bench paired demo (smoke scale)",
        "ranges": dataclasses.asdict(DEFAULT_RANGES),
        "split": DEMO_SPLIT,
        "images": dict(sorted(images.items())),
    }
    atomic_write_text(root / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return root


# --------------------------------------------------------------------------------------------
# Weakly-paired set


@dataclass(frozen=True)
class CaptureRanges:
    """How a simulated phone capture's view differs from the DSLR's (drawn per seed and id).

    Attributes:
        crop: Phone frame side as a fraction of the photo's side (both sides).
        rotation_deg: Largest rotation of the phone view, either direction.
        scale: Range of the phone view's scale in the DSLR frame.
        shift: Largest offset of the view's centre, as a fraction of the photo's width/height.
        jitter: Largest independent displacement of each corner (perspective), as a fraction of
            the photo's short side.
    """

    crop: float = 0.85
    rotation_deg: float = 3.0
    scale: tuple[float, float] = (0.95, 1.05)
    shift: float = 0.03
    jitter: float = 0.015


CAPTURE_RANGES = CaptureRanges()


def capture_homography(
    shape: tuple[int, int],
    rng: np.random.Generator,
    ranges: CaptureRanges = CAPTURE_RANGES,
    max_tries: int = 100,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Draws the phone -> DSLR homography of one simulated capture.

    The phone frame is ``crop`` times the photo in each side. Its corners map to the same
    rectangle scaled, rotated about the photo centre, shifted, and with each corner jittered.
    A draw whose footprint comes closer than 2 px to the photo's edge is redrawn, so that the
    bicubic warp that renders the phone view reads photo pixels only.

    Args:
        shape: ``(height, width)`` of the photo (the DSLR frame).
        rng: Source of the draw.
        ranges: Parameter ranges.
        max_tries: Redraws before giving up.

    Returns:
        ``(H, (phone_height, phone_width))``; ``H`` is 3x3 float64 and maps phone pixel
        coordinates ``(x, y, 1)`` to DSLR pixel coordinates.

    Raises:
        ValueError: No draw fits inside the photo (ranges too wide for its shape).
    """
    height, width = shape
    phone_shape = (round(height * ranges.crop), round(width * ranges.crop))
    corners = frame_corners(phone_shape)
    centred = corners - corners.mean(axis=0)
    for _ in range(max_tries):
        angle = np.deg2rad(rng.uniform(-ranges.rotation_deg, ranges.rotation_deg))
        scale = rng.uniform(*ranges.scale)
        centre = np.array([(width - 1) / 2 + rng.uniform(-ranges.shift, ranges.shift) * width,
                           (height - 1) / 2 + rng.uniform(-ranges.shift, ranges.shift) * height])
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        jitter = rng.uniform(-1.0, 1.0, size=(4, 2)) * ranges.jitter * min(height, width)
        footprint = centred @ rotation.T * scale + centre + jitter
        inside = (footprint >= 2).all() and (footprint[:, 0] <= width - 3).all() and (footprint[:, 1] <= height - 3).all()
        if inside:
            homography = cv2.getPerspectiveTransform(corners.astype(np.float32), footprint.astype(np.float32))
            return homography / homography[2, 2], phone_shape
    raise ValueError(f"no capture footprint fits a {width}x{height} photo in {max_tries} draws")


def phone_capture(
    clean: np.ndarray,
    homography: np.ndarray,
    phone_shape: tuple[int, int],
    params: DegradationParams,
    rng: np.random.Generator,
) -> np.ndarray:
    """Renders a simulated phone capture: the phone's view of the clean photo, then degraded.

    Args:
        clean: Clean photo, float RGB in ``[0, 1]`` (the DSLR frame).
        homography: Phone -> DSLR homography (:func:`capture_homography`).
        phone_shape: ``(height, width)`` of the phone frame.
        params: Degradation parameters (the paired set's for this id).
        rng: Noise source.

    Returns:
        Float32 RGB ``(*phone_shape, 3)`` in ``[0, 1]``.
    """
    height, width = phone_shape
    # WARP_INVERSE_MAP: phone(x) = clean(H x), i.e. H maps phone coordinates into the photo.
    view = cv2.warpPerspective(np.ascontiguousarray(clean, dtype=np.float32), homography, (width, height),
                               flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    return degrade(np.clip(view, 0.0, 1.0), params, rng)


def _weak_key(seed: int) -> dict[str, object]:
    key = {
        **_cache_key(seed),
        "weak_version": WEAK_VERSION,
        "capture_ranges": dataclasses.asdict(CAPTURE_RANGES),
        "alignment": alignment_settings(),
        "patch": WEAK_PATCH,
    }
    # As the manifest will hold it (tuples become lists), so that a cache check compares equals.
    return json.loads(json.dumps(key))


def _count_images(folder: Path) -> int:
    return len(list_images(folder)) if folder.is_dir() else -1


def _weak_is_cached(raw: Path, dped: Path, key: dict[str, object]) -> bool:
    manifest = _matching_manifest(raw, key)
    if manifest is None:
        return False
    scenes = manifest.get("scenes", {})
    if not all((raw / side / f"{scene}.png").is_file() for scene in scenes for side in ("phone", "dslr")):
        return False
    for part, totals in manifest.get("totals", {}).items():
        folder = part_dir(dped, WEAK_PHONE, part)
        if read_align_status(folder) != "complete":
            return False
        kept = totals["kept"]
        if _count_images(folder / WEAK_PHONE) != kept or _count_images(folder / DSLR_FOLDER) != kept:
            return False
    return bool(manifest.get("totals"))



def build_weak_demo(
    out: Path,
    seed: int = 0,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Builds (or reuses) the weakly-paired demo set: captures, then aligned DPED-layout patches.

    Cached like the paired set (see :func:`build_paired_demo`); ``out/weak_raw/manifest.json``
    is written last and records each scene's true and estimated homography and their mean
    corner error.

    Args:
        out: Demo root folder.
        seed: Degradation and capture seed.
        force: Rebuild even when the cache is valid.
        progress: Called with one line per capture and per aligned scene.

    Returns:
        ``out/dped`` (the DPED root; phone name ``demo``).

    Raises:
        RuntimeError: A scene could not be aligned (the demo must align completely).
    """
    report = progress or (lambda line: None)
    raw, dped = Path(out) / "weak_raw", Path(out) / "dped"
    key = _weak_key(seed)
    if not force and _weak_is_cached(raw, dped, key):
        report(f"weak demo: cached in {dped / WEAK_PHONE} (captures in {raw}, seed {seed})")
        return dped
    (raw / "manifest.json").unlink(missing_ok=True)
    all_ids = _all_image_ids()
    for side in ("phone", "dslr"):
        _remove_stale(raw / side, all_ids)

    scenes: dict[str, dict[str, object]] = {}
    for photo in DEMO_PHOTOS:
        split = _photo_split(photo)
        for image_id, clean in load_demo_photo(photo):
            homography, phone_shape = capture_homography(clean.shape[:2], stable_rng(seed, image_id, "capture"))
            phone = phone_capture(clean, homography, phone_shape, params_for(image_id, seed),
                                  stable_rng(seed, image_id, "weak-noise"))
            write_image(raw / "phone" / f"{image_id}.png", phone)
            write_image(raw / "dslr" / f"{image_id}.png", clean)
            scenes[image_id] = {
                "photo": photo,
                "split": split,
                "phone_height": phone_shape[0],
                "phone_width": phone_shape[1],
                "true_homography": homography.tolist(),
            }
            report(f"weak   {split:5s} {image_id:22s} phone {phone_shape[1]}x{phone_shape[0]}, "
                   f"dslr {clean.shape[1]}x{clean.shape[0]}")

    totals: dict[str, dict[str, object]] = {}
    for part in ("train", "test"):
        aligned = align_folder(raw, dped, phone=WEAK_PHONE, patch=WEAK_PATCH, part=part,
                               scenes=demo_split_ids(part), progress=lambda line: report(f"weak   {line}"))
        if aligned.failed:
            raise RuntimeError(f"weakly-paired demo: could not align {', '.join(aligned.failed)}:\n{aligned.format()}")
        for scene in aligned.scenes:
            entry = scenes[scene.scene]
            phone_shape = (int(entry["phone_height"]), int(entry["phone_width"]))
            estimated = np.array(scene.homography)
            entry.update({
                "estimated_homography": scene.homography,
                "corner_error_px": round(corner_error(estimated, np.array(entry["true_homography"]), phone_shape), 4),
                "inliers": scene.stats["inliers"] if scene.stats else 0,
                "kept": scene.kept,
                "dropped": scene.dropped,
                "unverified": scene.unverified,
            })
        totals[part] = {"kept": aligned.kept, "dropped": aligned.dropped, "unverified": aligned.unverified}

    manifest = {
        **key,
        "name": "qmap-bench weakly-paired demo (smoke scale)",
        "phone": WEAK_PHONE,
        "dped_root": "../dped",
        "split": DEMO_SPLIT,
        "scenes": dict(sorted(scenes.items())),
        "totals": totals,
    }
    atomic_write_text(raw / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return dped


# --------------------------------------------------------------------------------------------
# Unpaired set


def _unpaired_plan(paired: Path, root: Path) -> dict[Path, Path]:
    """Destination -> source file of every image of the unpaired set (copied from the paired set)."""
    plan: dict[Path, Path] = {}
    for role, side, folder in (("source", "input", "train_source"), ("target", "target", "train_target")):
        for photo in UNPAIRED_HALVES[role]:
            for image_id in DEMO_PHOTOS[photo]:
                plan[root / folder / f"{image_id}.png"] = paired / side / f"{image_id}.png"
    for image_id in demo_split_ids("test"):
        for side in ("input", "target"):
            plan[root / "test" / side / f"{image_id}.png"] = paired / side / f"{image_id}.png"
    return plan


def build_unpaired_demo(
    out: Path,
    seed: int = 0,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Builds (or reuses) the unpaired demo set from the paired one (see the module docstring).

    Args:
        out: Demo root folder (the paired set is built there first if needed).
        seed: Degradation seed.
        force: Rebuild even when the cache is valid.
        progress: Called with one line per folder (and one when the cache is used).

    Returns:
        ``out/unpaired``.
    """
    report = progress or (lambda line: None)
    root = Path(out) / "unpaired"
    key = {**_cache_key(seed), "unpaired_version": UNPAIRED_VERSION, "halves": UNPAIRED_HALVES}
    plan = _unpaired_plan(Path(out) / "paired", root)
    if not force and _matching_manifest(root, key) is not None and all(p.is_file() for p in plan):
        report(f"unpaired demo: cached in {root} (seed {seed})")
        return root
    (root / "manifest.json").unlink(missing_ok=True)
    build_paired_demo(Path(out), seed=seed)  # a cache hit when called from build_demo
    for folder in {path.parent for path in plan}:
        _remove_stale(folder, {path.stem for path in plan if path.parent == folder})
    for destination, source in sorted(plan.items()):
        atomic_write_bytes(destination, source.read_bytes())
    folders: dict[str, list[str]] = {}
    for destination in sorted(plan):
        folders.setdefault(destination.parent.relative_to(root).as_posix(), []).append(destination.stem)
    for folder, ids in folders.items():
        report(f"unpaired {folder:13s} {', '.join(ids)}")
    manifest = {
        **key,
        "name": "qmap-bench unpaired demo (smoke scale)",
        "copied_from": "../paired (train_source: input/, train_target: target/, test: both)",
        "folders": folders,
        "split": DEMO_SPLIT,
    }
    atomic_write_text(root / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return root


# --------------------------------------------------------------------------------------------
# All sets


def build_demo(
    out: Path,
    seed: int = 0,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Builds every demo set under ``out``: paired, then weakly-paired, then unpaired.

    Args:
        out: Demo root folder.
        seed: Degradation seed.
        force: Rebuild even when cached.
        progress: Called with progress lines; each starts with the set's name (``paired``,
            ``weak``, ``unpaired``).

    Returns:
        Set name -> folder: ``paired`` (out/paired), ``weak`` (the DPED root out/dped),
        ``weak_raw`` (the captures) and ``unpaired`` (out/unpaired).
    """
    out = Path(os.fspath(out))
    paired = build_paired_demo(out, seed=seed, force=force, progress=progress)
    weak = build_weak_demo(out, seed=seed, force=force, progress=progress)
    unpaired = build_unpaired_demo(out, seed=seed, force=force, progress=progress)
    return {"paired": paired, "weak": weak, "weak_raw": out / "weak_raw", "unpaired": unpaired}
