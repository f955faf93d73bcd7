"""DPE: Deep Photo Enhancer — two-way GAN with individual BN and adaptive WGAN-GP.

Reference:
    Y.-S. Chen, Y.-C. Wang, M.-H. Kao, Y.-Y. Chuang. "Deep Photo Enhancer: Unpaired Learning for
    Image Enhancement from Photographs with GANs". CVPR 2018.
    Official repository (README, architecture figures): https://github.com/nothinglo/Deep-Photo-Enhancer
    (commit c8e94762a0). The authors' TF code circulates only in zips and mirrors; what is
    followed here was read in mirrors of its ``DATA.py`` (FLAGS of experiment 736
    "WGAN-v24-cycleganD2", ``NetInfo("netG")`` / ``NetInfo("netD")``, ``random_pad_to_size``,
    ``data_augmentation``, the train/test loaders) and in the λ adapter of the PyTorch port
    MrRobot2211/pytorch-deep-photo-enhancer (``libs/compute.py``). Spec sheet: methods.md §1.7, §6.

What is built:
    * Generator ``GlobalUNet`` (§6.1): encoder e1–e5 (3×3 then four 5×5 stride-2 convs, 16-32-64-
      128-128 channels); a global branch g1–g4 (two 5×5 stride-2 convs, a 'valid' conv that
      collapses the remaining map to 1×1, SELU, a linear 1×1 conv); a decoder that concatenates
      the global feature tiled over the H/16 map, then four nearest-neighbour ×2 up-samplings, each
      followed by concatenation of the *raw* (pre-activation) encoder conv output; a residual
      output ``input + conv(...)`` with no clamp. "act" is SELU then BatchNorm. Every conv uses TF
      'SYMMETRIC' padding (edge pixel repeated) except the 'valid' global conv and the 1×1 convs.
      3,335,395 parameters at 512² (1,048,704 of them in the 8×8 global conv): the spec's 3.34 M.
    * Critic ``DPECritic`` (§6.2): six symmetric-padded convs (3×3, then five 5×5 stride 2;
      16-32-64-128-128-128), each followed by LReLU(0.2) then InstanceNorm, a 'valid' conv to one
      channel whose kernel covers the remaining map (16×16 at 512²), and the mean: one WGAN score
      per image. 1,122,689 parameters at 512²: the spec's 1.12 M.
    * Variants (``variant``): ``gan_2way`` — G_X: X→Y (``generator``), G_Y: Y→X
      (``inverse_generator``), critics D_Y (``critic_y``, real y vs y' = G_X(x)) and D_X
      (``critic_x``, real x vs x' = G_Y(y)), and the primed generators of the cycle
      (x'' = G'_Y(y'), y'' = G'_X(x')); ``gan_1way`` — G_X and D_Y only; ``supervised`` — G_X on
      aligned pairs, no critic.
    * Individual BN (iBN): G'_X runs G_X's very convolutions (same ``Parameter`` objects) with its
      own BatchNorm layers, which live in ``generator_primed_norms`` (likewise G'_Y). A generator
      takes an optional BN set as a call argument, so the weights exist once and the state dict,
      the optimiser and the enhancer's parameter count (``generator`` alone: 3.34 M) see them once.
      BN statistics are per device (no SyncBN), as on the single GPU of the original.
    * Losses (§6.3), MSE means over the valid rectangle: identity I = ‖x − y'‖² + ‖y − x'‖², cycle
      C = ‖x − x''‖² + ‖y − y''‖², A_D = D_X(x) − D_X(x') + D_Y(y) − D_Y(y'), A_G = D_X(x') + D_Y(y');
      critic objective −A_D + λ_X·P_X + λ_Y·P_Y with the one-sided, non-squared penalty
      P = E[max(0, ‖∇D(x̂)‖ − 1)] at random interpolates; generator objective −A_G + α·I + 10α·C,
      α = 1000 (``identity_weight``, ``cycle_weight``: FLAGS ``loss_source_data_term_weight`` 1e3
      and ``loss_constant_term_weight`` 1e4). The 1-way GAN minimises −D_Y(y') + α·‖x − y'‖².
    * Adaptive λ (§1.7, ``critics.AdaptiveLambda``), one per critic: λ0 = 10, moving average
      η = 0.99 of the unweighted penalty (averaged over DDP ranks first), ×2 when it exceeds 0.05
      with the cool-down counter at 0, average reset, 50-step cool-down, first update ignored. The
      paper's decrease rule is ``lambda_lower_bound`` (off by default, as in the released code).
      λ, the average and the counters are buffers, hence in checkpoints.
    * Recipe (§6.4): 50 critic steps per generator step (``critic_steps``; each critic step takes a
      fresh batch, ``AdversarialMethod``), Adam lr 1e-5 for both players with TF's defaults
      (β = 0.9, 0.999, ε = 1e-8, PyTorch's too), batch 3 and 150 epochs (data and trainer
      configs), no gradient clipping (the code's clip value is 1e8).

Padding, sizes and where the padded region goes (§6.4, §6.7):
    * The nets need a fixed square input of ``input_size`` (512 in the paper): the global 'valid'
      conv has kernel ``input_size // 64`` (8 at 512) and the critic's last conv
      ``input_size // 32`` (16 at 512), so ``input_size`` must be a multiple of 64. Smaller sizes
      (64, 128, ...) give the same layers with smaller valid kernels — a different, smaller
      parameter count, reported by ``proxy_notes``. At 64 the global branch's BN sees 1×1 maps,
      so training there needs batches of at least 2.
    * Every image (training crop, test photo) is first fitted to the canvas: a long side above
      ``input_size`` is down-scaled to it with area interpolation (keeping the aspect ratio); then
      it is padded at the bottom and right to ``input_size``² with numpy/TF 'symmetric' padding,
      and its valid rectangle (top-left anchored) is kept. This is DPE's ``random_pad_to_size``
      as its training and test loaders call it (``pad_symmetric=True``, ``use_random=False``; the
      code asserts ``data_use_random_pad == False``); the alternative it offers is zero padding.
    * What the generator writes outside the valid rectangle is discarded: generated images are
      cropped to their source's rectangle and **re-padded with the same rule** before they reach
      a critic, the gradient penalty, a primed generator or a loss, and ``forward`` returns the
      crop. So the padded region never influences a loss or a metric (tested by corrupting it), and
      real and generated images carry the same kind of padding in front of the critic. DPE crops its
      data terms to ``rect``; whether its critics saw the raw padded generator canvas was not
      inspected.
    * Training crops: DPE trains on whole photos with long side 512, padded to 512². Here training
      batches follow the same fitting rule, so crops of exactly ``input_size`` fill the canvas
      (no padding, no wasted compute: use ``crop_size = input_size`` for quick runs), smaller crops
      are padded and larger ones down-scaled. FiveK photos of different shapes come whole in one
      batch (``UnpairedDataModule(pad_mode="canvas")``, batch 3): the batch carries each photo's
      valid size (``input_hw``/``target_hw``), and each photo gets its own rectangle here, so the
      data module's zero padding is replaced by DPE's rule and never reaches a loss (tested).
    * Inputs larger than ``input_size`` at evaluation: ``forward`` (hence ``enhance`` and the
      ``_f`` protocol) down-scales the long side to ``input_size`` (area), enhances on the canvas,
      and up-scales the output to the original size with bilinear interpolation (alternatives:
      bicubic, which overshoots at edges; or up-sampling only the residual and adding it to the
      full-resolution input, which keeps the input's detail but is not the protocol the suite
      states). DPE's demo instead runs a dilated full-resolution variant, not reproduced here.

Choices where the sources are silent (each with its alternative):
    * Supervised variant: MSE between the output and the aligned target ([GUESS], §6.3; a user
      reports log(MSE), nothinglo#33). It has no critic, ignores ``critic_steps``, and needs
      paired batches; with unpaired data it would silently learn the wrong thing.
    * LR decay after epoch 75: linear to 0 at epoch 150 ([GUESS]; the ports decay linearly too),
      stepped once per epoch by ``AdversarialMethod``. Alternative: step decay.
    * Initialisation: TF ``variance_scaling_initializer(factor=1e-3)`` (fan-in, truncated normal)
      for every conv weight of G and D (FLAGS ``net*_init_method 'var_scale'``, ``init_weight
      1e-3``), zero biases, norm layers γ = 1, β = 0; with the residual output the generator
      starts at the identity. The mirror read here builds it with Keras' ``VarianceScaling(1e-3)``
      (fan-in, truncated normal): the same scale up to the truncation correction.
    * BatchNorm: learnt scale and shift ([GUESS]: the code calls ``bn_layer(True, True)``, whose
      body was not inspected; with affine BN the count is the spec's 3.34 M, without it 3.33 M),
      eps 1e-3 (TF), PyTorch momentum 0.1 (TF's decay was not inspected); evaluation uses the
      running statistics of G_X's own (unprimed) BN set. The critic step runs the generators in training mode (batch
      statistics, running statistics updated) under ``no_grad``, as one TF graph in training mode
      would. InstanceNorm in the critic: affine ([GUESS]; 992 parameters, too few to show in the
      1.12 M), eps 1e-5.
    * Concatenation orders: [decoder, raw skip] and [local, tiled global]; either order gives the
      same function class.
    * The gradient penalty's interpolates mix the padded real and re-padded fake canvases with one
      α per image, drawn from the checkpointed ``loss_rng``.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.base import AdversarialMethod
from baselines.critics import AdaptiveLambda, PenaltyMode, gradient_penalty
from baselines import layers
from baselines.layers import SymmetricConv2d, symmetric_indices, symmetric_pad, tf_variance_scaling_  # noqa: F401

#: Paper canvas side (FLAGS ``data_image_size``).
PAPER_INPUT_SIZE = 512
#: Variance-scaling factor of every conv (FLAGS ``netG_init_weight`` / ``netD_init_weight``).
INIT_SCALE = 1e-3
#: BatchNorm epsilon (TF's default).
BN_EPS = 1e-3

Variant = Literal["supervised", "gan_2way", "gan_1way"]

# ---------------------------------------------------------------------------------------------
# Padding, canvas and schedule helpers (pure functions)
# ---------------------------------------------------------------------------------------------


def fit_long_side(image: Tensor, size: int) -> Tensor:
    """Area-downscale ``(B, C, H, W)`` so that its long side is at most ``size`` (aspect kept).

    Images that already fit are returned unchanged; a side never drops below 1 pixel.
    """
    h, w = image.shape[-2:]
    long = max(h, w)
    if long <= size:
        return image
    new = (max(1, round(h * size / long)), max(1, round(w * size / long)))
    return F.interpolate(image, size=new, mode="area")


def pad_to_canvas(image: Tensor, size: int) -> tuple[Tensor, tuple[int, int]]:
    """Symmetric-pad ``(B, C, h, w)`` at the bottom and right to ``(B, C, size, size)``.

    DPE's ``random_pad_to_size`` with ``pad_symmetric=True, use_random=False``.

    Returns:
        The canvas and the valid rectangle ``(h, w)``, anchored at the top-left corner.
    """
    h, w = image.shape[-2:]
    if h > size or w > size:
        raise ValueError(f"an image of {h}×{w} does not fit a {size}×{size} canvas; fit_long_side first")
    return symmetric_pad(image, 0, size - w, 0, size - h), (h, w)


def crop_rect(canvas: Tensor, rect: tuple[int, int]) -> Tensor:
    """The valid top-left ``rect = (h, w)`` of a canvas."""
    return canvas[..., : rect[0], : rect[1]]


Rect = tuple[int, int] | list[tuple[int, int]]
"""A valid rectangle shared by the whole batch, or one per sample (photos of different shapes)."""


def repad(canvas: Tensor, rect: Rect, size: int) -> Tensor:
    """Keep each sample's valid rectangle and re-pad the rest by the input's (symmetric) rule."""
    if isinstance(rect, tuple):
        return pad_to_canvas(crop_rect(canvas, rect), size)[0]
    return torch.cat([pad_to_canvas(crop_rect(canvas[i : i + 1], r), size)[0] for i, r in enumerate(rect)])


def valid_mse(a: Tensor, b: Tensor, rect: Rect) -> Tensor:
    """Mean squared difference over the valid pixels only (every valid pixel weighs the same)."""
    if isinstance(rect, tuple):
        return F.mse_loss(crop_rect(a, rect), crop_rect(b, rect))
    squared = sum(((crop_rect(a[i : i + 1], r) - crop_rect(b[i : i + 1], r)) ** 2).sum() for i, r in enumerate(rect))
    return squared / sum(a.shape[1] * h * w for h, w in rect)


def linear_decay_factor(epoch: int, start: int, end: int) -> float:
    """LR multiplier: 1 before ``start``, then linear to 0 at ``end`` (clamped at 0)."""
    if epoch < start:
        return 1.0
    return max(0.0, 1.0 - (epoch - start) / max(end - start, 1))


def init_conv_(module: nn.Module, scale: float = INIT_SCALE) -> None:
    """TF ``variance_scaling_initializer(factor=scale)`` for every conv weight, zero biases.

    ``layers.tf_variance_scaling_`` draws that initializer with factor 2 (a truncated normal of
    std ``sqrt(1.3 * 2 / fan_in)`` cut at two std); multiplying the draw by ``sqrt(scale / 2)``
    scales the std and the cut together, which is the same initializer with factor ``scale``.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            with torch.no_grad():
                tf_variance_scaling_(m.weight).mul_(math.sqrt(scale / 2.0))
                if m.bias is not None:
                    m.bias.zero_()


