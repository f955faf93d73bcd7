"""The video demo set: layout, exact camera motion, flicker and drift, determinism and caching."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from datamodules import demo as demo_module
from datamodules.degrade import DEFAULT_RANGES, params_for, ranges_hash
from datamodules.demo import (
    DEMO_PHOTOS,
    DEMO_SPLIT,
    MOTION_CONVENTION,
    VIDEO_FRAME_SIZE,
    VIDEO_FRAMES,
    VIDEO_RANGES,
    VIDEO_VERSION,
    build_video_demo,
    camera_path,
    demo_split_ids,
    frame_to_frame,
    load_demo_photo,
    render_frame,
    render_video,
    video_working_photo,
    window_inside,
)
from datamodules.io import list_images, read_image, sha256_file

HEIGHT, WIDTH = VIDEO_FRAME_SIZE


@pytest.fixture(scope="module")
def video_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    start = time.perf_counter()
    root = build_video_demo(out, seed=0)
    elapsed = time.perf_counter() - start
    # The whole set (11 videos, 224 frames) must fit the 1.5-minute video benchmark budget.
    assert elapsed < 10.0, f"video demo took {elapsed:.1f} s"
    return root


@pytest.fixture(scope="module")
def manifest(video_root: Path) -> dict:
    return json.loads((video_root / "manifest.json").read_text())


def _file_states(root: Path) -> dict[str, tuple[int, str]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, sha256_file(p))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _frames(folder: Path) -> np.ndarray:
    return np.stack([read_image(path) for path in sorted(folder.glob("*.png"))])


def _affines(video_dir: Path) -> list[np.ndarray]:
    motion = json.loads((video_dir / "motion.json").read_text())
    return [np.array(motion["frames"][name]) for name in sorted(motion["frames"])]


def _warp_onto(previous: np.ndarray, to_previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``previous`` at ``to_previous @ [x, y, 1]`` per pixel; mask of interior samples."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    map_x = to_previous[0, 0] * xs + to_previous[0, 1] * ys + to_previous[0, 2]
    map_y = to_previous[1, 0] * xs + to_previous[1, 1] * ys + to_previous[1, 2]
    warped = cv2.remap(previous, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR)
    inside = (map_x >= 2) & (map_x <= WIDTH - 3) & (map_y >= 2) & (map_y <= HEIGHT - 3)
    inside[:4] = inside[-4:] = False  # away from the Gaussian's border too
    inside[:, :4] = inside[:, -4:] = False
    return warped, inside


def _mean_abs(a: np.ndarray, b: np.ndarray, mask: np.ndarray, sigma: float = 0.0) -> float:
    if sigma:
        a, b = cv2.GaussianBlur(a, (0, 0), sigma), cv2.GaussianBlur(b, (0, 0), sigma)
    return float(np.abs(a - b)[mask].mean() * 255)


# ---------------------------------------------------------------------------------------------
# Layout


def test_layout_counts_and_split(video_root: Path, manifest: dict) -> None:
    for split, frames in VIDEO_FRAMES.items():
        assert sorted(p.name for p in (video_root / split).iterdir()) == demo_split_ids(split)
        for video_id in demo_split_ids(split):
            folder = video_root / split / video_id
            names = [f"{t:06d}" for t in range(frames)]
            assert list(list_images(folder / "input")) == names
            assert list(list_images(folder / "target")) == names
            for part in ("input", "target"):
                assert read_image(folder / part / "000000.png").shape == (HEIGHT, WIDTH, 3)
            motion = json.loads((folder / "motion.json").read_text())
            assert motion["convention"] == MOTION_CONVENTION
            assert sorted(motion["frames"]) == names
            assert all(np.array(a).shape == (2, 3) for a in motion["frames"].values())
            entry = manifest["videos"][video_id]
            assert (entry["split"], entry["frames"]) == (split, frames)
            assert (entry["frame_height"], entry["frame_width"]) == (HEIGHT, WIDTH)
            assert entry["base_params"] == params_for(video_id, 0).to_dict()
            assert len(entry["schedule"]["exposure_gain"]) == frames
    assert VIDEO_FRAMES == {"train": 24, "test": 16}
    train, test = set(demo_split_ids("train")), set(demo_split_ids("test"))
    assert not train & test and {"motorcycle_left", "motorcycle_right"} <= test
    for photo, ids in DEMO_PHOTOS.items():  # photo-level: no photo on both sides
        assert len({manifest["videos"][i]["split"] for i in ids}) == 1, photo
        assert manifest["videos"][ids[0]]["split"] == ("train" if photo in DEMO_SPLIT["train"] else "test")
    assert manifest["seed"] == 0 and manifest["video_version"] == VIDEO_VERSION
    assert manifest["ranges_hash"] == ranges_hash(DEFAULT_RANGES)
    assert manifest["video_ranges"] == json.loads(json.dumps(dataclasses.asdict(VIDEO_RANGES)))


def test_windows_stay_inside_the_working_photo(manifest: dict) -> None:
    for video_id, entry in manifest["videos"].items():
        scene_shape = (entry["scene_height"], entry["scene_width"])
        # The frame fits 1.6 times along the tighter axis (short side ~154 px for landscape photos).
        assert min(scene_shape[0] / HEIGHT, scene_shape[1] / WIDTH) == pytest.approx(1.6, abs=0.01)
        low, high = VIDEO_RANGES.zoom
        assert low <= entry["motion"]["zoom_start"] <= high and low <= entry["motion"]["zoom_end"] <= high
        assert entry["motion"]["pan_speed"] >= VIDEO_RANGES.pan_speed[0], video_id


def test_camera_path_is_smooth_and_inside() -> None:
    affines, params = camera_path((154, 231), 24, np.random.default_rng(3))
    assert affines.shape == (24, 2, 3)
    assert all(window_inside(a, VIDEO_FRAME_SIZE, (154, 231), margin=0.999) for a in affines)
    scales = affines[:, 0, 0]
    assert np.allclose(affines[:, 1, 1], scales) and np.allclose(affines[:, 0, 1], 0)  # pan and zoom only
    assert VIDEO_RANGES.zoom[0] <= scales.min() and scales.max() <= VIDEO_RANGES.zoom[1]
    centres = affines[:, :, 2] + scales[:, None] * np.array([(WIDTH - 1) / 2, (HEIGHT - 1) / 2])
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.max() < 2.0 * VIDEO_RANGES.pan_speed[1]  # no jumps
    assert np.abs(np.diff(centres, n=2, axis=0)).max() < 0.5  # smooth: small second differences
    assert params["pan_speed"] * 23 == pytest.approx(params["chord"])
    with pytest.raises(ValueError, match="no camera path"):
        camera_path((100, 130), 24, np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------
# Exact motion


def test_render_frame_uses_inverse_map_convention() -> None:
    rng = np.random.default_rng(0)
    scene = rng.random((60, 80, 3), dtype=np.float32)
    shift = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, 7.0]])  # frame (x, y) -> scene (x + 5, y + 7)
    np.testing.assert_array_equal(render_frame(scene, shift, (20, 30)), scene[7:27, 5:35])
    zoom = np.array([[2.0, 0.0, 3.0], [0.0, 2.0, 1.0]])  # frame (x, y) -> scene (2x + 3, 2y + 1)
    np.testing.assert_array_equal(render_frame(scene, zoom, (20, 30)), scene[1:41:2, 3:63:2])


def test_saved_frames_sample_the_working_photo_at_the_recorded_affines(video_root: Path) -> None:
    folder = video_root / "train" / "chelsea"
    scene = video_working_photo(load_demo_photo("chelsea")[0][1])
    assert list(scene.shape[:2]) == json.loads((folder / "motion.json").read_text())["scene_size"]
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    for t, affine in enumerate(_affines(folder)):
        if t % 6:
            continue
        x = affine[0, 0] * xs + affine[0, 1] * ys + affine[0, 2]
        y = affine[1, 0] * xs + affine[1, 1] * ys + affine[1, 2]
        x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
        fx, fy = (x - x0)[..., None], (y - y0)[..., None]
        expected = (scene[y0, x0] * (1 - fx) * (1 - fy) + scene[y0, x0 + 1] * fx * (1 - fy)
                    + scene[y0 + 1, x0] * (1 - fx) * fy + scene[y0 + 1, x0 + 1] * fx * fy)
        target = read_image(folder / "target" / f"{t:06d}.png")
        # Measured 0.50/255: only the 8-bit rounding of the PNG.
        assert np.abs(target - expected).max() * 255 < 1.0


def test_recorded_motion_aligns_consecutive_clean_frames(video_root: Path, manifest: dict) -> None:
    """Frame t-1 warped by inv(A_{t-1}) A_t matches frame t up to interpolation error.

    Both frames are bilinear samples of the photo at different sub-pixel phases, and the check
    resamples one of them again, so even the exact motion leaves a high-frequency residual: on
    the raw frames it measured up to 4.9/255 (sharp motorcycle), mean over interior pixels. A
    Gaussian low-pass (sigma 1) of both sides removes most of that residual (measured max
    1.6/255 over all 213 pairs) but keeps the error of a wrong motion: identity measured at least
    4x the true error per video, and a motion off by half a pixel is worse than the true one on
    every pair. Bounds: 6/255 raw, 2.5/255 low-passed (about 1.5x margin).
    """
    for video_id, entry in manifest["videos"].items():
        folder = video_root / entry["split"] / video_id
        frames, affines = _frames(folder / "target"), _affines(folder)
        true_errors, identity_errors = [], []
        for t in range(1, len(frames)):
            to_previous = frame_to_frame(affines[t - 1], affines[t])
            warped, inside = _warp_onto(frames[t - 1], to_previous)
            assert inside.mean() > 0.5
            assert _mean_abs(warped, frames[t], inside) < 6.0, (video_id, t)
            true_error = _mean_abs(warped, frames[t], inside, sigma=1.0)
            assert true_error < 2.5, (video_id, t)
            off = to_previous + np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 0.0]])
            assert _mean_abs(_warp_onto(frames[t - 1], off)[0], frames[t], inside, sigma=1.0) > true_error
            true_errors.append(true_error)
            identity_errors.append(_mean_abs(frames[t - 1], frames[t], inside, sigma=1.0))
        assert np.mean(identity_errors) > 3.0 * np.mean(true_errors), video_id


# ---------------------------------------------------------------------------------------------
# Degradation over time


def _log_ratio(folder: Path) -> np.ndarray:
    """log(mean input / mean target) per frame: brightness change with content divided out."""
    inputs, targets = _frames(folder / "input"), _frames(folder / "target")
    return np.log(inputs.mean(axis=(1, 2, 3)) / targets.mean(axis=(1, 2, 3)))


def test_inputs_flicker_with_the_recorded_gains(video_root: Path, manifest: dict) -> None:
    """Measured on seed 0: std over t of the log ratio 0.017-0.034, of its frame-to-frame
    differences 0.015-0.027 (0.0003-0.004 without flicker), correlation of those differences
    with the recorded log gains' at least 0.96. Thresholds 0.01, 0.01 and 0.9."""
    for video_id, entry in manifest["videos"].items():
        gains = np.array(entry["schedule"]["exposure_gain"])
        assert np.abs(gains - 1).max() <= 0.15 and gains.std() > 0.01 and np.ptp(gains) > 0.04
        base = entry["base_params"]["exposure"]
        ratio = _log_ratio(video_root / entry["split"] / video_id)
        assert ratio.std() > 0.01, video_id
        assert np.diff(ratio).std() > 0.01, video_id
        assert np.corrcoef(np.diff(ratio), np.diff(np.log(gains)))[0, 1] > 0.9, video_id
        assert base * gains.max() < 1.0  # still underexposed at the brightest frame


