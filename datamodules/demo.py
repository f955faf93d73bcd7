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

Video set (:func:`build_video_demo`): every image id becomes one video on its photo's side of
``DEMO_SPLIT`` (the motorcycle views are two test videos). A video is a smooth pan and zoom of a
96x128 window over the photo, downscaled so the frame fits 1.6 times along its tighter axis
(:func:`camera_path`; ``VideoRanges``), with the exact frame -> photo affine of every frame
recorded. Each clean frame is degraded by ``degrade.py`` with the id's paired-set parameters,
modulated over time by an exposure flicker and a white-balance drift (:func:`frame_schedule`),
with fresh noise and JPEG per frame. 24 frames per train video, 16 per test video::

    out/video/<split>/<video_id>/input/%06d.png    degraded frames
    out/video/<split>/<video_id>/target/%06d.png   clean frames
    out/video/<split>/<video_id>/motion.json       {"convention": "frame_to_scene_affine",
                                                    "frames": {"000000": [[a, b, c], [d, e, f]], ...}}
    out/video/manifest.json                        written last: per-video base parameters,
                                                   per-frame gains, camera path values
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
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
# Video set


@dataclass(frozen=True)
class VideoRanges:
    """How a demo video moves and how its degradation varies over time (drawn per seed and id).

    Fixed before any video method was run; never tuned on test videos. Each value is drawn
    uniformly from its range per video:

    | group   | parameter          | range            | effect                                          |
    |---------|--------------------|------------------|-------------------------------------------------|
    | camera  | context            | 1.6 (fixed)      | working photo / frame size on the tighter axis  |
    | camera  | zoom               | [1.00, 1.35]     | window scale at the first and at the last frame |
    | camera  | pan_speed          | [0.5, 2.0] px    | chord length / (frames - 1), working-photo px   |
    | camera  | pan_bow            | [-0.25, 0.25]    | half-sine bulge across the chord / chord length |
    | flicker | flicker_amplitude  | [0.03, 0.08]     | sinusoidal part of the per-frame exposure gain  |
    | flicker | flicker_cycles     | [0.5, 2.0]       | periods of that sinusoid over the video         |
    | flicker | flicker_jitter     | [0.02, 0.05]     | bound of the uniform per-frame gain jitter      |
    | colour  | wb_drift           | [0.04, 0.10]     | total drift of the red / blue gain, random sign |

    The per-frame exposure gain ``1 + A sin(2 pi c t / (T - 1) + phase) + j_t`` multiplies the
    base exposure and stays within ``1 +- 0.13`` (inside the +-15 % budget); the white-balance
    gains move from their base values by ``+-wb_drift`` along an ease-in-out ramp. The zoom
    follows the same ramp between its two draws, and the window centre moves along the chord
    plus a half-sine across it, so every path is smooth (no jumps between frames).

    Attributes:
        context: Working photo size over frame size along the axis where that ratio is smaller
            (for a landscape photo at least 4:3, its short side is ``context`` times 96 px).
        zoom: Window scale (working-photo pixels per frame pixel); 1.35 at most, so the warp
            never minifies by more than that and bilinear sampling stays nearly alias free.
        pan_speed: Mean speed of the window centre along its chord, working-photo px per frame.
        pan_bow: Amplitude of the half-sine across the chord, as a fraction of the chord length.
        flicker_amplitude: Amplitude of the smooth (sinusoidal) part of the exposure gain.
        flicker_cycles: Periods of that sinusoid over the whole video.
        flicker_jitter: Bound ``J`` of the independent per-frame gain jitter ``U(-J, J)``.
        wb_drift: Magnitude of the red and the blue gain drift over the video (sign drawn too).
    """

    context: float = 1.6
    zoom: tuple[float, float] = (1.0, 1.35)
    pan_speed: tuple[float, float] = (0.5, 2.0)
    pan_bow: tuple[float, float] = (-0.25, 0.25)
    flicker_amplitude: tuple[float, float] = (0.03, 0.08)
    flicker_cycles: tuple[float, float] = (0.5, 2.0)
    flicker_jitter: tuple[float, float] = (0.02, 0.05)
    wb_drift: tuple[float, float] = (0.04, 0.10)


