"""Metrics against independent references: scikit-image, a numpy port of DPED's MS-SSIM, lpips.

The photos are the real ones scikit-image ships (astronaut 512², coffee 400×600), degraded by
blur, sensor-like noise and a colour cast and saved as uint8, as method outputs are. Weight files
are made by the tests inside the temporary TORCH_HOME that conftest.py sets for every test.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage, signal
from skimage import color, data, filters
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from baselines import weights
from benchmark import metrics
from benchmark.results import HIGHER_IS_BETTER

ALEXNET = "alexnet-owt-7be5be79.pth"


def _bare_lpips() -> torch.nn.Module:
    """lpips.LPIPS(alex, v0.1) with bundled linear layers and a random trunk, quietly."""
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # lpips passes torchvision's old `pretrained=`
        return lpips.LPIPS(
            net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False
        )


# --------------------------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------------------------


def _degrade(image: np.ndarray, seed: int) -> np.ndarray:
    """Blur + Gaussian noise + a per-channel colour cast, quantised to uint8."""
    rng = np.random.default_rng(seed)
    blurred = filters.gaussian(image, sigma=1.3, channel_axis=-1, preserve_range=True)
    noisy = blurred + rng.normal(0.0, 7.0, image.shape) + np.array([9.0, -4.0, 5.0])
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def _tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 HWC -> quantised float32 (1, 3, H, W), as the Evaluator hands images over."""
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


PHOTOS = {
    "astronaut": lambda: data.astronaut(),
    "coffee": lambda: data.coffee(),  # 400×600, non-square
    "astronaut_odd_crop": lambda: np.ascontiguousarray(data.astronaut()[17:316, 3:470]),
}


@pytest.fixture(scope="module", params=sorted(PHOTOS))
def photo_pair(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray]:
    target = PHOTOS[request.param]()
    return target, _degrade(target, seed=len(request.param))


# --------------------------------------------------------------------------------------------
# Quantisation, PSNR, SSIM
# --------------------------------------------------------------------------------------------


def test_quantize_clamps_and_rounds_to_8_bit_levels() -> None:
    x = torch.tensor([-0.2, 0.0, 0.5, 0.0019, 0.0021, 1.0, 1.7])
    q = metrics.quantize(x)
    assert torch.equal(q * 255, torch.round(q * 255))
    assert q.tolist() == pytest.approx([0.0, 0.0, 128 / 255, 0.0, 1 / 255, 1.0, 1.0])
    assert torch.equal(metrics.quantize(q), q)


def test_psnr_matches_skimage_on_photos(photo_pair: tuple[np.ndarray, np.ndarray]) -> None:
    target, pred = photo_pair
    ours = metrics.psnr(_tensor(pred), _tensor(target))
    assert ours.dtype == torch.float64 and ours.shape == (1,)
    reference = peak_signal_noise_ratio(target, pred, data_range=255)
    assert ours.item() == pytest.approx(reference, abs=1e-3)


def test_ssim_matches_skimage_wang_settings_on_photos(
    photo_pair: tuple[np.ndarray, np.ndarray],
) -> None:
    target, pred = photo_pair
    reference = structural_similarity(
        target, pred, channel_axis=-1, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255,
    )
    ours = metrics.ssim(_tensor(pred), _tensor(target))
    assert ours.shape == (1,)
    assert ours.item() == pytest.approx(reference, abs=1e-4)


def test_psnr_is_per_image_never_pooled() -> None:
    target = data.astronaut()[:128, :128]
    mild, strong = _degrade(target, 1), _degrade(np.ascontiguousarray(target[:, ::-1]), 2)[:, ::-1]
    strong = np.clip(strong.astype(int) + 25, 0, 255).astype(np.uint8)
    pred = torch.cat([_tensor(mild), _tensor(np.ascontiguousarray(strong))])
    tgt = torch.cat([_tensor(target), _tensor(target)])
    per_image = metrics.psnr(pred, tgt)
    # Each entry is that image's own PSNR ...
    for i, p in enumerate((mild, strong)):
        reference = peak_signal_noise_ratio(target, p, data_range=255)
        assert per_image[i].item() == pytest.approx(reference, abs=1e-3)
    # ... and the table value (their mean) is not the PSNR of the pooled MSE, which is lower.
    pooled_mse = ((pred.double() - tgt.double()) * 255).square().mean()
    pooled = 10 * math.log10(255**2 / pooled_mse.item())
    assert per_image.mean().item() - pooled > 0.5