def _check_input_size(input_size: int) -> None:
    if input_size < 64 or input_size % 64:
        raise ValueError(f"input_size must be a positive multiple of 64 (the global branch halves "
                         f"the canvas 6 times), got {input_size}")


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------


def generator_norms() -> nn.ModuleDict:
    """One set of the generator's BatchNorm layers (a generator owns one; iBN adds another)."""
    return layers.global_unet_norms(16, BN_EPS)


class GlobalUNet(layers.GlobalUNet):
    """DPE's generator, the "global U-Net" (methods.md §6.1): the shared trunk of
    ``layers.GlobalUNet`` at DPE's settings (width 16, SELU → BN, 'valid' global conv) plus the
    residual input, initialised with variance scaling 1e-3.

    Args:
        input_size: side of the square canvas it runs on (512 in the paper; a multiple of 64).
            The global 'valid' conv has kernel ``input_size // 64``.
    """

    def __init__(self, input_size: int = PAPER_INPUT_SIZE) -> None:
        _check_input_size(input_size)
        super().__init__(3, 3, width=16, activation="selu", global_branch="valid", input_size=input_size,
                         bn_eps=BN_EPS)
        init_conv_(self)

    def forward(self, x: Tensor, norms: nn.ModuleDict | None = None) -> Tensor:
        """Enhance a canvas.

        Args:
            x: ``(B, 3, S, S)`` with ``S = input_size``, in [0, 1].
            norms: BatchNorm set to use instead of the generator's own (iBN: the primed
                generator is this net called with its own set); every conv is shared.

        Returns:
            ``(B, 3, S, S)``: ``x`` plus the predicted residual, not clamped.
        """
        if self.training and self.input_size == 64 and len(x) < 2:
            raise ValueError("at input_size 64 the global branch's BatchNorm sees 1×1 maps, so training batches "
                             "need at least 2 images (choose a batch size that divides the epoch, or a larger "
                             "input_size)")
        return x + super().forward(x, norms)


