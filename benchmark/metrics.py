"""Full-reference image metrics: the one scoring path of the suite (design.md section 5).

Every method is scored by these functions, through the Evaluator or ``qmap score``. Conventions:

- Inputs are float tensors ``(B, 3, H, W)`` already quantised with :func:`quantize`
  (clamp to [0, 1], ``round(x * 255) / 255``: the papers scored saved 8-bit outputs). The
  functional forms work on the 8-bit levels ``round(255 x)`` in float64, which is exact for
  quantised input (float32 cannot hold k/255 exactly; rounding removes that error) and applies
  the scoring convention to anything else.
- Every functional form returns one float64 value per image, shape ``(B,)``. Tables average per
  image; nothing is pooled across images (a pooled MSE gives a different, lower PSNR).
- ``psnr``: RGB, one MSE over the three channels, peak 255 on levels (= peak 1 on [0, 1]).
  Identical images give ``+inf`` (no cap: any cap would be an invented number; skimage and
  MATLAB's ``psnr`` also return inf). The report layer must show it, not average it away.
- ``ssim``: Wang et al. 2004 on RGB — Gaussian 11×11, σ 1.5, population covariance, 'valid'
  region, K1 0.01, K2 0.03, L 255, mean over channels; equal to ``skimage.metrics.
  structural_similarity(t, p, channel_axis=-1, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255)`` on uint8 arrays.
- ``ms_ssim``: the MultiScaleSSIM of DPED's ``ssim.py`` (aiff22/DPED), per image: five scales,
  weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), a Gaussian window of size
  ``min(11, H, W)`` with σ scaled by ``size / 11`` at each scale, 'valid' region, 2×2 mean
  downsampling whose odd last row/column averages with itself (scipy's 'reflect' border), so a
  100×100 patch runs at 100, 50, 25, 13, 7 px; contrast-structure at scales 1–4 and full SSIM at
  scale 5. Defined for any image of at least 1×1 px (the window shrinks with the image). A
  negative contrast-structure term raised to its fractional weight is NaN, as in DPED's numpy.
- ``delta_e76`` / ``delta_e2000``: sRGB (D65, 2°) → CIELAB as ``skimage.color.rgb2lab``, then the
  per-pixel CIE76 / CIEDE2000 difference (kL = kC = kH = 1), averaged over the pixels of each image.
- ``lpips``: the ``lpips`` package, AlexNet trunk, version 0.1, inputs mapped from [0, 1] to
  [-1, 1] by ``2x - 1`` here (never by a library default). The trunk weights come only from
  :mod:`baselines.weights` (hash-checked torchvision file); without them the metric is
  unavailable — never computed on random weights.

:class:`ImageScorer` bundles the metrics for one image at a time and reports which of them can
produce numbers. ``HIGHER_IS_BETTER`` is the direction table of :mod:`benchmark.results`.

Temporal metrics (:data:`TEMPORAL_METRIC_NAMES`, both lower is better) score videos one
consecutive pair of frames ``(t-1, t)`` at a time; a report averages the pair values per video,
then averages the videos (no pooling over pairs of different videos). Frames are ``(3, H, W)``
and are read as 8-bit levels like the image metrics.

- ``warp_error``: Lai et al. 2018 ("Learning Blind Video Temporal Consistency"): the mean over
  non-occluded pixels and the three channels of ``(pred_t - warp(pred_{t-1}))²`` in [0, 1] units
  (one 8-bit level everywhere is ``(1/255)²``). The backward flow and its validity mask come from
  the known motion of a synthetic video (:func:`motion_flow`) or, failing that, from Farneback
  flow on the reference frames (:func:`optical_flow`); never from the method's own output, which
  would reward a method for the flow its flicker produces. NaN for a pair without a valid pixel
  (a scene cut): the caller skips it.
- ``flicker``: the mean over channels of ``|Δmean(pred) - Δmean(target)|`` between the two
  frames, in 8-bit levels: how far the output's global brightness/colour change departs from the
  target's. Needs no alignment, so it also serves weakly aligned target videos.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.weights import WeightsUnavailable, load_torchvision_state_dict
from benchmark.results import HIGHER_IS_BETTER

__all__ = [
    "HIGHER_IS_BETTER",
    "METRIC_NAMES",
    "MS_SSIM_WEIGHTS",
    "TEMPORAL_METRIC_NAMES",
    "ImageScorer",
    "LPIPSScorer",
    "cie76",
    "ciede2000",
    "delta_e76",
    "delta_e2000",
    "flicker",
    "load_alexnet_trunk",
    "motion_flow",
    "ms_ssim",
    "optical_flow",
    "psnr",
    "quantize",
    "srgb_to_lab",
    "ssim",
    "temporal_scores",
    "warp_error",
    "warp_previous",
]

METRIC_NAMES: tuple[str, ...] = ("psnr", "ssim", "ms_ssim", "delta_e76", "delta_e2000", "lpips")

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

_PEAK = 255.0
_K1, _K2 = 0.01, 0.03
_SSIM_SIZE, _SSIM_SIGMA = 11, 1.5

# sRGB primaries -> CIE XYZ and the D65 (2° observer) white, the constants of skimage.color.
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_D65_WHITE = (0.95047, 1.0, 1.08883)

# Pixels per chunk in the colour metrics: bounds their float64 temporaries to a few MB each.
_LAB_CHUNK = 1 << 18


# --------------------------------------------------------------------------------------------
# Scoring convention
# --------------------------------------------------------------------------------------------


def quantize(x: Tensor) -> Tensor:
    """Apply the scoring convention: clamp to [0, 1], then ``round(x * 255) / 255``.

    Args:
        x: A float image tensor of any shape.

    Returns:
        A tensor of the same shape and dtype whose values are multiples of 1/255.
    """
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


def _levels(x: Tensor) -> Tensor:
    # 8-bit levels as exact float64 integers: float32 k/255 * 255 is only k to within 1 ulp.
    return torch.round(x.detach().to(torch.float64).clamp(0.0, 1.0) * _PEAK)


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape"
        )
    if pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"expected RGB batches (B, 3, H, W), got {tuple(pred.shape)}")
    if not (pred.is_floating_point() and target.is_floating_point()):
        raise TypeError("pred and target must be float tensors in [0, 1]")


# --------------------------------------------------------------------------------------------
# PSNR
# --------------------------------------------------------------------------------------------


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image RGB PSNR in dB: one MSE over all three channels, peak 255 on 8-bit levels.

    Args:
        pred: Quantised float images ``(B, 3, H, W)`` in [0, 1].
        target: Reference images of the same shape.

    Returns:
        ``(B,)`` float64; ``+inf`` where an image equals its target.
    """
    _check_pair(pred, target)
    mse = (_levels(pred) - _levels(target)).square().mean(dim=(1, 2, 3))
    # 255² / 0 = inf and log10(inf) = inf: identical images report +inf, not an error.
    return 10.0 * torch.log10(_PEAK**2 / mse)