def test_psnr_of_identical_images_is_inf() -> None:
    x = _tensor(data.coffee()[:32, :32])
    assert metrics.psnr(x, x).item() == math.inf


def test_functional_forms_score_quantised_levels() -> None:
    # Float32 k/255 is not exact; unquantised input is scored by the convention (quantised).
    target = _tensor(data.astronaut()[:64, :64])
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    raw = (target + 0.0013 * noise).clamp(0, 1)
    for name in ("psnr", "ssim", "ms_ssim", "delta_e76", "delta_e2000"):
        fn = getattr(metrics, name)
        assert torch.equal(fn(raw, target), fn(metrics.quantize(raw), target)), name


def test_shape_errors_are_clear() -> None:
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr(x, torch.zeros(1, 3, 16, 17))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        metrics.psnr(x[:, :1], x[:, :1])
    with pytest.raises(ValueError, match="at least 11"):
        metrics.ssim(x[..., :10, :10], x[..., :10, :10])


# --------------------------------------------------------------------------------------------
# MS-SSIM: a numpy port of DPED's formulation, written from its description
# --------------------------------------------------------------------------------------------


def _dped_window(size: int, sigma: float) -> np.ndarray:
    # 2-D Gaussian on a grid centred on the window; half-integer offsets when size is even.
    half = size // 2
    lo, hi = -half, half + 1
    offset = 0.0
    if size % 2 == 0:
        offset, hi = 0.5, hi - 1
    yy, xx = np.mgrid[offset + lo : hi, offset + lo : hi]
    g = np.exp(-(xx**2 + yy**2) / (2.0 * sigma**2))
    return g / g.sum()


def _dped_scale(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(SSIM, CS) of one scale for NHWC float64 arrays, FFT 'valid' filtering as in DPED."""
    _, h, w, _ = a.shape
    size = min(11, h, w)
    window = _dped_window(size, size * 1.5 / 11)[None, :, :, None]
    f = lambda z: signal.fftconvolve(z, window, mode="valid")  # noqa: E731
    m1, m2 = f(a), f(b)
    s11, s22, s12 = f(a * a) - m1 * m1, f(b * b) - m2 * m2, f(a * b) - m1 * m2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    v1, v2 = 2 * s12 + c2, s11 + s22 + c2
    ssim_map = (2 * m1 * m2 + c1) * v1 / ((m1 * m1 + m2 * m2 + c1) * v2)
    return float(np.mean(ssim_map)), float(np.mean(v1 / v2))


def _dped_ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """DPED's MultiScaleSSIM maths for one NHWC image pair with values in [0, 255]."""
    w = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    a, b = a.astype(np.float64), b.astype(np.float64)
    ssims, css = [], []
    for _ in range(len(w)):
        s, c = _dped_scale(a, b)
        ssims.append(s)
        css.append(c)
        box = np.ones((1, 2, 2, 1)) / 4.0
        a, b = (ndimage.convolve(z, box, mode="reflect")[:, ::2, ::2, :] for z in (a, b))
    return float(np.prod(np.array(css[:-1]) ** w[:-1]) * ssims[-1] ** w[-1])


def test_ms_ssim_of_identical_patches_is_one() -> None:
    patch = _tensor(data.astronaut()[200:300, 150:250])
    assert metrics.ms_ssim(patch, patch).item() == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_decreases_with_noise() -> None:
    clean = data.coffee()[100:200, 300:400].astype(float)
    rng = np.random.default_rng(0)
    scores = []
    for sd in (2.0, 8.0, 20.0, 40.0):
        noisy = np.clip(np.round(clean + rng.normal(0, sd, clean.shape)), 0, 255).astype(np.uint8)
        scores.append(metrics.ms_ssim(_tensor(noisy), _tensor(clean.astype(np.uint8))).item())
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), scores
    assert 0 < scores[-1] < scores[0] < 1


@pytest.mark.parametrize("hw", [(100, 100), (100, 73), (37, 58), (6, 9)])
def test_ms_ssim_matches_numpy_port_of_dped(hw: tuple[int, int]) -> None:
    h, w = hw
    target = data.astronaut()[180 : 180 + h, 200 : 200 + w]
    pred = _degrade(target, seed=h + w)
    ours = metrics.ms_ssim(_tensor(pred), _tensor(target)).item()
    assert ours == pytest.approx(_dped_ms_ssim(pred[None], target[None]), abs=1e-9)


