"""Loss functions shared by methods, written as plain functions of explicit tensors.

Sections (others are added as the methods that need them arrive):
    * UPE: edge-aware illumination smoothness and colour angle (methods.md §3.2).
    * DPED and WESPE: blur colour loss, VGG-19 content loss, three total-variation variants
      (methods.md §1.2, §1.4, §1.5).

Images are ``(B, 3, H, W)`` in [0, 1] unless a docstring says otherwise; every loss returns a
scalar with mean reduction, so that its weight means the same thing at every crop size — except
where a paper's code normalises otherwise and its weights only make sense that way (DPED's colour
loss, the ``l1_sum`` TV); those docstrings say so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchvision.models import vgg as tv_vgg

from baselines import weights
from baselines.layers import rgb_to_gray

# --------------------------------------------------------------------------------------------
# UPE (DeepUPE, Wang et al. CVPR 2019)
# --------------------------------------------------------------------------------------------


def illumination_smoothness_loss(
    illumination: Tensor,
    image: Tensor,
    alpha: float = 1.2,
    lam: float = 1.5,
    eps: float = 1e-4,
    log_eps: float = 1e-4,
) -> Tensor:
    """Edge-aware smoothness of a predicted illumination map (DeepUPE ``metrics.py tv_loss``).

    With ``L = log(gray(image) + log_eps)`` computed from the *input* image, forward differences
    ``dL_x``, ``dL_y`` give per-pixel weights ``w = lam / (|dL|**alpha + eps)``, and the loss is
    ``mean(w_x * (d_x S)**2 + w_y * (d_y S)**2) / 2`` over the illumination's forward differences
    ``d_x S``, ``d_y S``. Smoothness is thus enforced where the input is flat and relaxed across its
    edges.

    Shapes: like the official code, both differences are taken on the common top-left
    ``(H - 1) × (W - 1)`` block (pixel ``(y, x)`` pairs with ``(y, x + 1)`` and ``(y + 1, x)``), so
    the last row's horizontal and the last column's vertical differences are dropped and the mean
    runs over ``B × C × (H - 1) × (W - 1)``. The gray weights (one channel) are shared by the three
    illumination channels; the paper instead has per-channel weights and no ``lam``.

    Args:
        illumination: ``(B, C, H, W)`` predicted illumination ``S`` (gradients flow into it).
        image: ``(B, 3, H, W)`` input image the weights come from.
        alpha: exponent on the log-gradient (paper ``θ``, 1.2).
        lam: numerator of the weights (1.5 in the code; absent in the paper).
        eps: added to ``|dL|**alpha`` (1e-4).
        log_eps: added before the log (1e-4 in the code).

    Returns:
        Scalar loss (the caller multiplies by ``ω_s``).
    """
    if illumination.shape[-2:] != image.shape[-2:] or min(image.shape[-2:]) < 2:
        raise ValueError(
            f"illumination {tuple(illumination.shape)} and image {tuple(image.shape)} need the same "
            "H, W of at least 2"
        )
    log_l = torch.log(rgb_to_gray(image) + log_eps)
    base = log_l[..., :-1, :-1]
    w_x = lam / ((base - log_l[..., :-1, 1:]).abs().pow(alpha) + eps)
    w_y = lam / ((base - log_l[..., 1:, :-1]).abs().pow(alpha) + eps)
    s = illumination[..., :-1, :-1]
    ds_x = s - illumination[..., :-1, 1:]
    ds_y = s - illumination[..., 1:, :-1]
    return (w_x * ds_x.square() + w_y * ds_y.square()).mean() / 2


def color_angle_loss(pred: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """Mean over pixels of ``1 - cos`` between the RGB vectors of two images.

    The paper's colour loss sums the angle between RGB vectors; the DeepUPE maintainer recommends
    L2-normalising each pixel and using the cosine distance (JIA-Lab-research/DeepUPE#42), which
    is what this is: it is monotone in the angle, bounded, and has no ``arccos`` whose gradient
    blows up at zero angle.

    A pixel where either vector is (numerically) zero has no direction; it contributes 0 rather
    than a constant 1 (the norms' product is below ``eps``), so identical images, black pixels
    included, give exactly 0. The norms are formed from squared sums clamped away from zero, so the
    gradient is finite everywhere.

    Args:
        pred: ``(B, C, H, W)``.
        target: ``(B, C, H, W)``.
        eps: threshold on the product of the two norms.

    Returns:
        Scalar in [0, 2].
    """
    dot = (pred * target).sum(dim=1)
    norm_product_sq = pred.square().sum(dim=1) * target.square().sum(dim=1)
    cos = dot / norm_product_sq.clamp_min(eps * eps).sqrt()
    defined = norm_product_sq > eps * eps
    return torch.where(defined, 1 - cos, torch.zeros_like(cos)).mean()


# --------------------------------------------------------------------------------------------
# DPED and WESPE (methods.md §1.2, §1.4, §1.5)
# --------------------------------------------------------------------------------------------


def color_loss(pred: Tensor, target: Tensor, blur: Callable[[Tensor], Tensor]) -> Tensor:
    """DPED's colour loss: ``Σ (blur(y) − blur(ŷ))² / (2·B)``.

    The normalisation is DPED's code (``train_model.py``), not a mean: a *sum* over pixels and
    channels, divided by twice the batch size. It is kept so that the code's loss weights keep
    their meaning — but the term therefore grows with the patch area: at 64×64 instead of 100×100
    the same per-pixel error gives 0.41× the loss, so the effective colour weight changes with the
    patch size (methods.md §4.6).

    Args:
        pred: ``(B, 3, H, W)`` enhanced image ``ŷ``.
        target: ``(B, 3, H, W)`` target ``y``.
        blur: the blur (DPED: ``GaussianBlur(21, 3, "dped", "zeros")``).

    Returns:
        Scalar loss.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    return (blur(target) - blur(pred)).square().sum() / (2 * pred.shape[0])


TVVariant = Literal["dped", "mean_sq", "l1_sum"]


def tv_loss(image: Tensor, variant: TVVariant = "dped") -> Tensor:
    """Total variation of ``(B, C, H, W)``; three definitions are in use (methods.md §1.5).

    With forward differences ``dx`` (``(B, C, H, W−1)``) and ``dy`` (``(B, C, H−1, W)``):

    * ``dped`` (DPED ``train_model.py``): ``mean(dx²) + mean(dy²)`` — the code's
      ``2·(l2(dx)/|dx| + l2(dy)/|dy|)/B`` with ``l2(t) = Σt²/2`` and ``|·|`` the per-sample element
      count, i.e. each direction averaged over its own element count, then summed.
    * ``mean_sq`` (TropComplique WESPE): ``(Σdx² + Σdy²) / (B·C·H·W)``.
    * ``l1_sum`` (JuheonYi WESPE): ``tf.image.total_variation`` — per image ``Σ|dx| + Σ|dy|``
      over pixels and channels — averaged over the batch, as that port reduces it. Its scale
      grows with the image area.

    Returns:
        Scalar loss.
    """
    if image.dim() != 4 or min(image.shape[-2:]) < 2:
        raise ValueError(f"tv_loss expects (B, C, H, W) with H, W >= 2, got {tuple(image.shape)}")
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    if variant == "dped":
        return dx.square().mean() + dy.square().mean()
    if variant == "mean_sq":
        return (dx.square().sum() + dy.square().sum()) / image.numel()
    if variant == "l1_sum":
        return (dx.abs().sum() + dy.abs().sum()) / image.shape[0]
    raise ValueError(f"variant must be 'dped', 'mean_sq' or 'l1_sum', got {variant!r}")


def _vgg19_relu_ends() -> dict[str, int]:
    """``relu{block}_{index}`` → exclusive end index in torchvision's ``vgg19().features``."""
    ends, block, conv, index = {}, 1, 0, 0
    for v in tv_vgg.cfgs["E"]:
        if v == "M":
            block, conv, index = block + 1, 0, index + 1
        else:
            conv, index = conv + 1, index + 2  # conv, then its ReLU
            ends[f"relu{block}_{conv}"] = index
    return ends


#: Named ReLU outputs of VGG-19 (``relu5_4`` → 36: ``features[:36]``, as TropComplique's
#: ``features[:-1]`` and shadow2496's feature id 35).
VGG19_RELU_ENDS = _vgg19_relu_ends()
#: Seed of the ``backbone="random"`` stand-in (fixed: the proxy loss is the same in every run).
RANDOM_VGG_SEED = 19
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ContentLoss(nn.Module):
    """Perceptual content loss: mean squared difference of frozen VGG-19 features (relu5_4).

    The network is torchvision's VGG-19 ``features`` cut after ``layer``, on ImageNet-normalised
    inputs (``(x − mean) / std`` for ``x`` in [0, 1], the torchvision convention). DPED used the
    MatConvNet release on ``x·255 − mean`` *without* a std division and 'SAME' (ceil) max pooling
    (torchvision pools with floor: 100 px gives 6×6 at relu5_4 rather than 7×7), so the feature
    magnitudes — and with them the meaning of a content weight — do not transfer exactly between
    the two (methods.md §1.4). The loss is ``mean((φ(pred) − φ(target))²)``, which equals DPED's
    ``2·l2_loss(Δ)/(feature size · batch)`` and TropComplique's ``Σ Δ² / (b·c·h·w)``.

    Weights come only from :func:`baselines.weights.load_torchvision_state_dict` (torchvision's
    ``vgg19-dcbb9e9d.pth``, SHA-256 prefix checked; a missing file raises ``WeightsUnavailable``
    naming the file and the directory it belongs in). ``backbone="random"`` builds the same
    architecture with a fixed seeded He initialisation (torchvision's own: normal, fan-out, zero
    bias) — a proxy for smoke runs and tests that never stands in for the pretrained loss
    silently: methods report it through ``proxy_notes()``.

    The network is frozen: its parameters never require gradients (gradients still flow to the
    *input* ``pred``), it stays in eval mode whatever ``train()`` is asked, and its weights are
    left out of ``state_dict()`` — they are rebuilt from the file or the seed when the method is
    constructed, which keeps 80 MB of fixed weights out of every checkpoint; loading a state dict
    without them works (they are filled in from the module itself).

    Args:
        backbone: ``"vgg19"`` (pretrained torchvision weights) or ``"random"`` (seeded proxy).
        weights_path: explicit weight file for ``"vgg19"`` (checked against the same hash
            prefix); None: ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``.
        layer: which ReLU output to compare (``relu5_4``; any ``relu{1..5}_{n}`` of VGG-19).
    """

    def __init__(self, backbone: Literal["vgg19", "random"] = "vgg19", weights_path: str | None = None,
                 layer: str = "relu5_4") -> None:
        super().__init__()
        if layer not in VGG19_RELU_ENDS:
            raise ValueError(f"unknown VGG-19 layer {layer!r}; known: {', '.join(VGG19_RELU_ENDS)}")
        if backbone not in ("vgg19", "random"):
            raise ValueError(f"backbone must be 'vgg19' or 'random', got {backbone!r}")
        if backbone == "random" and weights_path is not None:
            raise ValueError("weights_path is only used with backbone='vgg19' (the random backbone is seeded)")
        self.backbone, self.layer = backbone, layer
        end = VGG19_RELU_ENDS[layer]
        self.features = tv_vgg.make_layers(tv_vgg.cfgs["E"])[:end]
        if backbone == "vgg19":
            state = weights.load_torchvision_state_dict("vgg19", weights_path)
            prefix = "features."
            wanted = {key[len(prefix):]: value for key, value in state.items()
                      if key.startswith(prefix) and int(key.split(".")[1]) < end}
            self.features.load_state_dict(wanted, strict=True)
        else:
            generator = torch.Generator().manual_seed(RANDOM_VGG_SEED)
            for module in self.features.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                    nn.init.zeros_(module.bias)
        self.features.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.register_state_dict_post_hook(_drop_frozen_features)
        self.register_load_state_dict_pre_hook(_fill_frozen_features)
        super().train(False)

    def train(self, mode: bool = True) -> ContentLoss:
        """Stay in eval mode: the loss network is fixed (``mode`` is ignored)."""
        return super().train(False)

    def embed(self, image: Tensor) -> Tensor:
        """VGG features of ``(B, 3, H, W)`` in [0, 1] at ``layer``."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"ContentLoss expects (B, 3, H, W) images, got {tuple(image.shape)}")
        return self.features((image - self.mean) / self.std)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """``mean((φ(pred) − φ(target))²)``; no gradient is computed through ``target``."""
        with torch.no_grad():
            target_features = self.embed(target)
        return (self.embed(pred) - target_features).square().mean()


def _drop_frozen_features(module: ContentLoss, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "features.")]:
        del state_dict[key]


def _fill_frozen_features(module: ContentLoss, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    # A checkpoint holds no VGG weights (see ContentLoss); strict loading still needs the keys.
    for key, value in module.features.state_dict().items():
        state_dict.setdefault(prefix + "features." + key, value)
