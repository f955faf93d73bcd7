"""The compound degradation model that turns clean photos into demo inputs.

A clean sRGB photo is degraded in three groups, in the order a camera would introduce them:

1. Illumination and colour in linear light (the sRGB curve is undone first, redone after):
   exposure gain, lens vignetting, white-balance cast.
2. Rendering in display space: a darker tone curve ``x ** gamma`` and reduced saturation
   (mixing each pixel towards its Rec. 709 luma).
3. Texture: Gaussian blur (optics), then signal-dependent sensor noise, then JPEG, last because
   compression is the last step of a camera pipeline.

The output is clipped to ``[0, 1]``; after JPEG it is exactly 8-bit.

Parameter ranges (``DEFAULT_RANGES``), fixed before any method was tuned and never tuned on
test photos. Each value is drawn uniformly from its range unless said otherwise:

| group        | parameter            | range           | effect                                        |
|--------------|----------------------|-----------------|-----------------------------------------------|
| illumination | exposure gain        | x[0.45, 0.80]   | linear-light gain: underexposure              |
| illumination | gamma                | [1.10, 1.50]    | ``x ** gamma`` on display values: darker mids |
| illumination | vignetting strength  | [0.15, 0.40]    | gain ``1 - s * r^2``, r = 1 at the corners    |
| colour       | white-balance gains  | [0.80, 1.20]    | red and blue gains, green fixed at 1: cast    |
| colour       | saturation factor    | [0.55, 0.90]    | fraction of chroma kept: desaturation         |
| texture      | blur sigma           | [0.30, 1.00] px | Gaussian blur                                 |
| texture      | noise a              | [1e-4, 1e-3]    | std ``sqrt(a * x + b^2)``; a log-uniform      |
| texture      | noise b              | [0.005, 0.015]  | signal-independent floor of that std          |
| texture      | JPEG quality         | [60, 90]        | integer, inclusive                            |

A mid-grey 0.5 becomes about 0.42 at the mildest settings and 0.20 at the harshest: clearly
low quality, still recoverable. Draws are deterministic per ``(seed, image id)`` through a
SHA-256 of both (never Python's salted ``hash``), so results never depend on processing order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import cv2
import numpy as np

# Rec. 709 luma weights (the sRGB primaries).
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


@dataclass(frozen=True)
class DegradationRanges:
    """Inclusive ``(low, high)`` ranges from which degradation parameters are drawn.

    Attributes:
        exposure: Linear-light gain (below 1 underexposes).
        gamma: Exponent of the display-space tone curve ``x ** gamma``.
        vignetting: Strength ``s`` of the radial falloff ``1 - s * r^2``.
        wb_gain: Red and blue gains relative to green.
        saturation: Fraction of chroma kept.
        blur_sigma: Gaussian blur sigma in pixels.
        noise_a: Signal-dependent noise variance per unit signal (drawn log-uniformly).
        noise_b: Signal-independent noise std.
        jpeg_quality: JPEG quality, integers.
    """

    exposure: tuple[float, float] = (0.45, 0.8)
    gamma: tuple[float, float] = (1.1, 1.5)
    vignetting: tuple[float, float] = (0.15, 0.4)
    wb_gain: tuple[float, float] = (0.8, 1.2)
    saturation: tuple[float, float] = (0.55, 0.9)
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    noise_a: tuple[float, float] = (1e-4, 1e-3)
    noise_b: tuple[float, float] = (0.005, 0.015)
    jpeg_quality: tuple[int, int] = (60, 90)


DEFAULT_RANGES = DegradationRanges()


@dataclass(frozen=True)
class DegradationParams:
    """One concrete draw of the degradation parameters (see :class:`DegradationRanges`)."""

    exposure: float
    gamma: float
    vignetting: float
    wb_red: float
    wb_blue: float
    saturation: float
    blur_sigma: float
    noise_a: float
    noise_b: float
    jpeg_quality: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict for manifests."""
        return dataclasses.asdict(self)


def ranges_hash(ranges: DegradationRanges = DEFAULT_RANGES) -> str:
    """SHA-256 of the range values (field names included); invalidates cached demo sets."""
    payload = json.dumps(dataclasses.asdict(ranges), sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def stable_rng(seed: int, image_id: str, purpose: str) -> np.random.Generator:
    """Generator derived from SHA-256 of ``(seed, image_id, purpose)``.

    ``purpose`` separates the parameter draw from the noise draw, so adding a parameter never
    changes the noise pattern of an image and vice versa.
    """
    digest = hashlib.sha256(f"qmap-degrade|{seed}|{image_id}|{purpose}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def sample_params(
    rng: np.random.Generator, ranges: DegradationRanges = DEFAULT_RANGES
) -> DegradationParams:
    """Draws one set of parameters from ``ranges``.

    Args:
        rng: Source of randomness; the draw order is fixed, so equal generators give equal params.
        ranges: Parameter ranges.

    Returns:
        The parameters.
    """
    log_a = rng.uniform(np.log(ranges.noise_a[0]), np.log(ranges.noise_a[1]))
    return DegradationParams(
        exposure=_uniform(rng, ranges.exposure),
        gamma=_uniform(rng, ranges.gamma),
        vignetting=_uniform(rng, ranges.vignetting),
        wb_red=_uniform(rng, ranges.wb_gain),
        wb_blue=_uniform(rng, ranges.wb_gain),
        saturation=_uniform(rng, ranges.saturation),
        blur_sigma=_uniform(rng, ranges.blur_sigma),
        # a spans a decade, so a log-uniform draw covers low and high noise evenly.
        noise_a=float(np.exp(log_a)),
        noise_b=_uniform(rng, ranges.noise_b),
        jpeg_quality=int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1], endpoint=True)),
    )


