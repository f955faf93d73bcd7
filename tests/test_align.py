"""SIFT + RANSAC alignment of weakly-paired captures into DPED-layout patch pairs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from datamodules import align as A
from datamodules.degrade import DegradationParams, params_for, stable_rng
from datamodules.demo import capture_homography, demo_split_ids, phone_capture
from datamodules.io import list_images, read_image, write_image


def _scene(seed: int, height: int = 360, width: int = 480) -> np.ndarray:
    """A synthetic textured scene: random filled rectangles and circles over a colour ramp."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([xs / width, ys / height, 0.5 + 0.3 * np.sin(xs / 37.0)], axis=-1) * 0.6 + 0.2
    for _ in range(120):
        colour = tuple(float(c) for c in rng.uniform(0, 1, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(4, 30))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x, y), (x + size, y + int(rng.integers(4, 30))), colour, -1)
        else:
            cv2.circle(image, (x, y), size // 2, colour, -1)
    return np.clip(image, 0, 1).astype(np.float32)


def _capture(clean: np.ndarray, seed: int, key: str = "scene") -> tuple[np.ndarray, np.ndarray]:
    """A phone capture of ``clean`` as the demo makes it; returns (phone, true homography)."""
    homography, shape = capture_homography(clean.shape[:2], np.random.default_rng(seed))
    return phone_capture(clean, homography, shape, params_for(key, seed), stable_rng(seed, key, "noise")), homography


# ---------------------------------------------------------------------------------------------
# Geometry


def test_project_matches_opencv_and_corner_error_is_a_distance() -> None:
    homography = np.array([[1.02, 0.03, 5.0], [-0.01, 0.98, -3.0], [1e-5, -2e-5, 1.0]])
    points = np.random.default_rng(0).uniform(0, 400, (20, 2))
    reference = cv2.perspectiveTransform(points[None].astype(np.float64), homography)[0]
    np.testing.assert_allclose(A.project(homography, points), reference, atol=1e-9)
    shifted = np.array([[1, 0, 3.0], [0, 1, 4.0], [0, 0, 1]]) @ homography
    assert A.corner_error(homography, homography, (300, 400)) == 0
    assert A.corner_error(shifted, homography, (300, 400)) == pytest.approx(5.0)
    assert A.local_scale(np.diag([2.0, 2.0, 1.0]), (100, 100)) == pytest.approx(2.0)


def test_valid_mask_only_where_bicubic_reads_source_pixels() -> None:
    homography, shape = capture_homography((300, 400), np.random.default_rng(3))
    # Warp the phone frame (all ones) into the DSLR frame: a valid pixel must read ones only.
    ones = np.ones((*shape, 3), np.float32)
    warped, valid = A.warp_to(ones, homography, (300, 400))
    # Cubic weights sum to 1 up to float rounding; a border read would weigh in a 0 pixel.
    assert valid.any() and np.abs(warped[valid] - 1.0).max() < 1e-5
    assert (warped[~valid] < 0.999).any()
    # The valid area is the phone footprint up to a perimeter-wide band.
    footprint = A.project(homography, A.frame_corners(shape)).astype(np.float32)
    area = cv2.contourArea(footprint)
    perimeter = cv2.arcLength(footprint, closed=True)
    assert area - 3 * perimeter < valid.sum() <= area


# ---------------------------------------------------------------------------------------------
# Homography estimation


def test_homography_recovered_on_synthetic_scene() -> None:
    clean = _scene(1)
    phone, true = _capture(clean, seed=5)
    estimated, stats = A.estimate_homography(phone, clean)
    assert A.corner_error(estimated, true, phone.shape[:2]) < 1.0
    assert stats.inliers >= A.MIN_INLIERS and stats.inliers <= stats.matches
    assert stats.inlier_rmse < A.RANSAC_THRESHOLD_PX
    assert stats.scale == pytest.approx(A.local_scale(true, phone.shape[:2]), rel=0.01)


def test_homography_estimation_is_deterministic() -> None:
    clean = _scene(2)
    phone, _ = _capture(clean, seed=6)
    first, _ = A.estimate_homography(phone, clean)
    cv2.setRNGSeed(12345)  # whatever state OpenCV's RNG is in, RANSAC is reseeded
    second, _ = A.estimate_homography(phone, clean)
    np.testing.assert_array_equal(first, second)


def test_unrelated_images_fail_with_a_reason() -> None:
    noise = np.random.default_rng(0).random((200, 260, 3)).astype(np.float32)
    with pytest.raises(A.AlignmentError, match="inliers|matches|keypoints"):
        A.estimate_homography(noise, _scene(3))


# ---------------------------------------------------------------------------------------------
# Patches


def test_patches_touching_invalid_pixels_are_dropped_and_counted() -> None:
    dslr = _scene(4, 300, 300)
    valid = np.ones((300, 300), bool)
    valid[120:180, 140:150] = False  # a hole inside the centre cell of the 3x3 grid
    cut = A.cut_patches(dslr.copy(), valid, dslr, patch=100)
    assert len(cut.patches) == 8 and cut.dropped["outside"] == 1
    assert cut.dropped["residual"] == cut.dropped["unmatched"] == 0
    assert (100, 100) not in {(p.x, p.y) for p in cut.patches}
    for patch in cut.patches:
        assert valid[patch.y:patch.y + 100, patch.x:patch.x + 100].all()
        np.testing.assert_array_equal(patch.dslr, dslr[patch.y:patch.y + 100, patch.x:patch.x + 100])


def test_patches_straddling_the_warp_border_are_dropped() -> None:
    clean = _scene(5, 400, 500)
    # A phone view rotated by 20 degrees: its footprint's edges cross the patch grid.
    angle, scale = np.deg2rad(20), 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * scale
    shape = (300, 380)
    true = np.eye(3)
    true[:2, :2] = rotation
    true[:2, 2] = np.array([249.5, 199.5]) - rotation @ np.array([189.5, 149.5])
    phone = phone_capture(clean, true, shape, params_for("x", 0), np.random.default_rng(0))
    warped, valid = A.warp_to(phone, true, clean.shape[:2])
    cut = A.cut_patches(warped, valid, clean, patch=60)
    ys, xs = A.grid_origins(valid, 60, 60)
    straddling = sum(not valid[y:y + 60, x:x + 60].all() for y in ys for x in xs)
    assert straddling > 0 and cut.dropped["outside"] == straddling
    assert len(cut.patches) + sum(cut.dropped.values()) == len(ys) * len(xs)


def test_grid_offset_fits_the_most_cells() -> None:
    valid = np.zeros((330, 330), bool)
    corners = np.array([[40, 20], [310, 45], [290, 315], [15, 290]], np.int32)
    cv2.fillPoly(valid.view(np.uint8), [corners], 1)
    ys, xs = A.grid_origins(valid, 100, 100)
    chosen = sum(valid[y:y + 100, x:x + 100].all() for y in ys for x in xs)
    # Independent reference: plain loops over the same offsets, no integral image.
    rows, cols = np.nonzero(valid)
    best = 0
    for dy in range(0, 100, 10):
        for dx in range(0, 100, 10):
            count = sum(valid[y:y + 100, x:x + 100].all()
                        for y in range(rows.min() + dy, rows.max() + 2 - 100, 100)
                        for x in range(cols.min() + dx, cols.max() + 2 - 100, 100))
            best = max(best, count)
    corner_start = sum(valid[y:y + 100, x:x + 100].all()
                       for y in range(rows.min(), rows.max() + 2 - 100, 100)
                       for x in range(cols.min(), cols.max() + 2 - 100, 100))
    assert chosen == best and best > corner_start


def test_patch_residual_measures_a_known_shift_despite_exposure_change() -> None:
    dslr = _scene(6, 140, 140)
    shift = np.float32([[1, 0, 1.5], [0, 1, 0]])
    moved = cv2.warpAffine(dslr, shift, (140, 140), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    phone = 0.6 * np.clip(moved, 0, 1) ** 1.3  # darker, flatter: a phone rendering
    residual, response = A.patch_residual(phone[20:120, 20:120], dslr[20:120, 20:120])
    assert residual == pytest.approx(1.5, abs=0.25) and response > A.MIN_RESPONSE
    aligned, _ = A.patch_residual(dslr[20:120, 20:120] * 0.5, dslr[20:120, 20:120])
    assert aligned < 0.1


def test_residual_filter_drops_a_deliberately_misaligned_patch() -> None:
    dslr = _scene(7, 300, 310)
    warped = dslr.copy()
    warped[100:200, 100:200] = dslr[100:200, 106:206]  # the centre patch is 6 px off
    cut = A.cut_patches(warped, np.ones((300, 310), bool), dslr, patch=100, max_residual=2.0)
    assert cut.dropped["residual"] == 1 and cut.dropped["outside"] == 0
    assert sorted((p.x, p.y) for p in cut.patches) == sorted(
        (x, y) for x in (0, 100, 200) for y in (0, 100, 200) if (x, y) != (100, 100))
    assert all(p.residual is not None and p.residual < 0.1 for p in cut.patches)
    # The same patch is kept when the limit allows its residual.
    assert len(A.cut_patches(warped, np.ones((300, 310), bool), dslr, patch=100, max_residual=8.0).patches) == 9


def test_unrelated_textured_patch_dropped_and_flat_patch_kept_unverified() -> None:
    dslr = _scene(8, 200, 200)
    dslr[0:100, 100:200] = 0.5  # flat: nothing to register
    warped = dslr.copy()
    warped[100:200, 0:100] = _scene(9, 100, 100)  # different content
    cut = A.cut_patches(warped, np.ones((200, 200), bool), dslr, patch=100)
    by_origin = {(p.x, p.y): p for p in cut.patches}
    assert cut.unverified == 1 and by_origin[(100, 0)].residual is None
    assert (0, 100) not in by_origin and cut.dropped["unmatched"] + cut.dropped["residual"] == 1


# ---------------------------------------------------------------------------------------------
# Folders and the command


def _raw_dir(root: Path) -> Path:
    """Two alignable scenes, one unalignable (noise), one phone-only capture."""
    raw = root / "raw"
    for index, name in enumerate(("s1", "s2")):
        clean = _scene(20 + index)
        phone, _ = _capture(clean, seed=30 + index, key=name)
        write_image(raw / "phone" / f"{name}.png", phone)
        write_image(raw / "dslr" / f"{name}.png", clean)
    rng = np.random.default_rng(0)
    write_image(raw / "phone" / "noise.png", rng.random((200, 240, 3)))
    write_image(raw / "dslr" / "noise.png", _scene(40))
    write_image(raw / "phone" / "lonely.png", _scene(41))
    return raw


def test_align_folder_writes_dped_layout_and_reports(tmp_path: Path) -> None:
    from datamodules.weakly_paired import WeaklyPairedDataModule

    raw = _raw_dir(tmp_path)
    lines: list[str] = []
    report = A.align_folder(raw, tmp_path / "dped", phone="pixel", patch=50, progress=lines.append)
    assert [s.scene for s in report.scenes] == ["noise", "s1", "s2"] and len(lines) == 3
    assert report.failed == ["noise"] and report.phone_only == ["lonely"]
    assert "inliers" in report.scenes[0].error or "matches" in report.scenes[0].error
    assert report.kept == sum(s.kept for s in report.scenes) > 10
    folder = tmp_path / "dped" / "pixel" / "training_data"
    assert list(list_images(folder / "pixel")) == list(list_images(folder / "canon"))
    assert len(list_images(folder / "pixel")) == report.kept
    manifest = json.loads((folder / "align.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["patches"]) == report.kept
    assert {entry["scene"] for entry in manifest["patches"]} == {"s1", "s2"}
    first = manifest["patches"][0]
    np.testing.assert_array_equal(  # N.png is the DSLR crop at the recorded position
        read_image(folder / "canon" / "0.png"),
        read_image(raw / "dslr" / f"{first['scene']}.png")[first["y"]:first["y"] + 50, first["x"]:first["x"] + 50])
    text = report.format()
    assert "noise: FAILED" in text and "lonely" in text and f"kept {report.kept} pairs" in text
    assert str(folder / "pixel") in text

    dm = WeaklyPairedDataModule(str(tmp_path / "dped"), phone="pixel", patch_size=32, batch_size=4)
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["input"].shape == (4, 3, 32, 32)


def test_align_rerun_overwrites_cleanly_and_foreign_folders_are_refused(tmp_path: Path) -> None:
    raw = _raw_dir(tmp_path)
    A.align_folder(raw, tmp_path / "dped", phone="pixel", patch=50)
    report = A.align_folder(raw, tmp_path / "dped", phone="pixel", patch=50, scenes=["s1"])
    folder = tmp_path / "dped" / "pixel" / "training_data"
    assert len(list_images(folder / "pixel")) == len(list_images(folder / "canon")) == report.kept
    assert {e["scene"] for e in json.loads((folder / "align.json").read_text())["patches"]} == {"s1"}

    foreign = tmp_path / "real_dped" / "pixel" / "training_data" / "canon"
    write_image(foreign / "7.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(FileExistsError, match="did not write"):
        A.align_folder(raw, tmp_path / "real_dped", phone="pixel", patch=50)
    assert (foreign / "7.png").is_file()
    with pytest.raises(ValueError, match="without both"):
        A.align_folder(raw, tmp_path / "dped", phone="pixel", scenes=["lonely"])
    with pytest.raises(ValueError, match="cannot name a folder"):
        A.align_folder(raw, tmp_path / "dped", phone="canon")


def test_align_command_reports_counts_and_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.cli import main

    raw = _raw_dir(tmp_path)
    scenes = tmp_path / "scenes.txt"
    scenes.write_text("s1\ns2\n")
    assert main(["data", "align", str(raw), "--out", str(tmp_path / "o"), "--phone", "p", "--patch", "50",
                 "--part", "test", "--scenes", str(scenes), "--max-residual", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "dropped" in out and "outside" in out and "residual" in out and "unmatched" in out
    assert str(tmp_path / "o" / "p" / "test_data" / "patches" / "p") in out
    assert main(["data", "align", str(raw), "--out", str(tmp_path / "o2"), "--patch", "50"]) == 1
    assert "FAILED 1 scene(s): noise" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# The acceptance point: the weakly-paired demo


def test_demo_homographies_recovered_under_one_pixel(demo_all: dict[str, Path]) -> None:
    manifest = json.loads((demo_all["weak_raw"] / "manifest.json").read_text())
    scenes = manifest["scenes"]
    assert sorted(scenes) == sorted(demo_split_ids("train") + demo_split_ids("test"))
    used: dict[str, list] = {}  # the homographies the aligner cut the patches with
    for part in ("train", "test"):
        report = json.loads((A.part_dir(demo_all["weak"], "demo", part) / "align.json").read_text())["report"]
        used.update({scene["scene"]: scene["homography"] for scene in report["scenes"]})
    assert sorted(used) == sorted(scenes)
    for scene, entry in scenes.items():
        shape = (entry["phone_height"], entry["phone_width"])
        error = A.corner_error(np.array(used[scene]), np.array(entry["true_homography"]), shape)
        assert error < 1.0, f"{scene}: mean corner error {error:.2f} px"
        assert entry["corner_error_px"] == pytest.approx(error, abs=1e-3)
    # From the files alone, the hardest scene (fewest inliers) gives the same homography again.
    hardest = min(scenes, key=lambda scene: scenes[scene]["inliers"])
    phone = read_image(demo_all["weak_raw"] / "phone" / f"{hardest}.png")
    dslr = read_image(demo_all["weak_raw"] / "dslr" / f"{hardest}.png")
    assert phone.shape[:2] == (scenes[hardest]["phone_height"], scenes[hardest]["phone_width"])
    estimated, _ = A.estimate_homography(phone, dslr)
    np.testing.assert_allclose(estimated, np.array(used[hardest]), atol=1e-9)


def test_capture_homography_deterministic_and_inside_the_photo() -> None:
    first, shape = capture_homography((427, 640), stable_rng(0, "china", "capture"))
    again, _ = capture_homography((427, 640), stable_rng(0, "china", "capture"))
    other, _ = capture_homography((427, 640), stable_rng(1, "china", "capture"))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    footprint = A.project(first, A.frame_corners(shape))
    assert footprint.min() >= 2 and (footprint[:, 0] <= 637).all() and (footprint[:, 1] <= 424).all()
    assert shape == (363, 544)


def test_phone_capture_shows_the_scene_at_the_homography() -> None:
    clean = _scene(10)
    homography, shape = capture_homography(clean.shape[:2], np.random.default_rng(1))
    gentle = DegradationParams(exposure=1.0, gamma=1.0, vignetting=0.0, wb_red=1.0, wb_blue=1.0, saturation=1.0,
                               blur_sigma=0.0, noise_a=0.0, noise_b=0.0, jpeg_quality=100)
    phone = phone_capture(clean, homography, shape, gentle, np.random.default_rng(0))
    # Phone pixel p shows the scene at H p (checked where the scene is locally smooth enough).
    points = np.random.default_rng(2).integers([5, 5], [shape[1] - 6, shape[0] - 6], (200, 2))
    mapped = A.project(homography, points)
    phone_values = np.array([phone[y, x] for x, y in points])
    scene_values = np.array([clean[int(round(y)), int(round(x))] for x, y in mapped])
    assert np.median(np.abs(phone_values - scene_values)) < 0.02