def test_ms_ssim_batch_equals_images_one_by_one() -> None:
    targets = [data.astronaut()[:100, :100], data.coffee()[:100, :100]]
    preds = [_degrade(t, i) for i, t in enumerate(targets)]
    pairs = list(zip(preds, targets, strict=True))
    batch = metrics.ms_ssim(
        torch.cat([_tensor(p) for p in preds]), torch.cat([_tensor(t) for t in targets])
    )
    singles = [metrics.ms_ssim(_tensor(p), _tensor(t)).item() for p, t in pairs]
    assert batch.tolist() == pytest.approx(singles, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Colour differences
# --------------------------------------------------------------------------------------------


def _colour_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    target = data.coffee()[::3, ::3]
    # Random colours, greys (achromatic: hue undefined) and pure primaries stress CIEDE2000's cases.
    wild = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    wild[:10] = wild[:10, :, :1]  # grey rows
    wild[10:12, :, 1:] = 0  # reds
    wild_pred = wild.copy()
    wild_pred[::2] = rng.integers(0, 256, wild_pred[::2].shape, dtype=np.uint8)
    wild_pred[:5] = wild_pred[:5, :, 1:2]  # grey vs grey
    return [(target, _degrade(target, 5)), (wild, wild_pred)]


@pytest.mark.parametrize("case", range(2))
def test_delta_e_matches_skimage(case: int) -> None:
    target, pred = _colour_cases()[case]
    lab_t, lab_p = color.rgb2lab(target), color.rgb2lab(pred)
    e76 = metrics.delta_e76(_tensor(pred), _tensor(target)).item()
    e00 = metrics.delta_e2000(_tensor(pred), _tensor(target)).item()
    assert e76 == pytest.approx(color.deltaE_cie76(lab_t, lab_p).mean(), abs=1e-3)
    assert e00 == pytest.approx(color.deltaE_ciede2000(lab_t, lab_p).mean(), abs=1e-3)


def test_srgb_to_lab_matches_skimage_per_pixel() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (4096, 3), dtype=np.uint8)
    ours = metrics.srgb_to_lab(torch.from_numpy(rgb.T / 255.0)).numpy().T
    np.testing.assert_allclose(ours, color.rgb2lab(rgb[None])[0], atol=1e-9)


def test_ciede2000_sharma_reference_pairs() -> None:
    # Pairs 1, 2, 3 and 7 of Table 1 in Sharma, Wu & Dalal (2005), four decimals as published.
    lab1 = [(50, 2.6772, -79.7751), (50, 3.1571, -77.2803), (50, 2.8361, -74.0200), (50, 0, 0)]
    lab2 = [(50, 0, -82.7485), (50, 0, -82.7485), (50, 0, -82.7485), (50, -1, 2)]
    expected = [2.0425, 2.8615, 3.4412, 2.3669]
    to_t = lambda rows: torch.tensor(rows, dtype=torch.float64).T  # noqa: E731
    assert metrics.ciede2000(to_t(lab1), to_t(lab2)).tolist() == pytest.approx(expected, abs=5e-5)


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


def test_checkpoint_dir_follows_torch_home(_isolated_torch_home: Path) -> None:
    assert weights.checkpoint_dir() == Path(_isolated_torch_home) / "hub" / "checkpoints"


def test_torchvision_names_carry_hash_prefixes() -> None:
    assert weights.TORCHVISION_WEIGHTS == {
        "alexnet": "alexnet-owt-7be5be79.pth",
        "vgg16": "vgg16-397923af.pth",
        "vgg19": "vgg19-dcbb9e9d.pth",
    }
    assert weights.expected_hash_prefix("vgg19-dcbb9e9d.pth") == "dcbb9e9d"
    url = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
    assert weights.weights_url(ALEXNET) == url


def test_missing_weights_message_names_file_directory_and_url() -> None:
    with pytest.raises(weights.WeightsUnavailable) as err:
        weights.load_torchvision_state_dict("vgg19")
    message = str(err.value)
    assert "vgg19-dcbb9e9d.pth" in message
    assert str(weights.checkpoint_dir()) in message
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message


