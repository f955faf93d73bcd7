"""Critics (discriminators) and what regularises them: gradient penalties, adaptive λ.

Everything here is shared by two or more adversarial methods (DPED, WESPE, DPE, DACAL). A
critic specific to one paper lives in that method's file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

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
