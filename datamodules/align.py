"""Weakly-paired captures -> aligned patch pairs in the DPED layout (``qmap data align``).

DPED (Ignatov et al. 2017) aligned each phone photo to its DSLR counterpart with SIFT keypoints
and a non-linear warp, kept the intersection and cut 100x100 patches. This module follows that
recipe with one documented simplification: the warp is a single **homography** (phone -> DSLR),
which is exact for a planar or distant scene and for a pure camera rotation, the tripod set-up of
DPED; parallax between the two lenses is left to the per-patch residual check below.

Steps for one scene:

1. Keypoints: SIFT on both captures as 8-bit grey after CLAHE (local contrast normalisation).
   Phone captures are darker, flatter and noisier than the DSLR's; without CLAHE SIFT finds few
   keypoints in them (on the demo's retina scene 46 instead of ~850, and the homography missed by
   4 px). Matches pass Lowe's ratio test (0.75).
2. Homography: ``cv2.findHomography`` with RANSAC (3 px reprojection threshold; OpenCV refines
   the model on the inliers with Levenberg-Marquardt). OpenCV's RNG is seeded first, so a
   rerun gives the same homography. A scene fails (and is reported) with fewer than
   ``min_inliers`` inliers or when the warped phone frame covers too little of the DSLR frame.
3. Warp: the phone capture is warped into the DSLR frame (bicubic). A DSLR pixel is *valid* when
   its preimage lies inside the phone frame with a 1 px margin, so the bicubic support never
   reads the constant border (computed analytically, not by warping a mask).
4. Patches: a grid of ``patch`` x ``patch`` cells (stride ``stride``, default ``patch``) over the
   valid region's bounding box, shifted by the offset (searched in steps of a tenth of the
   stride) that fits the most cells inside the valid region; the rotated footprint of a phone
   view otherwise wastes a row or column of patches. A cell that touches an invalid pixel is
   dropped with reason ``outside``.
5. Local residual: the translation left between the warped phone patch and the DSLR patch,
   measured by phase correlation (OpenCV ``phaseCorrelate``, Hann window) of their grey
   versions, both blurred with sigma 1 px so that the phone's noise and blur matter less. The
   residual is the length of that translation in pixels. Phase correlation whitens the
   spectrum, so exposure and contrast differences between the cameras do not bias it. On the
   demo scenes aligned patches measure at most 0.3 px and patches shifted by 4 px 3.2-4.8 px.

   * Patches with too little structure to register (mean Sobel gradient magnitude of the
     blurred grey DSLR patch below ``min_texture``) cannot be checked. They are **kept** and
     counted as ``unverified``: DPED kept every patch of the intersection, and a misregistration
     of a few pixels changes little in a flat patch (sky, the black border of the retina).
   * A textured patch whose correlation peak is weaker than ``min_response`` has no consistent
     shift (the content differs: parallax, a moving object, a local distortion) and is dropped
     with reason ``unmatched``.
   * A textured patch whose residual exceeds ``max_residual`` is dropped with reason
     ``residual``.

Layouts. Input ``RAW_DIR/phone/<scene>.<ext>`` and ``RAW_DIR/dslr/<scene>.<ext>``, matched by
scene id (:func:`datamodules.io.image_id`). Output, for ``part="train"``::

    OUT/<phone>/training_data/<phone>/N.png   OUT/<phone>/training_data/canon/N.png
    OUT/<phone>/training_data/align.json      report, settings and the origin of every N

and for ``part="test"`` the same under ``OUT/<phone>/test_data/patches/``. ``N`` counts from 0
over the scenes in sorted order, patches in row-major order. ``align.json`` is rewritten after
every scene (``"status": "partial"``) and marked ``"complete"`` at the end, so a crash keeps the
finished scenes and says so (``WeaklyPairedDataModule`` refuses a partial part). Its paths are
relative to its folder, so the same alignment gives the same bytes wherever it is written. A rerun deletes the images of the previous run first; folders that
hold images but no ``align.json`` were not written here and are never touched.

Limitation: patches are cut at the DSLR's resolution. When the DSLR resolves much more than the
phone (DPED's Canon vs iPhone 3GS), downscale the DSLR captures to the phone's scale first,
otherwise the phone patches are upsampled; ``align.json`` records each homography's scale.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from datamodules.io import (
    ImageReadError,
    abbreviate,
    atomic_write_text,
    is_image_file,
    list_images,
    read_image,
    to_uint8,
    write_image,
)

DSLR_FOLDER = "canon"  # DPED's name for the target side, whatever the DSLR
RAW_PHONE, RAW_DSLR = "phone", "dslr"
PART_DIRS: dict[str, tuple[str, ...]] = {"train": ("training_data",), "test": ("test_data", "patches")}
DROP_REASONS: tuple[str, ...] = ("outside", "residual", "unmatched")
MANIFEST = "align.json"

# Defaults, fixed before looking at any method's results (see the module docstring).
RATIO_TEST = 0.75
# The strongest keypoints kept per image: matching cost grows with the product of the counts,
# and on the demo scenes more keypoints changed the corner error by under 0.05 px.
MAX_FEATURES = 4000
RANSAC_THRESHOLD_PX = 3.0
MIN_INLIERS = 20
MIN_OVERLAP = 0.1  # share of the DSLR frame the warped phone frame must cover
MAX_RESIDUAL_PX = 2.0
# Measured on the demo scenes: aligned patches have peaks of 0.37 or more, pairs of unrelated
# patches a median of 0.08 (90th percentile 0.19).
MIN_RESPONSE = 0.15
# Mean gradient of about 0.4 grey levels per pixel: below it a 4 px shift was not measurable on
# the demo scenes (a flat sky), above it every 4 px shift was found (3.2-4.8 px).
MIN_TEXTURE = 0.0015
_RESIDUAL_BLUR_SIGMA = 1.0
_RANSAC_SEED = 0


class AlignmentError(ValueError):
    """A scene could not be aligned (too few matches, degenerate or implausible homography)."""


@dataclass(frozen=True)
class MatchStats:
    """How well a homography is supported by keypoint matches.

    Attributes:
        phone_keypoints: SIFT keypoints found in the phone capture.
        dslr_keypoints: SIFT keypoints found in the DSLR capture.
        matches: Matches that passed the ratio test.
        inliers: RANSAC inliers among them.
        inlier_rmse: Root-mean-square reprojection error of the inliers, DSLR pixels.
        scale: Linear scale of the homography at the phone frame's centre (1: same resolution).
    """

    phone_keypoints: int
    dslr_keypoints: int
    matches: int
    inliers: int
    inlier_rmse: float
    scale: float


@dataclass(frozen=True)
class Patch:
    """One kept patch pair.

    Attributes:
        x: Left column of the patch in the DSLR frame.
        y: Top row of the patch in the DSLR frame.
        residual: Measured local misalignment in pixels; None when the patch was too flat to
            measure (kept as ``unverified``).
        phone: Warped phone patch, float32 ``(patch, patch, 3)``.
        dslr: DSLR patch, float32 ``(patch, patch, 3)``.
    """

    x: int
    y: int
    residual: float | None
    phone: np.ndarray
    dslr: np.ndarray


@dataclass
class PatchCut:
    """The result of cutting one aligned scene into patches.

    Attributes:
        patches: Kept patches in row-major order.
        dropped: Reason -> count, for every reason in :data:`DROP_REASONS`.
        unverified: Kept patches too flat for the residual check.
    """

    patches: list[Patch] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    unverified: int = 0


@dataclass
class SceneAlignment:
    """One aligned scene: the homography, its support and the patches."""

    homography: np.ndarray
    stats: MatchStats
    cut: PatchCut


@dataclass
class SceneReport:
    """What happened to one scene (``error`` set when it could not be aligned)."""

    scene: str
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    unverified: int = 0
    homography: list[list[float]] | None = None
    stats: dict[str, float] | None = None
    error: str | None = None


@dataclass
class AlignReport:
    """Everything ``qmap data align`` did, for printing and for ``align.json``.

    Attributes:
        raw_dir: Folder holding ``phone/`` and ``dslr/``.
        phone_dir: Output folder of the phone patches.
        dslr_dir: Output folder of the DSLR (``canon``) patches.
        part: ``train`` or ``test``.
        patch: Patch side in pixels.
        stride: Grid stride in pixels.
        max_residual: Residual limit in pixels.
        scenes: One report per scene, in processing order.
        phone_only: Scenes with a phone capture but no DSLR capture (skipped).
        dslr_only: Scenes with a DSLR capture but no phone capture (skipped).
    """

    raw_dir: str
    phone_dir: str
    dslr_dir: str
    part: str
    patch: int
    stride: int
    max_residual: float
    scenes: list[SceneReport] = field(default_factory=list)
    phone_only: list[str] = field(default_factory=list)
    dslr_only: list[str] = field(default_factory=list)

    @property
    def kept(self) -> int:
        """Patch pairs written."""
        return sum(scene.kept for scene in self.scenes)

    @property
    def dropped(self) -> dict[str, int]:
        """Dropped patches per reason, over all scenes."""
        return {reason: sum(s.dropped[reason] for s in self.scenes) for reason in DROP_REASONS}

    @property
    def unverified(self) -> int:
        """Kept patches too flat for the residual check, over all scenes."""
        return sum(scene.unverified for scene in self.scenes)

    @property
    def failed(self) -> list[str]:
        """Scenes that could not be aligned."""
        return [scene.scene for scene in self.scenes if scene.error]

    def format(self, per_scene: bool = True) -> str:
        """Human-readable report: one line per scene (unless ``per_scene`` is False), then the
        totals and where the output is."""
        lines = [f"align {self.raw_dir} -> {self.phone_dir} + {self.dslr_dir}  "
                 f"(part {self.part}, patch {self.patch}, stride {self.stride}, "
                 f"max residual {self.max_residual:g} px)"]
        if per_scene:
            lines += [f"  {_scene_line(scene)}" for scene in self.scenes]
        if self.phone_only:
            lines.append(f"  SKIPPED {len(self.phone_only)} scene(s) without a DSLR capture: "
                         f"{abbreviate(self.phone_only)}")
        if self.dslr_only:
            lines.append(f"  SKIPPED {len(self.dslr_only)} scene(s) without a phone capture: "
                         f"{abbreviate(self.dslr_only)}")
        lines.append(f"  total: kept {self.kept} pairs ({self.unverified} unverified, too flat to check); "
                     f"dropped {_reasons(self.dropped)}")
        if self.failed:
            lines.append(f"  FAILED {len(self.failed)} scene(s): {abbreviate(self.failed)}")
        lines.append(f"  output: {self.phone_dir} and {self.dslr_dir}")
        return "\n".join(lines)


def _reasons(dropped: dict[str, int]) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in dropped.items())


def _scene_line(scene: SceneReport) -> str:
    if scene.error:
        return f"{scene.scene}: FAILED {scene.error}"
    stats = scene.stats or {}
    return (f"{scene.scene}: kept {scene.kept} ({scene.unverified} unverified), dropped "
            f"{_reasons(scene.dropped)}; {int(stats.get('inliers', 0))}/{int(stats.get('matches', 0))} "
            f"inliers, rmse {stats.get('inlier_rmse', float('nan')):.2f} px")


# --------------------------------------------------------------------------------------------
# Pure steps


def grey_for_matching(image: np.ndarray) -> np.ndarray:
    """8-bit grey after CLAHE, as SIFT sees it (see step 1 of the module docstring)."""
    grey = cv2.cvtColor(to_uint8(image), cv2.COLOR_RGB2GRAY)
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)


def estimate_homography(
    phone: np.ndarray,
    dslr: np.ndarray,
    ratio: float = RATIO_TEST,
    ransac_threshold: float = RANSAC_THRESHOLD_PX,
    min_inliers: int = MIN_INLIERS,
) -> tuple[np.ndarray, MatchStats]:
    """Estimates the homography that maps phone pixel coordinates to DSLR pixel coordinates.

    Args:
        phone: Phone capture, float RGB ``(h, w, 3)`` in ``[0, 1]``.
        dslr: DSLR capture, float RGB ``(H, W, 3)`` in ``[0, 1]``.
        ratio: Lowe's ratio-test threshold.
        ransac_threshold: RANSAC inlier threshold in DSLR pixels.
        min_inliers: Fewer inliers than this fail the scene.

    Returns:
        ``(H, stats)``: ``H`` is 3x3 float64 normalised to ``H[2, 2] == 1``.

    Raises:
        AlignmentError: Too few keypoints, matches or inliers, or a degenerate homography.
    """
    sift = cv2.SIFT_create(nfeatures=MAX_FEATURES)
    phone_kp, phone_desc = sift.detectAndCompute(grey_for_matching(phone), None)
    dslr_kp, dslr_desc = sift.detectAndCompute(grey_for_matching(dslr), None)
    if phone_desc is None or dslr_desc is None or len(phone_kp) < 2 or len(dslr_kp) < 2:
        raise AlignmentError(f"too few SIFT keypoints (phone {len(phone_kp)}, dslr {len(dslr_kp)})")
    candidates = cv2.BFMatcher(cv2.NORM_L2).knnMatch(phone_desc, dslr_desc, k=2)
    good = [pair[0] for pair in candidates if len(pair) == 2 and pair[0].distance < ratio * pair[1].distance]
    if len(good) < max(min_inliers, 4):
        raise AlignmentError(f"only {len(good)} keypoint matches pass the ratio test (need {max(min_inliers, 4)})")
    source = np.float64([phone_kp[m.queryIdx].pt for m in good])
    target = np.float64([dslr_kp[m.trainIdx].pt for m in good])
    cv2.setRNGSeed(_RANSAC_SEED)  # RANSAC draws from OpenCV's global RNG: same seed, same model
    homography, mask = cv2.findHomography(
        source, target, cv2.RANSAC, ransac_threshold, maxIters=5000, confidence=0.999
    )
    if homography is None or mask is None:
        raise AlignmentError(f"RANSAC found no homography among {len(good)} matches")
    inliers = mask.ravel().astype(bool)
    if inliers.sum() < min_inliers:
        raise AlignmentError(f"only {int(inliers.sum())} RANSAC inliers among {len(good)} matches "
                             f"(need {min_inliers})")
    homography = homography / homography[2, 2]
    if not np.isfinite(homography).all():
        raise AlignmentError("degenerate homography (non-finite entries)")
    projected = project(homography, source[inliers])
    rmse = float(np.sqrt(np.mean(np.sum((projected - target[inliers]) ** 2, axis=1))))
    stats = MatchStats(
        phone_keypoints=len(phone_kp),
        dslr_keypoints=len(dslr_kp),
        matches=len(good),
        inliers=int(inliers.sum()),
        inlier_rmse=rmse,
        scale=local_scale(homography, phone.shape[:2]),
    )
    return homography, stats


def project(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Applies a homography to ``(N, 2)`` points ``(x, y)``; returns ``(N, 2)`` float64."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    ones = np.ones((len(points), 1))
    mapped = np.hstack([points, ones]) @ np.asarray(homography, dtype=np.float64).T
    return mapped[:, :2] / mapped[:, 2:3]


def local_scale(homography: np.ndarray, source_shape: tuple[int, int]) -> float:
    """Linear scale factor of a homography at the centre of the source frame (sqrt of |det J|)."""
    height, width = source_shape
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    step = 1.0
    points = np.array([centre, centre + [step, 0], centre + [0, step]])
    mapped = project(homography, points)
    jacobian = np.stack([mapped[1] - mapped[0], mapped[2] - mapped[0]], axis=1) / step
    return float(math.sqrt(abs(np.linalg.det(jacobian))))


def frame_corners(shape: tuple[int, int]) -> np.ndarray:
    """The four corner pixel centres ``(x, y)`` of a ``(height, width)`` frame, clockwise from top-left."""
    height, width = shape
    return np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], dtype=np.float64)


def corner_error(estimated: np.ndarray, true: np.ndarray, source_shape: tuple[int, int]) -> float:
    """Mean distance in target pixels between the source frame's corners mapped by two homographies.

    Args:
        estimated: Estimated homography (source -> target).
        true: True homography (source -> target).
        source_shape: ``(height, width)`` of the source (phone) frame.
    """
    corners = frame_corners(source_shape)
    return float(np.linalg.norm(project(estimated, corners) - project(true, corners), axis=1).mean())


def valid_mask(homography: np.ndarray, source_shape: tuple[int, int], target_shape: tuple[int, int],
               margin: float = 1.0) -> np.ndarray:
    """Target pixels whose preimage lies inside the source frame, ``margin`` pixels from its edge.

    With ``margin`` 1 the 4x4 support of bicubic interpolation at the preimage stays inside the
    source, so a valid pixel never mixes in the constant border of the warp.

    Args:
        homography: Source -> target homography.
        source_shape: ``(height, width)`` of the source frame.
        target_shape: ``(height, width)`` of the target frame.
        margin: Distance from the source edge, in source pixels.

    Returns:
        Boolean ``target_shape`` array.
    """
    src_h, src_w = source_shape
    height, width = target_shape
    inverse = np.linalg.inv(np.asarray(homography, dtype=np.float64))
    # Row and column vectors broadcast to (H, W): no coordinate grid is materialised.
    xs = np.arange(width, dtype=np.float64)[None, :]
    ys = np.arange(height, dtype=np.float64)[:, None]
    w = inverse[2, 0] * xs + inverse[2, 1] * ys + inverse[2, 2]
    # w <= 0: the point lies behind the source camera's horizon, never a valid preimage.
    inside = w > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]) / w
        # Bicubic reads columns floor(u) - 1 .. floor(u) + 2: all inside when margin <= u < w - 1 - margin.
        inside &= (u >= margin) & (u < src_w - 1 - margin)
        del u
        v = (inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]) / w
        inside &= (v >= margin) & (v < src_h - 1 - margin)
    return inside


def warp_to(image: np.ndarray, homography: np.ndarray, target_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Warps an image into a target frame with a source -> target homography (bicubic).

    Args:
        image: Float ``(h, w, 3)`` source image.
        homography: Source -> target homography.
        target_shape: ``(height, width)`` of the target frame.

    Returns:
        ``(warped, valid)``: the float32 warped image (0 outside) and :func:`valid_mask`.
    """
    height, width = target_shape
    warped = cv2.warpPerspective(
        np.ascontiguousarray(image, dtype=np.float32), np.asarray(homography, dtype=np.float64), (width, height),
        flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
    # Bicubic overshoots at edges; the images are [0, 1] signals.
    return np.clip(warped, 0.0, 1.0), valid_mask(homography, image.shape[:2], target_shape)


def _residual_grey(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2GRAY)
    return cv2.GaussianBlur(grey, (0, 0), _RESIDUAL_BLUR_SIGMA, borderType=cv2.BORDER_REFLECT_101)


def patch_texture(patch: np.ndarray) -> float:
    """Mean Sobel gradient magnitude of the blurred grey patch (per pixel, image units)."""
    grey = _residual_grey(patch)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3) / 8.0  # /8: Sobel 3x3 weights sum to 8 per side
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return float(np.sqrt(gx**2 + gy**2).mean())