def test_hash_is_computed_once_per_file_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "blob.bin"
    file.write_bytes(b"x" * 1000)
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(weights.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    first = weights.sha256_of(file)
    assert weights.sha256_of(file) == first == real(b"x" * 1000).hexdigest()
    assert len(calls) == 1
    file.write_bytes(b"y" * 1001)  # a new size: hashed again
    assert weights.sha256_of(file) == real(b"y" * 1001).hexdigest()
    assert len(calls) == 2


@pytest.fixture(scope="module")
def random_alexnet_file(tmp_path_factory: pytest.TempPathFactory,
                        hashed_weights_writer) -> Iterator[tuple[Path, str]]:
    """A torchvision AlexNet state dict with random weights, named with its own hash prefix.

    Full-size (≈ 240 MB, like the real file), made once per module and deleted afterwards so
    that pytest's kept temp folders do not pile up copies.
    """
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.alexnet(weights=None).state_dict()
    named, prefix = hashed_weights_writer(state, tmp_path_factory.mktemp("alexnet"), "alexnet-owt")
    yield named, prefix
    named.unlink(missing_ok=True)


@pytest.fixture
def alexnet_in_torch_home(
    random_alexnet_file: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Place the random AlexNet in this test's TORCH_HOME cache and expect its name."""
    source, _ = random_alexnet_file
    target = weights.checkpoint_dir() / source.name
    target.parent.mkdir(parents=True)
    os.link(source, target)  # a hard link: no 240 MB copy per test
    monkeypatch.setitem(weights.TORCHVISION_WEIGHTS, "alexnet", source.name)
    yield target
    target.unlink(missing_ok=True)  # a hard link keeps the 240 MB alive otherwise


def test_wrong_hash_is_refused(tmp_path: Path) -> None:
    fake = weights.checkpoint_dir() / ALEXNET
    fake.parent.mkdir(parents=True)
    fake.write_bytes(os.urandom(4096))
    with pytest.raises(weights.WeightsUnavailable, match="wrong hash: expected prefix 7be5be79"):
        weights.verified_weights_path(ALEXNET)
    with pytest.raises(weights.WeightsUnavailable, match="wrong hash"):
        metrics.LPIPSScorer()
    scorer = metrics.ImageScorer(metrics=("psnr", "lpips"))
    assert scorer.available == ["psnr"]
    assert "wrong hash" in scorer.unavailable["lpips"]
    # An explicit path is checked against the same prefix, whatever the file is called.
    other = tmp_path / "my_alexnet.pth"
    other.write_bytes(b"not it")
    with pytest.raises(weights.WeightsUnavailable, match="wrong hash"):
        weights.verified_weights_path(ALEXNET, other)


def test_explicit_path_is_loaded(
    random_alexnet_file: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, _ = random_alexnet_file
    monkeypatch.setitem(weights.TORCHVISION_WEIGHTS, "alexnet", source.name)
    state = weights.load_torchvision_state_dict("alexnet", path=source)
    assert "features.0.weight" in state and "classifier.6.bias" in state


# --------------------------------------------------------------------------------------------
# LPIPS and the ImageScorer
# --------------------------------------------------------------------------------------------


def _small_pair() -> tuple[torch.Tensor, torch.Tensor]:
    target = data.astronaut()[100:196, 150:246]
    return _tensor(_degrade(target, 9)), _tensor(target)


def test_without_weights_lpips_is_unavailable_and_others_score() -> None:
    scorer = metrics.ImageScorer()
    assert scorer.available == ["psnr", "ssim", "ms_ssim", "delta_e76", "delta_e2000"]
    message = scorer.unavailable["lpips"]
    assert ALEXNET in message
    assert str(weights.checkpoint_dir()) in message
    assert "download.pytorch.org/models/" + ALEXNET in message
    pred, target = _small_pair()
    scores = scorer.score(pred[0], target[0])
    assert list(scores) == list(metrics.METRIC_NAMES)
    assert math.isnan(scores["lpips"])
    assert all(math.isfinite(v) for k, v in scores.items() if k != "lpips")
    assert scores["psnr"] == pytest.approx(metrics.psnr(pred, target).item())


def _reference_lpips(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """lpips.LPIPS with the trunk filled by hand from torchvision's AlexNet layout."""
    model = _bare_lpips()
    # torchvision AlexNet convolutions sit at features 0, 3, 6, 8, 10, in lpips slices 1..5.
    for slice_no, index in enumerate((0, 3, 6, 8, 10), start=1):
        conv = dict(getattr(model.net, f"slice{slice_no}").named_children())[str(index)]
        with torch.no_grad():
            conv.weight.copy_(state[f"features.{index}.weight"])
            conv.bias.copy_(state[f"features.{index}.bias"])
    return model.eval()


def test_lpips_uses_the_verified_file_and_maps_inputs_to_minus_one_one(
    alexnet_in_torch_home: Path,
) -> None:
    scorer = metrics.ImageScorer()
    assert scorer.available == list(metrics.METRIC_NAMES) and scorer.unavailable == {}
    lpips_scorer = scorer._lpips
    assert lpips_scorer is not None

    # Every trunk convolution holds the file's weights (not lpips' random init).
    state = torch.load(alexnet_in_torch_home, weights_only=True)
    trunk = dict(lpips_scorer.model.net.named_parameters())
    assert len(trunk) == 10
    for slice_no, index in enumerate((0, 3, 6, 8, 10), start=1):
        for kind in ("weight", "bias"):
            loaded = trunk[f"slice{slice_no}.{index}.{kind}"]
            assert torch.equal(loaded, state[f"features.{index}.{kind}"])

    seen = []
    hook = lpips_scorer.model.register_forward_pre_hook(
        lambda _module, args: seen.append([a.min().item() for a in args])
    )
    pred, target = _small_pair()
    score = scorer.score(pred, target)["lpips"]
    hook.remove()
    assert math.isfinite(score) and score > 0
    assert all(m < 0 for m in seen[0]), "LPIPS must see inputs in [-1, 1]"

    reference = _reference_lpips(state)
    with torch.no_grad():
        expected = reference(2 * pred - 1, 2 * target - 1).item()
        unmapped = reference(pred, target).item()
    assert score == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert abs(unmapped - expected) > 1e-4  # the mapping matters: [0, 1] input scores differently


def test_trunk_loader_refuses_incomplete_weights(random_alexnet_file: tuple[Path, str]) -> None:
    state = torch.load(random_alexnet_file[0], weights_only=True)
    model = _bare_lpips()
    partial = {k: v for k, v in state.items() if k != "features.8.weight"}
    with pytest.raises(ValueError, match=r"features\.8\.weight"):
        metrics.load_alexnet_trunk(model.net, partial)
    assert metrics.load_alexnet_trunk(model.net, state) == [
        f"features.{i}.{k}" for i in (0, 3, 6, 8, 10) for k in ("weight", "bias")
    ]


def test_image_scorer_api() -> None:
    with pytest.raises(ValueError, match="distinct names"):
        metrics.ImageScorer(metrics=("psnr", "niqe"))
    scorer = metrics.ImageScorer(metrics=("ssim", "psnr"))
    assert scorer.available == ["ssim", "psnr"] and scorer.unavailable == {}
    pred, target = _small_pair()
    assert scorer.score(pred, target) == scorer.score(pred[0], target[0])
    batch = scorer.score_batch(torch.cat([pred, target]), torch.cat([target, target]))
    assert batch["psnr"].shape == (2,) and batch["psnr"][1].item() == math.inf
    with pytest.raises(ValueError, match="one image"):
        scorer.score(torch.cat([pred, pred]), torch.cat([target, target]))


def test_directions_come_from_results_and_cover_every_metric() -> None:
    assert metrics.HIGHER_IS_BETTER is HIGHER_IS_BETTER
    assert {m: HIGHER_IS_BETTER[m] for m in metrics.METRIC_NAMES} == {
        "psnr": True, "ssim": True, "ms_ssim": True,
        "delta_e76": False, "delta_e2000": False, "lpips": False,
    }


def test_ms_ssim_is_zero_not_nan_for_anti_correlated_images():
    """A negative contrast-structure term gives 0 (TF's clamp), never NaN (DPED's numpy)."""
    torch.manual_seed(0)
    target = metrics.quantize(torch.rand(1, 3, 100, 100))
    value = metrics.ms_ssim(metrics.quantize(1 - target), target)
    assert torch.isfinite(value).all() and value.item() == 0.0
