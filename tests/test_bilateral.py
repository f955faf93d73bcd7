"""bilateral_slice_apply against a loop port of HDRNet's CUDA kernel, gradients, identity grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.layers import bilateral_slice_apply


pytestmark = pytest.mark.usefixtures("one_thread")


def kernel_reference(grid: np.ndarray, guide: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Plain-loop transcription of ``BilateralSliceApplyKernel`` (google/hdrnet, numerics.h).

    Written from the kernel's description, independently of grid_sample: position
    ``g = (x + 0.5) * Wg / W`` (same for y), ``gz = guide * D`` (no +0.5), samples at ``i + 0.5``,
    two neighbours per axis starting at ``floor(g - 0.5)``, indices clamped to the grid, tent
    weights ``max(1 - |(i + 0.5) - g|, 0)``. The kernel's smoothed |d| = sqrt(d² + 1e-8) in the z
    weight is left out on purpose: it is a gradient device that moves values by at most 1e-4 of
    a coefficient, right at bin centres, and the op under test documents that it omits it.
    Shapes: grid (B, 12, D, Hg, Wg), guide (B, 1, H, W), image (B, 3, H, W).
    """
    b_n, _, depth, gh, gw = grid.shape
    _, _, h, w = image.shape
    out = np.zeros((b_n, 3, h, w))
    for b in range(b_n):
        for y in range(h):
            for x in range(w):
                gxf = (x + 0.5) * gw / w
                gyf = (y + 0.5) * gh / h
                gzf = guide[b, 0, y, x] * depth
                gx0, gy0, gz0 = (math.floor(v - 0.5) for v in (gxf, gyf, gzf))
                for c in range(3):
                    value = 0.0
                    for j in range(4):
                        sample = 0.0
                        for gy in (gy0, gy0 + 1):
                            wy = max(1 - abs(gy + 0.5 - gyf), 0.0)
                            gyc = min(max(gy, 0), gh - 1)
                            for gx in (gx0, gx0 + 1):
                                wx = max(1 - abs(gx + 0.5 - gxf), 0.0)
                                gxc = min(max(gx, 0), gw - 1)
                                for gz in (gz0, gz0 + 1):
                                    wz = max(1 - abs(gz + 0.5 - gzf), 0.0)
                                    gzc = min(max(gz, 0), depth - 1)
                                    sample += wx * wy * wz * grid[b, c * 4 + j, gzc, gyc, gxc]
                        value += sample * (image[b, j, y, x] if j < 3 else 1.0)
                    out[b, c, y, x] = value
    return out


@pytest.mark.parametrize(
    ("depth", "gh", "gw", "h", "w"), [(4, 3, 5, 7, 9), (8, 4, 4, 5, 11), (2, 1, 3, 6, 2)]
)
def test_matches_kernel_loops(depth: int, gh: int, gw: int, h: int, w: int) -> None:
    gen = torch.Generator().manual_seed(depth * 100 + h)
    grid = torch.randn(2, 12, depth, gh, gw, generator=gen, dtype=torch.float64)
    image = torch.rand(2, 3, h, w, generator=gen, dtype=torch.float64)
    guide = torch.rand(2, 1, h, w, generator=gen, dtype=torch.float64)
    # Exact ends of the range, and values in the clamped half-cells next to them.
    guide[0, 0, 0, :2] = torch.tensor([0.0, 1.0], dtype=torch.float64)
    guide[1, 0, -1, -2:] = torch.tensor([0.1 / depth, 1 - 0.2 / depth], dtype=torch.float64)
    expected = kernel_reference(grid.numpy(), guide.numpy(), image.numpy())
    got = bilateral_slice_apply(grid, guide, image)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-5)
    # Row chunking must not change anything (1 row per chunk here).
    chunked = bilateral_slice_apply(grid, guide, image, chunk_pixels=1)
    torch.testing.assert_close(chunked, got, rtol=0, atol=0)


def test_gradcheck() -> None:
    gen = torch.Generator().manual_seed(0)
    depth, h, w = 4, 5, 6
    grid = torch.randn(1, 12, depth, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    image = torch.rand(1, 3, h, w, generator=gen, dtype=torch.float64, requires_grad=True)
    # The z interpolant is piecewise linear with kinks where guide * D - 0.5 is an integer (and
    # flat in the clamped half-cells at both ends). Keep every guide value at least 0.1 / D away
    # from a kink so finite differences (eps 1e-6) never straddle one.
    cell = torch.randint(0, depth + 1, (1, 1, h, w), generator=gen)
    frac = 0.1 + 0.8 * torch.rand(1, 1, h, w, generator=gen, dtype=torch.float64)
    guide = ((cell - 0.5 + frac) / depth).clamp(0.02 / depth, 1 - 0.02 / depth)
    guide.requires_grad_(True)
    assert torch.autograd.gradcheck(bilateral_slice_apply, (grid, guide, image), eps=1e-6, atol=1e-6)


def test_identity_grid_returns_image() -> None:
    grid = torch.zeros(2, 12, 8, 16, 16)
    for c in range(3):
        grid[:, c * 4 + c] = 1.0
    image = torch.rand(2, 3, 37, 53)
    guide = torch.rand(2, 1, 37, 53)
    guide[:, :, 0, 0] = 0.0
    guide[:, :, -1, -1] = 1.0
    # Exact up to the rounding of the trilinear weights' sum (a few float32 ulps).
    torch.testing.assert_close(bilateral_slice_apply(grid, guide, image), image, rtol=0, atol=1e-6)


def test_offset_only_grid_is_trilinear_in_guide() -> None:
    """A grid whose offsets are the bin index gives the tent-interpolated index, clamped."""
    depth = 4
    grid = torch.zeros(1, 12, depth, 2, 2, dtype=torch.float64)
    grid[:, 3] = torch.arange(depth, dtype=torch.float64).view(1, depth, 1, 1)
    guide = torch.tensor([0.0, 0.1, 0.125, 0.3, 0.5, 0.875, 0.95, 1.0], dtype=torch.float64).view(1, 1, 1, 8)
    out = bilateral_slice_apply(grid, guide, torch.zeros(1, 3, 1, 8, dtype=torch.float64))[0, 0, 0]
    expected = (guide.flatten() * depth - 0.5).clamp(0, depth - 1)
    torch.testing.assert_close(out, expected)