def params_for(image_id: str, seed: int, ranges: DegradationRanges = DEFAULT_RANGES) -> DegradationParams:
    """Deterministic parameters for one image under one seed."""
    return sample_params(stable_rng(seed, image_id, "params"), ranges)


# --------------------------------------------------------------------------------------------
# Steps. Each takes and returns float32 (H, W, 3) and is pure apart from the explicit rng.


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer function (IEC 61966-2-1)."""
    x = np.clip(image, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(image: np.ndarray) -> np.ndarray:
    """sRGB transfer function (IEC 61966-2-1)."""
    x = np.clip(image, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def apply_exposure(image: np.ndarray, gain: float) -> np.ndarray:
    """Multiplies by ``gain`` (meant for linear light)."""
    return (image * np.float32(gain)).astype(np.float32)


def apply_gamma(image: np.ndarray, gamma: float) -> np.ndarray:
    """Tone curve ``x ** gamma``; gamma above 1 darkens mid-tones and keeps 0 and 1 fixed."""
    return np.power(np.clip(image, 0.0, 1.0), np.float32(gamma)).astype(np.float32)


def vignetting_mask(height: int, width: int, strength: float) -> np.ndarray:
    """Radial gain ``1 - strength * r^2``, r = 0 at the centre and 1 at the corners."""
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height - 0.5
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width - 0.5
    r2 = (ys[:, None] ** 2 + xs[None, :] ** 2) / 0.5  # corners: 0.25 + 0.25 -> r^2 = 1
    return (1.0 - np.float32(strength) * r2).astype(np.float32)


def apply_vignetting(image: np.ndarray, strength: float) -> np.ndarray:
    """Darkens towards the corners (meant for linear light)."""
    mask = vignetting_mask(image.shape[0], image.shape[1], strength)
    return (image * mask[:, :, None]).astype(np.float32)


def apply_white_balance(image: np.ndarray, red: float, blue: float) -> np.ndarray:
    """Per-channel gains ``(red, 1, blue)``: a colour cast (meant for linear light)."""
    gains = np.array([red, 1.0, blue], dtype=np.float32)
    return (image * gains).astype(np.float32)


def apply_saturation(image: np.ndarray, factor: float) -> np.ndarray:
    """Mixes each pixel towards its luma; ``factor`` is the fraction of chroma kept.

    For factors in ``[0, 1]`` the result is a convex combination, so it stays in range.
    """
    luma = (image @ _LUMA)[:, :, None]
    return (luma + np.float32(factor) * (image - luma)).astype(np.float32)


def apply_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel size from sigma)."""
    if sigma <= 0:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def apply_noise(image: np.ndarray, a: float, b: float, rng: np.random.Generator) -> np.ndarray:
    """Adds signal-dependent Gaussian noise with std ``sqrt(a * x + b^2)`` (Poisson-Gaussian-like).

    Args:
        image: Clean signal in ``[0, 1]``.
        a: Shot-noise variance per unit signal.
        b: Read-noise std.
        rng: Noise source.

    Returns:
        Noisy image (not clipped).
    """
    std = np.sqrt(np.float32(a) * np.clip(image, 0.0, None) + np.float32(b) ** 2)
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    return (image + std * noise).astype(np.float32)


def apply_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip at ``quality`` (OpenCV's encoder, 4:2:0 chroma); result is 8-bit valued."""
    pixels = np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    bgr = np.ascontiguousarray(pixels[:, :, ::-1])
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return (decoded[:, :, ::-1].astype(np.float32) / np.float32(255.0)).copy()


def degrade(image: np.ndarray, params: DegradationParams, rng: np.random.Generator) -> np.ndarray:
    """Applies the compound degradation (order in the module docstring).

    Args:
        image: Clean float RGB ``(H, W, 3)`` in ``[0, 1]`` (sRGB-encoded).
        params: Parameters of this image.
        rng: Noise source.

    Returns:
        Degraded float32 RGB in ``[0, 1]``, same shape.

    Raises:
        ValueError: The image is not ``(H, W, 3)`` floating point.
    """
    if image.ndim != 3 or image.shape[2] != 3 or not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"expected a float (H, W, 3) image, got {image.dtype} {image.shape}")
    x = srgb_to_linear(image.astype(np.float32))
    x = apply_exposure(x, params.exposure)
    x = apply_vignetting(x, params.vignetting)
    x = apply_white_balance(x, params.wb_red, params.wb_blue)
    x = linear_to_srgb(x)
    x = apply_gamma(x, params.gamma)
    x = apply_saturation(x, params.saturation)
    x = apply_blur(x, params.blur_sigma)
    x = apply_noise(x, params.noise_a, params.noise_b, rng)
    x = apply_jpeg(x, params.jpeg_quality)
    return np.clip(x, 0.0, 1.0)


def degrade_with_seed(
    image: np.ndarray, image_id: str, seed: int, ranges: DegradationRanges = DEFAULT_RANGES
) -> np.ndarray:
    """Degrades one image with parameters and noise derived from ``(seed, image_id)``.

    The parameters used are ``params_for(image_id, seed, ranges)``.

    Args:
        image: Clean float RGB in ``[0, 1]``.
        image_id: Stable id of the image.
        seed: Dataset seed.
        ranges: Parameter ranges.

    Returns:
        The degraded image.
    """
    params = params_for(image_id, seed, ranges)
    return degrade(image, params, stable_rng(seed, image_id, "noise"))