VIDEO_RANGES = VideoRanges()
VIDEO_VERSION = "1"
VIDEO_FRAME_SIZE: tuple[int, int] = (96, 128)  # (height, width) of every frame, portrait photos too
VIDEO_FRAMES: dict[str, int] = {"train": 24, "test": 16}  # frames per video, by split
VIDEO_FRAME_NAME = "{:06d}.png"
VIDEO_MARGIN = 1.0  # working-photo px kept between every window and the photo's border
MOTION_CONVENTION = "frame_to_scene_affine"
MOTION_DESCRIPTION = (
    "A_t (2x3) maps pixel (x, y) of frame t to the scene (the working photo): [X, Y] = A_t @ [x, y, 1]; "
    "pixel centres at integer coordinates, x right, y down; frame t = warpAffine(scene, A_t, "
    "WARP_INVERSE_MAP); pixel p of frame t sits at inv(A_s) A_t p in frame s (3x3 homogeneous forms)"
)


def _ease(u: np.ndarray) -> np.ndarray:
    """Smooth 0 -> 1 ramp with zero slope at both ends."""
    return (1.0 - np.cos(np.pi * u)) / 2.0


def video_working_photo(
    clean: np.ndarray,
    frame_size: tuple[int, int] = VIDEO_FRAME_SIZE,
    context: float = VIDEO_RANGES.context,
) -> np.ndarray:
    """The photo resized so that the frame fits ``context`` times along its tighter axis.

    Args:
        clean: Clean photo, float RGB in ``[0, 1]``.
        frame_size: ``(height, width)`` of the video frames.
        context: Ratio of working photo to frame size on the tighter axis.

    Returns:
        Float32 RGB; INTER_AREA when shrinking (every demo photo), bicubic when enlarging.
    """
    height, width = clean.shape[:2]
    factor = context * max(frame_size[0] / height, frame_size[1] / width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(np.ascontiguousarray(clean, dtype=np.float32), size, interpolation=interpolation)
    return np.clip(resized, 0.0, 1.0)


def window_affine(scale: float, centre: tuple[float, float], frame_size: tuple[int, int]) -> np.ndarray:
    """Frame -> scene affine of a window of ``scale`` centred on ``centre`` (scene ``(X, Y)``).

    Returns:
        2x3 float64 ``[[s, 0, cx - s (W - 1) / 2], [0, s, cy - s (H - 1) / 2]]``.
    """
    height, width = frame_size
    return np.array([[scale, 0.0, centre[0] - scale * (width - 1) / 2],
                     [0.0, scale, centre[1] - scale * (height - 1) / 2]], dtype=np.float64)


def window_inside(affine: np.ndarray, frame_size: tuple[int, int], scene_shape: tuple[int, int],
                  margin: float = 0.0) -> bool:
    """Whether every frame pixel maps at least ``margin`` px inside the scene's pixel centres."""
    height, width = frame_size
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], float)
    mapped = corners @ np.asarray(affine, float).T
    return bool((mapped >= margin).all() and (mapped[:, 0] <= scene_shape[1] - 1 - margin).all()
                and (mapped[:, 1] <= scene_shape[0] - 1 - margin).all())


def frame_to_frame(affine_src: np.ndarray, affine_dst: np.ndarray) -> np.ndarray:
    """Maps pixel coordinates of frame ``dst`` into frame ``src``: ``inv(A_src) A_dst`` (2x3).

    ``remap(frame_src, M)`` with this map per pixel of ``dst`` aligns ``src`` onto ``dst``.
    """
    def full(affine: np.ndarray) -> np.ndarray:
        return np.vstack([np.asarray(affine, np.float64), [0.0, 0.0, 1.0]])

    return (np.linalg.inv(full(affine_src)) @ full(affine_dst))[:2]