# --------------------------------------------------------------------------------------------
# SSIM and MS-SSIM
# --------------------------------------------------------------------------------------------


def _gaussian_taps(size: int, sigma: float) -> list[float]:
    """Normalised 1-D Gaussian taps centred on the window (half-integer offsets when even).

    The 2-D windows of Wang's SSIM and of DPED's ``_FSpecialGauss`` are outer products of these
    taps, so filtering separably gives the same result at a fraction of the cost.
    """
    centre = (size - 1) / 2.0
    taps = [math.exp(-((i - centre) ** 2) / (2.0 * sigma**2)) for i in range(size)]
    total = math.fsum(taps)
    return [t / total for t in taps]


def _filter_valid(x: Tensor, taps: Sequence[float]) -> Tensor:
    """Separable 'valid' correlation of the last two dimensions with ``taps`` on both axes.

    Shifted in-place sums: in float64 on the CPU they are several times faster than
    ``conv2d`` and allocate only the output (the 1411² retina image is the design case).
    """
    k = len(taps)
    rows = x.shape[-2] - k + 1
    out = x[..., 0:rows, :] * taps[0]
    for i in range(1, k):
        out.add_(x[..., i : i + rows, :], alpha=taps[i])
    cols = x.shape[-1] - k + 1
    res = out[..., 0:cols] * taps[0]
    for i in range(1, k):
        res.add_(out[..., i : i + cols], alpha=taps[i])
    return res


