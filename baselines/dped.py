"""DPED: DSLR-quality photos on mobile devices with deep convolutional networks.

Reference:
    A. Ignatov, N. Kobyshev, R. Timofte, K. Vanhoey, L. Van Gool. "DSLR-Quality Photos on Mobile
    Devices with Deep Convolutional Networks". ICCV 2017.
    Official code (TF1): https://github.com/aiff22/DPED (``models.py``, ``train_model.py``,
    ``utils.py``, ``vgg.py``; methods.md §4).

Generator (``models.resnet``): 9×9 conv 3→64 + ReLU; four residual blocks
``x + ReLU(IN(conv(ReLU(IN(conv(x))))))`` (the skip is added *after* the second ReLU, instance
norm affine with eps 1e-3); two 3×3 convs + ReLU; 9×9 conv 64→3; ``tanh·0.58 + 0.5`` (outputs in
about [−0.08, 1.08], clamped only by the Evaluator). Stride 1 and 'SAME' (zero) padding
throughout, so it is fully convolutional: full-resolution evaluation runs the whole image.
Weights truncated-normal with std 0.01, biases 0.01. 401,475 parameters at width 64.

Discriminator: ``baselines.critics.DPEDDiscriminator`` on gray images (TF gray weights), two-class
softmax over {DSLR, enhanced} (methods.md §1.3).

Losses (``train_model.py``), ``L_G = w_content·L_content + w_texture·L_texture + w_color·L_color +
w_tv·L_tv``:
    * content: mean squared VGG-19 relu5_4 difference between ŷ and y (``losses.ContentLoss``;
      torchvision weights and normalisation rather than MatConvNet's, see there);
    * texture: D sees the gray image of ŷ or y, picked per sample by a random "swaps" vector
      (drawn from the checkpointed ``loss_rng``); ``L_D = −Σ_batch target·log p`` — a *sum* over
      the batch, class 0 = DSLR, 1 = enhanced, ``p`` clipped at 1e-10 as the code does; G's
      texture loss is **minus** that cross-entropy with every input ŷ and every target
      "enhanced": ``L_texture = Σ_batch log p_enhanced(ŷ)`` — G maximises D's error;
    * colour: ``Σ (blur(y) − blur(ŷ))² / (2·B)`` with DPED's 21-tap kernel (``losses.color_loss``);
    * TV: ``mean(dx²) + mean(dy²)`` (``losses.tv_loss(variant="dped")``).
    Presets: ``dped_code`` (default: content 10, colour 0.5, texture 1, TV 2000 — ``utils.py``) and
    ``dped_paper`` (1, 0.1, 0.4, 400 — the paper as recalled, methods.md §4.2 [PAPER*]).
    The normalisations differ per term (texture: batch sum; colour: per-sample pixel sum; content
    and TV: means), as in the code, so the weights mean what they meant there **only at batch 50
    and 100×100 patches**: halving the batch halves the texture term's weight, a 64-px patch
    scales the colour term by 0.41. The ``w_*`` arguments override a preset.

Training (``train_model.py``): Adam lr 5e-4 for both players with TF's default betas (0.9, 0.999)
and epsilon 1e-8 (TF adds epsilon before its bias correction, PyTorch after: a negligible
difference); one G step then one D step per iteration; batch 50 of 100×100 patches; 20,000
iterations (``max_iterations``). No gradient clipping, no schedule.

Deviations and choices:
    * The D step reuses the iteration's batch (ŷ recomputed by the just-updated G); DPED's code
      draws a fresh random batch for the D step. Both see G after its update.
    * DPED's ``log(clip(softmax, 1e-10, 1))`` is computed as ``clamp(log_softmax, log 1e-10)``:
      the same values and gradients wherever the clip is inactive, without the underflow of the
      softmax.
    * Layout is NCHW and the critic's FC input is flattened C, H, W (TF: H, W, C); this matters
      only for porting TF weights.
    * Every 1000 iterations DPED reloads 30,000 random training patches; here the data module
      samples patches continuously.
    * ``content_backbone="random"`` replaces the pretrained VGG-19 with a seeded random one for
      smoke runs; ``proxy_notes()`` then says so in every caption.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.base import AdversarialMethod
from baselines.critics import DPEDDiscriminator
from baselines.layers import GaussianBlur, dped_init_, rgb_to_gray
from baselines.losses import ContentLoss, color_loss, tv_loss

#: (content, colour, texture, TV) weights of the two presets (methods.md §4.2).
LOSS_PRESETS: dict[str, dict[str, float]] = {
    "dped_code": {"content": 10.0, "color": 0.5, "texture": 1.0, "tv": 2000.0},
    "dped_paper": {"content": 1.0, "color": 0.1, "texture": 0.4, "tv": 400.0},
}
#: DPED clips the discriminator's probabilities at this value before the log.
PROB_FLOOR = 1e-10
#: Class indices of DPED's discriminator (``discrim_target = [adv, 1 − adv]``).
DSLR, ENHANCED = 0, 1
RANDOM_CONTENT_NOTE = "content loss on a randomly initialised VGG-19 (smoke run), not the paper's loss"


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------


class DPEDResidualBlock(nn.Module):
    """``x + ReLU(IN(conv(ReLU(IN(conv(x))))))`` with 3×3 convs (skip after the second ReLU)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.norm1 = nn.InstanceNorm2d(width, eps=1e-3, affine=True)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.norm2 = nn.InstanceNorm2d(width, eps=1e-3, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, width, H, W)`` → same shape."""
        h = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(h))) + x


class DPEDGenerator(nn.Module):
    """DPED's image-to-image generator (``models.resnet``); WESPE's G and F use it too.

    Args:
        width: channels of every hidden layer (64 in the paper; smaller for quick configs).
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, width, 9, padding=4)
        self.blocks = nn.Sequential(*(DPEDResidualBlock(width) for _ in range(4)))
        self.conv10 = nn.Conv2d(width, width, 3, padding=1)
        self.conv11 = nn.Conv2d(width, width, 3, padding=1)
        self.tail = nn.Conv2d(width, 3, 9, padding=4)
        dped_init_(self)

    def forward(self, image: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [0, 1] → ``(B, 3, H, W)`` in about [−0.08, 1.08]."""
        x = self.blocks(F.relu(self.head(image)))
        x = F.relu(self.conv11(F.relu(self.conv10(x))))
        return torch.tanh(self.tail(x)) * 0.58 + 0.5


# --------------------------------------------------------------------------------------------
# Texture loss
# --------------------------------------------------------------------------------------------


def texture_cross_entropy(logits: Tensor, is_dslr: Tensor) -> Tensor:
    """DPED's discriminator loss ``−Σ_batch target·log p`` (a sum over the batch).

    Args:
        logits: ``(B, 2)`` discriminator logits, class 0 = DSLR, 1 = enhanced.
        is_dslr: ``(B,)`` bool, True where the sample shown was the DSLR image.

    Returns:
        Scalar; G's texture loss is its negative with ``is_dslr`` all False.
    """
    log_p = F.log_softmax(logits, dim=1).clamp_min(math.log(PROB_FLOOR))
    target = torch.where(is_dslr, DSLR, ENHANCED).to(logits.device)
    return -log_p.gather(1, target.view(-1, 1)).sum()


# --------------------------------------------------------------------------------------------
# LightningModule
# --------------------------------------------------------------------------------------------


class DPED(AdversarialMethod):
    """DPED with its official code's losses and schedule (see the module docstring).

    Args:
        width: generator width (64).
        discriminator_width: first conv width of the discriminator (48: 48-128-192-192-128).
        loss_preset: ``"dped_code"`` (10, 0.5, 1, 2000) or ``"dped_paper"`` (1, 0.1, 0.4, 400) for
            (content, colour, texture, TV).
        w_content: overrides the preset's content weight when set.
        w_color: overrides the preset's colour weight when set.
        w_texture: overrides the preset's texture weight when set.
        w_tv: overrides the preset's TV weight when set.
        content_backbone: ``"vgg19"`` (pretrained, the paper's loss) or ``"random"`` (smoke-run
            proxy, reported by ``proxy_notes``).
        content_weights: explicit VGG-19 weight file (default: the torch hub cache).
        blur_mode: colour-loss kernel, ``"dped"`` (DPED's, faithful) or ``"true_sigma"`` (a real
            σ = 3 px Gaussian).
        lr: Adam learning rate of both players (5e-4).
        max_iterations: generator steps to train (20,000).
    """

    generator_first: ClassVar[bool] = True
    full_resolution: ClassVar[str] = "whole image (fully convolutional generator)"

    def __init__(
        self,
        width: int = 64,
        discriminator_width: int = 48,
        loss_preset: Literal["dped_code", "dped_paper"] = "dped_code",
        w_content: float | None = None,
        w_color: float | None = None,
        w_texture: float | None = None,
        w_tv: float | None = None,
        content_backbone: Literal["vgg19", "random"] = "vgg19",
        content_weights: str | None = None,
        blur_mode: Literal["dped", "true_sigma"] = "dped",
        lr: float = 5e-4,
        max_iterations: int | None = 20000,
    ) -> None:
        super().__init__(critic_steps=1, gradient_clip_val=None, max_iterations=max_iterations)
        if loss_preset not in LOSS_PRESETS:
            raise ValueError(f"loss_preset must be one of {sorted(LOSS_PRESETS)}, got {loss_preset!r}")
        self.save_hyperparameters()
        explicit = {"content": w_content, "color": w_color, "texture": w_texture, "tv": w_tv}
        self.loss_weights = {name: float(preset if explicit[name] is None else explicit[name])
                             for name, preset in LOSS_PRESETS[loss_preset].items()}
        self.generator = DPEDGenerator(width)
        self.discriminator = DPEDDiscriminator(in_channels=1, width=discriminator_width, head="two_class")
        self.content_loss = ContentLoss(content_backbone, content_weights, layer="relu5_4")
        self.blur = GaussianBlur(21, 3.0, mode=blur_mode, padding="zeros")

    def proxy_notes(self) -> list[str]:
        return [RANDOM_CONTENT_NOTE] if self.hparams.content_backbone == "random" else []

    def generator_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        image, target = batch["input"], batch["target"]
        enhanced = self.generator(image)
        logits = self.discriminator(rgb_to_gray(enhanced))
        all_enhanced = torch.zeros(image.shape[0], dtype=torch.bool, device=image.device)
        terms = {
            "content": self.content_loss(enhanced, target),
            "texture": -texture_cross_entropy(logits, all_enhanced),
            "color": color_loss(enhanced, target, self.blur),
            "tv": tv_loss(enhanced, "dped"),
        }
        loss = sum(self.loss_weights[name] * value for name, value in terms.items())
        return loss, terms

    def critic_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        image, target = batch["input"], batch["target"]
        with torch.no_grad():
            enhanced = self.generator(image)
        # DPED's "swaps": per sample, show D the DSLR image (True) or the enhanced one.
        is_dslr = self.rand(image.shape[0], like=image) < 0.5
        shown = torch.where(is_dslr.view(-1, 1, 1, 1), rgb_to_gray(target), rgb_to_gray(enhanced))
        logits = self.discriminator(shown)
        loss = texture_cross_entropy(logits, is_dslr)
        accuracy = (logits.argmax(1) == torch.where(is_dslr, DSLR, ENHANCED)).float().mean()
        return loss, {"texture": loss.detach(), "accuracy": accuracy}

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        lr = self.hparams.lr
        return [torch.optim.Adam(self.generator.parameters(), lr=lr),
                torch.optim.Adam(self.discriminator.parameters(), lr=lr)]