def render_frame(scene: np.ndarray, affine: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """One clean frame: ``frame[y, x] = scene(A @ [x, y, 1])``, bilinear.

    Args:
        scene: Working photo, float32 RGB in ``[0, 1]``.
        affine: 2x3 frame -> scene map (pixel centres at integers).
        frame_size: ``(height, width)`` of the frame.

    Returns:
        Float32 RGB ``(*frame_size, 3)`` in ``[0, 1]``.
    """
    height, width = frame_size
    # WARP_INVERSE_MAP: OpenCV takes the given matrix as the dst -> src map, i.e. frame -> scene,
    # exactly the recorded A_t (tests/test_video_demo.py pins it against direct sampling).
    frame = cv2.warpAffine(np.ascontiguousarray(scene, dtype=np.float32), np.asarray(affine, np.float64),
                           (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
    return np.clip(frame, 0.0, 1.0)


def camera_path(
    scene_shape: tuple[int, int],
    num_frames: int,
    rng: np.random.Generator,
    ranges: VideoRanges = VIDEO_RANGES,
    frame_size: tuple[int, int] = VIDEO_FRAME_SIZE,
    max_tries: int = 100,
) -> tuple[np.ndarray, dict[str, object]]:
    """Draws one smooth pan-and-zoom camera move over a scene.

    Zoom ``s_t`` eases from ``s_0`` to ``s_1``; the window centre moves along a chord of length
    ``pan_speed * (T - 1)`` in a uniform direction, plus ``pan_bow * chord * sin(pi u)`` across
    it (``u = t / (T - 1)``). The start is drawn uniformly among the positions that keep every
    window ``VIDEO_MARGIN`` px inside the scene; a draw with no such position is redrawn.

    Args:
        scene_shape: ``(height, width)`` of the working photo.
        num_frames: Frames ``T`` (at least 2).
        rng: Source of the draw.
        ranges: Parameter ranges.
        frame_size: ``(height, width)`` of the frames.
        max_tries: Redraws before giving up.

    Returns:
        ``(affines, params)``: ``(T, 2, 3)`` float64 frame -> scene maps and the drawn values.

    Raises:
        ValueError: No draw fits the scene (too small for the ranges), or fewer than 2 frames.
    """
    if num_frames < 2:
        raise ValueError(f"a camera path needs at least 2 frames, got {num_frames}")
    height, width = frame_size
    u = np.arange(num_frames, dtype=np.float64) / (num_frames - 1)
    half = np.array([(width - 1) / 2, (height - 1) / 2])
    extent = np.array([scene_shape[1] - 1, scene_shape[0] - 1], dtype=np.float64)
    for _ in range(max_tries):
        zoom_start, zoom_end = (float(rng.uniform(*ranges.zoom)) for _ in range(2))
        angle = float(rng.uniform(0.0, 2.0 * np.pi))
        speed = float(rng.uniform(*ranges.pan_speed))
        bow = float(rng.uniform(*ranges.pan_bow))
        scales = zoom_start + (zoom_end - zoom_start) * _ease(u)
        chord = speed * (num_frames - 1)
        direction = np.array([np.cos(angle), np.sin(angle)])
        across = np.array([-direction[1], direction[0]])
        offsets = (chord * u)[:, None] * direction + (bow * chord * np.sin(np.pi * u))[:, None] * across
        # Start positions that keep every window inside: an interval per axis.
        low = (VIDEO_MARGIN + scales[:, None] * half - offsets).max(axis=0)
        high = (extent - VIDEO_MARGIN - scales[:, None] * half - offsets).min(axis=0)
        if (low > high).any():
            continue
        start = np.array([rng.uniform(low[0], high[0]), rng.uniform(low[1], high[1])])
        centres = start + offsets
        affines = np.stack([window_affine(s, c, frame_size) for s, c in zip(scales, centres)])
        for affine in affines:
            if not window_inside(affine, frame_size, scene_shape, margin=VIDEO_MARGIN - 1e-6):
                raise RuntimeError("camera path leaves the scene")  # cannot happen: start is feasible
        params = {
            "zoom_start": zoom_start, "zoom_end": zoom_end, "angle_rad": angle, "pan_speed": speed,
            "pan_bow": bow, "start_centre": start.tolist(), "chord": chord,
        }
        return affines, params
    raise ValueError(f"no camera path of {num_frames} frames fits a {scene_shape[1]}x{scene_shape[0]} scene "
                     f"in {max_tries} draws")


def frame_schedule(
    base: DegradationParams,
    num_frames: int,
    rng: np.random.Generator,
    ranges: VideoRanges = VIDEO_RANGES,
) -> tuple[list[DegradationParams], dict[str, object]]:
    """Per-frame degradation parameters: the base draw with exposure flicker and colour drift.

    Vignetting, gamma, saturation, blur, noise levels and JPEG quality stay at the base value
    (noise is still drawn anew per frame by the caller).

    Args:
        base: The video's base parameters (``params_for(video_id, seed)``).
        num_frames: Frames ``T``.
        rng: Source of the draw.
        ranges: Parameter ranges.

    Returns:
        ``(params per frame, drawn values)``; the latter holds ``exposure_gain``, ``wb_red`` and
        ``wb_blue`` per frame.
    """
    u = np.arange(num_frames, dtype=np.float64) / max(num_frames - 1, 1)
    amplitude = float(rng.uniform(*ranges.flicker_amplitude))
    cycles = float(rng.uniform(*ranges.flicker_cycles))
    phase = float(rng.uniform(0.0, 2.0 * np.pi))
    jitter_bound = float(rng.uniform(*ranges.flicker_jitter))
    jitter = rng.uniform(-jitter_bound, jitter_bound, size=num_frames)
    gains = 1.0 + amplitude * np.sin(2.0 * np.pi * cycles * u + phase) + jitter
    drifts = [float(rng.uniform(*ranges.wb_drift) * rng.choice([-1.0, 1.0])) for _ in range(2)]
    red = base.wb_red + drifts[0] * _ease(u)
    blue = base.wb_blue + drifts[1] * _ease(u)
    params = [
        dataclasses.replace(base, exposure=float(base.exposure * gain), wb_red=float(r), wb_blue=float(b))
        for gain, r, b in zip(gains, red, blue)
    ]
    drawn = {
        "flicker_amplitude": amplitude, "flicker_cycles": cycles, "flicker_phase": phase,
        "flicker_jitter": jitter_bound, "wb_red_drift": drifts[0], "wb_blue_drift": drifts[1],
        "exposure_gain": [float(g) for g in gains], "wb_red": [float(r) for r in red],
        "wb_blue": [float(b) for b in blue],
    }
    return params, drawn


@dataclass
class DemoVideo:
    """One rendered demo video (in memory).

    Attributes:
        clean: Clean frames, float32 RGB ``(T, H, W, 3)`` in ``[0, 1]`` (the targets).
        degraded: Degraded frames, same shape (the inputs).
        affines: ``(T, 2, 3)`` frame -> scene maps (see ``MOTION_DESCRIPTION``).
        scene_shape: ``(height, width)`` of the working photo.
        motion: Drawn camera values (:func:`camera_path`).
        schedule: Drawn degradation values over time (:func:`frame_schedule`).
        base: Base degradation parameters.
    """

    clean: np.ndarray
    degraded: np.ndarray
    affines: np.ndarray
    scene_shape: tuple[int, int]
    motion: dict[str, object]
    schedule: dict[str, object]
    base: DegradationParams


def render_video(
    video_id: str,
    clean: np.ndarray,
    num_frames: int,
    seed: int,
    ranges: VideoRanges = VIDEO_RANGES,
    frame_size: tuple[int, int] = VIDEO_FRAME_SIZE,
) -> DemoVideo:
    """Renders one demo video: a camera move over ``clean``, each frame then degraded.

    Deterministic per ``(seed, video_id)``: the path, the schedule and each frame's noise come
    from separate SHA-256-derived generators (``video-motion``, ``video-schedule``, and
    ``noise`` for the id ``<video_id>:<t>``).

    Args:
        video_id: Video id (the image id).
        clean: Clean photo, float RGB in ``[0, 1]``.
        num_frames: Frames.
        seed: Demo seed.
        ranges: Video ranges.
        frame_size: ``(height, width)`` of the frames.

    Returns:
        The video.
    """
    scene = video_working_photo(clean, frame_size, ranges.context)
    scene_shape = (scene.shape[0], scene.shape[1])
    affines, motion = camera_path(scene_shape, num_frames, stable_rng(seed, video_id, "video-motion"),
                                  ranges, frame_size)
    base = params_for(video_id, seed)
    per_frame, schedule = frame_schedule(base, num_frames, stable_rng(seed, video_id, "video-schedule"), ranges)
    clean_frames, degraded_frames = [], []
    for t, (affine, params) in enumerate(zip(affines, per_frame)):
        frame = render_frame(scene, affine, frame_size)
        clean_frames.append(frame)
        degraded_frames.append(degrade(frame, params, stable_rng(seed, f"{video_id}:{t}", "noise")))
    return DemoVideo(np.stack(clean_frames), np.stack(degraded_frames), affines, scene_shape, motion,
                     schedule, base)


def motion_record(video: DemoVideo) -> dict[str, object]:
    """The ``motion.json`` content of a video (frame names without extension -> 2x3 affine)."""
    return {
        "convention": MOTION_CONVENTION,
        "description": MOTION_DESCRIPTION,
        "scene_size": list(video.scene_shape),
        "frame_size": [int(video.clean.shape[1]), int(video.clean.shape[2])],
        "frames": {f"{t:06d}": affine.tolist() for t, affine in enumerate(video.affines)},
    }


def _video_key(seed: int) -> dict[str, object]:
    key = {
        **_cache_key(seed),
        "video_version": VIDEO_VERSION,
        "video_ranges": dataclasses.asdict(VIDEO_RANGES),
        "frame_size": list(VIDEO_FRAME_SIZE),
        "frames_per_video": VIDEO_FRAMES,
        "motion_convention": MOTION_CONVENTION,
    }
    return json.loads(json.dumps(key))


def _video_plan() -> dict[str, tuple[str, str]]:
    """Video id -> (photo, split) of every demo video."""
    return {image_id: (photo, _photo_split(photo)) for photo, ids in DEMO_PHOTOS.items() for image_id in ids}


def _video_files(root: Path, split: str, video_id: str, frames: int) -> list[Path]:
    folder = root / split / video_id
    names = [VIDEO_FRAME_NAME.format(t) for t in range(frames)]
    return [folder / part / name for part in ("input", "target") for name in names] + [folder / "motion.json"]


def _video_is_cached(root: Path, key: dict[str, object]) -> bool:
    manifest = _matching_manifest(root, key)
    if manifest is None:
        return False
    videos = manifest.get("videos", {})
    if set(videos) != set(_video_plan()):
        return False
    return all(path.is_file() for video_id, entry in videos.items()
               for path in _video_files(root, entry["split"], video_id, entry["frames"]))


def _remove_stale_videos(root: Path, plan: dict[str, tuple[str, str]]) -> None:
    """Deletes video folders of ids no longer on that side, and frames past each video's end."""
    for split, frames in VIDEO_FRAMES.items():
        folder = root / split
        if not folder.is_dir():
            continue
        keep = {video_id for video_id, (_photo, side) in plan.items() if side == split}
        for path in folder.iterdir():
            if path.is_dir() and path.name not in keep:
                shutil.rmtree(path)
        names = {VIDEO_FRAME_NAME.format(t)[:-4] for t in range(frames)}
        for video_id in keep:
            for part in ("input", "target"):
                _remove_stale(folder / video_id / part, names)


def build_video_demo(
    out: Path,
    seed: int = 0,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Builds (or reuses) the video demo set under ``out/video`` (see the module docstring).

    Every image id becomes one video on its photo's side of ``DEMO_SPLIT``: a smooth pan and
    zoom over the photo (:func:`camera_path`), 96x128 frames, ``VIDEO_FRAMES`` frames, degraded
    frame by frame with flicker and colour drift (:func:`frame_schedule`). Cached like the
    paired set: skipped when ``manifest.json`` records the same key (seed, ``VIDEO_VERSION``,
    ranges, source versions) and every file is present, unless ``force``; the manifest is
    written last.

    Args:
        out: Demo root folder.
        seed: Demo seed.
        force: Rebuild even when the cache is valid.
        progress: Called with one line per video (and one when the cache is used).

    Returns:
        ``out/video``.
    """
    report = progress or (lambda line: None)
    root = Path(out) / "video"
    key = _video_key(seed)
    if not force and _video_is_cached(root, key):
        report(f"video demo: cached in {root} (seed {seed})")
        return root
    (root / "manifest.json").unlink(missing_ok=True)
    plan = _video_plan()
    _remove_stale_videos(root, plan)

    videos: dict[str, dict[str, object]] = {}
    for photo in DEMO_PHOTOS:
        split = _photo_split(photo)
        frames = VIDEO_FRAMES[split]
        for video_id, clean in load_demo_photo(photo):
            video = render_video(video_id, clean, frames, seed)
            folder = root / split / video_id
            for t in range(frames):
                name = VIDEO_FRAME_NAME.format(t)
                write_image(folder / "input" / name, video.degraded[t])
                write_image(folder / "target" / name, video.clean[t])
            atomic_write_text(folder / "motion.json", json.dumps(motion_record(video), indent=1) + "\n")
            videos[video_id] = {
                "photo": photo,
                "split": split,
                "frames": frames,
                "frame_height": VIDEO_FRAME_SIZE[0],
                "frame_width": VIDEO_FRAME_SIZE[1],
                "scene_height": video.scene_shape[0],
                "scene_width": video.scene_shape[1],
                "base_params": video.base.to_dict(),
                "schedule": video.schedule,
                "motion": video.motion,
            }
            report(f"video  {split:5s} {video_id:22s} {frames} frames {VIDEO_FRAME_SIZE[1]}x{VIDEO_FRAME_SIZE[0]} "
                   f"over {video.scene_shape[1]}x{video.scene_shape[0]}")

    manifest = {
        **key,
        "name": "qmap-bench video demo (smoke scale)",
        "layout": "<split>/<video_id>/{input,target}/%06d.png, <split>/<video_id>/motion.json",
        "split": DEMO_SPLIT,
        "videos": dict(sorted(videos.items())),
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
    """Builds every demo set under ``out``: paired, then weakly-paired, unpaired and video.

    Args:
        out: Demo root folder.
        seed: Degradation seed.
        force: Rebuild even when cached.
        progress: Called with progress lines; each starts with the set's name (``paired``,
            ``weak``, ``unpaired``, ``video``).

    Returns:
        Set name -> folder: ``paired`` (out/paired), ``weak`` (the DPED root out/dped),
        ``weak_raw`` (the captures), ``unpaired`` (out/unpaired) and ``video`` (out/video).
    """
    out = Path(os.fspath(out))
    paired = build_paired_demo(out, seed=seed, force=force, progress=progress)
    weak = build_weak_demo(out, seed=seed, force=force, progress=progress)
    unpaired = build_unpaired_demo(out, seed=seed, force=force, progress=progress)
    video = build_video_demo(out, seed=seed, force=force, progress=progress)
    return {"paired": paired, "weak": weak, "weak_raw": out / "weak_raw", "unpaired": unpaired, "video": video}
