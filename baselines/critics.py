"""Critics (discriminators) and what regularises them: gradient penalties, adaptive λ, and
DPED's discriminator (``DPEDDiscriminator``, shared by DPED and WESPE).

Everything here is shared by two or more adversarial methods (DPED, WESPE, DPE, DACAL). A
critic specific to one paper lives in that method's file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.layers import dped_init_, tf_same_pad

# ---------------------------------------------------------------------------------------------
# Gradient penalties
# ---------------------------------------------------------------------------------------------

PenaltyMode = Literal["one_sided", "two_sided"]


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, alpha: Tensor,
                     mode: PenaltyMode = "one_sided") -> Tensor:
    """Gradient-norm penalty at random interpolates ``x̂ = α·real + (1 − α)·fake`` (unweighted).

    ``two_sided`` is WGAN-GP's ``E[(‖∇C(x̂)‖₂ − 1)²]``. ``one_sided`` is DPE's default,
    ``E[max(0, ‖∇C(x̂)‖₂ − 1)]`` — one-sided *and not squared* (DPE code,
    ``loss_wgan_use_g_to_one=False``; methods.md 1.7), which the DACAL seed slide writes too.

    Args:
        critic: maps a batch to per-sample (or any-shaped) scores; their sum is differentiated.
        real, fake: ``(B, ...)`` batches of the same shape; ``fake`` should be detached.
        alpha: ``(B, 1, ..., 1)`` mixing weights in [0, 1] — drawn by the caller from its
            checkpointed random generator so a resumed run draws the same numbers.
        mode: ``one_sided`` or ``two_sided``.

    Returns:
        The scalar penalty, differentiable w.r.t. the critic's parameters (``create_graph``).
    """
    interpolate = (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)
    scores = critic(interpolate)
    (gradient,) = torch.autograd.grad(scores.sum(), interpolate, create_graph=True)
    norm = gradient.flatten(1).norm(dim=1)
    if mode == "one_sided":
        return torch.relu(norm - 1).mean()
    if mode == "two_sided":
        return ((norm - 1) ** 2).mean()
    raise ValueError(f"mode must be 'one_sided' or 'two_sided', got {mode!r}")


class AdaptiveLambda(nn.Module):
    """DPE's adaptive penalty weight ("A-WGAN"), methods.md 1.7; the seed's AdaSWGAN uses it too.

    After each critic step, with ``p`` the *unweighted* penalty: skip the first ``ignore_first``
    updates (the first penalty is typically huge); then ``m ← η·m + (1 − η)·p``; if the cool-down
    counter is 0 and ``m > upper_bound``: ``λ ← λ·growth``, ``m ← 0``, counter ← ``cooldown``;
    with ``lower_bound`` set (the paper's rule, off by default as in the released code, which never
    decreases λ): if the counter is 0 and ``m < lower_bound``: ``λ ← λ / growth``, ``m ← 0``,
    counter ← ``cooldown``; otherwise the counter counts down, stopping at 0 (the released code
    decrements unconditionally; a counter below 0 would never equal 0 again, so we read "is 0" as
    "has run out").

    ``λ``, ``m``, the counter and the update count are buffers, so they live in checkpoints. Under
    DDP, pass a penalty already averaged over ranks so every rank keeps the same λ.

    Args:
        initial: λ₀ (10).
        decay: η of the moving average (0.99).
        upper_bound: grow λ when the average exceeds this (0.05).
        growth: multiplicative step of λ (2).
        cooldown: critic steps between two changes of λ (50).
        ignore_first: updates skipped at the start (1).
        lower_bound: shrink λ below this average (None: never shrink).
        adaptive: False freezes λ at ``initial`` (plain WGAN-GP / SWGAN).
    """

    def __init__(self, initial: float = 10.0, decay: float = 0.99, upper_bound: float = 0.05, growth: float = 2.0,
                 cooldown: int = 50, ignore_first: int = 1, lower_bound: float | None = None,
                 adaptive: bool = True) -> None:
        super().__init__()
        self.decay, self.upper_bound, self.growth = decay, upper_bound, growth
        self.cooldown, self.ignore_first, self.lower_bound, self.adaptive = cooldown, ignore_first, lower_bound, adaptive
        self.register_buffer("value", torch.tensor(float(initial), dtype=torch.float64))
        self.register_buffer("average", torch.zeros((), dtype=torch.float64))
        self.register_buffer("cooldown_left", torch.zeros((), dtype=torch.long))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def forward(self) -> Tensor:
        """The current λ as a float32 scalar."""
        return self.value.float()

    @torch.no_grad()
    def update(self, penalty: Tensor | float) -> None:
        """Feed one unweighted penalty value after a critic step."""
        self.updates += 1
        if not self.adaptive or int(self.updates) <= self.ignore_first:
            return
        penalty = torch.as_tensor(penalty, dtype=torch.float64, device=self.average.device)
        self.average.mul_(self.decay).add_((1 - self.decay) * penalty)
        ready = int(self.cooldown_left) == 0
        if ready and float(self.average) > self.upper_bound:
            self.value.mul_(self.growth)
        elif ready and self.lower_bound is not None and float(self.average) < self.lower_bound:
            self.value.div_(self.growth)
        else:
            self.cooldown_left.copy_((self.cooldown_left - 1).clamp_min(0))
            return
        self.average.zero_()
        self.cooldown_left.fill_(self.cooldown)


# ---------------------------------------------------------------------------------------------
# DPED's "adversarial" CNN (DPED texture critic; WESPE colour and texture critics)
# ---------------------------------------------------------------------------------------------

#: Conv widths of DPED's critic relative to its first layer (48-128-192-192-128 at width 48).
DPED_CRITIC_WIDTHS = (1.0, 8 / 3, 4.0, 4.0, 8 / 3)
#: (kernel, stride) of its five convs.
DPED_CRITIC_CONVS = ((11, 4), (5, 2), (3, 1), (3, 1), (3, 2))
#: Spatial size before the FC layers for a 100×100 input with 'SAME' padding (100→25→13→13→13→7).
DPED_CRITIC_GRID = 7


class DPEDDiscriminator(nn.Module):
    """DPED's discriminator ("adversarial" in ``models.py``; methods.md §1.3).

    Five convs with TF 'SAME' padding — 11×11/4 (no norm), 5×5/2, 3×3/1, 3×3/1, 3×3/2 — each
    ``conv → +bias → LeakyReLU(0.2) → norm`` (DPED's order: the norm comes *after* the
    activation), then FC ``7·7·C → 1024`` + LeakyReLU and FC ``1024 → 2`` (DPED: softmax over
    {DSLR, enhanced}; logits returned) or ``1024 → 1`` (WESPE's sigmoid critics; the logit is
    returned). Weights start truncated-normal with std 0.01 and biases at 0.01, as in DPED.

    Other patch sizes: a 100×100 input reaches the FC layers as 7×7 exactly as in DPED. Any other
    size is average-pooled adaptively to 7×7 first (an identity at 100 px), so the smaller patches
    of quick configs keep the FC shape; below ~100 px this replicates cells rather than pooling
    them, and the critic is then a variant of DPED's rather than DPED's. The alternative, an FC
    sized for one patch size, would reject every other size.

    Parameters with the paper's settings: 7,361,122 (gray, two-class: the spec's "7.36 M",
    87 % in the first FC), 7,372,738 (RGB, two-class: "7.37 M"); the one-logit head has 1,025
    fewer (7,360,097 gray, 7,371,713 RGB).

    Args:
        in_channels: 1 for gray (DPED, WESPE's texture critic), 3 for RGB (WESPE's colour critic).
        width: first conv width; all five scale with it (48 in the paper: 48-128-192-192-128).
        head: ``"two_class"`` (DPED, ``(B, 2)`` logits, class 0 = DSLR/real, 1 = enhanced) or
            ``"logit"`` (WESPE, ``(B,)`` logits of "real").
        norm: ``"instance"`` (DPED code: affine, eps 1e-3, per-image statistics), ``"batch"``
            (the JuheonYi WESPE port and the DPED paper's wording; eps 1e-3), or ``"none"``.
        fc_features: width of the hidden FC layer (1024).
    """

    def __init__(self, in_channels: int = 1, width: int = 48, head: Literal["two_class", "logit"] = "two_class",
                 norm: Literal["instance", "batch", "none"] = "instance", fc_features: int = 1024) -> None:
        super().__init__()
        if head not in ("two_class", "logit"):
            raise ValueError(f"head must be 'two_class' or 'logit', got {head!r}")
        if norm not in ("instance", "batch", "none"):
            raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {norm!r}")
        widths = [max(1, round(width * r)) for r in DPED_CRITIC_WIDTHS]
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        channels = in_channels
        for index, (out, (kernel, stride)) in enumerate(zip(widths, DPED_CRITIC_CONVS, strict=True)):
            self.convs.append(nn.Conv2d(channels, out, kernel, stride))
            if index == 0 or norm == "none":
                self.norms.append(nn.Identity())
            elif norm == "instance":
                self.norms.append(nn.InstanceNorm2d(out, eps=1e-3, affine=True))
            else:
                self.norms.append(nn.BatchNorm2d(out, eps=1e-3))
            channels = out
        self.fc = nn.Linear(channels * DPED_CRITIC_GRID**2, fc_features)
        self.out = nn.Linear(fc_features, 2 if head == "two_class" else 1)
        self.head = head
        dped_init_(self)

    def forward(self, image: Tensor) -> Tensor:
        """``(B, in_channels, H, W)`` → ``(B, 2)`` logits (two-class) or ``(B,)`` logits."""
        x = image
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = norm(F.leaky_relu(conv(tf_same_pad(x, conv.kernel_size[0], conv.stride[0])), 0.2))
        if x.shape[-2:] != (DPED_CRITIC_GRID, DPED_CRITIC_GRID):
            x = F.adaptive_avg_pool2d(x, DPED_CRITIC_GRID)
        logits = self.out(F.leaky_relu(self.fc(x.flatten(1)), 0.2))
        return logits if self.head == "two_class" else logits.squeeze(1)


# --- sliced critics (DACAL) below ---
#
# SWGAN's dual sliced-Wasserstein head (Wu, Huang et al., CVPR 2019; methods.md §1.8), read in
# musikisomorphie/swd ``standard_training/swgan_64x64.py`` (``SWD``, ``SWDBlock`` and the
# "stiefel update" of the critic's optimiser). DACAL's "dimension-based division" (methods.md
# §7.1b: "OrthoProj" / sliced layers in D) and the toy study both use it.
#
# Where the orthogonality is kept, and by whom:
#   1. the Euclidean gradient of every projection matrix is replaced by its Stiefel tangent
#      projection ``G − W·sym(WᵀG)`` after the critic's backward pass and before its optimiser
#      step (``SlicedHead.project_gradients``; ``AdversarialMethod`` calls
#      ``before_critic_optimizer_step`` there, the toy loop calls it itself); the SWGAN code
#      rewrites ``grads_and_vars`` at the same point;
#   2. after the step, W is retracted onto the orthogonal group with a QR decomposition
#      (``SlicedHead.retract``, from ``after_critic_step``). SWGAN uses plain ``tf.qr``, whose
#      Householder R can have negative diagonal entries, so a column of W may flip sign from one
#      step to the next (and the learnt scale/offset of its potential then acts on the mirrored
#      projection); here the retraction is sign-preserving, ``Q·diag(sign(diag R))`` — the unique
#      QR factor with a positive R diagonal and the standard QR retraction, which leaves an
#      orthogonal W unchanged and keeps its orientation.

#: Slope of the 1-D potentials' LeakyReLU (SWGAN ``LeakyReLU(x, alpha=0.2)``).
SLICED_LEAK = 0.2


def stiefel_project(weight: Tensor, gradient: Tensor) -> Tensor:
    """Project a Euclidean gradient onto the tangent space of the Stiefel manifold at ``weight``.

    ``G − W·sym(WᵀG)`` with ``sym(A) = (A + Aᵀ)/2`` (SWGAN's ``rgrad``). For an orthogonal W the
    result is ``W·skew(WᵀG)``, so ``Wᵀ·result`` is skew-symmetric: a tangent direction.

    Args:
        weight: ``(..., n, p)`` with orthonormal columns.
        gradient: same shape.

    Returns:
        The projected gradient, same shape.
    """
    inner = weight.transpose(-1, -2) @ gradient
    return gradient - weight @ (0.5 * (inner + inner.transpose(-1, -2)))


def qr_retract(weight: Tensor) -> Tensor:
    """Sign-preserving QR retraction: the Q of ``weight = QR`` with a positive R diagonal.

    ``Q·diag(sign(diag R))`` — each column keeps the orientation of the matrix it came from (an
    orthogonal ``weight`` is returned unchanged, up to rounding), unlike a plain Householder QR.
    A zero diagonal entry of R (rank-deficient input) keeps its column as it is.

    Args:
        weight: ``(..., n, p)``, ``n >= p``.

    Returns:
        ``(..., n, p)`` with orthonormal columns.
    """
    q, r = torch.linalg.qr(weight)
    signs = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return q * signs.unsqueeze(-2)


def random_orthogonal(count: int, size: int, generator: torch.Generator | None = None) -> Tensor:
    """``(count, size, size)`` Haar-distributed orthogonal matrices (sign-fixed QR of Gaussians)."""
    return qr_retract(torch.randn(count, size, size, generator=generator))


class SlicedHead(nn.Module):
    """SWGAN's dual-SWD head: K orthogonal projections, per-dimension 1-D potentials, mean.

    For features ``f ∈ R^d``: ``p_k = f·W_k`` (``W_k ∈ R^{d×d}`` orthogonal), then
    ``φ_k(p_k) = LeakyReLU_0.2(s_k ⊙ p_k + o_k)`` with learnt scale ``s`` (init 1) and offset
    ``o`` (init 0); the critic value is the mean of the ``K·d`` values (SWGAN concatenates the
    four blocks and takes ``reduce_mean``). Each coordinate of ``p_k`` is one direction on the
    unit sphere, and its potential is a 1-D function of that projection alone — the
    "dimension-based division" into independent one-dimensional problems.

    The W_k start orthogonal (Haar, from the global torch generator); SWGAN starts them
    Gaussian and orthogonalises them at its first update. Orthogonality is then kept by
    :meth:`project_gradients` before each optimiser step and :meth:`retract` after it (see the
    section comment above).

    Args:
        features: d, the feature width and size of each projection (128 in SWGAN).
        projections: K, the number of projection matrices (4 in SWGAN).
    """

    def __init__(self, features: int = 128, projections: int = 4) -> None:
        super().__init__()
        if features < 1 or projections < 1:
            raise ValueError(f"features and projections must be >= 1, got {features}, {projections}")
        self.features, self.projections = features, projections
        self.weight = nn.Parameter(random_orthogonal(projections, features))
        self.scale = nn.Parameter(torch.ones(projections, features))
        self.offset = nn.Parameter(torch.zeros(projections, features))

    def potentials(self, features: Tensor) -> Tensor:
        """The ``(B, K, d)`` 1-D potential values ``φ_k(f·W_k)`` of ``(B, d)`` features."""
        if features.dim() != 2 or features.shape[1] != self.features:
            raise ValueError(f"SlicedHead expects (B, {self.features}) features, got {tuple(features.shape)}")
        projected = torch.einsum("bi,kij->bkj", features, self.weight)
        return F.leaky_relu(self.scale * projected + self.offset, SLICED_LEAK)

    def forward(self, features: Tensor) -> Tensor:
        """``(B, d)`` features → ``(B,)`` critic values (mean of the K·d potentials)."""
        return self.potentials(features).mean(dim=(1, 2))

    @torch.no_grad()
    def project_gradients(self) -> None:
        """Replace ``weight.grad`` by its Stiefel tangent projection (before the optimiser step)."""
        if self.weight.grad is not None:
            self.weight.grad.copy_(stiefel_project(self.weight, self.weight.grad))

    @torch.no_grad()
    def retract(self) -> None:
        """Retract every W_k onto the orthogonal group (after the optimiser step)."""
        self.weight.copy_(qr_retract(self.weight))

    def orthogonality_error(self) -> Tensor:
        """``max_k ‖W_kᵀW_k − I‖_F`` (a diagnostic)."""
        eye = torch.eye(self.features, device=self.weight.device, dtype=self.weight.dtype)
        gram = self.weight.detach().transpose(-1, -2) @ self.weight.detach()
        return torch.linalg.matrix_norm(gram - eye).max()


def sliced_feature_penalty(head: SlicedHead, real_features: Tensor, fake_features: Tensor, alpha: Tensor,
                           target: float = 1e-3) -> Tensor:
    """SWGAN's feature-space penalty ``P_feat`` (its λ₂ term, λ₂ = 10 there), ported literally.

    At interpolated features ``f̂ = (1 − α)·f_real + α·f_fake`` the head's potential values ``ℓ``
    (after the LeakyReLU) give ``g = s ⊙ (0.5·(|ℓ| + ℓ) + 0.1·(|ℓ| − ℓ))`` — ``s·ℓ`` where ℓ > 0
    and ``−0.2·s·ℓ`` where ℓ < 0 — and the penalty is ``mean((g − 0.001)²)``. It is a heuristic
    regulariser of the potentials' scale, not an exact slope (methods.md §1.8).

    Args:
        head: the sliced head.
        real_features, fake_features: ``(B, d)`` critic features (with their graphs).
        alpha: ``(B, 1)`` mixing weights in [0, 1] (note SWGAN's orientation: α weights the fake).
        target: the value g is pulled towards (0.001).

    Returns:
        Scalar penalty (unweighted).
    """
    mixed = (1 - alpha) * real_features + alpha * fake_features
    values = head.potentials(mixed)
    g = head.scale * (0.5 * (values.abs() + values) + 0.1 * (values.abs() - values))
    return (g - target).square().mean()


#: (output width as a multiple of ``width``, kernel, stride) of the image critic's convs: DPE's
#: critic layout (§6.2) at ``width`` 16 → 16-32-64-128-128-128.
IMAGE_CRITIC_LAYERS = ((1, 3, 1), (2, 5, 2), (4, 5, 2), (8, 5, 2), (8, 5, 2), (8, 5, 2))


class OptionalSlicedHead(nn.Module):
    """Base for critics whose last layer is a :class:`SlicedHead` (``self.head``) or a scalar
    layer (``self.head = None``): the manifold steps the training loop calls, written once."""

    head: SlicedHead | None

    def project_gradients(self) -> None:
        """Stiefel projection of the head's gradients (no-op for the scalar head)."""
        if self.head is not None:
            self.head.project_gradients()

    def retract(self) -> None:
        """QR retraction of the head's projections (no-op for the scalar head)."""
        if self.head is not None:
            self.head.retract()


class SlicedCritic(OptionalSlicedHead):
    """Image critic for any input size: conv trunk → global average pool → sliced or scalar head.

    Trunk: DPE's critic layout (§6.2: a 3×3 conv, then five 5×5 stride-2 convs; 16-32-64-128-
    128-128 at ``width`` 16), each conv followed by LeakyReLU(0.2) then a layer norm over
    (C, H, W) with a per-channel affine (``GroupNorm(1, C)``, the norm of SWGAN's critic; DPE's
    instance norm cannot normalise the 1×1 maps that small crops reach), zero 'same' padding.
    The map is then averaged over space — so any input size works, and DPE's 'valid' conv whose
    kernel fixes the input at 512² is gone — and the last layer is either

    * ``sliced=True``: a linear layer to ``features`` dims and :class:`SlicedHead`, or
    * ``sliced=False``: a linear layer to one score (a WGAN critic).

    That is, the sliced head replaces the critic's last layer and nothing else changes, as the
    toy study swaps D's last layer (methods.md §7.2).

    Args:
        in_channels: 3 (RGB / blurred colour) or 1 (gray / high-pass texture).
        width: first conv width; the others scale with it.
        sliced: SlicedHead (True) or a scalar linear head (False).
        features: d of the sliced head.
        projections: K of the sliced head.
    """

    def __init__(self, in_channels: int = 3, width: int = 16, sliced: bool = True, features: int = 128,
                 projections: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for multiple, kernel, stride in IMAGE_CRITIC_LAYERS:
            out = width * multiple
            layers += [nn.Conv2d(channels, out, kernel, stride, padding=kernel // 2), nn.LeakyReLU(0.2),
                       nn.GroupNorm(1, out)]
            channels = out
        self.trunk = nn.Sequential(*layers)
        self.sliced = sliced
        self.to_features = nn.Linear(channels, features if sliced else 1)
        self.head: SlicedHead | None = SlicedHead(features, projections) if sliced else None

    def features(self, image: Tensor) -> Tensor:
        """``(B, C, H, W)`` → ``(B, d)`` features (sliced) or ``(B, 1)`` scores (scalar)."""
        return self.to_features(self.trunk(image).mean(dim=(2, 3)))

    def score(self, features: Tensor) -> Tensor:
        """Features from :meth:`features` → ``(B,)`` critic values."""
        return self.head(features) if self.head is not None else features.squeeze(1)

    def forward(self, image: Tensor) -> Tensor:
        """``(B, C, H, W)`` → ``(B,)`` critic values."""
        return self.score(self.features(image))

