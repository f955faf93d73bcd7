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
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

from datamodules.degrade import DEFAULT_RANGES, degrade, params_for, ranges_hash, stable_rng
from datamodules.io import atomic_write_text, is_image_file, write_image

# Bump when the demo content changes for a reason the other cache keys do not see.
DEMO_VERSION = "1"

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
    import cv2

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


def _is_cached(root: Path, key: dict[str, object]) -> bool:
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if any(manifest.get(name) != value for name, value in key.items()):
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
    all_ids = {key_ for ids in DEMO_PHOTOS.values() for key_ in ids}
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


def build_demo(
    out: Path,
    seed: int = 0,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Builds every demo set under ``out``.

    Args:
        out: Demo root folder.
        seed: Degradation seed.
        force: Rebuild even when cached.
        progress: Called with one line per image.

    Returns:
        Set name -> folder, currently ``{"paired": out/paired}``.
    """
    out = Path(os.fspath(out))
    return {"paired": build_paired_demo(out, seed=seed, force=force, progress=progress)}