def _ssim_and_cs(x: Tensor, y: Tensor, taps: Sequence[float]) -> tuple[Tensor, Tensor]:
    """Mean SSIM and mean contrast-structure term per image, on levels in [0, 255].

    Args:
        x: float64 levels ``(B, C, H, W)``.
        y: float64 levels of the same shape.
        taps: 1-D window taps; the window is their outer product and the map is 'valid'.

    Returns:
        ``(ssim, cs)``, each ``(B,)`` float64: the means over channels and valid pixels.
    """
    c1 = (_K1 * _PEAK) ** 2
    c2 = (_K2 * _PEAK) ** 2
    batch, channels = x.shape[:2]
    ssim_sum = torch.zeros(batch, dtype=torch.float64, device=x.device)
    cs_sum = torch.zeros_like(ssim_sum)
    # One channel of one image at a time: five filtered maps of a 1411² channel are ~80 MB.
    for b in range(batch):
        for c in range(channels):
            xc, yc = x[b, c], y[b, c]
            mu_x = _filter_valid(xc, taps)
            mu_y = _filter_valid(yc, taps)
            mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
            # Population (co)variances: E[xy] - E[x]E[y] under the normalised window.
            var_x = _filter_valid(xc * xc, taps).sub_(mu_xx)
            var_y = _filter_valid(yc * yc, taps).sub_(mu_yy)
            cov = _filter_valid(xc * yc, taps).sub_(mu_xy)
            v1 = cov.mul_(2.0).add_(c2)
            v2 = var_x.add_(var_y).add_(c2)
            cs_map = v1.div_(v2)
            lum = mu_xy.mul_(2.0).add_(c1).div_(mu_xx.add_(mu_yy).add_(c1))
            ssim_sum[b] += lum.mul_(cs_map).mean()
            cs_sum[b] += cs_map.mean()
    # Every channel has the same valid size, so the mean of channel means is the map mean.
    return ssim_sum / channels, cs_sum / channels


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image SSIM of Wang et al. on RGB (Gaussian 11×11, σ 1.5, 'valid', L 255).

    Args:
        pred: Quantised float images ``(B, 3, H, W)``, H and W at least 11.
        target: Reference images of the same shape.

    Returns:
        ``(B,)`` float64, the mean over the three channels of each channel's mean SSIM map.

    Raises:
        ValueError: An image is smaller than the 11×11 window.
    """
    _check_pair(pred, target)
    if min(pred.shape[-2:]) < _SSIM_SIZE:
        raise ValueError(f"SSIM needs images of at least {_SSIM_SIZE}×{_SSIM_SIZE} px")
    taps = _gaussian_taps(_SSIM_SIZE, _SSIM_SIGMA)
    return _ssim_and_cs(_levels(pred), _levels(target), taps)[0]


def _halve(x: Tensor) -> Tensor:
    """2×2 mean downsampling as DPED's ``convolve(..., mode='reflect')[:, ::2, ::2]``.

    scipy's 2-tap filter averages pixel i with pixel i + 1, and its 'reflect' border repeats the
    last pixel, so an odd last row or column is averaged with itself: size n → ceil(n / 2).
    """
    pad_bottom, pad_right = x.shape[-2] % 2, x.shape[-1] % 2
    if pad_bottom or pad_right:
        x = F.pad(x, (0, pad_right, 0, pad_bottom), mode="replicate")
    return F.avg_pool2d(x, kernel_size=2, stride=2)


def ms_ssim(
    pred: Tensor, target: Tensor, weights: Sequence[float] = MS_SSIM_WEIGHTS
) -> Tensor:
    """Per-image multi-scale SSIM as DPED's ``MultiScaleSSIM`` computes it.

    At each scale the Gaussian window has size ``min(11, H, W)`` and σ ``1.5 * size / 11``
    (the window shrinks with the image, so small patches keep all five scales); the map is
    'valid'. The result is ``prod(cs[:-1] ** w[:-1]) * ssim[-1] ** w[-1]``.

    Args:
        pred: Quantised float images ``(B, 3, H, W)``, any size of at least 1×1 px.
        target: Reference images of the same shape.
        weights: Exponent per scale; the number of scales is their count.

    Returns:
        ``(B,)`` float64; 1 for identical images, 0 when a contrast-structure (or the last SSIM)
        term is negative. That clamp is our one departure from DPED's numpy code, where a negative
        base to a fractional power gives NaN (only for strongly anti-correlated outputs, e.g. a
        collapsed GAN); TensorFlow's ``tf.image.ssim_multiscale`` clamps the same way (ReLU). A
        metric must give every image a value, or tables cannot average it.
    """
    _check_pair(pred, target)
    x, y = _levels(pred), _levels(target)
    w = torch.tensor(list(weights), dtype=torch.float64, device=x.device)
    cs_terms, ssim_last = [], None
    for level in range(len(weights)):
        size = min(_SSIM_SIZE, x.shape[-2], x.shape[-1])
        taps = _gaussian_taps(size, _SSIM_SIGMA * size / _SSIM_SIZE)
        ssim_level, cs_level = _ssim_and_cs(x, y, taps)
        cs_terms.append(cs_level)
        ssim_last = ssim_level
        if level < len(weights) - 1:
            x, y = _halve(x), _halve(y)
    cs = torch.stack(cs_terms[:-1], dim=1).clamp_min(0)  # (B, levels - 1)
    return torch.prod(cs.pow(w[:-1]), dim=1) * ssim_last.clamp_min(0).pow(w[-1])


# --------------------------------------------------------------------------------------------
# Colour differences
# --------------------------------------------------------------------------------------------


def srgb_to_lab(rgb: Tensor) -> Tensor:
    """Convert sRGB in [0, 1] to CIELAB (D65, 2° observer), as ``skimage.color.rgb2lab``.

    Args:
        rgb: float tensor ``(..., 3, N)``: channels on dimension -2, pixels on the last one
            (float64 for reference accuracy).

    Returns:
        ``(L, a, b)`` stacked on the same channel dimension, in the dtype of ``rgb``.
    """
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).pow(2.4), rgb / 12.92)
    matrix = torch.tensor(_XYZ_FROM_RGB, dtype=rgb.dtype, device=rgb.device)
    white = torch.tensor(_D65_WHITE, dtype=rgb.dtype, device=rgb.device)
    xyz = (matrix @ linear) / white[:, None]
    # CIE's cube root with its linear toe (skimage's constants 0.008856 and 7.787).
    f = torch.where(xyz > 0.008856, xyz.clamp_min(0.0).pow(1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f.unbind(dim=-2)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-2)


def cie76(lab1: Tensor, lab2: Tensor) -> Tensor:
    """Per-pixel CIE76 ΔE*ab, the Euclidean distance of Lab triples on dimension -2."""
    return (lab1 - lab2).square().sum(dim=-2).sqrt()


def ciede2000(lab1: Tensor, lab2: Tensor) -> Tensor:
    """Per-pixel CIEDE2000 ΔE00 (Sharma, Wu & Dalal 2005), kL = kC = kH = 1.

    Args:
        lab1: Reference Lab triples, ``(..., 3, N)`` (channels on dimension -2).
        lab2: Compared Lab triples of the same shape.

    Returns:
        ``(..., N)`` differences. Where a chroma is 0 the hue is undefined; as in the paper the
        hue difference is then 0 and the mean hue is the sum of the two hues.
    """
    l1, a1, b1 = lab1.unbind(dim=-2)
    l2, a2, b2 = lab2.unbind(dim=-2)
    # Stretch a* by the chroma-dependent factor G, then work in the primed L*C*h coordinates.
    c_bar7 = ((torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2.0).pow(7)
    g = 0.5 * (1.0 - torch.sqrt(c_bar7 / (c_bar7 + 25.0**7)))
    a1p, a2p = a1 * (1.0 + g), a2 * (1.0 + g)
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    two_pi = 2.0 * math.pi
    h1p = torch.remainder(torch.atan2(b1, a1p), two_pi)
    h2p = torch.remainder(torch.atan2(b2, a2p), two_pi)
    chroma_product = c1p * c2p
    achromatic = chroma_product == 0.0  # hue undefined: no hue difference, mean is the sum

    d_l = l2 - l1
    d_c = c2p - c1p
    dh = h2p - h1p
    dh = torch.where(dh > math.pi, dh - two_pi, torch.where(dh < -math.pi, dh + two_pi, dh))
    dh = torch.where(achromatic, torch.zeros_like(dh), dh)
    d_h = 2.0 * torch.sqrt(chroma_product) * torch.sin(dh / 2.0)

    l_bar = (l1 + l2) / 2.0
    c_bar_p = (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    far = (h1p - h2p).abs() > math.pi  # the mean hue goes the short way round the circle
    h_bar = torch.where(far, torch.where(h_sum < two_pi, h_sum + two_pi, h_sum - two_pi), h_sum)
    h_bar = torch.where(achromatic, h_sum, h_bar / 2.0)

    t = (
        1.0
        - 0.17 * torch.cos(h_bar - math.radians(30.0))
        + 0.24 * torch.cos(2.0 * h_bar)
        + 0.32 * torch.cos(3.0 * h_bar + math.radians(6.0))
        - 0.20 * torch.cos(4.0 * h_bar - math.radians(63.0))
    )
    d_theta = math.radians(30.0) * torch.exp(-(((torch.rad2deg(h_bar) - 275.0) / 25.0) ** 2))
    c_bar_p7 = c_bar_p.pow(7)
    r_c = 2.0 * torch.sqrt(c_bar_p7 / (c_bar_p7 + 25.0**7))
    l50 = (l_bar - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / torch.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * c_bar_p
    s_h = 1.0 + 0.015 * c_bar_p * t
    r_t = -torch.sin(2.0 * d_theta) * r_c
    term_l, term_c, term_h = d_l / s_l, d_c / s_c, d_h / s_h
    de2 = term_l**2 + term_c**2 + term_h**2 + r_t * term_c * term_h
    return torch.sqrt(de2.clamp_min(0.0))


def _mean_colour_difference(
    pred: Tensor, target: Tensor, difference: Callable[[Tensor, Tensor], Tensor]
) -> Tensor:
    _check_pair(pred, target)
    batch = pred.shape[0]
    # (B, 3, N) in [0, 1] from exact levels: the same floats skimage gets from uint8 / 255.
    p = (_levels(pred) / _PEAK).flatten(2)
    t = (_levels(target) / _PEAK).flatten(2)
    pixels = p.shape[-1]
    total = torch.zeros(batch, dtype=torch.float64, device=p.device)
    for start in range(0, pixels, _LAB_CHUNK):
        stop = min(start + _LAB_CHUNK, pixels)
        lab_p = srgb_to_lab(p[..., start:stop])
        lab_t = srgb_to_lab(t[..., start:stop])
        total += difference(lab_t, lab_p).sum(dim=-1)
    return total / pixels


def delta_e76(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image mean CIE76 ΔE*ab (Euclidean distance in CIELAB, D65).

    Args:
        pred: Quantised float images ``(B, 3, H, W)``.
        target: Reference images of the same shape.

    Returns:
        ``(B,)`` float64 mean of the per-pixel ΔE*ab.
    """
    return _mean_colour_difference(pred, target, cie76)


