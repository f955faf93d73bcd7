"""DPED/WESPE building blocks against independent references: the blur kernel against DPED's
formula (written here with scipy), colour and TV losses against hand computations, the VGG-19
content loss against torchvision's own VGG-19 with the same (fake, hash-named) weights."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F

from baselines import weights
from baselines.layers import GaussianBlur, gaussian_kernel_1d, gaussian_kernel_2d
from baselines.losses import ContentLoss, color_loss, tv_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def _second_moment_std(weights_1d: np.ndarray) -> float:
    w = weights_1d / weights_1d.sum()
    offsets = np.arange(len(w)) - (len(w) - 1) / 2
    mean = (w * offsets).sum()
    return float(np.sqrt((w * (offsets - mean) ** 2).sum()))


def _dped_reference_kernel(kernlen: int, nsig: float) -> np.ndarray:
    """DPED utils.gauss_kernel as methods.md §1.2 describes it: CDF differences over kernlen
    bins spanning ±(nsig + half a bin), 2-D kernel = sqrt of the outer product, renormalised."""
    interval = (2 * nsig + 1.0) / kernlen
    edges = np.linspace(-nsig - interval / 2.0, nsig + interval / 2.0, kernlen + 1)
    kern1d = np.diff(scipy.stats.norm.cdf(edges))
    raw = np.sqrt(np.outer(kern1d, kern1d))
    return raw / raw.sum()


# --------------------------------------------------------------------------------------------
# Gaussian blur
# --------------------------------------------------------------------------------------------


def test_dped_kernel_equals_dpeds_formula():
    np.testing.assert_allclose(gaussian_kernel_2d(21, 3.0, "dped").numpy(), _dped_reference_kernel(21, 3), rtol=1e-10)
    np.testing.assert_allclose(gaussian_kernel_2d(11, 2.0, "dped").numpy(), _dped_reference_kernel(11, 2), rtol=1e-10)


def test_dped_kernel_blurs_like_4_34_px_not_3_px():
    """methods.md §1.2 pitfall: the normalised marginal of DPED's 21-tap, nsig-3 kernel has a
    second-moment std of ≈ 4.34 px; a true σ = 3 kernel has ≈ 3."""
    marginal = gaussian_kernel_2d(21, 3.0, "dped").sum(dim=0).numpy()
    assert _second_moment_std(marginal) == pytest.approx(4.34, abs=0.005)
    np.testing.assert_allclose(marginal, gaussian_kernel_1d(21, 3.0, "dped").numpy(), rtol=1e-12)
    true = gaussian_kernel_2d(21, 3.0, "true_sigma").sum(dim=0).numpy()
    assert _second_moment_std(true) == pytest.approx(3.0, abs=0.01)  # 2.991: cut at ±3.3σ
    assert _second_moment_std(gaussian_kernel_1d(41, 1.5, "true_sigma").numpy()) == pytest.approx(1.5, abs=1e-6)


def test_anisotropic_kernel_has_its_own_vertical_sigma():
    kernel = gaussian_kernel_2d(31, 2.0, "true_sigma", sigma_y=4.0).numpy()
    assert kernel.sum() == pytest.approx(1.0)
    assert _second_moment_std(kernel.sum(axis=0)) == pytest.approx(2.0, abs=1e-3)  # horizontal
    assert _second_moment_std(kernel.sum(axis=1)) == pytest.approx(4.0, abs=0.01)  # vertical


@pytest.mark.parametrize("padding", ["zeros", "reflect"])
def test_separable_blur_equals_the_2d_depthwise_conv(padding):
    torch.manual_seed(0)
    image = torch.rand(2, 3, 25, 31)
    blur = GaussianBlur(21, 3.0, "dped", padding=padding, sigma_y=2.0)
    kernel = blur.kernel().view(1, 1, 21, 21).expand(3, 1, 21, 21)
    if padding == "zeros":
        expected = F.conv2d(image, kernel, padding=10, groups=3)  # TF 'SAME' for stride 1
    else:
        expected = F.conv2d(F.pad(image, (10,) * 4, mode="reflect"), kernel, groups=3)
    torch.testing.assert_close(blur(image), expected, atol=1e-6, rtol=1e-5)


def test_zero_padding_darkens_the_border_and_reflect_does_not():
    flat = torch.full((1, 1, 40, 40), 0.5)
    zeros = GaussianBlur(21, 3.0, padding="zeros")(flat)
    assert zeros[0, 0, 20, 20] == pytest.approx(0.5, abs=1e-5) and zeros[0, 0, 0, 0] < 0.4
    torch.testing.assert_close(GaussianBlur(21, 3.0, padding="reflect")(flat), flat)


def test_blur_rejects_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        GaussianBlur(20)
    with pytest.raises(ValueError, match="mode"):
        GaussianBlur(21, mode="box")
    with pytest.raises(ValueError, match="reflect padding of 10 px"):
        GaussianBlur(21, padding="reflect")(torch.rand(1, 3, 8, 30))


# --------------------------------------------------------------------------------------------
# Colour and TV losses
# --------------------------------------------------------------------------------------------


def test_color_loss_is_dpeds_batch_normalised_sum():
    pred = torch.zeros(2, 3, 4, 5)
    target = torch.zeros(2, 3, 4, 5)
    target[0, 1, 2, 3] = 2.0  # one pixel off by 2 in one image
    identity = torch.nn.Identity()
    # Σ (y − ŷ)² / (2·B) = 4 / 4.
    assert color_loss(pred, target, identity).item() == pytest.approx(1.0)
    # A patch four times larger with the same per-pixel error gives four times the loss.
    big_pred, big_target = torch.zeros(2, 3, 8, 10), torch.full((2, 3, 8, 10), 0.1)
    small_pred, small_target = torch.zeros(2, 3, 4, 5), torch.full((2, 3, 4, 5), 0.1)
    ratio = color_loss(big_pred, big_target, identity) / color_loss(small_pred, small_target, identity)
    assert ratio.item() == pytest.approx(4.0)


def test_color_loss_blurs_before_comparing():
    torch.manual_seed(0)
    pred, target = torch.rand(1, 3, 30, 30), torch.rand(1, 3, 30, 30)
    blur = GaussianBlur()
    expected = ((blur(target) - blur(pred)) ** 2).sum() / 2
    assert color_loss(pred, target, blur).item() == pytest.approx(expected.item(), rel=1e-6)
    assert color_loss(pred, target, blur) < color_loss(pred, target, torch.nn.Identity())


def _tv_example() -> torch.Tensor:
    # One image, one channel: rows [0, 1, 3] and [2, 2, 2].
    # dx = [1, 2], [0, 0] (4 elements); dy = [2, 1, -1] (3 elements).
    return torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])


def test_tv_variants_on_a_hand_computed_example():
    image = _tv_example()
    # dped: mean(dx²) + mean(dy²) = (1 + 4 + 0 + 0)/4 + (4 + 1 + 1)/3 = 1.25 + 2.
    assert tv_loss(image, "dped").item() == pytest.approx(3.25)
    # mean_sq: (Σdx² + Σdy²)/(b·c·h·w) = (5 + 6)/6.
    assert tv_loss(image, "mean_sq").item() == pytest.approx(11 / 6)
    # l1_sum: per image Σ|dx| + Σ|dy| = 3 + 4, mean over the batch.
    assert tv_loss(image, "l1_sum").item() == pytest.approx(7.0)


def test_tv_batch_normalisation():
    image = _tv_example()
    pair = torch.cat([image, torch.zeros_like(image)])  # a flat second image
    assert tv_loss(pair, "dped").item() == pytest.approx(3.25 / 2)  # means over all elements
    assert tv_loss(pair, "mean_sq").item() == pytest.approx(11 / 12)
    assert tv_loss(pair, "l1_sum").item() == pytest.approx(7.0 / 2)
    with pytest.raises(ValueError, match="variant"):
        tv_loss(image, "l2")


# --------------------------------------------------------------------------------------------
# VGG-19 content loss
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torchvision_vgg19_features():
    """torchvision's own ``vgg19().features``, built on the meta device (no 140 M-parameter
    initialisation) and materialised empty; tests fill it."""
    import torchvision

    with torch.device("meta"):
        reference = torchvision.models.vgg19(weights=None)
    return reference.features.to_empty(device="cpu")


@pytest.fixture(scope="module")
def fake_vgg19_release(tmp_path_factory, torchvision_vgg19_features, hashed_weights_writer):
    """Random VGG-19 weights under torchvision's key names, saved as ``vgg19-<sha prefix>.pth``.

    Only the ``features.*`` entries are written: ContentLoss never reads the classifier, and the
    full 548 MB file would cost ~10 s to write and hash.
    """
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, value in torchvision_vgg19_features.state_dict().items():
        fresh = torch.empty_like(value)
        if value.dim() == 4:
            torch.nn.init.kaiming_normal_(fresh, mode="fan_out", nonlinearity="relu", generator=generator)
        else:
            fresh.normal_(0, 0.1, generator=generator)
        state[f"features.{key}"] = fresh
    path, _ = hashed_weights_writer(state, tmp_path_factory.mktemp("vgg19"), "vgg19")
    yield path, state
    path.unlink(missing_ok=True)


def test_missing_vgg_weights_name_the_file_and_directory():
    with pytest.raises(weights.WeightsUnavailable) as err:
        ContentLoss("vgg19")
    message = str(err.value)
    assert "vgg19-dcbb9e9d.pth" in message and str(weights.checkpoint_dir()) in message


def test_wrong_hash_vgg_file_is_refused(tmp_path):
    fake = weights.checkpoint_dir() / "vgg19-dcbb9e9d.pth"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not the vgg19 release")
    with pytest.raises(weights.WeightsUnavailable, match="wrong hash: expected prefix dcbb9e9d"):
        ContentLoss("vgg19")
    with pytest.raises(weights.WeightsUnavailable, match="wrong hash"):
        ContentLoss("vgg19", weights_path=str(fake))


def test_vgg_content_loss_uses_the_verified_file(fake_vgg19_release, torchvision_vgg19_features, monkeypatch):
    path, state = fake_vgg19_release
    target = weights.checkpoint_dir() / path.name
    target.parent.mkdir(parents=True)
    target.symlink_to(path)
    monkeypatch.setitem(weights.TORCHVISION_WEIGHTS, "vgg19", path.name)
    loss = ContentLoss("vgg19")
    explicit = ContentLoss("vgg19", weights_path=str(path))

    torchvision_vgg19_features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()})
    torch.manual_seed(1)
    image = torch.rand(2, 3, 36, 44)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = torchvision_vgg19_features[:36]((image - mean) / std)  # ends at relu5_4
        torch.testing.assert_close(loss.embed(image), expected)
        torch.testing.assert_close(explicit.embed(image), expected)
        other = torch.rand(2, 3, 36, 44)
        expected_loss = ((expected - torchvision_vgg19_features[:36]((other - mean) / std)) ** 2).mean()
        torch.testing.assert_close(loss(image, other), expected_loss)


def test_content_loss_is_frozen_and_stays_out_of_checkpoints():
    loss = ContentLoss("random")
    assert not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.training and not any(m.training for m in loss.modules())
    pred = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss(pred, torch.rand(1, 3, 32, 32)).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())
    # Weights come from the file or the seed, never from a checkpoint; loading tolerates that.
    holder = torch.nn.ModuleDict({"content": loss, "head": torch.nn.Linear(2, 2)})
    state = holder.state_dict()
    assert set(state) == {"head.weight", "head.bias"}
    holder.load_state_dict(state, strict=True)


def test_random_backbone_is_seeded_and_honest_about_it():
    a, b = ContentLoss("random"), ContentLoss("random")
    torch.manual_seed(123)  # the global generator plays no part
    c = ContentLoss("random")
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb) and torch.equal(pa, pc)
    assert a.backbone == "random"
    with pytest.raises(ValueError, match="weights_path"):
        ContentLoss("random", weights_path="x.pth")
    with pytest.raises(ValueError, match="unknown VGG-19 layer"):
        ContentLoss("random", layer="conv5_4")
