"""DACAL / MUSPE: divide-and-conquer adversarial learning with the AdaSWGAN loss.

Reference:
    Z. Huang, D. P. Paudel, G. Li, J. Wu, R. Timofte, L. Van Gool. "Divide-and-Conquer
    Adversarial Learning for High-resolution Image and Video Enhancement". arXiv 1910.10455
    (ICLR 2020 submission; the multi-scale image model is MUSPE).
    **No public code exists.** What is fixed here comes from the authors' own slides (the seed
    talk, ``shared/seed/000_7d00ac5d41e6b268.txt``; methods.md §7.1b), which outrank every
    guess; the rest follows the reasoned design of methods.md §7.2 and the building blocks of
    §1.2 (Gaussian blur), §1.7 (one-sided penalty, adaptive λ) and §1.8 (SWGAN's sliced head,
    read in musikisomorphie/swd ``standard_training/swgan_64x64.py``). Every DACAL row is
    therefore a re-design, and ``proxy_notes()`` says so in every caption.

The three divisions, each an orthogonal argument so that the seed's ablations are rows:

* **Perception-based division** (``fusion``; seed: "additive connection E(x) = x + r_x",
  "additive component, multiplicative component, additive map, multiplicative map, fused map";
  Table 1 rows MUSPE_l1/l2/l3/l). The enhancer predicts pre-activation maps ``a`` (3 ch), ``b``
  (3 ch) and ``c`` (1 ch) and combines them with the input x:

  - ``add`` (l1): ``ŷ = x + r`` with ``r = tanh(a)``;
  - ``mul`` (l2): ``ŷ = x ⊙ M`` with ``M = 4^tanh(b)`` ∈ (1/4, 4) (UPE-style gain, M = 1/S);
  - ``mul_then_add`` (l3, "multiplicative cascaded by additive"): ``ŷ = x ⊙ M + r``;
  - ``parallel`` (l, "parallel fusion, two streams"): ``ŷ = W ⊙ (x ⊙ M) + (1 − W) ⊙ (x + r)``
    with the per-pixel fusion map ``W = σ(c)`` ∈ (0, 1).

  Only the maps a fusion uses are predicted (3, 3, 6 or 7 output channels). The output is not
  clamped (the Evaluator clamps), as in DPE.
* **Frequency-based division** (``frequency_split``; seed: "frequency-based input" to the
  discriminator, citing DPED's blurred-colour / grayscale-texture critics; the loss slide shows
  a Gaussian blur with an anisotropic kernel). Two critics: colour on the Gaussian-blurred RGB
  image (``layers.GaussianBlur``: 21 taps, DPED's kernel at nsig 3 by default, ``blur_sigma_y``
  for the slide's anisotropic σ_x ≠ σ_y) and texture on the gray image or its high-pass
  ``gray − blur(gray)`` (``texture_input``). Off: one critic on the RGB image.
* **Dimension-based division** (``sliced``; seed: "Pooling / OrthoProj" and sliced layers in
  D). Each critic is ``critics.SlicedCritic``: a conv trunk, global average pooling, then
  SWGAN's dual-SWD head (K = 4 orthogonal d×d projections, d = 128, per-dimension potentials
  LReLU(s⊙p + o), mean) — or a scalar linear head when off.

**AdaSWGAN** (seed's "Adaptive SWGAN loss" slide): critics maximise
``E_y[C(y)] − E_x[C(E(x))]`` with the one-sided, non-squared penalty
``λ·E[max(0, ‖∇C(ŷ)‖₂ − 1)]`` at random interpolates (``penalty``), and λ adapts from a moving
average (η) of the unweighted penalty (``adaptive_penalty``; ``critics.AdaptiveLambda``, DPE's
rule — the slide's ``ḡ ← η·ḡ + (1 − η)·∇/λ`` is that average). One λ per critic; the penalty fed
to it is averaged over DDP ranks (``synced_mean``) and, with ``multiscale``, over the levels.
``sliced`` × ``adaptive_penalty`` give the seed's four objectives: WGAN (scalar, fixed λ),
AdaWGAN (scalar, adaptive), SWGAN (sliced, fixed λ), AdaSWGAN (sliced, adaptive).
Orthogonality of the projections: the Stiefel projection of their gradients runs in
``before_critic_optimizer_step`` (after the critic's backward pass, before clipping and the
optimiser step), the sign-preserving QR retraction in ``after_critic_step``.

**MUSPE multi-scale (``multiscale``, the seed's MUSPE_h)**: coarse-to-fine enhancement (seed:
"coarse → fine", against DPE's down-scaling, "low-res, blurry", and WESPE's patch-wise
enhancement, "spatial inconsistency"). An image pyramid of ``levels`` levels (2 by default)
is built by area down-scaling: the coarsest has long side ``coarse_size``, the last is the full
image, the levels between are spaced geometrically. The enhancer (one set of weights for every
level) runs at the coarsest level on ``[x_0, 0]`` and predicts the maps — a down-scaled copy for
global context; at each finer level it sees ``[x_l, up(maps_{l−1})]`` and predicts a
*correction*: ``maps_l = up(maps_{l−1}) + Δ_l`` (bilinear up-sampling), and
``ŷ_l = fuse(x_l, maps_l)``. Every level is a whole image: there are no tiles and no seams. The
number of levels is the same in training and at test (only the scale ratio grows with the
photo), so the corrections never compound beyond what training saw: a first design that halved
down to ``coarse_size`` gave a 1411-px test photo 7 levels after 2-level training, and the
compounded corrections ruined it (PSNR_d 14.3 dB against 17.4 for MUSPE_l, quick demo runs of
80 iterations).
In training the same rule gives the pyramid of each crop (crop 512, ``coarse_size`` 256: 256
and 512 px), the critics judge every level against the target pyramid (real images area-
downsampled the same way), and the losses of all levels are summed.

Without ``multiscale`` (MUSPE_l) the enhancer runs once on the whole image at any size.

Enhancer trunk: ``layers.GlobalUNet`` — DPE's global U-Net layout (methods.md §6.1) with
Conv → ReLU → BN blocks (the seed's enhancer legend "Conv+ReLU+BN", instead of DPE's SELU) and
a global branch by global average pooling instead of DPE's 8×8 'valid' conv, so any input size
works and neither ``f`` scoring nor MUSPE_h needs padding to 512. Width 16 gives DPE's channels.

Content preservation (the data are unpaired / weakly paired): DPE's identity term
``w_identity·MSE(ŷ, x)`` plus an optional VGG-19 relu5_4 term ``w_content·MSE(φ(ŷ), φ(x))``
(``losses.ContentLoss``; built only when ``w_content > 0``) and optional TV (``w_tv``).

Every choice the seed does not fix is listed in the ``DACAL`` class docstring with its alternative.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.base import AdversarialMethod
from baselines.critics import AdaptiveLambda, PenaltyMode, SlicedCritic, gradient_penalty, sliced_feature_penalty
from baselines.dped import RANDOM_CONTENT_NOTE
from baselines.layers import ConvGRUCell, GaussianBlur, GlobalUNet, rgb_to_gray
from baselines.losses import ContentLoss, tv_loss

Fusion = Literal["add", "mul", "mul_then_add", "parallel"]
TextureInput = Literal["gray", "highpass"]

#: Largest gain of the multiplicative stream: M = MAX_GAIN ** tanh(b) lies in (1/4, 4).
MAX_GAIN = 4.0
#: Channels of each pre-activation map: additive a, multiplicative (log-gain) b, fusion weight c.
MAP_CHANNELS: dict[str, int] = {"additive": 3, "multiplicative": 3, "weight": 1}
#: The maps each fusion predicts, in channel order.
FUSION_MAPS: dict[str, tuple[str, ...]] = {
    "add": ("additive",),
    "mul": ("multiplicative",),
    "mul_then_add": ("multiplicative", "additive"),
    "parallel": ("additive", "multiplicative", "weight"),
}
#: Standard deviation of the head conv's initial weights (ŷ ≈ x at the start).
HEAD_INIT_STD = 1e-3
DESIGN_NOTE = ("DACAL/MUSPE re-designed from the authors' slides (no public code): a reasoned design, "
               "not the authors' implementation")

# ---------------------------------------------------------------------------------------------
# Pure functions: maps, fusion, pyramid sizes, seam score
# ---------------------------------------------------------------------------------------------


def map_channels(fusion: Fusion) -> int:
    """Number of pre-activation channels the enhancer predicts for ``fusion``."""
    if fusion not in FUSION_MAPS:
        raise ValueError(f"fusion must be one of {sorted(FUSION_MAPS)}, got {fusion!r}")
    return sum(MAP_CHANNELS[name] for name in FUSION_MAPS[fusion])


def split_maps(maps: Tensor, fusion: Fusion) -> dict[str, Tensor]:
    """Activate the pre-activation maps: ``r = tanh(a)``, ``M = 4^tanh(b)``, ``W = σ(c)``.

    Args:
        maps: ``(B, map_channels(fusion), H, W)``.
        fusion: which maps are present (``FUSION_MAPS``).

    Returns:
        ``{"additive": r, "multiplicative": M, "weight": W}``, the entries the fusion uses.
    """
    sizes = [MAP_CHANNELS[name] for name in FUSION_MAPS[fusion]]
    if maps.shape[1] != sum(sizes):
        raise ValueError(f"fusion {fusion!r} needs {sum(sizes)} map channels, got {maps.shape[1]}")
    raw = dict(zip(FUSION_MAPS[fusion], torch.split(maps, sizes, dim=1), strict=True))
    activate = {"additive": torch.tanh, "multiplicative": lambda b: MAX_GAIN ** torch.tanh(b),
                "weight": torch.sigmoid}
    return {name: activate[name](value) for name, value in raw.items()}


def fuse(image: Tensor, maps: Tensor, fusion: Fusion) -> Tensor:
    """Combine the input with its additive / multiplicative streams (see the module docstring).

    Args:
        image: ``(B, 3, H, W)`` input x.
        maps: ``(B, map_channels(fusion), H, W)`` pre-activation maps.
        fusion: ``add``, ``mul``, ``mul_then_add`` or ``parallel``.

    Returns:
        ``(B, 3, H, W)`` enhanced ŷ (not clamped).
    """
    parts = split_maps(maps, fusion)
    if fusion == "add":
        return image + parts["additive"]
    if fusion == "mul":
        return image * parts["multiplicative"]
    if fusion == "mul_then_add":
        return image * parts["multiplicative"] + parts["additive"]
    weight = parts["weight"]
    return weight * (image * parts["multiplicative"]) + (1 - weight) * (image + parts["additive"])


def pyramid_sizes(height: int, width: int, coarse_size: int, levels: int = 2) -> list[tuple[int, int]]:
    """Level sizes, coarse to fine: the coarsest has long side ``coarse_size``, the last is the
    full size, and the levels between are spaced geometrically.

    The number of levels is fixed (``levels``) whatever the image size, so a test photo goes
    through as many refinements as a training crop; only their scale ratio changes. An image
    whose long side is already at most ``coarse_size`` has one level.

    Args:
        height, width: full-resolution size (the last level).
        coarse_size: long side of the coarsest level (>= 1).
        levels: number of levels when the image is larger than ``coarse_size`` (>= 1).

    Returns:
        ``[(h_0, w_0), …, (height, width)]``; sides are at least 1.
    """
    if coarse_size < 1 or levels < 1:
        raise ValueError(f"coarse_size and levels must be >= 1, got {coarse_size}, {levels}")
    long_side = max(height, width)
    if long_side <= coarse_size or levels == 1:
        return [(height, width)]
    sizes = []
    for level in range(levels - 1):
        factor = (coarse_size / long_side) ** ((levels - 1 - level) / (levels - 1))
        sizes.append((max(1, round(height * factor)), max(1, round(width * factor))))
    return [*sizes, (height, width)]


def area_resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Area (box-filter) resize to ``size``; the image itself when it already has that size."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="area")


def as_frames(image: Tensor) -> Tensor:
    """A clip ``(B, T, C, H, W)`` as a batch of frames ``(B·T, C, H, W)``; images unchanged."""
    return image.flatten(0, 1) if image.ndim == 5 else image


def seam_score(image: Tensor, tile: int) -> Tensor:
    """Mean jump of the image gradient across the borders of a ``tile``-px grid.

    At a vertical border between columns ``c − 1`` and ``c`` (``c`` a multiple of ``tile``) the
    horizontal difference across it, ``d_c = I[c] − I[c−1]``, is compared with the mean of its
    two neighbours, ``(d_{c−1} + d_{c+1}) / 2``: the score is the mean absolute difference over
    every row, channel and border, horizontal borders alike. A smooth image (locally linear)
    scores about 0, an image stitched from tiles with different offsets or gains scores the
    size of the steps.

    Args:
        image: ``(B, C, H, W)``.
        tile: tile side in pixels; borders at every multiple of it that has a neighbour pixel on
            each side (2 px of margin).

    Returns:
        Scalar tensor.
    """
    jumps = []
    for dim in (-1, -2):
        size = image.shape[dim]
        d = image.diff(dim=dim)  # d[j] = I[j + 1] − I[j]; the border before column c is d[c − 1]
        borders = [c for c in range(tile, size, tile) if c - 2 >= 0 and c + 1 <= size - 1]
        for c in borders:
            across = d.narrow(dim, c - 1, 1)
            neighbours = (d.narrow(dim, c - 2, 1) + d.narrow(dim, c, 1)) / 2
            jumps.append((across - neighbours).abs().flatten())
    if not jumps:
        raise ValueError(f"an image of {tuple(image.shape[-2:])} has no interior border of {tile}-px tiles")
    return torch.cat(jumps).mean()


# ---------------------------------------------------------------------------------------------
# Enhancer
# ---------------------------------------------------------------------------------------------


class DACALEnhancer(nn.Module):
    """The perception-based enhancer: a global U-Net predicting the fusion maps; optionally
    coarse-to-fine over an image pyramid (MUSPE_h). See the module docstring.

    Args:
        width: U-Net width (16: DPE's channels).
        fusion: how the additive and multiplicative streams combine.
        multiscale: coarse-to-fine over a pyramid (True) or one pass at the input size.
        coarse_size: long side of the coarsest pyramid level (multiscale only).
        levels: pyramid levels (multiscale only; 2: the coarse pass and full resolution).
    """

    def __init__(self, width: int = 16, fusion: Fusion = "parallel", multiscale: bool = False,
                 coarse_size: int = 256, levels: int = 2) -> None:
        super().__init__()
        self.fusion, self.multiscale, self.coarse_size, self.num_levels = fusion, multiscale, coarse_size, levels
        self.channels = map_channels(fusion)
        # Multi-scale: the trunk also sees the up-sampled maps of the coarser level.
        in_channels = 3 + self.channels if multiscale else 3
        self.trunk = GlobalUNet(in_channels, self.channels, width, activation="relu", global_branch="mean")
        with torch.no_grad():
            nn.init.normal_(self.trunk.out.weight, std=HEAD_INIT_STD)
            nn.init.zeros_(self.trunk.out.bias)

    def level_maps(self, image: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``[(x_l, maps_l)]`` coarse to fine (one entry without ``multiscale``)."""
        if not self.multiscale:
            return [(image, self.trunk(image))]
        out: list[tuple[Tensor, Tensor]] = []
        maps: Tensor | None = None
        for size in pyramid_sizes(*image.shape[-2:], self.coarse_size, self.num_levels):
            level = area_resize(image, size)
            if maps is None:
                prior = level.new_zeros(level.shape[0], self.channels, *size)
            else:
                prior = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
            maps = prior + self.trunk(torch.cat([level, prior], dim=1))
            out.append((level, maps))
        return out

    def levels(self, image: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``[(x_l, ŷ_l)]`` coarse to fine: each level's input and its enhanced image."""
        return [(level, fuse(level, maps, self.fusion)) for level, maps in self.level_maps(image)]

    def forward(self, image: Tensor) -> Tensor:
        """``(B, 3, H, W)`` → ``(B, 3, H, W)`` enhanced at full resolution (any size)."""
        level, maps = self.level_maps(image)[-1]
        return fuse(level, maps, self.fusion)

    def components(self, image: Tensor) -> dict[str, Tensor]:
        """The seed's panels at full resolution: additive component r and map x + r,
        multiplicative component M and map x ⊙ M, fusion weight W, fused output (those the
        fusion has)."""
        level, maps = self.level_maps(image)[-1]
        parts = split_maps(maps, self.fusion)
        out: dict[str, Tensor] = {}
        if "additive" in parts:
            out |= {"additive_component": parts["additive"], "additive_map": level + parts["additive"]}
        if "multiplicative" in parts:
            out |= {"multiplicative_component": parts["multiplicative"],
                    "multiplicative_map": level * parts["multiplicative"]}
        if "weight" in parts:
            out["fusion_weight"] = parts["weight"]
        out["fused"] = fuse(level, maps, self.fusion)
        return out


# ---------------------------------------------------------------------------------------------
# LightningModule
# ---------------------------------------------------------------------------------------------


class DACAL(AdversarialMethod):
    """DACAL / MUSPE with the AdaSWGAN loss and its ablations (see the module docstring).

    Batches are ``{input, target, key}``: ``input`` from the low-quality domain, ``target`` an
    unaligned (or weakly aligned) image of the high-quality domain of the same crop size; the
    target is only shown to the critics.

    Choices the seed does not fix (each [GUESS], with the alternative):
        * Loss weights: ``w_identity`` 1000 (DPE's α, for the same pairing of an MSE mean with a
          gradient-norm-1 critic; alternative: WESPE's content-dominant weighting), ``w_content`` 1
          and ``w_tv`` 0. The adversarial term's per-pixel gradient shrinks with the image area
          (the critic's gradient norm is bounded over the whole image) while the MSE mean's does
          not, so the balance between them depends on the crop size, as in DPE.
        * Maps: ``r = tanh(a)`` (alternative: an unbounded residual as DPE); ``M = 4^tanh(b)``
          (alternative: ``1 + softplus``); the head conv starts at N(0, 1e-3²) weights so that
          ŷ ≈ x at the start (DPE starts near the identity with its 1e-3 variance scaling; here the
          trunk keeps PyTorch's default initialisation).
        * Critic: SlicedCritic's trunk is DPE's critic layout with layer norm (SWGAN's critic norm)
          instead of DPE's instance norm, zero padding, and global average pooling before the head;
          the scalar critic replaces only the last layer. The texture high-pass uses the colour
          blur's kernel (alternative: a separate σ). Blur padding: zeros (DPED's; reflect is an
          option in ``GaussianBlur`` but needs levels larger than 10 px). The slide's kernel offsets
          μ_x, μ_y are taken as 0 (a centred kernel).
        * Penalty: one-sided, not squared (the slide's form); alternative ``two_sided`` (WGAN-GP).
          SWGAN's own input penalty (pushed to 0, weighted by (1 − α)) is not offered. Adaptive
          λ: λ0 10, η 0.99, bound 0.05, ×2, 50-step cool-down, first update ignored, never decreased
          (DPE's code; ``lambda_lower_bound`` gives the paper's decrease, methods.md §7.2 suggests
          0.001). SWGAN's feature-space penalty (λ₂ = 10 there) is available as
          ``feature_penalty_weight`` (sliced only) and off by default: the seed does not show it.
        * Multi-scale: the pyramid design above (alternatives: train l, then fine-tune at high
          resolution with the low-resolution output as conditioning, methods.md §7.2; or a halving
          pyramid of fixed ratio 2, whose depth then grows with the test resolution — see above);
          area down-scaling, bilinear up-sampling of the maps, 2 levels, ``coarse_size`` 256 (half
          of DPE's 512 training resolution).
        * Optimiser: Adam lr 1e-4, betas (0.5, 0.9), 5 critic steps per generator step (WGAN-GP's
          settings; alternatives SWGAN's lr 3e-4, betas (0, 0.9), 4 critic steps, or DPE's lr 1e-5
          with 50); one optimiser for both critics (two parameter groups). Each critic step takes
          a fresh batch (``AdversarialMethod``).
        * The video model is :class:`RecurrentDACAL` below (its own choices are listed there).

    Args:
        fusion: perception-based division: ``add`` (MUSPE_l1), ``mul`` (l2), ``mul_then_add``
            (l3) or ``parallel`` (l, default).
        frequency_split: frequency-based division: colour critic on blurred RGB + texture critic
            (True) or one critic on the image.
        sliced: dimension-based division: sliced critics (SWGAN head) or scalar critics.
        penalty: ``one_sided`` ``E[max(0, ‖∇‖ − 1)]`` (the seed's) or ``two_sided`` (WGAN-GP).
        adaptive_penalty: adapt each critic's λ (AdaSWGAN / AdaWGAN) or keep it fixed.
        multiscale: MUSPE_h coarse-to-fine pyramid (True) or one pass (MUSPE_l).
        texture_input: texture critic input, ``highpass`` (gray − blur(gray)) or ``gray``.
        width: enhancer U-Net width (16: DPE's channels).
        coarse_size: long side of the coarsest pyramid level (multiscale).
        levels: pyramid levels, the same in training and at test (multiscale; 2).
        critic_width: first conv width of each critic (16: DPE's critic channels).
        critic_features: d of the sliced head (128).
        critic_projections: K of the sliced head (4).
        blur_kernel_size: taps of the Gaussian blur (21).
        blur_sigma: horizontal blur parameter (``nsig`` in ``dped`` mode, px in ``true_sigma``).
        blur_sigma_y: vertical parameter for the slide's anisotropic Gaussian (None: isotropic).
        blur_mode: ``dped`` (DPED's kernel) or ``true_sigma``.
        w_identity: weight of ``MSE(ŷ, x)`` (1000, DPE's α).
        w_content: weight of the VGG-19 relu5_4 content term between ŷ and x (0 disables it and
            builds no VGG).
        w_tv: weight of TV(ŷ) (TropComplique's mean squared TV; 0 disables it).
        content_backbone: ``vgg19`` (pretrained torchvision weights) or ``random`` (smoke-run proxy).
        content_weights: explicit VGG-19 weight file (default: the torch hub cache).
        lambda_initial: λ0 of every critic's penalty (10).
        lambda_decay: η of the moving average (0.99).
        lambda_upper_bound: grow λ when the average exceeds this (0.05).
        lambda_lower_bound: shrink λ below this (None: never, as DPE's code).
        lambda_cooldown: critic steps between two changes of λ (50).
        feature_penalty_weight: SWGAN's λ₂ for its feature-space penalty (0: off; sliced only).
        critic_steps: critic updates per generator update (5).
        lr: Adam learning rate of both players (1e-4).
        betas: Adam betas of both players ((0.5, 0.9)).
        gradient_clip_val: clip each player's gradient norm (None).
        max_iterations: stop after this many generator steps (None: trainer limits).
    """

    def __init__(
        self,
        fusion: Fusion = "parallel",
        frequency_split: bool = True,
        sliced: bool = True,
        penalty: PenaltyMode = "one_sided",
        adaptive_penalty: bool = True,
        multiscale: bool = False,
        texture_input: TextureInput = "highpass",
        width: int = 16,
        coarse_size: int = 256,
        levels: int = 2,
        critic_width: int = 16,
        critic_features: int = 128,
        critic_projections: int = 4,
        blur_kernel_size: int = 21,
        blur_sigma: float = 3.0,
        blur_sigma_y: float | None = None,
        blur_mode: Literal["dped", "true_sigma"] = "dped",
        w_identity: float = 1000.0,
        w_content: float = 1.0,
        w_tv: float = 0.0,
        content_backbone: Literal["vgg19", "random"] = "vgg19",
        content_weights: str | None = None,
        lambda_initial: float = 10.0,
        lambda_decay: float = 0.99,
        lambda_upper_bound: float = 0.05,
        lambda_lower_bound: float | None = None,
        lambda_cooldown: int = 50,
        feature_penalty_weight: float = 0.0,
        critic_steps: int = 5,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        gradient_clip_val: float | None = None,
        max_iterations: int | None = None,
    ) -> None:
        super().__init__(critic_steps=critic_steps, gradient_clip_val=gradient_clip_val,
                         max_iterations=max_iterations)
        if penalty not in ("one_sided", "two_sided"):
            raise ValueError(f"penalty must be 'one_sided' or 'two_sided', got {penalty!r}")
        if texture_input not in ("gray", "highpass"):
            raise ValueError(f"texture_input must be 'gray' or 'highpass', got {texture_input!r}")
        if feature_penalty_weight and not sliced:
            raise ValueError("feature_penalty_weight needs sliced critics (it regularises the sliced head)")
        self.save_hyperparameters()
        self.generator = self.build_generator()
        inputs = {"color": 3, "texture": 1} if frequency_split else {"image": 3}
        self.critics = nn.ModuleDict({
            name: SlicedCritic(channels, critic_width, sliced, critic_features, critic_projections)
            for name, channels in inputs.items()})
        self.lambdas = nn.ModuleDict({
            name: AdaptiveLambda(initial=lambda_initial, decay=lambda_decay, upper_bound=lambda_upper_bound,
                                 cooldown=lambda_cooldown, lower_bound=lambda_lower_bound,
                                 adaptive=adaptive_penalty)
            for name in inputs})
        self.blur = GaussianBlur(blur_kernel_size, blur_sigma, mode=blur_mode, padding="zeros", sigma_y=blur_sigma_y)
        self.content_loss = ContentLoss(content_backbone, content_weights) if w_content > 0 else None
        self._penalties: dict[str, Tensor] = {}

    def build_generator(self) -> DACALEnhancer:
        """The enhancer, from the saved hyperparameters (the video subclass builds its own)."""
        hp = self.hparams
        return DACALEnhancer(hp.width, hp.fusion, hp.multiscale, hp.coarse_size, hp.levels)

    @property
    def full_resolution(self) -> str:  # type: ignore[override]
        """How protocol ``f`` is produced (printed in captions)."""
        if self.hparams.multiscale:
            return (f"whole image, coarse to fine: {self.hparams.levels} levels from long side "
                    f"{self.hparams.coarse_size} px to full resolution, one set of weights, no tiles")
        return "whole image at full resolution (U-Net with global average pooling: any size, no padding, no tiles)"

    def proxy_notes(self) -> list[str]:
        notes = [DESIGN_NOTE]
        if self.content_loss is not None and self.hparams.content_backbone == "random":
            notes.append(RANDOM_CONTENT_NOTE)
        return notes

    # -- critic inputs ------------------------------------------------------------------------
    def critic_views(self, image: Tensor) -> dict[str, Tensor]:
        """What each critic sees: blurred RGB and (high-pass) gray, or the image itself."""
        if not self.hparams.frequency_split:
            return {"image": image}
        gray = rgb_to_gray(image)
        texture = gray - self.blur(gray) if self.hparams.texture_input == "highpass" else gray
        return {"color": self.blur(image), "texture": texture}

    def _levels(self, batch: dict[str, Any], with_grad: bool) -> list[tuple[Tensor, Tensor]]:
        image = batch["input"]
        if with_grad:
            return self.generator.levels(image)
        with torch.no_grad():
            return self.generator.levels(image)

    # -- losses -------------------------------------------------------------------------------
    def critic_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Σ over critics and levels of ``E[C(ŷ)] − E[C(y)] + λ·P (+ λ₂·P_feat)``."""
        target = batch["target"]
        if target.shape != batch["input"].shape:
            raise ValueError(f"DACAL needs target crops of the input's size (its penalty mixes them), got "
                             f"{tuple(target.shape)} for inputs of {tuple(batch['input'].shape)}")
        levels = self._levels(batch, with_grad=False)
        mode = self.hparams.penalty
        loss = target.new_zeros(())
        distances = {name: target.new_zeros(()) for name in self.critics}
        penalties = {name: target.new_zeros(()) for name in self.critics}
        feature_penalties = {name: target.new_zeros(()) for name in self.critics}
        for level, fake in levels:
            real_views = self.critic_views(area_resize(target, level.shape[-2:]))
            fake_views = self.critic_views(fake)
            for name, critic in self.critics.items():
                real, generated = real_views[name], fake_views[name]
                real_features, fake_features = critic.features(real), critic.features(generated)
                distance = critic.score(real_features).mean() - critic.score(fake_features).mean()
                alpha = self.rand(real.shape[0], 1, 1, 1, like=real)
                penalty = gradient_penalty(critic, real, generated, alpha, mode)
                loss = loss - distance + self.lambdas[name]() * penalty
                if self.hparams.feature_penalty_weight:
                    feature_penalty = sliced_feature_penalty(critic.head, real_features, fake_features,
                                                             self.rand(real.shape[0], 1, like=real))
                    loss = loss + self.hparams.feature_penalty_weight * feature_penalty
                    feature_penalties[name] = feature_penalties[name] + feature_penalty.detach()
                distances[name] = distances[name] + distance.detach()
                penalties[name] = penalties[name] + penalty.detach()
        # The adapters get the unweighted penalty, averaged over levels (and over ranks later).
        self._penalties = {name: value / len(levels) for name, value in penalties.items()}
        terms: dict[str, Tensor] = {}
        for name in self.critics:
            terms |= {f"{name}_distance": distances[name], f"{name}_penalty": self._penalties[name],
                      f"{name}_lambda": self.lambdas[name]()}
            if self.hparams.feature_penalty_weight:
                terms[f"{name}_feature_penalty"] = feature_penalties[name] / len(levels)
        return loss, terms

    def before_critic_optimizer_step(self) -> None:
        """Stiefel projection of the sliced heads' gradients (before clipping and the step)."""
        for critic in self.critics.values():
            critic.project_gradients()

    def after_critic_step(self) -> None:
        """QR retraction of the projections; each λ gets its critic's unweighted, synced penalty."""
        for name, critic in self.critics.items():
            critic.retract()
            self.lambdas[name].update(self.synced_mean(self._penalties[name]))
        self._penalties = {}

    def generator_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Σ over levels of ``−Σ_critics E[C(ŷ)] + w_id·MSE(ŷ, x) (+ w_c·VGG + w_tv·TV)``."""
        hp = self.hparams
        totals: dict[str, Tensor] = {}
        loss = batch["input"].new_zeros(())
        for level, enhanced in self._levels(batch, with_grad=True):
            views = self.critic_views(enhanced)
            terms = {"adversarial": sum(critic(views[name]).mean() for name, critic in self.critics.items()),
                     "identity": F.mse_loss(enhanced, level)}
            loss = loss - terms["adversarial"] + hp.w_identity * terms["identity"]
            if self.content_loss is not None:
                terms["content"] = self.content_loss(as_frames(enhanced), as_frames(level))
                loss = loss + hp.w_content * terms["content"]
            if hp.w_tv:
                terms["tv"] = tv_loss(as_frames(enhanced), "mean_sq")
                loss = loss + hp.w_tv * terms["tv"]
            for name, value in terms.items():
                totals[name] = totals.get(name, 0) + value.detach()
        return loss, totals

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        hp = self.hparams
        betas = tuple(hp.betas)
        return [
            torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=betas),
            torch.optim.Adam([{"params": critic.parameters()} for critic in self.critics.values()],
                             lr=hp.lr, betas=betas),
        ]


# ---------------------------------------------------------------------------------------------
# Recurrent DACAL (video)
# ---------------------------------------------------------------------------------------------


class RecurrentDACALEnhancer(DACALEnhancer):
    """DACAL's single-scale enhancer with a ConvGRU state at the U-Net bottleneck.

    At frame t the trunk's H/16 encoder features ``f_t`` update the state
    ``h_t = GRU(f_t, h_{t−1})`` (``h_0 = 0``), and the decoder and the global branch read
    ``f_t + P(h_t)``, where ``P`` is a 1×1 conv initialised to zero: with image-DACAL weights
    loaded, the recurrent enhancer starts out as per-frame DACAL, frame for frame, and the
    fine-tuning decides how much the state changes. Everything else (trunk, heads, fusion) is
    :class:`DACALEnhancer`'s, parameter names included, so an image checkpoint loads into it.

    Args:
        width: U-Net width; the state has ``8·width`` channels at H/16.
        fusion: how the additive and multiplicative streams combine.
        gru_kernel: kernel of the ConvGRU's convolutions (3).
    """

    def __init__(self, width: int = 16, fusion: Fusion = "parallel", gru_kernel: int = 3) -> None:
        super().__init__(width, fusion, multiscale=False)
        channels = 8 * width
        self.gru = ConvGRUCell(channels, channels, gru_kernel)
        self.state_to_features = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.state_to_features.weight)
        nn.init.zeros_(self.state_to_features.bias)

    def step(self, frame: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        """Enhance one frame ``(B, 3, H, W)`` given the previous state (None: first frame).

        Returns:
            The enhanced frame and the new state ``(B, 8w, ⌈H/16⌉, ⌈W/16⌉)``.
        """
        new_state: list[Tensor] = []

        def recur(features: Tensor) -> Tensor:
            if state is not None and state.shape[-2:] != features.shape[-2:]:
                raise ValueError(f"frame of {tuple(frame.shape[-2:])} does not match the video's earlier frames "
                                 f"(state {tuple(state.shape[-2:])} vs features {tuple(features.shape[-2:])})")
            updated = self.gru(features, state)
            new_state.append(updated)
            return features + self.state_to_features(updated)

        maps = self.trunk(frame, bottleneck=recur)
        return fuse(frame, maps, self.fusion), new_state[0]

    def clip(self, clip: Tensor, state: Tensor | None = None, detach_every: int | None = None) -> tuple[Tensor, Tensor]:
        """Enhance a clip ``(B, T, 3, H, W)`` frame by frame from ``state``.

        Args:
            clip: the frames in order.
            state: the state left by the previous frame (None: the clip starts a video).
            detach_every: truncate back-propagation through time every this many frames
                (None: through the whole clip).

        Returns:
            ``(B, T, 3, H, W)`` enhanced frames and the state after the last frame.
        """
        outputs = []
        for t in range(clip.shape[1]):
            if detach_every and state is not None and t % detach_every == 0:
                state = state.detach()
            out, state = self.step(clip[:, t], state)
            outputs.append(out)
        assert state is not None
        return torch.stack(outputs, dim=1), state

    def levels(self, image: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``[(x, ŷ)]``: a clip through the recurrence, an image as a one-frame clip."""
        if image.ndim == 5:
            return [(image, self.clip(image)[0])]
        return [(image, self.step(image, None)[0])]

    def forward(self, image: Tensor) -> Tensor:
        """A clip ``(B, T, 3, H, W)`` from a zero state, or one image as a video's first frame."""
        return self.levels(image)[0][1]


class RecurrentDACAL(DACAL):
    """Recurrent DACAL for video (the seed: "Video Quality Mapping = Image Quality Mapping +
    Temporal Smoothing"; arXiv 1910.10455 trains DACAL recurrently for video; methods.md §7.2).

    The enhancer is :class:`RecurrentDACALEnhancer`: DACAL's U-Net with a ConvGRU state at the
    H/16 bottleneck, fed back through a zero-initialised 1×1 conv, so that fine-tuning from an
    image DACAL checkpoint (``init_checkpoint``) starts from per-frame DACAL exactly. Training
    batches are clips ``(B, T, 3, H, W)`` (``datamodules.video``); the state starts at zero with
    every clip and back-propagation runs through the whole clip, or is truncated every
    ``bptt_frames`` frames (truncated BPTT over clips). Every DACAL critic judges every frame;
    ``temporal_critic`` adds a critic of the same kind on consecutive-frame differences of the
    blurred frames, ``blur(ŷ_t) − blur(ŷ_{t−1})`` against the target clips' — the low-frequency
    change that exposure flicker and colour drift leave and a steady video does not. It has its
    own adaptive λ and sits in the critic player's optimiser with the others.

    Inference streams frame by frame with constant memory: only the last state is kept
    (:meth:`stream`, and in evaluation one state per video, carried across the consecutive
    chunks of the video stream and dropped after its last frame). Images (4-D batches) are
    treated as the first frame of a video.

    Choices the sources leave open (each [GUESS], with the alternative):
        * State: a ConvGRU at the U-Net bottleneck (methods.md §7.2's default; state of
          ``8·width`` channels at H/16, 3×3 gates), added to the features through a zero-initialised
          1×1 conv. Alternative: feeding the previous output ``ŷ_{t−1}`` as extra input channels —
          cheaper, but it needs a change of the first conv (no clean start from image weights) and
          copies a misaligned previous frame under motion, where a state at H/16 only carries
          coarse, global information (exposure, colour cast), which is what flickers.
        * Training clips of ``T`` = 4–5 frames (datamodule ``clip_length``), zero initial state per
          clip, full BPTT within a clip (``bptt_frames`` None). Alternative: carry the state across
          consecutive clips of a video (stateful TBPTT), which needs an ordered sampler.
        * Temporal critic on blurred RGB frame differences (on by default). Alternative: a
          non-adversarial temporal loss, e.g. an L1 between the output's and the input's warped
          frame differences — it needs optical flow and, with flickering inputs, would teach the
          flicker back.
        * Fine-tuning loads the generator, critics and λ state of the image checkpoint (not its
          optimiser state or step counters: the fine-tuning budget counts from zero).
        * Single scale only (MUSPE_l's enhancer): ``multiscale`` is refused.

    Args:
        init_checkpoint: a Lightning checkpoint of an image :class:`DACAL` run (same widths and
            fusion) to start from; None starts from scratch.
        temporal_critic: add the temporal-difference critic.
        bptt_frames: truncate back-propagation through time every this many frames (None: the
            whole clip).
        gru_kernel: kernel of the ConvGRU's convolutions.
        **dacal_args: every :class:`DACAL` argument (``multiscale`` must stay False).
    """

    video: ClassVar[bool] = True

    def __init__(self, init_checkpoint: str | None = None, temporal_critic: bool = True,
                 bptt_frames: int | None = None, gru_kernel: int = 3, **dacal_args: Any) -> None:
        if dacal_args.get("multiscale"):
            raise ValueError("RecurrentDACAL is single-scale (MUSPE_l's enhancer); multiscale must be false")
        if bptt_frames is not None and bptt_frames < 1:
            raise ValueError(f"bptt_frames must be >= 1 or None, got {bptt_frames}")
        super().__init__(**dacal_args)
        hp = self.hparams
        if temporal_critic:
            self.critics["temporal"] = SlicedCritic(3, hp.critic_width, hp.sliced, hp.critic_features,
                                                    hp.critic_projections)
            self.lambdas["temporal"] = AdaptiveLambda(
                initial=hp.lambda_initial, decay=hp.lambda_decay, upper_bound=hp.lambda_upper_bound,
                cooldown=hp.lambda_cooldown, lower_bound=hp.lambda_lower_bound, adaptive=hp.adaptive_penalty)
        self.loaded_from_checkpoint: list[str] = []
        if init_checkpoint:
            self.loaded_from_checkpoint = self.load_image_checkpoint(init_checkpoint)
        self._streams: dict[str, Tensor] = {}

    def build_generator(self) -> RecurrentDACALEnhancer:
        hp = self.hparams
        return RecurrentDACALEnhancer(hp.width, hp.fusion, hp.gru_kernel)

    @property
    def full_resolution(self) -> str:  # type: ignore[override]
        return "whole frame at stored resolution, streamed frame by frame with a ConvGRU state"

    # -- initialisation from an image DACAL ----------------------------------------------------
    def load_image_checkpoint(self, path: str | Path) -> list[str]:
        """Copy the matching tensors of an image DACAL checkpoint into this model.

        Generator (trunk and heads), critics and λ state are taken; the ConvGRU, its projection
        and the temporal critic keep their initialisation; step counters and optimiser state are
        not taken. Returns the names loaded.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: not a DACAL checkpoint, or a tensor of another shape (other widths).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"init_checkpoint {path} does not exist (train the image DACAL run first)")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        source = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
        if not isinstance(source, dict):
            raise ValueError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
        own = self.state_dict()
        skipped = {"generator_steps", "critic_updates"}
        loaded = []
        for name, value in source.items():
            if name in skipped or name not in own:
                continue
            if own[name].shape != value.shape:
                raise ValueError(f"{path}: {name} has shape {tuple(value.shape)}, this model's "
                                 f"{tuple(own[name].shape)} (different width or fusion than the image run?)")
            own[name] = value
            loaded.append(name)
        trunk = [name for name in own if name.startswith("generator.trunk.")]
        missing = [name for name in trunk if name not in loaded]
        if missing:
            raise ValueError(f"{path} is not an image DACAL checkpoint of this configuration: "
                             f"{len(missing)} enhancer tensors missing, e.g. {missing[0]}")
        self.load_state_dict(own)
        return loaded

    # -- clips ----------------------------------------------------------------------------------
    def critic_views(self, image: Tensor) -> dict[str, Tensor]:
        """Per-frame DACAL views of every frame, plus the temporal view of a clip."""
        if image.ndim != 5:
            return super().critic_views(image)
        frames = image.flatten(0, 1)
        views = super().critic_views(frames)
        if "temporal" in self.critics:
            if image.shape[1] < 2:
                raise ValueError("the temporal critic needs clips of at least 2 frames (clip_length >= 2)")
            # The colour critic's view is already the blurred frames (frequency split on): reuse it.
            blurred = (views["color"] if "color" in views else self.blur(frames)).unflatten(0, image.shape[:2])
            views["temporal"] = (blurred[:, 1:] - blurred[:, :-1]).flatten(0, 1)
        return views

    def _levels(self, batch: dict[str, Any], with_grad: bool) -> list[tuple[Tensor, Tensor]]:
        clip = batch["input"]
        if clip.ndim != 5:
            raise ValueError(f"RecurrentDACAL trains on clips (B, T, 3, H, W), got {tuple(clip.shape)}: "
                             "use video data (datamodules.video.VideoDataModule)")
        with torch.set_grad_enabled(with_grad):
            return [(clip, self.generator.clip(clip, detach_every=self.hparams.bptt_frames)[0])]

    # -- streaming inference ------------------------------------------------------------------
    def stream(self, frames: Iterable[Tensor]) -> Iterator[Tensor]:
        """Enhance a video frame by frame with constant memory (no gradients).

        Args:
            frames: ``(B, 3, H, W)`` frames in order (any iterable: a reader, a generator).

        Yields:
            The enhanced frames, one per input frame; only the last state is kept.
        """
        state = None
        for frame in frames:
            with torch.no_grad():
                out, state = self.generator.step(frame, state)
            yield out

    def enhance_clip(self, batch: dict[str, Any]) -> Tensor:
        """One chunk of each video in the batch, continuing the video's state from its previous chunk.

        ``frame_start`` 0 starts a video; a later chunk needs the state its predecessor left
        (chunks of a video arrive in order, possibly interleaved with other videos' chunks). The
        state is dropped after the video's last frame (``num_frames``).
        """
        clip = batch["input"]
        keys = batch.get("key")
        if keys is None or "frame_start" not in batch:
            return self.generator.clip(clip)[0]
        starts = [int(s) for s in batch["frame_start"]]
        totals = [int(n) for n in batch["num_frames"]] if "num_frames" in batch else [None] * len(keys)
        outputs = []
        for i, key in enumerate(keys):
            if starts[i] == 0:
                state = None
            elif key in self._streams:
                state = self._streams.pop(key)
            else:
                raise RuntimeError(f"video {key!r}: a chunk starting at frame {starts[i]} arrived without "
                                   "the state of its previous chunk (chunks must come in order)")
            out, state = self.generator.clip(clip[i:i + 1], state)
            outputs.append(out)
            finished = totals[i] is not None and starts[i] + clip.shape[1] >= totals[i]
            if not finished:
                self._streams[key] = state.detach()
        return torch.cat(outputs, dim=0)

    def on_test_start(self) -> None:
        self._streams = {}

    def on_validation_start(self) -> None:
        self._streams = {}

    def on_predict_start(self) -> None:
        self._streams = {}
