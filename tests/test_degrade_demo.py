"""The compound degradation model and the offline demo set built from shipped photos."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest

from datamodules import degrade as D
from datamodules.demo import DEMO_PHOTOS, DEMO_SPLIT, DEMO_VERSION, build_paired_demo, demo_split_ids
from datamodules.io import list_images, read_id_list, read_image, sha256_file


def _photo_like(height: int = 64, width: int = 80, seed: int = 0) -> np.ndarray:
    """Smooth colourful gradients plus fine texture, float32 in [0.1, 0.9]."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    image = np.stack([xs / width, ys / height, 1 - xs / width], axis=-1)
    image += 0.1 * rng.standard_normal((height, width, 3)).astype(np.float32)
    return np.clip(0.1 + 0.8 * image, 0.1, 0.9).astype(np.float32)


def _chroma(image: np.ndarray) -> float:
    return float(np.abs(image - image.mean(axis=2, keepdims=True)).mean())


def _high_frequency_energy(image: np.ndarray) -> float:
    return float((np.diff(image, axis=0) ** 2).mean() + (np.diff(image, axis=1) ** 2).mean())


# ---------------------------------------------------------------------------------------------
# Parameters


def test_params_deterministic_per_seed_and_id() -> None:
    assert D.params_for("a0001", 0) == D.params_for("a0001", 0)
    assert D.params_for("a0001", 0) != D.params_for("a0002", 0)
    assert D.params_for("a0001", 0) != D.params_for("a0001", 1)


def test_params_within_ranges() -> None:
    rng = np.random.default_rng(0)
    ranges = D.DEFAULT_RANGES
    for _ in range(300):
        p = D.sample_params(rng)
        assert ranges.exposure[0] <= p.exposure <= ranges.exposure[1]
        assert ranges.gamma[0] <= p.gamma <= ranges.gamma[1]
        assert ranges.vignetting[0] <= p.vignetting <= ranges.vignetting[1]
        assert ranges.wb_gain[0] <= min(p.wb_red, p.wb_blue) <= max(p.wb_red, p.wb_blue) <= ranges.wb_gain[1]
        assert ranges.saturation[0] <= p.saturation <= ranges.saturation[1]
        assert ranges.blur_sigma[0] <= p.blur_sigma <= ranges.blur_sigma[1]
        assert ranges.noise_a[0] <= p.noise_a <= ranges.noise_a[1]
        assert ranges.noise_b[0] <= p.noise_b <= ranges.noise_b[1]
        assert ranges.jpeg_quality[0] <= p.jpeg_quality <= ranges.jpeg_quality[1]
        assert isinstance(p.jpeg_quality, int)


def test_ranges_hash_tracks_values() -> None:
    assert D.ranges_hash(D.DEFAULT_RANGES) == D.ranges_hash(D.DegradationRanges())
    changed = dataclasses.replace(D.DEFAULT_RANGES, jpeg_quality=(50, 90))
    assert D.ranges_hash(changed) != D.ranges_hash(D.DEFAULT_RANGES)


# ---------------------------------------------------------------------------------------------
# Steps, each in its expected direction


def test_exposure_and_gamma_darken() -> None:
    image = _photo_like()
    assert D.apply_exposure(image, 0.5).mean() < image.mean() * 0.51
    darker = D.apply_gamma(image, 1.4)
    assert darker.mean() < image.mean()
    np.testing.assert_allclose(D.apply_gamma(np.array([[[0.0, 1.0, 1.0]]], np.float32), 1.4), [[[0, 1, 1]]])


def test_vignetting_darkens_corners_not_centre() -> None:
    flat = np.full((41, 61, 3), 0.5, np.float32)
    out = D.apply_vignetting(flat, 0.4)
    assert out[20, 30, 0] == pytest.approx(0.5, abs=1e-3)
    assert out[0, 0, 0] == pytest.approx(0.5 * 0.6, abs=0.02)


def test_white_balance_casts_colour() -> None:
    grey = np.full((4, 4, 3), 0.5, np.float32)
    out = D.apply_white_balance(grey, red=1.2, blue=0.8)
    assert out[0, 0, 0] > out[0, 0, 1] > out[0, 0, 2]


def test_saturation_reduces_chroma_and_keeps_luma() -> None:
    image = _photo_like()
    out = D.apply_saturation(image, 0.6)
    assert _chroma(out) == pytest.approx(0.6 * _chroma(image), rel=0.02)
    luma = np.array([0.2126, 0.7152, 0.0722], np.float32)
    np.testing.assert_allclose(out @ luma, image @ luma, atol=1e-5)


def test_blur_reduces_high_frequency_energy() -> None:
    image = _photo_like()
    assert _high_frequency_energy(D.apply_blur(image, 1.0)) < 0.5 * _high_frequency_energy(image)


