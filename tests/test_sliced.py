"""SWGAN's sliced head and its Stiefel maths (baselines/critics.py, the sliced section)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.critics import (
    SlicedCritic,
    SlicedHead,
    qr_retract,
    sliced_feature_penalty,
    stiefel_project,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def gram_schmidt(matrix: np.ndarray) -> np.ndarray:
    """Classical Gram–Schmidt on the columns (float64): the Q of the QR with a positive R diagonal."""
    q = np.zeros_like(matrix, dtype=np.float64)
    for j in range(matrix.shape[1]):
        v = matrix[:, j].astype(np.float64)
        for i in range(j):
            v = v - (q[:, i] @ matrix[:, j]) * q[:, i]
        q[:, j] = v / np.linalg.norm(v)
    return q


def orthogonality_error(weight: torch.Tensor) -> float:
    eye = torch.eye(weight.shape[-1], dtype=weight.dtype)
    return float(torch.linalg.matrix_norm(weight.transpose(-1, -2) @ weight - eye).max())


def test_stiefel_projection_is_the_tangent_projection():
    g = torch.Generator().manual_seed(0)
    w = qr_retract(torch.randn(3, 6, 6, generator=g, dtype=torch.float64))
    grad = torch.randn(3, 6, 6, generator=g, dtype=torch.float64)
    projected = stiefel_project(w, grad)
    inner = w.transpose(-1, -2) @ projected
    # Tangent at an orthogonal W: WᵀG is skew-symmetric.
    assert torch.allclose(inner, -inner.transpose(-1, -2), atol=1e-12)
    # Independent formula for a square orthogonal W: W·skew(WᵀG).
    wg = w.transpose(-1, -2) @ grad
    assert torch.allclose(projected, w @ (wg - wg.transpose(-1, -2)) / 2, atol=1e-12)
    # A projection: applying it twice changes nothing; a tangent vector is kept as it is.
    assert torch.allclose(stiefel_project(w, projected), projected, atol=1e-12)
    # The raw gradient was not tangent (the test would notice a no-op projection).
    raw = w.transpose(-1, -2) @ grad
    assert not torch.allclose(raw, -raw.transpose(-1, -2), atol=1e-3)


def test_qr_retraction_matches_gram_schmidt_and_keeps_orientation():
    g = torch.Generator().manual_seed(1)
    matrix = torch.randn(5, 5, generator=g, dtype=torch.float64)
    q = qr_retract(matrix)
    assert np.allclose(q.numpy(), gram_schmidt(matrix.numpy()), atol=1e-10)
    # An orthogonal matrix is a fixed point...
    w = qr_retract(torch.randn(4, 8, 8, generator=g, dtype=torch.float64))
    assert torch.allclose(qr_retract(w), w, atol=1e-12)
    # ...whereas LAPACK's Householder QR flips columns (negative R diagonal) for most of them.
    plain_q, plain_r = torch.linalg.qr(w)
    assert (torch.diagonal(plain_r, dim1=-2, dim2=-1) < 0).any()
    assert not torch.allclose(plain_q, w, atol=1e-6)
    # After a small step off the manifold, the retraction keeps each column's direction and the
    # determinant (orientation); the plain Q does not in general.
    stepped = w + 1e-3 * torch.randn(4, 8, 8, generator=g, dtype=torch.float64)
    retracted = qr_retract(stepped)
    assert orthogonality_error(retracted) < 1e-12
    assert torch.allclose(torch.linalg.det(retracted), torch.linalg.det(w), atol=1e-9)
    assert (torch.einsum("kij,kij->kj", retracted, w) > 0.99).all()
    plain = torch.linalg.qr(stepped).Q
    assert (torch.einsum("kij,kij->kj", plain, w) < 0).any()


def test_projections_stay_orthogonal_over_many_optimiser_steps():
    torch.manual_seed(0)
    heads = {"kept": SlicedHead(16, 4), "unconstrained": SlicedHead(16, 4)}
    heads["unconstrained"].load_state_dict(heads["kept"].state_dict())
    features = torch.randn(64, 16)
    target = torch.randn(64)
    for name, head in heads.items():
        optimiser = torch.optim.Adam(head.parameters(), lr=1e-2, betas=(0.5, 0.9))
        for _ in range(300):
            loss = (head(features) - target).square().mean()
            optimiser.zero_grad()
            loss.backward()
            if name == "kept":
                head.project_gradients()
                grad, w = head.weight.grad, head.weight.detach()
                inner = w.transpose(-1, -2) @ grad
                assert torch.allclose(inner, -inner.transpose(-1, -2), atol=1e-5)
            optimiser.step()
            if name == "kept":
                head.retract()
    assert float(heads["kept"].orthogonality_error()) < 1e-4
    # Without the projection and the retraction the same steps leave the manifold.
    assert float(heads["unconstrained"].orthogonality_error()) > 1e-2


def test_sliced_head_forward_matches_explicit_loops():
    torch.manual_seed(2)
    head = SlicedHead(5, 3)
    with torch.no_grad():
        head.scale.uniform_(0.5, 1.5)
        head.offset.uniform_(-0.3, 0.3)
    features = torch.randn(4, 5)
    w, s, o, f = (t.detach().double().numpy() for t in (head.weight, head.scale, head.offset, features))
    expected = np.zeros(4)
    for b in range(4):
        values = []
        for k in range(3):
            for j in range(5):
                z = s[k, j] * sum(f[b, i] * w[k, i, j] for i in range(5)) + o[k, j]
                values.append(z if z > 0 else 0.2 * z)
        expected[b] = np.mean(values)
    assert np.allclose(head(features).detach().double().numpy(), expected, atol=1e-5)
    assert head.weight.shape == (3, 5, 5) and orthogonality_error(head.weight.detach()) < 1e-5


def test_feature_penalty_follows_the_swgan_formula_on_a_hand_example():
    head = SlicedHead(2, 1)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2).unsqueeze(0))
        head.scale.copy_(torch.tensor([[2.0, 1.0]]))
        head.offset.zero_()
    real = torch.tensor([[1.0, -1.0]])
    fake = torch.tensor([[3.0, 1.0]])
    alpha = torch.tensor([[0.5]])
    # Interpolate (2, 0); potentials ℓ = LReLU(2·2, 1·0) = (4, 0);
    # g = s ⊙ (ℓ where ℓ > 0, −0.2ℓ where ℓ < 0) = (8, 0); penalty = mean((g − 0.001)²).
    expected = ((8 - 0.001) ** 2 + (0 - 0.001) ** 2) / 2
    assert sliced_feature_penalty(head, real, fake, alpha).item() == pytest.approx(expected, rel=1e-6)
    # A negative potential: interpolate (−2, 0) → ℓ = (−0.8, 0) → g = 2 · 0.2 · 0.8 = 0.32.
    value = sliced_feature_penalty(head, -real, -fake, alpha).item()
    assert value == pytest.approx(((0.32 - 0.001) ** 2 + 0.001**2) / 2, rel=1e-5)


@pytest.mark.parametrize("sliced", [True, False])
def test_sliced_critic_takes_any_size(sliced):
    torch.manual_seed(3)
    critic = SlicedCritic(in_channels=1, width=4, sliced=sliced, features=8, projections=2)
    for size in ((9, 13), (32, 32), (70, 41)):
        image = torch.rand(2, 1, *size, requires_grad=True)
        scores = critic(image)
        assert scores.shape == (2,)
        scores.sum().backward()
        assert torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0
    assert (critic.head is not None) == sliced
    if sliced:
        before = critic.head.weight.detach().clone()
        critic.head.weight.grad = torch.randn_like(before)
        critic.project_gradients()
        inner = before.transpose(-1, -2) @ critic.head.weight.grad
        assert torch.allclose(inner, -inner.transpose(-1, -2), atol=1e-5)
