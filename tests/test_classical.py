"""Reference rows: identity, auto-levels, CLAHE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.classical import CLAHE, AutoLevels, Identity


def test_identity_is_exact():
    image = torch.rand(2, 3, 17, 23)
    assert torch.equal(Identity()(image), image)


def test_autolevels_stretches_each_channel_to_full_range():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 64, 64) * torch.tensor([0.3, 0.5, 0.2]).view(1, 3, 1, 1) + 0.1
    out = AutoLevels(low_percentile=0.0, high_percentile=100.0)(image)
    flat = out.flatten(2)
    assert torch.allclose(flat.min(-1).values, torch.zeros(1, 3), atol=1e-6)
    assert torch.allclose(flat.max(-1).values, torch.ones(1, 3), atol=1e-6)
    # Order within a channel is preserved (monotone map).
    order_in = image[0, 0].flatten().argsort()
    assert (out[0, 0].flatten()[order_in].diff() >= -1e-6).all()


def test_autolevels_shared_range_keeps_cast():
    image = torch.stack([torch.linspace(0.2, 0.6, 100), torch.linspace(0.1, 0.3, 100),
                         torch.linspace(0.1, 0.3, 100)]).view(1, 3, 10, 10)
    shared = AutoLevels(0.0, 100.0, per_channel=False)(image)
    assert shared[0, 0].mean() > shared[0, 1].mean() + 0.2  # red stays dominant


def test_autolevels_rejects_bad_percentiles():
    with pytest.raises(ValueError):
        AutoLevels(low_percentile=60)


def test_clahe_raises_local_contrast_and_keeps_shape():
    rng = np.random.default_rng(0)
    low_contrast = 0.45 + 0.1 * rng.random((1, 3, 64, 80), dtype=np.float32)
    image = torch.from_numpy(low_contrast)
    out = CLAHE()(image)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert 0 <= out.min() and out.max() <= 1
    assert out.std() > image.std()