def test_flicker_is_the_schedule_not_the_content() -> None:
    (_, clean), = load_demo_photo("chelsea")
    still = dataclasses.replace(VIDEO_RANGES, flicker_amplitude=(0.0, 0.0), flicker_jitter=(0.0, 0.0))
    stats = []
    for ranges in (VIDEO_RANGES, still):
        video = render_video("chelsea", clean, 16, 0, ranges)
        ratio = np.log(video.degraded.mean(axis=(1, 2, 3)) / video.clean.mean(axis=(1, 2, 3)))
        stats.append(np.diff(ratio).std())
    assert stats[0] > 5 * stats[1]  # measured 31x


def test_colour_drifts_smoothly(manifest: dict) -> None:
    for video_id, entry in manifest["videos"].items():
        schedule, base = entry["schedule"], entry["base_params"]
        for channel in ("red", "blue"):
            gains = np.array(schedule[f"wb_{channel}"])
            drift = schedule[f"wb_{channel}_drift"]
            low, high = VIDEO_RANGES.wb_drift
            assert low <= abs(drift) <= high
            assert gains[0] == pytest.approx(base[f"wb_{channel}"])
            assert gains[-1] - gains[0] == pytest.approx(drift)
            steps = np.diff(gains) * np.sign(drift)
            assert (steps >= 0).all() and steps.max() < 0.25 * abs(drift), video_id  # monotone, no jumps