class DPECritic(nn.Module):
    """DPE's WGAN critic (methods.md §6.2): one unbounded score per image.

    Args:
        input_size: canvas side (512 in the paper; a multiple of 64). The last conv is 'valid'
            with kernel ``input_size // 32``, which reduces the remaining map to 1×1.
    """

    #: (in, out, kernel, stride) of the symmetric-padded convs, each followed by LReLU(0.2) → IN.
    LAYERS: ClassVar[tuple[tuple[int, int, int, int], ...]] = (
        (3, 16, 3, 1), (16, 32, 5, 2), (32, 64, 5, 2), (64, 128, 5, 2), (128, 128, 5, 2), (128, 128, 5, 2),
    )

    def __init__(self, input_size: int = PAPER_INPUT_SIZE) -> None:
        super().__init__()
        _check_input_size(input_size)
        self.input_size = input_size
        layers: list[nn.Module] = []
        for c_in, c_out, k, s in self.LAYERS:
            layers += [SymmetricConv2d(c_in, c_out, k, s), nn.LeakyReLU(0.2), nn.InstanceNorm2d(c_out, affine=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(128, 1, input_size // 32)
        init_conv_(self)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 3, S, S) -> (B,)`` scores (DPE's ``reduce_mean`` over the 1×1×1 output)."""
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"DPECritic runs on {self.input_size}² canvases, got {tuple(x.shape[-2:])}")
        return self.head(self.features(x)).mean(dim=(1, 2, 3))


# ---------------------------------------------------------------------------------------------
# LightningModule
# ---------------------------------------------------------------------------------------------


class DPE(AdversarialMethod):
    """Deep Photo Enhancer: supervised, 1-way GAN or 2-way GAN with iBN and adaptive WGAN-GP.

    Batches are ``{input, target, key}``. For the GAN variants ``input`` holds x (domain X) and
    ``target`` holds y (domain Y), drawn independently (unpaired); the supervised variant needs
    ``target`` aligned with ``input``.

    Args:
        variant: ``"gan_2way"`` (paper's main model), ``"gan_1way"`` or ``"supervised"``.
        input_size: canvas side the nets run on (512); a multiple of 64.
        critic_steps: critic updates per generator update (50; ignored by ``supervised``).
        lr: Adam learning rate of both players (1e-5).
        identity_weight: α, weight of the identity ("source data") term I (1000).
        cycle_weight: weight of the cycle ("constant") term C (10α = 10000; ``gan_2way`` only).
        lambda_initial: λ0 of both adaptive penalty weights (10).
        lambda_upper_bound: grow λ when the penalty's moving average exceeds this (0.05).
        lambda_lower_bound: shrink λ below this average (paper's rule); None never shrinks (code).
        lambda_cooldown: critic steps between two changes of λ (50, FLAGS ``netD_buffer_times``).
        adaptive_lambda: False freezes λ at ``lambda_initial`` (plain WGAN-GP).
        penalty_mode: ``"one_sided"`` ``E[max(0, ‖∇‖ − 1)]`` (DPE) or ``"two_sided"`` (WGAN-GP).
        lr_decay_start_epoch: epoch from which the LR decays linearly (75).
        lr_decay_end_epoch: epoch at which it reaches 0 (150).
        gradient_clip_val: clip each player's gradient norm (None: DPE's 1e8 is no clipping).
        max_iterations: stop after this many generator steps (None: trainer limits).
    """

    full_resolution: ClassVar[str] = (
        "down-scaled (area) to the net's fixed input size (long side 512 px in the paper configuration), "
        "enhanced on a symmetric-padded square canvas, output up-scaled (bilinear) to full size"
    )

    def __init__(
        self,
        variant: Variant = "gan_2way",
        input_size: int = PAPER_INPUT_SIZE,
        critic_steps: int = 50,
        lr: float = 1e-5,
        identity_weight: float = 1000.0,
        cycle_weight: float = 10000.0,
        lambda_initial: float = 10.0,
        lambda_upper_bound: float = 0.05,
        lambda_lower_bound: float | None = None,
        lambda_cooldown: int = 50,
        adaptive_lambda: bool = True,
        penalty_mode: PenaltyMode = "one_sided",
        lr_decay_start_epoch: int = 75,
        lr_decay_end_epoch: int = 150,
        gradient_clip_val: float | None = None,
        max_iterations: int | None = None,
    ) -> None:
        super().__init__(critic_steps=critic_steps, gradient_clip_val=gradient_clip_val,
                         max_iterations=max_iterations)
        if variant not in ("supervised", "gan_2way", "gan_1way"):
            raise ValueError(f"variant must be 'supervised', 'gan_1way' or 'gan_2way', got {variant!r}")
        if penalty_mode not in ("one_sided", "two_sided"):
            raise ValueError(f"penalty_mode must be 'one_sided' or 'two_sided', got {penalty_mode!r}")
        _check_input_size(input_size)
        self.save_hyperparameters()
        self.variant = variant
        self.input_size = input_size
        self.generator = GlobalUNet(input_size)  # G_X: X -> Y, the enhancer
        if variant == "supervised":
            return

        def adapter() -> AdaptiveLambda:
            return AdaptiveLambda(initial=lambda_initial, upper_bound=lambda_upper_bound, cooldown=lambda_cooldown,
                                  lower_bound=lambda_lower_bound, adaptive=adaptive_lambda)

        self.critic_y = DPECritic(input_size)  # D_Y: real y vs y' = G_X(x)
        self.lambda_y = adapter()
        if variant == "gan_2way":
            self.inverse_generator = GlobalUNet(input_size)  # G_Y: Y -> X
            self.critic_x = DPECritic(input_size)  # D_X: real x vs x' = G_Y(y)
            self.lambda_x = adapter()
            # iBN: the BN layers of G'_X and G'_Y; their convolutions are G_X's and G_Y's.
            self.generator_primed_norms = generator_norms()
            self.inverse_generator_primed_norms = generator_norms()
        self._penalties: dict[str, Tensor] = {}

    # -- canvases ---------------------------------------------------------------------------------
    def canvas(self, image: Tensor, valid: Tensor | None = None) -> tuple[Tensor, Rect, Tensor | None]:
        """Fit an image batch to the canvas.

        Args:
            image: ``(B, 3, H, W)``.
            valid: optional ``(B, 2)`` valid heights and widths, when the data module zero-padded
                photos of different shapes to one batch (``UnpairedDataModule(pad_mode="canvas")``,
                as DPE batches whole FiveK photos): each sample is then cut to its own valid part,
                fitted and padded by DPE's rule, so the data module's padding never reaches a loss.

        Returns:
            ``(canvas, rect, fitted)``: the ``(B, 3, S, S)`` canvas, the valid rectangle (one per
            sample when ``valid`` is given) and, for a shared rectangle, the fitted (possibly
            down-scaled) image, which equals ``crop_rect(canvas, rect)``.
        """
        if valid is None:
            fitted = fit_long_side(image, self.input_size)
            canvas, rect = pad_to_canvas(fitted, self.input_size)
            return canvas, rect, fitted
        parts, rects = [], []
        for i, (h, w) in enumerate(valid.tolist()):
            part, rect = pad_to_canvas(fit_long_side(image[i : i + 1, :, :h, :w], self.input_size), self.input_size)
            parts.append(part)
            rects.append(rect)
        return torch.cat(parts), rects, None

    def generate(self, canvas: Tensor, rect: Rect, inverse: bool = False, primed: bool = False) -> Tensor:
        """Run a generator on a canvas and re-pad its output from the valid rectangle.

        Args:
            canvas: ``(B, 3, S, S)`` padded input.
            rect: its valid rectangle (or one per sample).
            inverse: G_Y (Y -> X) instead of G_X.
            primed: the primed generator (same convs, its own BN set; ``gan_2way`` only).

        Returns:
            ``(B, 3, S, S)``: the output inside ``rect``, padded outside it by the input's rule, so
            nothing the generator writes in the padded region reaches a critic or a loss.
        """
        net = self.inverse_generator if inverse else self.generator
        norms = None
        if primed:
            norms = self.inverse_generator_primed_norms if inverse else self.generator_primed_norms
        return repad(net(canvas, norms), rect, self.input_size)

    def forward(self, image: Tensor) -> Tensor:
        """Enhance ``(B, 3, H, W)`` in [0, 1] of any size; the output has the same shape.

        Images whose long side exceeds ``input_size`` are enhanced at ``input_size`` (area
        down-scaling) and the output is up-scaled back (bilinear); smaller ones are padded.
        """
        canvas, rect, _ = self.canvas(image)
        out = crop_rect(self.generator(canvas), rect)
        if out.shape[-2:] != image.shape[-2:]:
            out = F.interpolate(out, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return out

    # -- losses -----------------------------------------------------------------------------------
    def critic_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """``−A_D + λ_Y·P_Y (+ λ_X·P_X)``; the unweighted penalties are kept for the λ adapters."""
        x, rect_x, _ = self.canvas(batch["input"], batch.get("input_hw"))
        y, rect_y, _ = self.canvas(batch["target"], batch.get("target_hw"))
        mode = self.hparams.penalty_mode
        with torch.no_grad():
            fake_y = self.generate(x, rect_x)
        wasserstein = self.critic_y(y).mean() - self.critic_y(fake_y).mean()
        penalty_y = gradient_penalty(self.critic_y, y, fake_y, self.rand(len(y), 1, 1, 1, like=y), mode)
        loss = -wasserstein + self.lambda_y() * penalty_y
        terms = {"penalty_y": penalty_y, "lambda_y": self.lambda_y()}
        self._penalties = {"y": penalty_y.detach()}
        if self.variant == "gan_2way":
            with torch.no_grad():
                fake_x = self.generate(y, rect_y, inverse=True)
            wasserstein_x = self.critic_x(x).mean() - self.critic_x(fake_x).mean()
            penalty_x = gradient_penalty(self.critic_x, x, fake_x, self.rand(len(x), 1, 1, 1, like=x), mode)
            wasserstein = wasserstein + wasserstein_x
            loss = loss - wasserstein_x + self.lambda_x() * penalty_x
            terms |= {"penalty_x": penalty_x, "lambda_x": self.lambda_x()}
            self._penalties["x"] = penalty_x.detach()
        return loss, {"wasserstein": wasserstein, **terms}

    def after_critic_step(self) -> None:
        """Feed each adaptive λ its critic's unweighted penalty, averaged over DDP ranks."""
        self.lambda_y.update(self.synced_mean(self._penalties["y"]))
        if self.variant == "gan_2way":
            self.lambda_x.update(self.synced_mean(self._penalties["x"]))
        self._penalties = {}

    def generator_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Supervised MSE, or ``−A_G + α·I (+ 10α·C)``; every term on the valid rectangle."""
        x, rect_x, _ = self.canvas(batch["input"], batch.get("input_hw"))
        fake_y = self.generate(x, rect_x)
        if self.variant == "supervised":
            target, rect_t, _ = self.canvas(batch["target"], batch.get("target_hw"))
            if rect_t != rect_x or batch["target"].shape != batch["input"].shape:
                raise ValueError(f"the supervised variant needs targets aligned with the inputs, got "
                                 f"{tuple(batch['target'].shape)} for inputs of {tuple(batch['input'].shape)}")
            mse = valid_mse(fake_y, target, rect_x)
            return mse, {"mse": mse}
        # Inside its rectangle a canvas is the fitted image itself: comparing canvases there is
        # comparing to the (down-scaled) input.
        identity = valid_mse(fake_y, x, rect_x)
        adversarial = self.critic_y(fake_y).mean()
        if self.variant == "gan_1way":
            loss = -adversarial + self.hparams.identity_weight * identity
            return loss, {"adversarial": adversarial, "identity": identity}
        y, rect_y, _ = self.canvas(batch["target"], batch.get("target_hw"))
        fake_x = self.generate(y, rect_y, inverse=True)
        cycle_x = self.generate(fake_y, rect_x, inverse=True, primed=True)  # x'' = G'_Y(y')
        cycle_y = self.generate(fake_x, rect_y, primed=True)  # y'' = G'_X(x')
        identity = identity + valid_mse(fake_x, y, rect_y)
        cycle = valid_mse(cycle_x, x, rect_x) + valid_mse(cycle_y, y, rect_y)
        adversarial = adversarial + self.critic_x(fake_x).mean()
        hp = self.hparams
        loss = -adversarial + hp.identity_weight * identity + hp.cycle_weight * cycle
        return loss, {"adversarial": adversarial, "identity": identity, "cycle": cycle}

    # -- training ---------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if self.variant != "supervised":
            return super().training_step(batch, batch_idx)
        # One player: a generator step on every batch, no critic.
        logged = self._generator_step(batch, self.optimizers())
        self.log_terms("train", logged, batch_size=batch["input"].shape[0])
        if self.max_iterations is not None and self.iterations >= self.max_iterations:
            self.trainer.should_stop = True
        return None

    def generator_parameters(self) -> list[nn.Parameter]:
        """The generator player's parameters: G_X (+ G_Y and both primed BN sets for 2-way)."""
        modules: list[nn.Module] = [self.generator]
        if self.variant == "gan_2way":
            modules += [self.inverse_generator, self.generator_primed_norms, self.inverse_generator_primed_norms]
        return [p for m in modules for p in m.parameters()]

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        decay = partial(linear_decay_factor, start=hp.lr_decay_start_epoch, end=hp.lr_decay_end_epoch)
        # TF's Adam defaults (beta 0.9 / 0.999, eps 1e-8) are PyTorch's.
        opt_g = torch.optim.Adam(self.generator_parameters(), lr=hp.lr)
        sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, decay)
        if self.variant == "supervised":
            return [opt_g], [sched_g]
        critics = [self.critic_y] + ([self.critic_x] if self.variant == "gan_2way" else [])
        opt_c = torch.optim.Adam([{"params": c.parameters()} for c in critics], lr=hp.lr)
        return [opt_g, opt_c], [sched_g, torch.optim.lr_scheduler.LambdaLR(opt_c, decay)]

    def proxy_notes(self) -> list[str]:
        if self.input_size == PAPER_INPUT_SIZE:
            return []
        s = self.input_size
        return [f"DPE nets built for {s}×{s} canvases (paper 512×512): global valid conv {s // 64}×{s // 64} "
                f"(paper 8×8), critic head {s // 32}×{s // 32} (paper 16×16); images with a longer side "
                f"are enhanced at {s} px"]