def delta_e2000(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image mean CIEDE2000 ΔE00 (kL = kC = kH = 1) in CIELAB (D65).

    Args:
        pred: Quantised float images ``(B, 3, H, W)``.
        target: Reference images of the same shape (the reference colour of the formula).

    Returns:
        ``(B,)`` float64 mean of the per-pixel ΔE00.
    """
    return _mean_colour_difference(pred, target, ciede2000)


# --------------------------------------------------------------------------------------------
# LPIPS
# --------------------------------------------------------------------------------------------


def load_alexnet_trunk(trunk: nn.Module, state: dict[str, Tensor]) -> list[str]:
    """Copy torchvision AlexNet ``features`` weights into the ``lpips`` AlexNet trunk.

    ``lpips.pretrained_networks.alexnet`` splits torchvision's ``features`` into ``slice1`` …
    ``slice5`` and keeps each module's index as its name, so ``features.3.weight`` is
    ``slice2.3.weight``: the mapping is by index.

    Args:
        trunk: The ``net`` attribute of an ``lpips.LPIPS(net="alex")`` model.
        state: A torchvision AlexNet state dict (``features.*`` and ``classifier.*`` keys).

    Returns:
        The ``features.*`` keys that were loaded.

    Raises:
        ValueError: A trunk convolution found no weights in ``state``, a shape differs, or a
            ``features.*`` weight of ``state`` had no place in the trunk.
    """
    loaded: list[str] = []
    with torch.no_grad():
        for slice_name, block in trunk.named_children():
            for index, module in block.named_children():
                if not isinstance(module, nn.Conv2d):
                    continue
                for param_name in ("weight", "bias"):
                    key = f"features.{index}.{param_name}"
                    if key not in state:
                        raise ValueError(f"AlexNet weights lack {key} (trunk {slice_name}.{index})")
                    param = getattr(module, param_name)
                    if param.shape != state[key].shape:
                        raise ValueError(
                            f"{key}: shape {tuple(state[key].shape)} in the file, "
                            f"{tuple(param.shape)} in the trunk"
                        )
                    param.copy_(state[key])
                    loaded.append(key)
    unused = sorted(k for k in state if k.startswith("features.") and k not in loaded)
    if unused or not loaded:
        raise ValueError(f"AlexNet trunk left weights unloaded: {unused or 'all of them'}")
    return loaded


class LPIPSScorer:
    """LPIPS (alex, v0.1) on [0, 1] images, with a hash-checked torchvision AlexNet trunk.

    The linear calibration layers come bundled with the ``lpips`` package; the trunk is built
    random (``pnet_rand=True``, so ``lpips`` never tries to download) and then overwritten with
    the verified torchvision file, every convolution of it, before any score is computed.

    Args:
        weights: Explicit path of ``alexnet-owt-7be5be79.pth``; default: torchvision's cache
            ``$TORCH_HOME/hub/checkpoints/``.
        device: Where the network runs.

    Raises:
        WeightsUnavailable: The AlexNet file is missing or fails its hash check.
    """

    def __init__(
        self, weights: str | Path | None = None, device: str | torch.device = "cpu"
    ) -> None:
        # First, so that a missing file fails fast, before lpips (≈ 6 s to import) is loaded.
        state = load_torchvision_state_dict("alexnet", weights)
        import lpips  # noqa: PLC0415  (heavy import, only when LPIPS is wanted)

        with warnings.catch_warnings():
            # lpips still passes torchvision's deprecated `pretrained=` argument.
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(
                net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False
            )
        self.loaded_keys = load_alexnet_trunk(model.net, state)
        self.model = model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        """Return per-image LPIPS, ``(B,)`` float64, for quantised images in [0, 1]."""
        _check_pair(pred, target)
        # LPIPS v0.1 expects [-1, 1]: map explicitly rather than rely on a `normalize` flag.
        p = pred.to(self.device, torch.float32) * 2.0 - 1.0
        t = target.to(self.device, torch.float32) * 2.0 - 1.0
        with torch.inference_mode():
            return self.model(p, t).flatten().to(torch.float64)


# --------------------------------------------------------------------------------------------
# One image at a time, for the Evaluator and `qmap score`
# --------------------------------------------------------------------------------------------

_FUNCTIONAL: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "psnr": psnr,
    "ssim": ssim,
    "ms_ssim": ms_ssim,
    "delta_e76": delta_e76,
    "delta_e2000": delta_e2000,
}


class ImageScorer:
    """Scores images with a chosen set of metrics; reports which ones cannot produce numbers.

    Args:
        metrics: Names from :data:`METRIC_NAMES`, in the order results are reported.
        lpips_weights: Explicit AlexNet weight file for LPIPS; default: torchvision's cache.
        device: Where the metrics run.

    Raises:
        ValueError: An unknown or repeated metric name.
    """

    def __init__(
        self,
        metrics: Sequence[str] = METRIC_NAMES,
        lpips_weights: str | Path | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        unknown = [m for m in metrics if m not in METRIC_NAMES]
        if unknown or len(set(metrics)) != len(metrics):
            raise ValueError(
                f"metrics must be distinct names from {METRIC_NAMES}, got {list(metrics)}"
            )
        self.metrics: tuple[str, ...] = tuple(metrics)
        self.device = torch.device(device)
        self._unavailable: dict[str, str] = {}
        self._lpips: LPIPSScorer | None = None
        if "lpips" in self.metrics:
            try:
                self._lpips = LPIPSScorer(lpips_weights, self.device)
            except WeightsUnavailable as err:
                self._unavailable["lpips"] = f"lpips unavailable: {err}"

    @property
    def available(self) -> list[str]:
        """Metrics that produce numbers, in the requested order."""
        return [m for m in self.metrics if m not in self._unavailable]

    @property
    def unavailable(self) -> dict[str, str]:
        """Metric name → one message saying why it gives no numbers (e.g. a missing file)."""
        return dict(self._unavailable)

    def score_batch(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Score a batch; unavailable metrics give NaN.

        Args:
            pred: Quantised float images ``(B, 3, H, W)``.
            target: Reference images of the same shape.

        Returns:
            Metric name → ``(B,)`` float64 CPU tensor, for every requested metric.
        """
        pred, target = pred.to(self.device), target.to(self.device)
        _check_pair(pred, target)
        nan = torch.full((pred.shape[0],), math.nan, dtype=torch.float64)
        out: dict[str, Tensor] = {}
        for name in self.metrics:
            if name in self._unavailable:
                out[name] = nan.clone()
            elif name == "lpips":
                assert self._lpips is not None
                out[name] = self._lpips(pred, target).cpu()
            else:
                out[name] = _FUNCTIONAL[name](pred, target).cpu()
        return out

    def score(self, pred: Tensor, target: Tensor) -> dict[str, float]:
        """Score one image, ``(3, H, W)`` or ``(1, 3, H, W)``; unavailable metrics give NaN."""
        if pred.ndim == 3:
            pred, target = pred.unsqueeze(0), target.unsqueeze(0)
        if pred.ndim != 4 or pred.shape[0] != 1:
            raise ValueError(f"score() takes one image, got shape {tuple(pred.shape)}")
        return {name: float(value[0]) for name, value in self.score_batch(pred, target).items()}


# --------------------------------------------------------------------------------------------
# Temporal metrics: one consecutive pair of video frames (t-1, t) at a time
# --------------------------------------------------------------------------------------------

TEMPORAL_METRIC_NAMES: tuple[str, ...] = ("warp_error", "flicker")

# Farneback parameters of optical_flow: OpenCV's documented example values (a classical
# 3-level pyramid, 15 px averaging window), robust on the small frames of the benchmark.
_FARNEBACK = {
    "pyr_scale": 0.5,
    "levels": 3,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}
# Forward-backward consistency of Sundaram et al. 2010, with Lai et al.'s constants.
_FB_RELATIVE, _FB_ABSOLUTE = 0.01, 0.5
# Slack in px for "inside the frame": a point exactly on the border must not fall out of view
# through floating-point rounding of the affine maps (an edge column at x' = -1e-13).
_BOUNDS_SLACK = 1e-6


def _check_frame(name: str, x: Tensor) -> None:
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"{name}: expected an RGB frame (3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a float frame in [0, 1], got {x.dtype}")