# ---------------------------------------------------------------------------------------------
# Determinism and caching


def test_cache_hit_does_not_rewrite(video_root: Path) -> None:
    before = _file_states(video_root)
    lines: list[str] = []
    start = time.perf_counter()
    build_video_demo(video_root.parent, seed=0, progress=lines.append)
    assert time.perf_counter() - start < 1.0
    assert _file_states(video_root) == before
    assert len(lines) == 1 and "cached" in lines[0]


def test_force_rebuild_is_byte_identical(video_root: Path) -> None:
    before = _file_states(video_root)
    lines: list[str] = []
    build_video_demo(video_root.parent, seed=0, force=True, progress=lines.append)
    after = _file_states(video_root)
    assert len(lines) == sum(len(ids) for ids in DEMO_PHOTOS.values())  # really rebuilt
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}
    assert after["test/coffee/input/000003.png"][0] != before["test/coffee/input/000003.png"][0]


def test_other_seed_rebuilds_different_frames(video_root: Path, tmp_path: Path) -> None:
    shutil.copytree(video_root, tmp_path / "video")
    before = _file_states(tmp_path / "video")
    lines: list[str] = []
    build_video_demo(tmp_path, seed=1, progress=lines.append)
    assert not any("cached" in line for line in lines)
    after = _file_states(tmp_path / "video")
    assert set(after) == set(before)
    for name in ("test/coffee/input/000000.png", "test/coffee/target/000005.png", "train/flower/motion.json"):
        assert after[name][1] != before[name][1], name
    assert json.loads((tmp_path / "video" / "manifest.json").read_text())["seed"] == 1


