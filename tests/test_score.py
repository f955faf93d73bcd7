"""`qmap score` on real photos equals scikit-image's PSNR and Wang-SSIM call."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from benchmark import results
from benchmark.cli import main


def _write(path, rgb_u8):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb_u8, cv2.COLOR_RGB2BGR))


def _degrade(rgb_u8, seed):
    rng = np.random.default_rng(seed)
    image = rgb_u8.astype(np.float32) / 255
    image = cv2.GaussianBlur(image, (0, 0), 1.2) * np.array([1.1, 0.9, 0.8], np.float32) ** 1.3
    image = image + rng.normal(0, 0.03, image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


@pytest.fixture
def real_pairs(tmp_path):
    photos = {"a0001": data.astronaut(), "a0002": data.coffee(), "a0003": data.chelsea()}
    for seed, (key, photo) in enumerate(photos.items()):
        _write(tmp_path / "target" / f"{key}-photo.png", photo)  # FiveK-style name: matched by id
        _write(tmp_path / "pred" / f"{key}.png", _degrade(photo, seed))
    _write(tmp_path / "pred" / "a0099.png", data.astronaut())  # no target
    (tmp_path / "pred" / "a0004.png").write_bytes(b"not a png")  # unreadable
    (tmp_path / "target" / "a0004.png").write_bytes(b"")
    return tmp_path, photos


def test_score_matches_skimage_on_real_photos(real_pairs, capsys):
    root, photos = real_pairs
    code = main(["score", str(root / "pred"), str(root / "target"), "--out", str(root / "out"), "--protocol", "f"])
    assert code == 0
    rows = results.read_rows(root / "out" / results.ROWS_FILE)
    assert set(rows["key"]) == {"a0001", "a0002", "a0003"}
    for seed, (key, photo) in enumerate(photos.items()):
        pred = _degrade(photo, seed)
        psnr = rows.query("key == @key and metric == 'psnr'")["value"].item()
        ssim = rows.query("key == @key and metric == 'ssim'")["value"].item()
        assert psnr == pytest.approx(peak_signal_noise_ratio(photo, pred, data_range=255), abs=1e-3)
        expected_ssim = structural_similarity(photo, pred, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=255)
        assert ssim == pytest.approx(expected_ssim, abs=1e-4)
    out = capsys.readouterr().out
    assert "a0099" in out, "an output without a target is reported by name"
    assert "a0004" in out, "an unreadable file is reported by name"
    assert (root / "out" / "summary.md").exists()


def test_score_protocol_d_resizes_both_sides(real_pairs):
    root, _ = real_pairs
    assert main(["score", str(root / "pred"), str(root / "target"), "--out", str(root / "d"), "--protocol", "d"]) == 0
    rows = results.read_rows(root / "d" / results.ROWS_FILE)
    assert set(rows["protocol"]) == {"d"}
    assert rows.query("metric == 'psnr'")["value"].notna().all()
