"""HDRNet: deep bilateral learning for real-time image enhancement.

Reference:
    M. Gharbi, J. Chen, J. T. Barron, S. W. Hasinoff, F. Durand. "Deep Bilateral Learning for
    Real-Time Image Enhancement". ACM TOG (SIGGRAPH) 36(4), 2017.
    Official code: https://github.com/google/hdrnet (commit e9a5bf59a2), TF1 + a CUDA op.

What is built (spec sheet ``methods.md`` §1.6 and §2). A coefficient net sees a 256×256
nearest-neighbour copy of the input and predicts a 16×16×8 bilateral grid of 3×4 affine colour
transforms: four stride-2 convs (8-16-32-64 channels), a global path (two stride-2 convs, FCs
1024→256→128→64), a local path (conv+ReLU, bias-free linear conv), fusion ``ReLU(local +
global)`` and a 1×1 conv to 96 = 12 coefficients × 8 luma bins. A per-pixel guide net maps the
full-resolution input to a luma-like value in [0, 1]; every pixel reads its affine transform from
the grid at (x, y, guide) with trilinear interpolation and applies it to its own RGB value. The
parts are shared with UPE and live in ``baselines.layers``; this file fixes HDRNet's
configuration and its training objective.

Defaults are those of ``hdrnet/bin/train.py`` and the FiveK expert scripts
(``scripts/experts/*_nn.sh``): ``HDRNetPointwiseNNGuide`` (PointwiseNN guide), no BatchNorm in
the coefficient net, loss = MSE of the full-resolution output, Adam with lr 1e-4 (TF's betas
0.9/0.999 and eps 1e-8 equal PyTorch's defaults), batch 16 of 256×256 crops (a datamodule
setting). With the defaults the model has 482,049 parameters (481,968 coefficient net + 81
guide), as the spec sheet's count.

Choices where the paper and code say nothing, or where we deviate:
    * Guide: ``"pointwise"`` by default (what every released FiveK model uses); the paper's
      curves guide (``HDRNetCurves``, the TF code's base class) is ``guide="curves"``. Log which one
      a table uses (creotiv/hdrnet-pytorch#6).
    * Slicing uses ``grid_sample`` with exact tent weights, which equals the CUDA kernel's forward
      pass except within ~1e-4 of a luma-bin centre, where the kernel smooths ``|d|`` with
      ``sqrt(d² + 1e-8)``; the guide gradient there is one-sided instead of smoothed
      (``layers.bilateral_slice_apply``).
    * Low-resolution copy: nearest neighbour sampled at pixel centres, as the official ``run.py``
      (``skimage`` ``order=0``); the TF training pipeline used TF1's legacy nearest resize, half a
      pixel away. For 256×256 training crops both are the identity.
    * Initialisation: TF's ``variance_scaling_initializer()`` (He, fan-in, truncated normal), zero
      biases; curves guide as in the TF code (see ``layers.CurvesGuide``).
    * BatchNorm (always in the guide, optionally in the coefficient net) has TF's learnt shift and
      no scale, eps 1e-3, and PyTorch's running-stat momentum 0.1 instead of TF's 0.001 (decay
      0.999), so that short runs evaluate with settled statistics.
    * TF 'SAME' padding (extra pixel at the bottom/right for stride 2) and the TF order of the 96
      predicted channels are kept, so TF weights could be ported; the FC flatten order is PyTorch's
      (C, H, W), not TF's (H, W, C).
    * The FC input size follows from ``net_input_size`` and ``spatial_bins`` (1024 for 256 and
      16), so smaller inputs can be used for quick runs.
    * Evaluation runs the full-resolution guide and slice/apply in bands of about 2**20 pixels
      (exact, since both are per pixel), so a 12 MP image needs about 0.5 GiB beyond its input.
    * No output clamp inside the model (the affine model is unbounded, as in the TF graph);
      evaluation clamps to [0, 1] (design.md §4), as the official ``run.py`` does.
    * Training schedule is not fixed in the code (it trains until stopped); the trainer config
      decides.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from baselines.base import EnhancementMethod
from baselines.layers import BilateralCoeffNet, BilateralGridNet


class HDRNet(EnhancementMethod):
    """HDRNet with the PointwiseNN guide (default) or the curves guide.

    Args:
        guide: full-resolution guide net, ``"pointwise"`` (released FiveK models) or ``"curves"``
            (paper).
        luma_bins: grid depth (8).
        spatial_bins: grid height and width (16).
        channel_multiplier: width multiplier of the coefficient net (1).
        guide_complexity: hidden channels of the pointwise guide (16).
        net_input_size: side of the square nearest-neighbour copy the coefficient net sees (256).
        batch_norm: BatchNorm in the coefficient net (off in the FiveK scripts; the pointwise
            guide always has it).
        lr: Adam learning rate (1e-4).
    """

    full_resolution: ClassVar[str] = (
        "bilateral grid predicted from a 256×256 copy, sliced and applied at full resolution"
    )

    def __init__(
        self,
        guide: Literal["pointwise", "curves"] = "pointwise",
        luma_bins: int = 8,
        spatial_bins: int = 16,
        channel_multiplier: int = 1,
        guide_complexity: int = 16,
        net_input_size: int = 256,
        batch_norm: bool = False,
        lr: float = 1e-4,
    ) -> None:
        super().__init__()
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
            ),
        )

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 (the base-class contract's name)
        """Enhance ``(B, 3, H, W)`` in [0, 1]; the output has the same shape and is not clamped."""
        return self.net(input)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        pred = self(batch["input"])
        loss = F.mse_loss(pred, batch["target"])
        self.log_terms("train", {"loss": loss, "mse": loss}, batch_size=pred.shape[0])
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