def test_version_bump_rebuilds_and_removes_stale_files(
    video_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(video_root, tmp_path / "video")
    stale_video = tmp_path / "video" / "train" / "old_video" / "input"
    stale_video.mkdir(parents=True)
    (stale_video / "000000.png").write_bytes(b"x")
    stale_frame = tmp_path / "video" / "test" / "coffee" / "input" / "000016.png"
    stale_frame.write_bytes(b"x")
    moved = tmp_path / "video" / "train" / "coffee"  # a test photo's video on the wrong side
    shutil.copytree(tmp_path / "video" / "test" / "coffee", moved)
    monkeypatch.setattr(demo_module, "VIDEO_VERSION", "test-bump")
    lines: list[str] = []
    build_video_demo(tmp_path, seed=0, progress=lines.append)
    assert not any("cached" in line for line in lines)
    assert not stale_video.parent.exists() and not stale_frame.exists() and not moved.exists()
    assert json.loads((tmp_path / "video" / "manifest.json").read_text())["video_version"] == "test-bump"
    # The content does not depend on the version string: same bytes as the original build.
    assert sha256_file(tmp_path / "video" / "test" / "coffee" / "input" / "000007.png") == \
        sha256_file(video_root / "test" / "coffee" / "input" / "000007.png")


def test_missing_manifest_or_frame_rebuilds(video_root: Path, tmp_path: Path) -> None:
    shutil.copytree(video_root, tmp_path / "video")
    (tmp_path / "video" / "train" / "china" / "target" / "000011.png").unlink()
    lines: list[str] = []
    build_video_demo(tmp_path, seed=0, progress=lines.append)
    assert not any("cached" in line for line in lines)
    assert (tmp_path / "video" / "train" / "china" / "target" / "000011.png").is_file()


# ---------------------------------------------------------------------------------------------
# The other demo sets are untouched


def test_other_sets_cache_keys_unchanged() -> None:
    key = demo_module._cache_key(0)
    assert key == {"demo_version": "1", "seed": 0, "ranges_hash": ranges_hash(DEFAULT_RANGES),
                   "sources": demo_module.source_versions()}
    weak = demo_module._weak_key(0)
    assert set(weak) == set(key) | {"weak_version", "capture_ranges", "alignment", "patch"}
    assert weak["weak_version"] == "1" and weak["patch"] == 100


def test_build_demo_adds_the_video_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int, bool]] = []

    def fake(name: str, result: str):
        def build(out: Path, seed: int = 0, force: bool = False, progress=None) -> Path:
            calls.append((name, seed, force))
            return Path(out) / result
        return build

    for name, result in (("paired", "paired"), ("weak", "dped"), ("unpaired", "unpaired"), ("video", "video")):
        monkeypatch.setattr(demo_module, f"build_{name}_demo", fake(name, result))
    outputs = demo_module.build_demo(tmp_path, seed=2, force=True)
    assert outputs == {"paired": tmp_path / "paired", "weak": tmp_path / "dped", "weak_raw": tmp_path / "weak_raw",
                       "unpaired": tmp_path / "unpaired", "video": tmp_path / "video"}
    assert calls == [(name, 2, True) for name in ("paired", "weak", "unpaired", "video")]
