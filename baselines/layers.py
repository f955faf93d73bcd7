"""Building blocks used by two or more methods.

Sections:
    * colour and resizing helpers (``rgb_to_gray``, ``nearest_resize``);
    * the bilateral grid: ``bilateral_slice_apply`` and the nets around it that HDRNet and UPE
      share (``ConvBlock``, ``LinearBlock``, ``BilateralCoeffNet``, the two guide nets and
      ``BilateralGridNet``, which chains them);
    * DPED-family helpers (DPED, WESPE): ``dped_init_``, ``tf_same_pad`` and the Gaussian blur
      (``gaussian_kernel_1d/2d``, ``GaussianBlur``) of the colour losses and colour critics.

The bilateral-grid parts follow the official HDRNet code (google/hdrnet at e9a5bf59a2:
``hdrnet/models.py``, ``hdrnet/layers.py``, ``hdrnet/ops/bilateral_slice_apply.cu.cc``,
``hdrnet/ops/numerics.h``). The UPE release (dvlab-research/DeepUPE ``main/models.py``) is a fork
of that code that differs only in the depth of the global and local paths, so both methods build
one ``BilateralCoeffNet`` with different depths instead of keeping two copies. Deviations from
the TF code that apply to both methods:

    * Layout: tensors are NCHW, and the FC input is flattened in C, H, W order (TF: H, W, C). This
      matters only for porting TF weights, never for what the net can learn.
    * BatchNorm keeps TF's ``center=True, scale=False`` (a learnt shift, no learnt scale) and
      ``epsilon=1e-3``, but uses PyTorch's running-average momentum 0.1 instead of TF's decay 0.999
      (momentum 0.001). With 0.001 the running statistics need thousands of steps to leave their
      initial values, and the PointwiseNN guide, whose BatchNorm is always on, is evaluated with
      them; the suite's quick runs are much shorter than that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: ``tf.image.rgb_to_grayscale`` (and DPED, and the DeepUPE smoothness loss) use these weights.
TF_GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)

#: Pixels per chunk when a full-resolution per-pixel stage runs in pieces (about 48 MiB of
#: float32 coefficients per chunk at batch 1).
DEFAULT_CHUNK_PIXELS = 1 << 20


# --------------------------------------------------------------------------------------------
# Colour and resizing helpers
# --------------------------------------------------------------------------------------------


def rgb_to_gray(image: Tensor, weights: Sequence[float] = TF_GRAY_WEIGHTS) -> Tensor:
    """Weighted sum of the RGB channels.

    Args:
        image: ``(B, 3, H, W)``.
        weights: one weight per channel; the default is ``tf.image.rgb_to_grayscale``'s.

    Returns:
        ``(B, 1, H, W)``.
    """
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"rgb_to_gray expects (B, 3, H, W), got {tuple(image.shape)}")
    w = image.new_tensor(list(weights))
    return torch.einsum("bchw,c->bhw", image, w).unsqueeze(1)


def nearest_resize(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize, sampling at pixel centres.

    HDRNet and DeepUPE feed the coefficient net a nearest-neighbour copy of the input. Their
    inference scripts (``run.py``) use ``skimage.transform.resize(order=0)``, which samples pixel
    centres; this is ``mode="nearest-exact"``. Their TF training pipeline used TF1's legacy
    nearest resize, which takes ``floor(i * scale)`` (``mode="nearest"``), half a source pixel
    away. For the 256×256 training crops of the FiveK expert scripts both are the identity.

    Args:
        x: ``(B, C, H, W)``.
        size: output ``(h, w)``, or one int for a square output.

    Returns:
        ``(B, C, h, w)``; ``x`` itself when it already has that size.
    """
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == hw:
        return x
    return F.interpolate(x, size=hw, mode="nearest-exact")


# --------------------------------------------------------------------------------------------
# Bilateral grid: slice and apply
# --------------------------------------------------------------------------------------------