def _check_frames(prev_name: str, prev: Tensor, cur_name: str, cur: Tensor) -> None:
    _check_frame(prev_name, prev)
    _check_frame(cur_name, cur)
    if prev.shape != cur.shape:
        raise ValueError(
            f"{prev_name} {tuple(prev.shape)} and {cur_name} {tuple(cur.shape)} differ in shape"
        )


def _check_flow(flow: Tensor, height: int, width: int) -> None:
    if flow.shape != (2, height, width):
        raise ValueError(
            f"flow: expected (2, {height}, {width}) to match the frames, got {tuple(flow.shape)}"
        )


def _pixel_grid(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates ``(x, y)``, each ``(H, W)`` float64: x = column, y = row."""
    ys = torch.arange(height, dtype=torch.float64, device=device)
    xs = torch.arange(width, dtype=torch.float64, device=device)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return x, y


def _in_frame(x: Tensor, y: Tensor, height: int, width: int) -> Tensor:
    s = _BOUNDS_SLACK
    return (x >= -s) & (x <= width - 1 + s) & (y >= -s) & (y <= height - 1 + s)


def _homogeneous(name: str, motion: Tensor) -> Tensor:
    """A ``(2, 3)`` affine matrix as a ``(3, 3)`` float64 one; rejects singular maps."""
    m = torch.as_tensor(motion).detach().to("cpu", torch.float64)
    if m.shape != (2, 3):
        raise ValueError(f"{name}: expected a (2, 3) affine matrix, got {tuple(m.shape)}")
    if not bool(torch.isfinite(m).all()):
        raise ValueError(f"{name}: the affine matrix has non-finite entries")
    if float(torch.linalg.det(m[:, :2]).abs()) < 1e-12:
        raise ValueError(f"{name}: the affine matrix is singular (no inverse map)")
    return torch.cat((m, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)))


def motion_flow(
    motion_prev: Tensor, motion_cur: Tensor, height: int, width: int
) -> tuple[Tensor, Tensor]:
    """Backward flow (frame t -> frame t-1) from the known motion of a synthetic video.

    Each frame's motion is an affine map ``A`` from its pixel coordinates to a common scene
    plane, ``[X, Y] = A @ [x, y, 1]`` (x to the right, y down, pixel centres at integers). The
    scene point seen at ``(x, y)`` in frame t sits at ``A_prev⁻¹ A_cur [x, y, 1]`` in frame t-1.

    Args:
        motion_prev: ``(2, 3)`` affine matrix of frame t-1 (float32 or float64).
        motion_cur: ``(2, 3)`` affine matrix of frame t.
        height: Frame height in px.
        width: Frame width in px.

    Returns:
        ``(flow, valid)``: ``flow`` ``(2, H, W)`` float32 holds ``(dx, dy)`` such that pixel
        ``(x, y)`` of frame t shows what frame t-1 shows at ``(x + dx, y + dy)``; ``valid``
        ``(H, W)`` bool is False where that point lies outside frame t-1
        (``0 <= x' <= W-1``, ``0 <= y' <= H-1``): content entering the view has no previous value.

    Raises:
        ValueError: A matrix is not ``(2, 3)``, is singular or non-finite, or a size is below 1.
    """
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be at least 1×1 px, got {height}×{width}")
    a_prev = _homogeneous("motion_prev", motion_prev)
    a_cur = _homogeneous("motion_cur", motion_cur)
    # Composed in float64 on the CPU: the flow of a pure pan must come out as exact integers.
    cur_to_prev = torch.linalg.solve(a_prev, a_cur)[:2]
    x, y = _pixel_grid(height, width, torch.device("cpu"))
    x_prev = cur_to_prev[0, 0] * x + cur_to_prev[0, 1] * y + cur_to_prev[0, 2]
    y_prev = cur_to_prev[1, 0] * x + cur_to_prev[1, 1] * y + cur_to_prev[1, 2]
    flow = torch.stack((x_prev - x, y_prev - y)).to(torch.float32)
    return flow, _in_frame(x_prev, y_prev, height, width)


def _to_gray_u8(frame: Tensor) -> np.ndarray:
    # 8-bit levels -> uint8 HWC RGB -> OpenCV's BT.601 gray: the input Farneback is defined on.
    import cv2  # noqa: PLC0415  (OpenCV only for the optical-flow fallback)

    rgb = _levels(frame).to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _farneback(first: np.ndarray, second: np.ndarray) -> Tensor:
    """Dense flow ``(2, H, W)`` float64 with ``first(p) ≈ second(p + flow(p))``."""
    import cv2  # noqa: PLC0415

    flow = cv2.calcOpticalFlowFarneback(first, second, None, **_FARNEBACK)
    return torch.from_numpy(flow).permute(2, 0, 1).to(torch.float64)


def optical_flow(reference_prev: Tensor, reference_cur: Tensor) -> tuple[Tensor, Tensor]:
    """Backward flow and non-occlusion mask estimated from two reference frames.

    The fallback for videos without known motion (:func:`motion_flow` is exact and preferred).
    The flow comes from the reference video (target or input), never from the method's output,
    so every method is scored against the same motion. OpenCV's dense Farneback flow on 8-bit
    gray frames (BT.601), with OpenCV's example parameters: pyr_scale 0.5, levels 3, winsize 15,
    iterations 3, poly_n 5, poly_sigma 1.2.

    Occlusions follow the forward-backward consistency check of Sundaram et al. 2010 with the
    constants Lai et al. 2018 use: with ``f_b`` the backward flow (t -> t-1) at ``x`` and ``f_f``
    the forward flow (t-1 -> t) sampled bilinearly at ``x + f_b``, a pixel is valid when
    ``|f_b + f_f|² < 0.01 (|f_b|² + |f_f|²) + 0.5`` and ``x + f_b`` lies inside the frame.
    Sundaram's second test (motion boundaries, large flow gradients) is not applied. Residues
    of Farneback at the frame edges (a few hundredths of a px) can drop single edge pixels whose
    flow points just outside the frame.

    Farneback needs texture with real contrast: on smooth, low-contrast frames it returns flow
    that is too short (half the true motion in our trials) while both directions agree, so the
    consistency check keeps those pixels. Scores from this fallback are less exact than from
    known motion.

    Args:
        reference_prev: Frame t-1, float ``(3, H, W)`` in [0, 1].
        reference_cur: Frame t, same shape.

    Returns:
        ``(flow, valid)`` as :func:`motion_flow`: ``(2, H, W)`` float32 ``(dx, dy)`` and
        ``(H, W)`` bool.

    Raises:
        ValueError: The frames are not RGB ``(3, H, W)`` of one shape.
    """
    _check_frames("reference_prev", reference_prev, "reference_cur", reference_cur)
    height, width = reference_cur.shape[-2:]
    gray_prev, gray_cur = _to_gray_u8(reference_prev), _to_gray_u8(reference_cur)
    backward = _farneback(gray_cur, gray_prev)  # cur(p) ≈ prev(p + f_b(p))
    forward = _farneback(gray_prev, gray_cur)  # prev(q) ≈ cur(q + f_f(q))
    forward_at_target = _warp(forward, backward)
    round_trip = (backward + forward_at_target).square().sum(dim=0)
    magnitudes = backward.square().sum(dim=0) + forward_at_target.square().sum(dim=0)
    consistent = round_trip < _FB_RELATIVE * magnitudes + _FB_ABSOLUTE
    x, y = _pixel_grid(height, width, backward.device)
    inside = _in_frame(x + backward[0], y + backward[1], height, width)
    return backward.to(torch.float32), consistent & inside


def _warp(previous: Tensor, flow: Tensor) -> Tensor:
    """Bilinear sample of ``(C, H, W)`` at ``(x + dx, y + dy)``, in float64, border padding."""
    height, width = previous.shape[-2:]
    x, y = _pixel_grid(height, width, previous.device)
    flow = flow.to(previous.device, torch.float64)
    # align_corners=True puts -1 and +1 on the centres of the first and last pixel, so integer
    # coordinates land exactly on pixels. A 1-px axis has only one position: map it to 0.
    gx = 2.0 * (x + flow[0]) / (width - 1) - 1.0 if width > 1 else torch.zeros_like(x)
    gy = 2.0 * (y + flow[1]) / (height - 1) - 1.0 if height > 1 else torch.zeros_like(y)
    grid = torch.stack((gx, gy), dim=-1)[None]
    sampled = F.grid_sample(
        previous.to(torch.float64)[None],
        grid,
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    return sampled[0]


def warp_previous(previous: Tensor, flow: Tensor) -> Tensor:
    """Warp frame t-1 onto frame t with a backward flow: bilinear, border padding.

    Args:
        previous: Frame t-1, float ``(C, H, W)``.
        flow: ``(2, H, W)`` backward flow ``(dx, dy)`` as :func:`motion_flow` returns it.

    Returns:
        ``(C, H, W)`` in the dtype of ``previous``: ``previous`` sampled at ``(x + dx, y + dy)``.
        Points outside the frame take the nearest border value; :func:`warp_error` masks them.

    Raises:
        ValueError: ``previous`` is not ``(C, H, W)`` or ``flow`` does not match its size.
    """
    if previous.ndim != 3:
        raise ValueError(f"previous: expected a frame (C, H, W), got {tuple(previous.shape)}")
    if not previous.is_floating_point():
        raise TypeError(f"previous: expected a float frame, got {previous.dtype}")
    _check_flow(flow, *previous.shape[-2:])
    return _warp(previous, flow).to(previous.dtype)


def warp_error(pred_prev: Tensor, pred_cur: Tensor, flow: Tensor, valid: Tensor) -> float:
    """Warping error of Lai et al. 2018 for one pair of output frames, in [0, 1] units.

    The mean over valid pixels and the three channels of ``(pred_cur - warp(pred_prev))²``,
    on 8-bit levels / 255 in float64. One level of difference everywhere gives ``(1/255)²``.

    Args:
        pred_prev: Output frame t-1, float ``(3, H, W)`` in [0, 1].
        pred_cur: Output frame t, same shape.
        flow: ``(2, H, W)`` backward flow from :func:`motion_flow` or :func:`optical_flow`.
        valid: ``(H, W)`` bool, the non-occluded pixels.

    Returns:
        The error, a float ≥ 0; NaN when no pixel is valid (e.g. a scene cut): the caller skips
        such pairs rather than count them as perfect.

    Raises:
        ValueError: The frames differ in shape or are not RGB, or ``flow``/``valid`` do not
            match their size.
    """
    _check_frames("pred_prev", pred_prev, "pred_cur", pred_cur)
    height, width = pred_cur.shape[-2:]
    _check_flow(flow, height, width)
    if valid.shape != (height, width) or valid.dtype != torch.bool:
        raise ValueError(
            f"valid: expected a bool ({height}, {width}) mask, got {valid.dtype} "
            f"{tuple(valid.shape)}"
        )
    mask = valid.to(pred_cur.device)
    count = int(mask.sum())
    if count == 0:
        return math.nan
    warped = _warp(_levels(pred_prev) / _PEAK, flow)
    squared = (_levels(pred_cur) / _PEAK - warped).square().mean(dim=0)
    return float(squared[mask].sum() / count)


def _channel_means(frame: Tensor) -> Tensor:
    return _levels(frame).mean(dim=(1, 2))  # (3,) float64, in 8-bit levels


def flicker(pred_prev: Tensor, pred_cur: Tensor, target_prev: Tensor, target_cur: Tensor) -> float:
    """How far the output's global frame-to-frame change departs from the target's, in levels.

    Per channel, ``Δ = mean(frame_t) - mean(frame_{t-1})`` for the output and for the target;
    the score is the mean over channels of ``|Δ_pred - Δ_target|`` in 8-bit levels. It is 0 when
    the output's brightness and colour change exactly as the target's (a fade in the target is
    no flicker), and grows with frame-to-frame brightness/colour pumping. Global means need no
    pixel alignment, so the target frames may be weakly aligned and of another size.

    Args:
        pred_prev: Output frame t-1, float ``(3, H, W)`` in [0, 1].
        pred_cur: Output frame t, same shape.
        target_prev: Target frame t-1, float ``(3, H', W')`` (any size).
        target_cur: Target frame t, same shape as ``target_prev``.

    Returns:
        The score, a float ≥ 0 in 8-bit levels; lower is better.

    Raises:
        ValueError: A frame is not RGB, or the two frames of a video differ in shape.
    """
    _check_frames("pred_prev", pred_prev, "pred_cur", pred_cur)
    _check_frames("target_prev", target_prev, "target_cur", target_cur)
    delta_pred = _channel_means(pred_cur) - _channel_means(pred_prev)
    delta_target = _channel_means(target_cur) - _channel_means(target_prev)
    return float((delta_pred - delta_target.to(delta_pred.device)).abs().mean())


def temporal_scores(
    pred_prev: Tensor,
    pred_cur: Tensor,
    target_prev: Tensor,
    target_cur: Tensor,
    flow: Tensor,
    valid: Tensor,
) -> dict[str, float]:
    """Both temporal metrics for one pair of frames, keyed as :data:`TEMPORAL_METRIC_NAMES`.

    ``flow`` and ``valid`` belong to the output's frame size (from :func:`motion_flow`, or from
    :func:`optical_flow` on reference frames of that size); ``warp_error`` may be NaN (no valid
    pixel), which the caller skips.
    """
    return {
        "warp_error": warp_error(pred_prev, pred_cur, flow, valid),
        "flicker": flicker(pred_prev, pred_cur, target_prev, target_cur),
    }