def patch_residual(phone_patch: np.ndarray, dslr_patch: np.ndarray) -> tuple[float, float]:
    """Local misalignment between two patches by phase correlation.

    Args:
        phone_patch: Warped phone patch, float RGB.
        dslr_patch: DSLR patch, float RGB, same size.

    Returns:
        ``(residual, response)``: the length in pixels of the translation that best aligns the
        two patches, and the height of the normalised correlation peak (0-1; near 0 when the
        patches share no structure).
    """
    if phone_patch.shape != dslr_patch.shape:
        raise ValueError(f"patch shapes differ: {phone_patch.shape} vs {dslr_patch.shape}")
    height, width = dslr_patch.shape[:2]
    window = cv2.createHanningWindow((width, height), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(_residual_grey(phone_patch), _residual_grey(dslr_patch), window)
    return float(math.hypot(dx, dy)), float(response)


def _invalid_integral(valid: np.ndarray) -> np.ndarray:
    """Integral image of the invalid pixels: "does this cell touch one" becomes four lookups."""
    return np.pad((~valid).astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)


def _invalid_count(integral: np.ndarray, y: np.ndarray | int, x: np.ndarray | int, patch: int) -> np.ndarray | int:
    return integral[y + patch, x + patch] - integral[y, x + patch] - integral[y + patch, x] + integral[y, x]


def grid_origins(valid: np.ndarray, patch: int, stride: int) -> tuple[list[int], list[int]]:
    """Rows and columns of the patch grid over the valid region (see step 4 of the module docstring).

    Args:
        valid: Boolean ``(H, W)`` valid region.
        patch: Patch side.
        stride: Grid step.

    Returns:
        ``(ys, xs)``: top rows and left columns of the grid cells; the grid is their product.
        Both are empty when the valid region is smaller than one patch.
    """
    rows, cols = np.nonzero(valid)
    if rows.size == 0:
        return [], []
    top, left, bottom, right = int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1
    integral = _invalid_integral(valid)
    step = max(1, stride // 10)
    best: tuple[int, list[int], list[int]] = (-1, [], [])
    for dy in range(0, stride, step):
        for dx in range(0, stride, step):
            ys = list(range(top + dy, bottom - patch + 1, stride))
            xs = list(range(left + dx, right - patch + 1, stride))
            if not ys or not xs:
                continue
            grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
            fitting = int((_invalid_count(integral, grid_y, grid_x, patch) == 0).sum())
            if fitting > best[0]:  # strict: ties keep the smallest offset, so the choice is stable
                best = (fitting, ys, xs)
    return best[1], best[2]


def cut_patches(
    warped: np.ndarray,
    valid: np.ndarray,
    dslr: np.ndarray,
    patch: int,
    stride: int | None = None,
    max_residual: float = MAX_RESIDUAL_PX,
    min_response: float = MIN_RESPONSE,
    min_texture: float = MIN_TEXTURE,
) -> PatchCut:
    """Cuts aligned patch pairs on a grid over the valid region and filters them.

    Args:
        warped: Phone capture warped into the DSLR frame, float ``(H, W, 3)``.
        valid: Boolean ``(H, W)``, True where ``warped`` holds phone content.
        dslr: DSLR capture, float ``(H, W, 3)``.
        patch: Patch side in pixels.
        stride: Grid step; None: ``patch`` (no overlap).
        max_residual: Drop textured patches whose residual exceeds this (pixels).
        min_response: Drop textured patches whose correlation peak is below this.
        min_texture: Patches below this texture (see :func:`patch_texture`) are kept unverified.

    Returns:
        The kept patches and the drop counts (see the module docstring for the reasons).
    """
    if warped.shape != dslr.shape or valid.shape != dslr.shape[:2]:
        raise ValueError(f"shapes differ: warped {warped.shape}, valid {valid.shape}, dslr {dslr.shape}")
    if patch < 1 or (stride is not None and stride < 1):
        raise ValueError(f"patch and stride must be positive, got {patch} and {stride}")
    stride = stride or patch
    cut = PatchCut()
    ys, xs = grid_origins(valid, patch, stride)
    invalid = _invalid_integral(valid)
    for y in ys:
        for x in xs:
            if _invalid_count(invalid, y, x, patch):
                cut.dropped["outside"] += 1
                continue
            phone_patch = warped[y:y + patch, x:x + patch]
            dslr_patch = dslr[y:y + patch, x:x + patch]
            residual: float | None = None
            if patch_texture(dslr_patch) >= min_texture:
                residual, response = patch_residual(phone_patch, dslr_patch)
                if response < min_response:
                    cut.dropped["unmatched"] += 1
                    continue
                if residual > max_residual:
                    cut.dropped["residual"] += 1
                    continue
            else:
                cut.unverified += 1
            cut.patches.append(Patch(int(x), int(y), residual, phone_patch.copy(), dslr_patch.copy()))
    return cut


def align_scene(
    phone: np.ndarray,
    dslr: np.ndarray,
    patch: int = 100,
    stride: int | None = None,
    max_residual: float = MAX_RESIDUAL_PX,
    min_overlap: float = MIN_OVERLAP,
) -> SceneAlignment:
    """Aligns one phone capture to its DSLR capture and cuts the patch pairs.

    Args:
        phone: Phone capture, float RGB in ``[0, 1]``.
        dslr: DSLR capture, float RGB in ``[0, 1]``.
        patch: Patch side in pixels.
        stride: Grid step; None: ``patch``.
        max_residual: Residual limit in pixels.
        min_overlap: Smallest share of the DSLR frame the warped phone frame may cover.

    Returns:
        The homography, its match statistics and the patches.

    Raises:
        AlignmentError: The scene cannot be aligned (the message says why).
    """
    homography, stats = estimate_homography(phone, dslr)
    warped, valid = warp_to(phone, homography, dslr.shape[:2])
    overlap = float(valid.mean())
    if overlap < min_overlap:
        raise AlignmentError(f"the warped phone frame covers {overlap:.0%} of the DSLR frame "
                             f"(need {min_overlap:.0%}): implausible homography")
    cut = cut_patches(warped, valid, dslr, patch, stride=stride, max_residual=max_residual)
    return SceneAlignment(homography=homography, stats=stats, cut=cut)


# --------------------------------------------------------------------------------------------
# Folders


def part_dir(out_dir: str | Path, phone: str, part: Literal["train", "test"]) -> Path:
    """``OUT/<phone>/training_data`` or ``OUT/<phone>/test_data/patches``."""
    if part not in PART_DIRS:
        raise ValueError(f"unknown part {part!r}; known: {', '.join(PART_DIRS)}")
    return Path(out_dir, phone, *PART_DIRS[part])


def check_phone_name(phone: str) -> None:
    """Raises ValueError for phone names that cannot be a DPED folder name."""
    if not phone or phone in (".", "..") or "/" in phone or "\\" in phone or phone == DSLR_FOLDER:
        raise ValueError(f"phone name {phone!r} cannot name a folder beside {DSLR_FOLDER!r}")


def _prepare_output(folder: Path, phone: str) -> tuple[Path, Path]:
    """Empties the output folders of a previous alignment run; refuses foreign folders."""
    phone_dir, dslr_dir = folder / phone, folder / DSLR_FOLDER
    ours = (folder / MANIFEST).is_file()
    for side in (phone_dir, dslr_dir):
        if not side.is_dir():
            continue
        images = [p for p in side.iterdir() if is_image_file(p)]
        if images and not ours:
            raise FileExistsError(
                f"{side} holds {len(images)} image(s) that `qmap data align` did not write (no "
                f"{folder / MANIFEST}); refusing to overwrite them: choose another --out"
            )
        for path in images:
            path.unlink()
    return phone_dir, dslr_dir


def _write_manifest(folder: Path, report: AlignReport, index: list[dict[str, object]], status: str,
                    settings: dict[str, object]) -> None:
    # Paths relative to the manifest's folder: the same alignment gives the same bytes wherever
    # it is written, and the folder can be moved.
    paths = {name: os.path.relpath(getattr(report, name), folder) for name in ("raw_dir", "phone_dir", "dslr_dir")}
    payload = {
        "status": status,
        "settings": settings,
        "report": {
            **asdict(report),
            **paths,
            "kept": report.kept,
            "dropped": report.dropped,
            "unverified": report.unverified,
            "failed": report.failed,
        },
        "patches": index,
    }
    atomic_write_text(folder / MANIFEST, json.dumps(payload, indent=1, sort_keys=True) + "\n")


def align_folder(
    raw_dir: str | Path,
    out_dir: str | Path,
    phone: str = "phone",
    patch: int = 100,
    part: Literal["train", "test"] = "train",
    max_residual: float = MAX_RESIDUAL_PX,
    stride: int | None = None,
    scenes: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> AlignReport:
    """Aligns every scene of a weakly-paired capture folder and writes the DPED layout.

    Args:
        raw_dir: Folder holding ``phone/`` and ``dslr/`` captures matched by scene id.
        out_dir: DPED root; patches go to ``out_dir/<phone>/training_data`` (train) or
            ``out_dir/<phone>/test_data/patches`` (test).
        phone: Phone name (folder name of the phone patches).
        patch: Patch side in pixels.
        part: ``train`` or ``test``.
        max_residual: Residual limit in pixels.
        stride: Grid step; None: ``patch``.
        scenes: Only these scene ids (e.g. one side of a photo-level split); None: all.
        progress: Called with one line per scene.

    Returns:
        The report (also written to ``align.json`` beside the patch folders).

    Raises:
        FileNotFoundError: ``raw_dir/phone`` or ``raw_dir/dslr`` is missing.
        FileExistsError: The output folders hold images this command did not write.
        ValueError: Bad phone name or patch size, or requested scenes that do not exist.
    """
    check_phone_name(phone)
    if patch < 1:
        raise ValueError(f"patch must be positive, got {patch}")
    raw = Path(raw_dir)
    phone_files = list_images(raw / RAW_PHONE)
    dslr_files = list_images(raw / RAW_DSLR)
    if scenes is not None:
        unknown = sorted(set(scenes) - (set(phone_files) & set(dslr_files)))
        if unknown:
            raise ValueError(f"{raw}: requested scene(s) without both a phone and a DSLR capture: "
                             f"{abbreviate(unknown)}")
        selected = sorted(set(scenes))
    else:
        selected = sorted(set(phone_files) & set(dslr_files))
    folder = part_dir(out_dir, phone, part)
    phone_dir, dslr_dir = _prepare_output(folder, phone)
    report = AlignReport(
        raw_dir=str(raw), phone_dir=str(phone_dir), dslr_dir=str(dslr_dir), part=part, patch=patch,
        stride=stride or patch, max_residual=max_residual,
        phone_only=[] if scenes is not None else sorted(set(phone_files) - set(dslr_files)),
        dslr_only=[] if scenes is not None else sorted(set(dslr_files) - set(phone_files)),
    )
    settings = alignment_settings()
    index: list[dict[str, object]] = []
    _write_manifest(folder, report, index, "partial", settings)
    say = progress or (lambda line: None)
    for scene in selected:
        scene_report = SceneReport(scene=scene)
        try:
            aligned = align_scene(read_image(phone_files[scene]), read_image(dslr_files[scene]), patch=patch,
                                  stride=stride, max_residual=max_residual)
        except (AlignmentError, ImageReadError) as err:
            # One bad scene must not cost the others: it is reported and the command fails at the end.
            scene_report.error = str(err)
        else:
            for kept in aligned.cut.patches:
                number = len(index)
                write_image(phone_dir / f"{number}.png", kept.phone)
                write_image(dslr_dir / f"{number}.png", kept.dslr)
                index.append({"n": number, "scene": scene, "x": kept.x, "y": kept.y,
                              "residual": None if kept.residual is None else round(kept.residual, 4)})
            scene_report.kept = len(aligned.cut.patches)
            scene_report.dropped = dict(aligned.cut.dropped)
            scene_report.unverified = aligned.cut.unverified
            scene_report.homography = aligned.homography.tolist()
            scene_report.stats = asdict(aligned.stats)
        report.scenes.append(scene_report)
        _write_manifest(folder, report, index, "partial", settings)  # a crash keeps finished scenes
        say(f"align {part:5s} {_scene_line(scene_report)}")
    _write_manifest(folder, report, index, "complete", settings)
    return report


def alignment_settings() -> dict[str, object]:
    """The fixed settings of the recipe, recorded in ``align.json`` and in demo cache keys."""
    return {
        "recipe_version": 1,
        "ratio_test": RATIO_TEST,
        "max_features": MAX_FEATURES,
        "ransac_threshold_px": RANSAC_THRESHOLD_PX,
        "min_inliers": MIN_INLIERS,
        "min_overlap": MIN_OVERLAP,
        "min_response": MIN_RESPONSE,
        "min_texture": MIN_TEXTURE,
        "residual_blur_sigma": _RESIDUAL_BLUR_SIGMA,
        "matching": "SIFT on CLAHE grey, ratio test",
        "warp": "homography phone->dslr, bicubic",
    }


def read_align_status(folder: str | Path) -> str | None:
    """``status`` of the ``align.json`` in a DPED part folder, None when there is none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text(encoding="utf-8")).get("status"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable alignment manifest ({err})") from err


def main_align(argv: list[str]) -> int:
    """``qmap data align RAW_DIR --out DIR [--phone NAME] [--patch 100] [--max-residual PX]``.

    Returns:
        0 when every scene was aligned, 1 when some scene failed (the others are written).
    """
    parser = argparse.ArgumentParser(
        prog="qmap data align",
        description="Align weakly-paired captures (RAW_DIR/phone/, RAW_DIR/dslr/) into DPED-layout patch pairs.",
    )
    parser.add_argument("raw_dir", help="folder holding phone/<scene>.<ext> and dslr/<scene>.<ext>")
    parser.add_argument("--out", required=True, help="DPED root to write (OUT/<phone>/training_data/...)")
    parser.add_argument("--phone", default="phone", help="phone name, the patch folder name (default: phone)")
    parser.add_argument("--patch", type=int, default=100, help="patch side in pixels (default: 100)")
    parser.add_argument("--stride", type=int, default=None, help="grid step in pixels (default: the patch side)")
    parser.add_argument("--max-residual", type=float, default=MAX_RESIDUAL_PX,
                        help=f"drop patches misaligned by more than this many pixels (default: {MAX_RESIDUAL_PX:g})")
    parser.add_argument("--part", choices=sorted(PART_DIRS), default="train",
                        help="write training_data (train, default) or test_data/patches (test)")
    parser.add_argument("--scenes", default=None, help="list file of scene ids to align (default: all)")
    args = parser.parse_args(argv)
    scenes = None
    if args.scenes is not None:
        from datamodules.io import read_id_list

        scenes = read_id_list(args.scenes)
    start = time.perf_counter()
    try:
        report = align_folder(args.raw_dir, args.out, phone=args.phone, patch=args.patch, part=args.part,
                              max_residual=args.max_residual, stride=args.stride, scenes=scenes,
                              progress=lambda line: print(line, flush=True))
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"qmap data align: {err}", file=sys.stderr)
        return 1
    print(report.format(per_scene=False))  # the scene lines were printed as they finished
    print(f"  report: {Path(report.phone_dir).parent / MANIFEST}  ({time.perf_counter() - start:.1f} s)")
    return 1 if report.failed else 0
