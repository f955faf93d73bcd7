"""Loss functions shared by methods, written as plain functions of explicit tensors.

Sections (others are added as the methods that need them arrive):
    * UPE: edge-aware illumination smoothness and colour angle (methods.md §3.2).

Images are ``(B, 3, H, W)`` in [0, 1] unless a docstring says otherwise; every loss returns a
scalar with mean reduction, so that its weight means the same thing at every crop size.
"""

from __future__ import annotations

import torch
from torch import Tensor

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