def bilateral_slice_apply(
    grid: Tensor, guide: Tensor, image: Tensor, *, chunk_pixels: int = DEFAULT_CHUNK_PIXELS
) -> Tensor:
    """Slice per-pixel affine colour transforms out of a bilateral grid and apply them.

    Reproduces the forward pass of HDRNet's ``BilateralSliceApply`` CUDA kernel (with
    ``has_offset=True``). Pixel ``(x, y)`` with guide value ``g`` reads the grid at the
    continuous position ``gx = (x + 0.5) * Wg / W``, ``gy = (y + 0.5) * Hg / H``,
    ``gz = g * D`` (no +0.5 on ``gz``, as in the kernel); grid samples sit at cell centres
    ``i + 0.5``; the 2×2×2 neighbours are blended with tent weights ``max(1 - |g - (i + 0.5)|, 0)``
    and out-of-range indices are clamped (repeat edge). With ``A`` the 12 interpolated
    coefficients, ``out_c = sum_j A[c*4 + j] * in_j + A[c*4 + 3]``.

    The kernel computes the z weight with a smoothed ``|d| = sqrt(d² + 1e-8)``, so that the
    gradient with respect to the guide is defined at grid samples. Here the z weight is the
    exact tent (``grid_sample``), so (a) the forward values differ from the kernel's by
    ``sqrt(d² + 1e-8) - |d|`` times a coefficient for a guide at distance ``d`` from a bin centre
    (1e-4 at the centre, about ``5e-9 / |d|`` away from it), and (b) the gradient with respect to
    the guide is the one-sided derivative of the piecewise-linear interpolant at bin centres
    instead of the kernel's smoothed sign.

    The rows are processed in chunks of about ``chunk_pixels`` pixels, so the sliced
    coefficients never exist for the whole image at once unless autograd has to keep them (a
    12 MP image at batch 1 would otherwise need 576 MiB for them alone).

    Args:
        grid: ``(B, 12, D, Hg, Wg)`` affine coefficients; channel ``out * 4 + in``, where
            ``in = 3`` is the offset.
        guide: ``(B, 1, H, W)`` in [0, 1] (values outside behave like 0 or 1).
        image: ``(B, 3, H, W)``.
        chunk_pixels: approximate number of pixels sliced per chunk (whole rows).

    Returns:
        ``(B, 3, H, W)``.
    """
    if grid.dim() != 5 or grid.shape[1] != 12:
        raise ValueError(f"grid must be (B, 12, D, Hg, Wg), got {tuple(grid.shape)}")
    b, _, h, w = image.shape
    if image.shape[1] != 3 or guide.shape != (b, 1, h, w) or grid.shape[0] != b:
        raise ValueError(
            "expected image (B, 3, H, W), guide (B, 1, H, W) and grid (B, 12, ...) with the same "
            f"B, H, W; got image {tuple(image.shape)}, guide {tuple(guide.shape)}, "
            f"grid {tuple(grid.shape)}"
        )
    # Normalised coordinates for grid_sample(align_corners=False), which maps u in [-1, 1] to
    # the sample index ((u + 1) * N - 1) / 2, sample i lying at index i. The kernel puts sample i
    # at continuous position i + 0.5, i.e. at index g - 0.5 for position g. Solving
    # ((u + 1) * N - 1) / 2 = g - 0.5 gives u = 2 g / N - 1: with g = (x + 0.5) * W_g / W this is
    # u_x = (2x + 1) / W - 1, and with g = guide * D it is u_z = 2 * guide - 1. Both agree with the
    # kernel exactly. padding_mode="border" clips the index to [0, N - 1], which gives the same
    # value as the kernel's index clamping because two adjacent tent weights always sum to one.
    xs = (torch.arange(w, device=image.device, dtype=image.dtype) * 2 + 1) / w - 1
    ys = (torch.arange(h, device=image.device, dtype=image.dtype) * 2 + 1) / h - 1
    rows = max(1, chunk_pixels // max(w, 1))
    if rows >= h:
        return _slice_apply_rows(grid, guide, image, xs, ys)
    # Written into one preallocated tensor rather than concatenated, so the output exists once.
    out = image.new_empty(b, 3, h, w)
    for r0 in range(0, h, rows):
        r1 = min(r0 + rows, h)
        out[:, :, r0:r1] = _slice_apply_rows(
            grid, guide[:, :, r0:r1], image[:, :, r0:r1], xs, ys[r0:r1]
        )
    return out


def _slice_apply_rows(grid: Tensor, guide: Tensor, image: Tensor, xs: Tensor, ys: Tensor) -> Tensor:
    """``bilateral_slice_apply`` on a band of rows whose normalised coordinates are given."""
    b, _, h, w = image.shape
    coords = torch.stack(
        (xs.expand(b, h, w), ys[:, None].expand(b, h, w), guide[:, 0] * 2 - 1), dim=-1
    )
    # A 5-D input makes grid_sample trilinear; the sampling grid is one depth slice of H×W points.
    # Channels-last puts a corner's 12 coefficients next to each other: ~30 % faster on CPU.
    coeffs = F.grid_sample(
        grid.contiguous(memory_format=torch.channels_last_3d),
        coords.unsqueeze(1),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    a = coeffs.view(b, 3, 4, h, w)
    # Three multiply-adds keep the temporaries at (B, 3, h, w); an einsum would route this
    # through batched 3×3 matmuls, which are slow for one matrix per pixel.
    return (
        a[:, :, 3] + a[:, :, 0] * image[:, 0:1] + a[:, :, 1] * image[:, 1:2] + a[:, :, 2] * image[:, 2:3]
    )


def map_row_chunks(
    fn: Callable[[Tensor], Tensor], image: Tensor, chunk_pixels: int = DEFAULT_CHUNK_PIXELS
) -> Tensor:
    """Apply a per-pixel function to bands of rows and stitch the results.

    Exact only for functions in which every output pixel depends on its own input pixel alone
    (1×1 convolutions, BatchNorm in eval mode, curves); it bounds the memory of wide hidden layers
    at full resolution.

    Args:
        fn: per-pixel map ``(B, C, h, W) -> (B, C', h, W)``.
        image: ``(B, C, H, W)``.
        chunk_pixels: approximate pixels per band (whole rows).

    Returns:
        ``(B, C', H, W)``.
    """
    h, w = image.shape[-2:]
    rows = max(1, chunk_pixels // max(w, 1))
    if rows >= h:
        return fn(image)
    return torch.cat([fn(image[:, :, r0 : r0 + rows]) for r0 in range(0, h, rows)], dim=2)


# --------------------------------------------------------------------------------------------
# Conv / FC blocks with the TF defaults of the hdrnet code
# --------------------------------------------------------------------------------------------

Activation = Literal["relu", "sigmoid", "none"]


def tf_variance_scaling_(weight: Tensor) -> Tensor:
    """He initialisation as ``tf.contrib.layers.variance_scaling_initializer()`` draws it.

    The hdrnet code initialises every conv and FC weight with that initializer's defaults
    (factor 2, fan-in, normal): a normal truncated at two standard deviations whose standard
    deviation is ``sqrt(1.3 * 2 / fan_in)``; the 1.3 makes up for the truncation, so the
    resulting variance is close to He's ``2 / fan_in``. (It is not Glorot/Xavier, the TF default
    for layers created without an initializer.) Biases start at zero.

    Args:
        weight: conv ``(out, in, k, k)`` or linear ``(out, in)`` weight, filled in place.

    Returns:
        ``weight``.
    """
    fan_in = weight[0].numel()
    std = math.sqrt(1.3 * 2.0 / fan_in)
    with torch.no_grad():
        return nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2 * std, b=2 * std)


class ShiftBatchNorm(nn.Module):
    """BatchNorm with a learnt shift and no learnt scale (TF ``center=True, scale=False``).

    This is ``tf.contrib.layers.batch_norm`` as the hdrnet ``conv``/``fc`` helpers call it, and the
    reason the published parameter counts have one parameter per BatchNorm channel.

    Args:
        channels: number of channels (dim 1 of the input).
        eps: variance epsilon (TF default 1e-3).
        momentum: running-statistics momentum (see the module docstring for why not 0.001).
    """

    def __init__(self, channels: int, eps: float = 1e-3, momentum: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(channels, eps=eps, momentum=momentum, affine=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``(B, C)`` or ``(B, C, ...)`` over all but the channel axis, then shift."""
        y = self.norm(x.flatten(2)).view_as(x) if x.dim() > 2 else self.norm(x)
        return y + self.bias.view(1, -1, *([1] * (x.dim() - 2)))

    def fold(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
        """Weight and bias of one layer equal to ``layer`` followed by this norm in eval mode.

        Args:
            weight: ``(C, ...)`` weight of the preceding conv or linear layer.
            bias: its ``(C,)`` bias, or None.

        Returns:
            The folded ``(weight, bias)``.
        """
        scale = torch.rsqrt(self.norm.running_var + self.norm.eps)
        shift = -self.norm.running_mean if bias is None else bias - self.norm.running_mean
        return weight * scale.view(-1, *([1] * (weight.dim() - 1))), shift * scale + self.bias


def _activation(name: Activation) -> nn.Module:
    return {"relu": nn.ReLU(), "sigmoid": nn.Sigmoid(), "none": nn.Identity()}[name]


class ConvBlock(nn.Module):
    """Conv → (BatchNorm) → activation with TF 'SAME' padding, as hdrnet's ``conv`` helper.

    'SAME' pads ``k - s`` pixels in total for even sizes and puts the extra one at the bottom and
    right, so a stride-2 3×3 conv on an even input samples centres 1, 3, 5, … as in the TF code
    (PyTorch's symmetric ``padding=1`` would sample 0, 2, 4, …).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        stride: stride.
        batch_norm: add a ``ShiftBatchNorm`` after the conv; the conv then has no bias, as in TF
            (the BatchNorm shift plays its role).
        activation: nonlinearity after the (normalised) conv.
        bias: conv bias when there is no BatchNorm (hdrnet's last local conv has none).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        batch_norm: bool = False,
        activation: Activation = "relu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, bias=bias and not batch_norm
        )
        tf_variance_scaling_(self.conv.weight)
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)
        self.norm = ShiftBatchNorm(out_channels) if batch_norm else nn.Identity()
        self.act = _activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in, H, W) -> (B, out, ceil(H / stride), ceil(W / stride))``."""
        pad_h = _tf_same_padding(x.shape[-2], self.kernel_size, self.stride)
        pad_w = _tf_same_padding(x.shape[-1], self.kernel_size, self.stride)
        if any(pad_h + pad_w):
            x = F.pad(x, (*pad_w, *pad_h))
        if isinstance(self.norm, ShiftBatchNorm) and not self.training:
            # Eval-mode BatchNorm is affine: folding it into the conv saves two full passes over
            # the PointwiseNN guide's 16 hidden channels at full resolution.
            weight, bias = self.norm.fold(self.conv.weight, self.conv.bias)
            return self.act(F.conv2d(x, weight, bias, self.stride))
        return self.act(self.norm(self.conv(x)))


def _tf_same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


class LinearBlock(nn.Module):
    """Fully connected → (BatchNorm) → activation, as hdrnet's ``fc`` helper.

    Args:
        in_features: input features.
        out_features: output features.
        batch_norm: add a ``ShiftBatchNorm`` (the linear layer then has no bias).
        activation: nonlinearity.
    """

    def __init__(
        self, in_features: int, out_features: int, batch_norm: bool = False, activation: Activation = "relu"
    ) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features, bias=not batch_norm)
        tf_variance_scaling_(self.fc.weight)
        if self.fc.bias is not None:
            nn.init.zeros_(self.fc.bias)
        self.norm = ShiftBatchNorm(out_features) if batch_norm else nn.Identity()
        self.act = _activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in) -> (B, out)``."""
        return self.act(self.norm(self.fc(x)))


# --------------------------------------------------------------------------------------------
# Bilateral coefficient network (HDRNet; UPE's release is the same net with deeper paths)
# --------------------------------------------------------------------------------------------

#: Affine colour model: 3 outputs × (3 inputs + offset).
N_OUT, N_IN = 3, 4


class BilateralCoeffNet(nn.Module):
    """Low-resolution net that predicts a bilateral grid of affine colour transforms.

    Splat (strided convs) → two branches: a global path (convs, flatten, three FCs) and a local
    path (one conv+ReLU, then bias-free linear convs) → fusion ``ReLU(local + global)`` → 1×1 conv
    to ``luma_bins * 12`` channels, unrolled into the grid. With ``lb = luma_bins`` and
    ``cm = channel_multiplier``: splat layer ``i`` has ``cm * 2**i * lb`` channels, the global and
    local paths ``8 * cm * lb``, the FCs ``32, 16, 8 × cm * lb``; the first splat conv and the
    layers right before the fusion are never normalised (as in the TF code).

    The FC input size follows from the arguments (``8·cm·lb`` channels times the spatial size
    left after the global path's strided convs, 4×4 for the defaults: 1024), so smaller
    ``net_input_size`` values work too; the net then simply has fewer splat layers and a different
    parameter count.

    Args:
        luma_bins: grid depth ``D`` (8).
        spatial_bins: grid height and width (16).
        channel_multiplier: width multiplier ``cm`` (1).
        net_input_size: side of the square low-resolution input (256); ``net_input_size /
            spatial_bins`` must be a power of two of at least 2 (the number of splat layers is its
            log2).
        batch_norm: BatchNorm in the splat (except the first), global and first local layers.
        global_strides: strides of the global path's 3×3 convs; HDRNet ``(2, 2)``, the UPE release
            ``(2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1)``.
        local_linear_layers: bias-free linear 3×3 convs after the local conv+ReLU; HDRNet 1,
            UPE release 5.
    """

    def __init__(
        self,
        luma_bins: int = 8,
        spatial_bins: int = 16,
        channel_multiplier: int = 1,
        net_input_size: int = 256,
        batch_norm: bool = False,
        global_strides: Sequence[int] = (2, 2),
        local_linear_layers: int = 1,
    ) -> None:
        super().__init__()
        ratio = net_input_size // spatial_bins
        if net_input_size % spatial_bins or ratio < 2 or ratio & (ratio - 1):
            raise ValueError(
                f"net_input_size / spatial_bins must be a power of two >= 2, got "
                f"{net_input_size} / {spatial_bins}"
            )
        self.luma_bins = luma_bins
        lb, cm = luma_bins, channel_multiplier
        width = 8 * cm * lb

        splat: list[nn.Module] = []
        in_ch = 3
        for i in range(ratio.bit_length() - 1):
            splat.append(ConvBlock(in_ch, cm * 2**i * lb, 3, 2, batch_norm=batch_norm and i > 0))
            in_ch = cm * 2**i * lb
        self.splat = nn.Sequential(*splat)

        convs: list[nn.Module] = []
        side, ch = spatial_bins, in_ch
        for s in global_strides:
            convs.append(ConvBlock(ch, width, 3, s, batch_norm=batch_norm))
            side, ch = -(-side // s), width
        self.global_convs = nn.Sequential(*convs)
        self.global_fc = nn.Sequential(
            LinearBlock(ch * side * side, 32 * cm * lb, batch_norm=batch_norm),
            LinearBlock(32 * cm * lb, 16 * cm * lb, batch_norm=batch_norm),
            # Linear and unnormalised: it is added to the local features before the ReLU.
            LinearBlock(16 * cm * lb, width, activation="none"),
        )

        self.local = nn.Sequential(
            ConvBlock(in_ch, width, 3, 1, batch_norm=batch_norm),
            *(
                ConvBlock(width, width, 3, 1, activation="none", bias=False)
                for _ in range(local_linear_layers)
            ),
        )
        self.predict = ConvBlock(width, lb * N_OUT * N_IN, 1, activation="none")

    def forward(self, lowres: Tensor) -> Tensor:
        """Predict the grid.

        Args:
            lowres: ``(B, 3, n, n)`` with ``n = net_input_size``.

        Returns:
            ``(B, 12, luma_bins, spatial_bins, spatial_bins)``, channel ``out * 4 + in``.
        """
        splat = self.splat(lowres)
        global_features = self.global_fc(self.global_convs(splat).flatten(1))
        fused = F.relu(self.local(splat) + global_features[:, :, None, None])
        x = self.predict(fused)
        b, _, hg, wg = x.shape
        # TF "unroll_grid": channel 8 * (3 * in + out) + z holds coefficient (out, in) of luma
        # bin z. Keeping that packing means TF prediction weights would port unchanged.
        x = x.view(b, N_IN, N_OUT, self.luma_bins, hg, wg).transpose(1, 2)
        return x.reshape(b, N_OUT * N_IN, self.luma_bins, hg, wg)


# --------------------------------------------------------------------------------------------
# Guide networks (full resolution, per pixel)
# --------------------------------------------------------------------------------------------


class PointwiseGuide(nn.Module):
    """HDRNet's ``PointwiseNN`` guide: 1×1 conv → BatchNorm (always on) → ReLU → 1×1 conv → sigmoid.

    Args:
        hidden: hidden channels (``guide_complexity``, 16).
    """

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            ConvBlock(3, hidden, 1, batch_norm=True), ConvBlock(hidden, 1, 1, activation="sigmoid")
        )

    def forward(self, image: Tensor) -> Tensor:
        """``(B, 3, H, W) -> (B, 1, H, W)`` in (0, 1)."""
        return self.net(image)


class CurvesGuide(nn.Module):
    """HDRNet's curves guide (``HDRNetCurves._guide``, the paper's guide).

    A 3×3 colour matrix with bias, per-channel piecewise-linear curves made of ``knots`` ReLUs,
    a 1×1 channel mix, then a clip to [0, 1]. Initialisation as in the TF code: the matrix is the
    identity plus one scalar ``1e-4 * N(0, 1)`` added to every entry (``np.random.randn(1)``),
    shifts ``0, 1/16, …, 15/16`` (``np.linspace(0, 1, 16, endpoint=False)``; the spec sheet's
    ``linspace(0, 1, 16)`` omits ``endpoint=False``), slopes ``(1, 0, …, 0)`` (each curve starts
    as the identity on [0, 1]), mix weights 1/3 and bias 0, so the initial guide is the mean of
    the three channels.

    The clip is ``torch.clamp``, whose gradient is passed where ``0 <= x <= 1`` and is zero outside,
    like ``tf.clip_by_value``'s: a pixel whose guide leaves [0, 1] gives no gradient to the guide
    parameters, and the slice is flat in z there anyway (edge-clamped grid).

    Args:
        knots: ReLU knots per channel (16).
    """

    def __init__(self, knots: int = 16) -> None:
        super().__init__()
        self.ccm = nn.Parameter(torch.eye(3) + torch.randn(1) * 1e-4)
        self.ccm_bias = nn.Parameter(torch.zeros(3))
        self.shifts = nn.Parameter(torch.arange(knots, dtype=torch.float32).div(knots).repeat(3, 1))
        slopes = torch.zeros(3, knots)
        slopes[:, 0] = 1.0
        self.slopes = nn.Parameter(slopes)
        self.mix = nn.Parameter(torch.full((3,), 1.0 / 3))
        self.mix_bias = nn.Parameter(torch.zeros(1))

    def forward(self, image: Tensor) -> Tensor:
        """``(B, 3, H, W) -> (B, 1, H, W)`` in [0, 1]."""
        # TF multiplies row vectors: out_j = sum_i in_i * ccm[i, j].
        g = torch.einsum("bihw,ij->bjhw", image, self.ccm) + self.ccm_bias.view(1, 3, 1, 1)
        # A loop over knots keeps temporaries at (B, 3, H, W) instead of (B, 3, knots, H, W).
        shifts, slopes = self.shifts.view(3, -1, 1, 1), self.slopes.view(3, -1, 1, 1)
        curve = torch.zeros_like(g)
        for k in range(shifts.shape[1]):
            curve = curve + slopes[:, k] * F.relu(g - shifts[:, k])
        mixed = torch.einsum("bchw,c->bhw", curve, self.mix).unsqueeze(1) + self.mix_bias
        return mixed.clamp(0.0, 1.0)


GuideKind = Literal["pointwise", "curves"]


# --------------------------------------------------------------------------------------------
# The whole bilateral-grid model: low-res coefficients, full-res guide, slice and apply
# --------------------------------------------------------------------------------------------


class BilateralGridNet(nn.Module):
    """Coefficient net on a nearest-resized copy + guide at full resolution + slice/apply.

    In eval mode the guide runs on bands of rows (it is per pixel, so this is exact), and the
    slice/apply does too, so a 12 MP image needs a few hundred MiB rather than gigabytes (the
    PointwiseNN guide's 16 hidden channels alone would take 768 MiB at 12 MP). In training mode the
    guide runs on the whole batch at once because its BatchNorm needs batch statistics.

    Args:
        guide: ``"pointwise"`` (``PointwiseGuide``) or ``"curves"`` (``CurvesGuide``).
        guide_complexity: hidden channels of the pointwise guide.
        net_input_size: side of the low-resolution copy fed to the coefficient net.
        coeff_net: the coefficient net.
        chunk_pixels: approximate pixels per band at full resolution.
    """

    def __init__(
        self,
        guide: GuideKind,
        guide_complexity: int,
        net_input_size: int,
        coeff_net: BilateralCoeffNet,
        chunk_pixels: int = DEFAULT_CHUNK_PIXELS,
    ) -> None:
        super().__init__()
        if guide not in ("pointwise", "curves"):
            raise ValueError(f"guide must be 'pointwise' or 'curves', got {guide!r}")
        self.net_input_size = net_input_size
        self.chunk_pixels = chunk_pixels
        self.coefficients = coeff_net
        self.guide: nn.Module = PointwiseGuide(guide_complexity) if guide == "pointwise" else CurvesGuide()

    def forward(self, image: Tensor) -> Tensor:
        """``(B, 3, H, W) -> (B, 3, H, W)``: the sliced affine model applied to ``image``."""
        grid = self.coefficients(nearest_resize(image, self.net_input_size))
        if self.training:
            guide = self.guide(image)
        else:
            guide = map_row_chunks(self.guide, image, self.chunk_pixels)
        return bilateral_slice_apply(grid, guide, image, chunk_pixels=self.chunk_pixels)


# --------------------------------------------------------------------------------------------
# DPED-family helpers: TF initialisation, TF 'SAME' padding, Gaussian blur
# (DPED, WESPE; the blur also serves DACAL's low-frequency branch)
# --------------------------------------------------------------------------------------------


def dped_init_(module: nn.Module, std: float = 0.01, bias: float = 0.01) -> nn.Module:
    """Initialise every conv and linear layer of ``module`` as DPED's TF code does.

    DPED (``models.py``) draws every weight from ``tf.truncated_normal(stddev=0.01)`` — a normal
    re-drawn outside two standard deviations — and sets every bias to the constant 0.01. Instance
    norm scales and shifts keep 1 and 0. The draws use the global torch generator, so the usual
    seed fixes them.

    Args:
        module: a net whose ``nn.Conv2d`` and ``nn.Linear`` layers are filled in place.
        std: standard deviation before truncation (0.01).
        bias: constant bias (0.01).

    Returns:
        ``module``.
    """
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(layer.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
                if layer.bias is not None:
                    nn.init.constant_(layer.bias, bias)
    return module


def tf_same_pad(x: Tensor, kernel_size: int, stride: int) -> Tensor:
    """Zero-pad ``(B, C, H, W)`` as TF's ``padding='SAME'`` does before a strided conv.

    The output of the following valid conv then has ``ceil(H / stride)`` rows; an odd total pad
    puts the extra pixel at the bottom/right (e.g. 3 + 4 for an 11×11, stride-4 conv on 100 px).
    """
    pad_h = _tf_same_padding(x.shape[-2], kernel_size, stride)
    pad_w = _tf_same_padding(x.shape[-1], kernel_size, stride)
    return F.pad(x, (*pad_w, *pad_h)) if any(pad_h + pad_w) else x


BlurMode = Literal["dped", "true_sigma"]
BlurPadding = Literal["zeros", "reflect"]


def gaussian_kernel_1d(kernel_size: int = 21, sigma: float = 3.0, mode: BlurMode = "dped") -> Tensor:
    """One separable factor of the 2-D blur kernel, normalised to sum 1 (float64).

    ``dped``: DPED's ``utils.gauss_kernel(kernlen, nsig)`` with ``nsig = sigma``. It cuts
    ``[-nsig - d/2, nsig + d/2]`` σ-units into ``kernel_size`` bins of width
    ``d = (2·nsig + 1) / kernel_size`` and takes the normal-CDF difference over each bin; the 2-D
    kernel is the square root of the outer product of those weights, renormalised. That square
    root factorises, so the separable factor returned here is ``sqrt(cdf differences)``,
    normalised — which is also the 2-D kernel's normalised marginal. For 21 taps and ``nsig = 3``
    its second-moment standard deviation is ≈ 4.34 px (the CDF differences alone: ≈ 3.30 px), so
    this "σ = 3" kernel blurs well beyond a 3-px Gaussian (methods.md §1.2).

    ``true_sigma``: a sampled Gaussian ``exp(-t² / 2σ²)`` at integer offsets ``t``, normalised;
    its standard deviation is ``sigma`` px up to the truncation at ``±(kernel_size - 1) / 2``.

    Args:
        kernel_size: number of taps (odd).
        sigma: ``nsig`` in ``dped`` mode (σ-units covered on each side); the standard deviation
            in pixels in ``true_sigma`` mode.
        mode: ``"dped"`` or ``"true_sigma"``.

    Returns:
        ``(kernel_size,)`` float64 weights summing to 1.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if mode == "dped":
        interval = (2 * sigma + 1) / kernel_size
        edges = torch.linspace(-sigma - interval / 2, sigma + interval / 2, kernel_size + 1, dtype=torch.float64)
        cdf = 0.5 * (1 + torch.erf(edges / math.sqrt(2)))
        weights = cdf.diff().sqrt()
    elif mode == "true_sigma":
        offsets = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
        weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    else:
        raise ValueError(f"mode must be 'dped' or 'true_sigma', got {mode!r}")
    return weights / weights.sum()


def gaussian_kernel_2d(kernel_size: int = 21, sigma: float = 3.0, mode: BlurMode = "dped",
                       sigma_y: float | None = None) -> Tensor:
    """The 2-D blur kernel: outer product of the vertical and horizontal factors (float64).

    In ``dped`` mode with ``sigma_y`` unset this equals DPED's
    ``sqrt(outer(k, k)) / sum(sqrt(outer(k, k)))`` exactly (see :func:`gaussian_kernel_1d`).

    Args:
        kernel_size: taps per axis (odd).
        sigma: horizontal parameter (and vertical one when ``sigma_y`` is None).
        mode: ``"dped"`` or ``"true_sigma"``.
        sigma_y: vertical parameter for an anisotropic kernel (the DACAL seed slide's).

    Returns:
        ``(kernel_size, kernel_size)``, summing to 1; rows are the vertical axis.
    """
    k_x = gaussian_kernel_1d(kernel_size, sigma, mode)
    k_y = k_x if sigma_y is None else gaussian_kernel_1d(kernel_size, sigma_y, mode)
    return torch.outer(k_y, k_x)


class GaussianBlur(nn.Module):
    """Depthwise Gaussian blur, stride 1, output the size of the input.

    The kernel is separable, so it runs as a horizontal then a vertical 1-D pass: the same
    result as the 2-D kernel (to float rounding) for zero *and* reflect padding, at 2·k instead
    of k² multiply-adds per pixel. Every channel is blurred alone, as DPED's
    ``tf.nn.depthwise_conv2d`` does.

    Args:
        kernel_size: taps per axis (odd; 21 in DPED and WESPE).
        sigma: see :func:`gaussian_kernel_1d` (``nsig`` in ``dped`` mode, pixels otherwise).
        mode: ``"dped"`` (DPED's kernel, the default: faithful) or ``"true_sigma"``.
        padding: ``"zeros"`` (TF 'SAME', DPED) or ``"reflect"`` (no dark rim at the border;
            needs images larger than ``kernel_size // 2`` on both sides).
        sigma_y: vertical parameter for an anisotropic kernel (None: isotropic).
    """

    def __init__(self, kernel_size: int = 21, sigma: float = 3.0, mode: BlurMode = "dped",
                 padding: BlurPadding = "zeros", sigma_y: float | None = None) -> None:
        super().__init__()
        if padding not in ("zeros", "reflect"):
            raise ValueError(f"padding must be 'zeros' or 'reflect', got {padding!r}")
        self.kernel_size, self.padding = kernel_size, padding
        k_x = gaussian_kernel_1d(kernel_size, sigma, mode)
        k_y = k_x if sigma_y is None else gaussian_kernel_1d(kernel_size, sigma_y, mode)
        # Derived from the arguments, so not saved in checkpoints.
        self.register_buffer("kernel_x", k_x.float().view(1, 1, 1, -1), persistent=False)
        self.register_buffer("kernel_y", k_y.float().view(1, 1, -1, 1), persistent=False)

    def kernel(self) -> Tensor:
        """The 2-D kernel ``(kernel_size, kernel_size)`` as applied (float32)."""
        return torch.outer(self.kernel_y.flatten(), self.kernel_x.flatten())

    def forward(self, image: Tensor) -> Tensor:
        """Blur ``(B, C, H, W)``; returns ``(B, C, H, W)``."""
        if image.dim() != 4:
            raise ValueError(f"GaussianBlur expects (B, C, H, W), got {tuple(image.shape)}")
        b, c, h, w = image.shape
        half = self.kernel_size // 2
        # (B·C, 1, H, W) with a single-channel kernel: a plain conv, faster on CPU than groups=C.
        x = image.reshape(b * c, 1, h, w)
        if self.padding == "reflect":
            if min(h, w) <= half:
                raise ValueError(
                    f"reflect padding of {half} px needs images larger than that, got {h}×{w}"
                )
            x = F.pad(x, (half, half, half, half), mode="reflect")
            x = F.conv2d(F.conv2d(x, self.kernel_x), self.kernel_y)
        else:
            x = F.conv2d(F.conv2d(x, self.kernel_x, padding=(0, half)), self.kernel_y, padding=(half, 0))
        return x.view(b, c, h, w)


# --------------------------------------------------------------------------------------------
# Global U-Net: DPE's generator layout (methods.md §6.1), with the global branch either DPE's
# 'valid' conv (fixed input size) or global average pooling (any input size; DACAL's trunk)
# --------------------------------------------------------------------------------------------


def symmetric_indices(size: int, before: int, after: int, device: torch.device | None = None) -> Tensor:
    """Source indices of numpy's ``'symmetric'`` padding (TF ``SYMMETRIC``) along one axis.

    The edge sample is repeated (``[a b c]`` padded by 2 gives ``b a | a b c | c b``); pads longer
    than the axis keep mirroring with period ``2 * size``, as ``np.pad`` does.

    Args:
        size: length of the axis (>= 1).
        before: samples added in front.
        after: samples added at the end.
        device: device of the returned indices.

    Returns:
        ``(before + size + after,)`` long tensor of indices into the axis.
    """
    i = torch.arange(-before, size + after, device=device)
    j = torch.remainder(i, 2 * size)
    return torch.where(j >= size, 2 * size - 1 - j, j)


def symmetric_pad(x: Tensor, left: int, right: int, top: int, bottom: int) -> Tensor:
    """Pad the last two axes of ``x`` with numpy/TF 'symmetric' padding (any amount)."""
    if left == right == top == bottom == 0:
        return x
    h, w = x.shape[-2:]
    rows = symmetric_indices(h, top, bottom, x.device)
    cols = symmetric_indices(w, left, right, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


class SymmetricConv2d(nn.Conv2d):
    """Conv with TF 'SYMMETRIC' padding of ``k // 2`` on every side, then a 'valid' conv.

    Output size ``ceil(H / stride)`` for odd kernels, as DPE's ``conv_layer(k, s, c, "SYMMETRIC")``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in, H, W) -> (B, out, ceil(H / s), ceil(W / s))``."""
        p = self.kernel_size[0] // 2
        return super().forward(symmetric_pad(x, p, p, p, p))


#: Channels of each "act" (activation → BN) of the global U-Net, as multiples of ``width``
#: (DPE at width 16: e1 16 … d2 256 = 128 + 128 after the skip concatenation … d6 16).
GLOBAL_UNET_NORMS: dict[str, int] = {
    "e1": 1, "e2": 2, "e3": 4, "e4": 8, "e5": 8, "g1": 8, "g2": 8,
    "d1": 8, "d2": 16, "d3": 12, "d4": 6, "d5": 3, "d6": 1,
}

GlobalBranch = Literal["valid", "mean"]


def global_unet_norms(width: int = 16, eps: float = 1e-3) -> nn.ModuleDict:
    """One set of a global U-Net's BatchNorm layers (DPE's iBN gives a second set to G')."""
    return nn.ModuleDict({name: nn.BatchNorm2d(m * width, eps=eps) for name, m in GLOBAL_UNET_NORMS.items()})


class GlobalUNet(nn.Module):
    """DPE's "global U-Net" trunk, generalised in width, activation and global branch.

    Layout (DPE ``NetInfo("netG")``, methods.md §6.1, channels at ``width`` w; DPE: w = 16):
    encoder e1 3×3 (w), e2–e5 5×5 stride 2 (2w, 4w, 8w, 8w); global branch g1, g2 5×5 stride 2
    (8w), then g3 and g4 (1×1, linear) give one 8w global feature; decoder d0 3×3 on the e5
    features, concatenation with the global feature tiled over the map, d1 1×1, then four stages
    "conv 3×3 → nearest up-sampling → concatenation with the *raw* (pre-activation) encoder conv
    output", d6 3×3 and the output conv. Every "act" is the activation then BatchNorm (DPE: SELU
    → BN; DACAL's seed slide: Conv+ReLU+BN). Every conv except g3/g4/d1 uses TF 'SYMMETRIC'
    padding. The output is the last conv's, with no residual: the caller decides what it means.

    Global branch:
        * ``"valid"`` (DPE): g3 is a 'valid' conv whose kernel (``input_size // 64``) covers the
          whole H/64 map, then SELU/ReLU — the net then only runs on ``input_size``² inputs;
        * ``"mean"``: the H/64 map is averaged over space and g3 is a 1×1 conv — any input size
          (the deviation DPE's pitfall list suggests, §6.7; DACAL's enhancer).

    Any size: up-sampling resizes (nearest) to the exact size of the skip it meets, which is ×2
    whenever the input side is a multiple of 16 (so DPE's canvases are unaffected) and handles odd
    sizes otherwise. Training batches whose H/64 maps are 1×1 need at least 2 images (BatchNorm).

    Weights keep PyTorch's default initialisation; methods re-initialise as their papers do.

    Args:
        in_channels: input channels (3; more when extra maps are concatenated).
        out_channels: channels of the output conv.
        width: w (16 in DPE).
        activation: ``"selu"`` (DPE) or ``"relu"`` (DACAL's slide).
        global_branch: ``"valid"`` or ``"mean"`` (see above).
        input_size: the fixed input side for ``"valid"`` (a multiple of 64); unused for ``"mean"``.
        bn_eps: BatchNorm epsilon (TF's 1e-3).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 16,
                 activation: Literal["selu", "relu"] = "selu", global_branch: GlobalBranch = "valid",
                 input_size: int | None = 512, bn_eps: float = 1e-3) -> None:
        super().__init__()
        if activation not in ("selu", "relu"):
            raise ValueError(f"activation must be 'selu' or 'relu', got {activation!r}")
        if global_branch not in ("valid", "mean"):
            raise ValueError(f"global_branch must be 'valid' or 'mean', got {global_branch!r}")
        if global_branch == "valid" and (input_size is None or input_size < 64 or input_size % 64):
            raise ValueError(f"the 'valid' global branch needs input_size, a positive multiple of 64; got {input_size}")
        self.activation, self.global_branch = activation, global_branch
        self.input_size = input_size if global_branch == "valid" else None
        w = width
        self.e1 = SymmetricConv2d(in_channels, w, 3)
        self.e2 = SymmetricConv2d(w, 2 * w, 5, 2)
        self.e3 = SymmetricConv2d(2 * w, 4 * w, 5, 2)
        self.e4 = SymmetricConv2d(4 * w, 8 * w, 5, 2)
        self.e5 = SymmetricConv2d(8 * w, 8 * w, 5, 2)
        self.g1 = SymmetricConv2d(8 * w, 8 * w, 5, 2)
        self.g2 = SymmetricConv2d(8 * w, 8 * w, 5, 2)
        self.g3 = nn.Conv2d(8 * w, 8 * w, input_size // 64 if global_branch == "valid" else 1)
        self.g4 = nn.Conv2d(8 * w, 8 * w, 1)
        self.d0 = SymmetricConv2d(8 * w, 8 * w, 3)
        self.d1 = nn.Conv2d(16 * w, 8 * w, 1)
        self.d2 = SymmetricConv2d(8 * w, 8 * w, 3)
        self.d3 = SymmetricConv2d(16 * w, 8 * w, 3)
        self.d4 = SymmetricConv2d(12 * w, 4 * w, 3)
        self.d5 = SymmetricConv2d(6 * w, 2 * w, 3)
        self.d6 = SymmetricConv2d(3 * w, w, 3)
        self.out = SymmetricConv2d(w, out_channels, 3)
        self.norms = global_unet_norms(w, bn_eps)

    def forward(self, x: Tensor, norms: nn.ModuleDict | None = None,
                bottleneck: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """Run the U-Net.

        Args:
            x: ``(B, in_channels, H, W)`` (``H = W = input_size`` for the ``"valid"`` branch).
            norms: a BatchNorm set to use instead of the net's own (DPE's iBN).
            bottleneck: applied to the H/16 encoder features (``8w`` channels, after e5's
                activation) before the global branch and the decoder read them — where recurrent
                DACAL injects its ConvGRU state. Must keep the shape.

        Returns:
            ``(B, out_channels, H, W)``.
        """
        if self.input_size is not None and x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"this GlobalUNet runs on {self.input_size}² inputs, got {tuple(x.shape[-2:])}")
        bn = self.norms if norms is None else norms
        act_fn = F.selu if self.activation == "selu" else F.relu

        def act(name: str, t: Tensor) -> Tensor:
            return bn[name](act_fn(t))

        def up(t: Tensor, like: Tensor) -> Tensor:
            return F.interpolate(t, size=like.shape[-2:], mode="nearest")

        # The skips are the raw conv outputs, before their activation/BN (DPE's concat indices).
        e1 = self.e1(x)
        e2 = self.e2(act("e1", e1))
        e3 = self.e3(act("e2", e2))
        e4 = self.e4(act("e3", e3))
        features = act("e5", self.e5(act("e4", e4)))
        if bottleneck is not None:
            features = bottleneck(features)
        g = act("g2", self.g2(act("g1", self.g1(features))))
        if self.global_branch == "mean":
            g = g.mean(dim=(2, 3), keepdim=True)
        g = self.g4(act_fn(self.g3(g)))  # (B, 8w, 1, 1): the global feature, linear
        d = self.d0(features)
        d = act("d1", self.d1(torch.cat([d, g.expand(-1, -1, *d.shape[-2:])], dim=1)))
        d = act("d2", torch.cat([up(self.d2(d), e4), e4], dim=1))
        d = act("d3", torch.cat([up(self.d3(d), e3), e3], dim=1))
        d = act("d4", torch.cat([up(self.d4(d), e2), e2], dim=1))
        d = act("d5", torch.cat([up(self.d5(d), e1), e1], dim=1))
        return self.out(act("d6", self.d6(d)))


class ConvGRUCell(nn.Module):
    """A convolutional GRU cell (Ballas et al. 2016), gates in PyTorch's ``nn.GRUCell`` form.

    With ``x`` the input and ``h`` the previous state (zeros at the first frame)::

        r = σ(W_ir * x + W_hr * h),  z = σ(W_iz * x + W_hz * h)
        n = tanh(W_in * x + r ⊙ (W_hn * h))
        h' = (1 − z) ⊙ n + z ⊙ h

    where ``*`` is a same-padded convolution (biases included in each conv). The reset gate
    multiplies the *convolved* state, exactly as ``nn.GRUCell`` does, so with 1×1 kernels the cell
    is ``nn.GRUCell`` applied at every pixel (the test's independent reference).

    Args:
        input_channels: channels of ``x``.
        hidden_channels: channels of ``h``.
        kernel_size: odd kernel of both convolutions (3).
    """

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.hidden_channels = hidden_channels
        self.input_gates = nn.Conv2d(input_channels, 3 * hidden_channels, kernel_size, padding=kernel_size // 2)
        self.hidden_gates = nn.Conv2d(hidden_channels, 3 * hidden_channels, kernel_size, padding=kernel_size // 2)

    def initial_state(self, x: Tensor) -> Tensor:
        """Zeros of the state's shape for an input ``x`` ``(B, C, H, W)``."""
        return x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[-2:])

    def forward(self, x: Tensor, hidden: Tensor | None = None) -> Tensor:
        """One step: ``(B, C_in, H, W)``, state ``(B, C_h, H, W)`` or None → new state."""
        if hidden is None:
            hidden = self.initial_state(x)
        x_r, x_z, x_n = self.input_gates(x).chunk(3, dim=1)
        h_r, h_z, h_n = self.hidden_gates(hidden).chunk(3, dim=1)
        reset = torch.sigmoid(x_r + h_r)
        update = torch.sigmoid(x_z + h_z)
        candidate = torch.tanh(x_n + reset * h_n)
        return (1 - update) * candidate + update * hidden
