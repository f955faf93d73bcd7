"""UPE (DeepUPE): underexposed photo enhancement using deep illumination estimation.

Reference:
    R. Wang, Q. Zhang, C.-W. Fu, X. Shen, W.-S. Zheng, J. Jia. "Underexposed Photo Enhancement
    Using Deep Illumination Estimation". CVPR 2019.
    Official code (inference and loss snippets only): https://github.com/dvlab-research/DeepUPE
    (= JIA-Lab-research/DeepUPE, commit e0f2529c3a). Training recipes of the unofficial PyTorch
    ports hermosayhl/DeepUPE_pytorch (7aa9a67a55) and Lornatang/DeepUPE-PyTorch (2bb00df73a).

Retinex model: the net predicts an illumination map ``S`` with ``I <= S <= 1`` and the enhanced
image is ``Ĩ = I / S`` per pixel and channel.

Variant built: the **released code**, which is a fork of HDRNet, not the paper's VGG16 encoder
(methods.md §3.1). Same splat (four stride-2 convs, 8-16-32-64) and grid (16×16 spatial, 8 luma
bins, 12 affine coefficients) as HDRNet, but a global path of twelve 3×3 convs at 64 channels
(stride 2, five × stride 1, stride 2, five × stride 1; 4×4×64 for a 256² input) before the same FCs
1024→256→128→64, and a local path of conv+ReLU followed by *five* bias-free linear convs (which
compose to one linear map; kept as released). The sliced-and-applied affine output ``z`` is the
illumination's pre-activation. The guide is the curves guide by default: the hdrnet code's default
model class is ``HDRNetCurves`` and the class of the shipped checkpoint was not inspected
([GUESS], methods.md §3.1); ``guide="pointwise"`` switches. With the defaults the model has
998,816 parameters (998,704 coefficient net + 112 curves guide), the spec sheet's "≈0.999 M".

Illumination parametrisation (our choice). The official inference clamps the raw output,
``S = clip(z, I, 1)`` (after a clip to [0, 1] and 8-bit quantisation, ``main/run.py``), and its
training code was not released. A hard clamp passes no gradient where it binds, which at
initialisation is a large share of pixels. We therefore use, by default
(``illumination="sigmoid"``), the same differentiable map in training and evaluation,
``S = I + (1 - I) * sigmoid(z)``, which satisfies ``I <= S <= 1`` by construction; in eval mode
the official clamp ``clip(S, I, 1)`` follows as a safety net, a no-op up to float rounding. A
consequence: the identity mapping (``S = 1``) is reached only as ``z → +∞``, and ``Ĩ = 1`` only as
``z → -∞``. The alternative, ``illumination="clip"``, is the official clamp applied to ``z``
itself in training and evaluation (gradient only where ``I <= z <= 1``).

The division is ``Ĩ = I / (S + 1e-4)``: with ``S >= I`` this stays in [0, 1], and the epsilon
keeps black pixels (``I = S = 0``) at 0 instead of NaN (DeepUPE#38 reports NaN/inf during
training). hermosayhl divides by ``S + 1e-4`` too; the official inference divides by ``S``.

Loss (methods.md §3.2): ``L = ω_r·L_r + ω_s·L_s + ω_c·L_c`` with ``ω = (1, 2, 1)``:
    * ``L_r = MSE(Ĩ, target)`` — the maintainer's description (DeepUPE#31); the paper writes
      ``‖I − S·Ĩ_gt‖²``.
    * ``L_s`` — the official ``tv_loss``: edge-aware smoothness of ``S`` with weights from the log
      gray *input* (``losses.illumination_smoothness_loss``; α = 1.2, λ = 1.5).
    * ``L_c`` — ``1 − cos`` between RGB vectors of ``Ĩ`` and the target, averaged over pixels
      (maintainer's recommendation, DeepUPE#42; the paper sums the angle itself).
    The unofficial ports' weights (1, 0.05 smooth, 0.2 colour) are their own choice, not used.

Optimiser: Adam with lr 1e-4 and PyTorch/TF default betas (0.9, 0.999) and eps 1e-8 — the hdrnet
``train.py`` defaults that the circulated DeepUPE training script keeps (DeepUPE#84). Lornatang uses
lr 1e-4 with betas (0.9, 0.99) and eps 1e-4; hermosayhl uses lr 1e-2, weight decay 1e-5 and a steep
step schedule (×0.5 after one epoch, ×0.1 after two, down to ×0.003 after 30), which reaches 23.5 dB
on FiveK-C but is tied to its own schedule. The schedule is left to the trainer config.

Other choices (shared with HDRNet, see ``baselines.hdrnet`` and ``baselines.layers``): TF He
initialisation, BatchNorm without scale and with momentum 0.1, TF 'SAME' padding, nearest-neighbour
low-resolution copy sampled at pixel centres, FC input size derived from ``net_input_size``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from baselines.base import EnhancementMethod
from baselines.layers import BilateralCoeffNet, BilateralGridNet
from baselines.losses import color_angle_loss, illumination_smoothness_loss

#: Global path of the released code: 3×3 convs at 8·cm·lb channels with these strides.
UPE_GLOBAL_STRIDES = (2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1)
#: Bias-free linear 3×3 convs after the local conv+ReLU in the released code.
UPE_LOCAL_LINEAR_LAYERS = 5
#: Added to S in the division Ĩ = I / (S + eps).
DIVISION_EPS = 1e-4


class UPE(EnhancementMethod):
    """DeepUPE, released-code (HDRNet-fork) variant: ``output = input / illumination``.

    Args:
        guide: full-resolution guide net, ``"curves"`` (default, [GUESS]) or ``"pointwise"``.
        luma_bins: grid depth (8).
        spatial_bins: grid height and width (16).
        channel_multiplier: width multiplier of the coefficient net (1).
        guide_complexity: hidden channels of the pointwise guide (16).
        net_input_size: side of the square nearest-neighbour copy the coefficient net sees (256).
        batch_norm: BatchNorm in the coefficient net (off in the circulated training script).
        illumination: ``"sigmoid"``: ``S = I + (1 - I)·sigmoid(z)`` (clamped to [I, 1] in eval as a
            no-op safety net); ``"clip"``: the official ``S = clip(z, I, 1)`` everywhere.
        w_reconstruction: ``ω_r`` (1).
        w_smoothness: ``ω_s`` (2).
        w_color: ``ω_c`` (1).
        lr: Adam learning rate (1e-4).
    """

    full_resolution: ClassVar[str] = (
        "illumination grid predicted from a 256×256 copy, sliced at full resolution; "
        "output = input / illumination"
    )

    def __init__(
        self,
        guide: Literal["pointwise", "curves"] = "curves",
        luma_bins: int = 8,
        spatial_bins: int = 16,
        channel_multiplier: int = 1,
        guide_complexity: int = 16,
        net_input_size: int = 256,
        batch_norm: bool = False,
        illumination: Literal["sigmoid", "clip"] = "sigmoid",
        w_reconstruction: float = 1.0,
        w_smoothness: float = 2.0,
        w_color: float = 1.0,
        lr: float = 1e-4,
    ) -> None:
        super().__init__()
        if illumination not in ("sigmoid", "clip"):
            raise ValueError(f"illumination must be 'sigmoid' or 'clip', got {illumination!r}")
        self.save_hyperparameters()
        self.net = BilateralGridNet(
            guide=guide,
            guide_complexity=guide_complexity,
            net_input_size=net_input_size,
            coeff_net=BilateralCoeffNet(
                luma_bins=luma_bins,
                spatial_bins=spatial_bins,
                channel_multiplier=channel_multiplier,
                net_input_size=net_input_size,
                batch_norm=batch_norm,
                global_strides=UPE_GLOBAL_STRIDES,
                local_linear_layers=UPE_LOCAL_LINEAR_LAYERS,
            ),
        )

    def illumination(self, image: Tensor) -> Tensor:
        """Predict the illumination map ``S``.

        Args:
            image: ``(B, 3, H, W)`` in [0, 1].

        Returns:
            ``(B, 3, H, W)`` with ``image <= S <= 1`` (up to float rounding in training mode with
            the sigmoid parametrisation; exactly in eval mode and with ``"clip"``).
        """
        z = self.net(image)
        # clamp takes tensor bounds only in pairs; an expanded 0-d one costs no memory.
        one = image.new_ones(()).expand_as(image)
        if self.hparams.illumination == "clip":
            return torch.clamp(z, min=image, max=one)
        s = image + (1 - image) * torch.sigmoid(z)
        if not self.training:
            s = torch.clamp(s, min=image, max=one)
        return s

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 (the base-class contract's name)
        """Enhance ``(B, 3, H, W)`` in [0, 1]; the output lies in [0, 1]."""
        return input / (self.illumination(input) + DIVISION_EPS)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        image, target = batch["input"], batch["target"]
        s = self.illumination(image)
        pred = image / (s + DIVISION_EPS)
        terms = {
            "reconstruction": F.mse_loss(pred, target),
            "smoothness": illumination_smoothness_loss(s, image),
            "color": color_angle_loss(pred, target),
        }
        hp = self.hparams
        loss = (
            hp.w_reconstruction * terms["reconstruction"]
            + hp.w_smoothness * terms["smoothness"]
            + hp.w_color * terms["color"]
        )
        self.log_terms("train", {"loss": loss, **terms}, batch_size=image.shape[0])
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