def test_noise_is_signal_dependent() -> None:
    rng = np.random.default_rng(0)
    a, b = 1e-3, 0.01
    for level in (0.1, 0.8):
        flat = np.full((200, 200, 3), level, np.float32)
        std = float((D.apply_noise(flat, a, b, rng) - flat).std())
        assert std == pytest.approx(np.sqrt(a * level + b * b), rel=0.05)


def test_jpeg_changes_pixels_and_quantises() -> None:
    image = _photo_like()
    out = D.apply_jpeg(image, 60)
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.abs(out - image).mean() > 1e-3
    np.testing.assert_allclose(out * 255, np.rint(out * 255), atol=1e-4)


def test_degrade_output_range_and_determinism() -> None:
    image = _photo_like()
    first = D.degrade_with_seed(image, "a0001", seed=3)
    assert first.shape == image.shape and first.dtype == np.float32
    assert 0.0 <= first.min() and first.max() <= 1.0
    np.testing.assert_array_equal(first, D.degrade_with_seed(image, "a0001", seed=3))
    assert not np.array_equal(first, D.degrade_with_seed(image, "a0002", seed=3))
    assert first.mean() < image.mean()  # every draw underexposes
    assert _chroma(first) < _chroma(image)


def test_degrade_rejects_integer_images() -> None:
    with pytest.raises(ValueError, match="float"):
        D.degrade(np.zeros((4, 4, 3), np.uint8), D.params_for("x", 0), np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------
# Demo set (built once per session from the real photos)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    # The paired set alone: the weakly-paired and unpaired sets have their own tests.
    return build_paired_demo(out, seed=0)


def _file_states(root: Path) -> dict[str, tuple[int, str]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, sha256_file(p))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_demo_layout_and_manifest(demo_root: Path) -> None:
    all_ids = sorted(key for ids in DEMO_PHOTOS.values() for key in ids)
    assert list(list_images(demo_root / "input")) == all_ids
    assert list(list_images(demo_root / "target")) == all_ids
    manifest = json.loads((demo_root / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["demo_version"] == DEMO_VERSION
    assert manifest["ranges_hash"] == D.ranges_hash(D.DEFAULT_RANGES)
    assert {"scikit-image", "scikit-learn", "numpy", "opencv"} <= set(manifest["sources"])
    retina = manifest["images"]["retina"]
    assert (retina["height"], retina["width"]) == (1411, 1411)
    assert retina["params"] == D.params_for("retina", 0).to_dict()


def test_demo_inputs_are_degraded_targets(demo_root: Path) -> None:
    source = read_image(demo_root / "input" / "coffee.png")
    target = read_image(demo_root / "target" / "coffee.png")
    assert source.shape == target.shape == (400, 600, 3)
    assert source.mean() < target.mean() and _chroma(source) < _chroma(target)


def test_demo_split_is_photo_level_with_large_test_photos(demo_root: Path) -> None:
    train = read_id_list(demo_root / "splits" / "demo" / "train.txt")
    test = read_id_list(demo_root / "splits" / "demo" / "test.txt")
    assert train == demo_split_ids("train") and test == demo_split_ids("test")
    assert not set(train) & set(test)
    assert sorted(train + test) == sorted(key for ids in DEMO_PHOTOS.values() for key in ids)
    assert {"motorcycle_left", "motorcycle_right"} <= set(test)
    assert {"retina", "hubble_deep_field"} <= set(test)
    for photo, ids in DEMO_PHOTOS.items():  # no photo straddles the split
        assert set(ids) <= set(train) or set(ids) <= set(test), photo
    assert sum(photo in DEMO_SPLIT["test"] for photo in DEMO_PHOTOS) >= 4


def test_demo_second_build_is_a_cache_hit(demo_root: Path) -> None:
    before = _file_states(demo_root)
    lines: list[str] = []
    start = time.perf_counter()
    build_paired_demo(demo_root.parent, seed=0, progress=lines.append)
    assert time.perf_counter() - start < 1.0
    assert _file_states(demo_root) == before
    assert len(lines) == 1 and "cached" in lines[0]


def test_demo_force_rebuild_is_byte_identical(demo_root: Path) -> None:
    before = _file_states(demo_root)
    lines: list[str] = []
    build_paired_demo(demo_root.parent, seed=0, force=True, progress=lines.append)
    after = _file_states(demo_root)
    assert len(lines) == sum(len(ids) for ids in DEMO_PHOTOS.values())  # really rebuilt
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}
    assert after["input/retina.png"][0] != before["input/retina.png"][0]


def test_demo_without_manifest_is_rebuilt(demo_root: Path) -> None:
    # An interrupted build has files but no manifest (it is written last): it must not count as cached.
    (demo_root / "manifest.json").unlink()
    lines: list[str] = []
    build_paired_demo(demo_root.parent, seed=0, progress=lines.append)
    assert not any("cached" in line for line in lines)
    assert (demo_root / "manifest.json").is_file()


def test_demo_split_ids_unknown() -> None:
    with pytest.raises(ValueError, match="unknown demo split"):
        demo_split_ids("val")
