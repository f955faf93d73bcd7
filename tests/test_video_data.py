"""VideoDataModule: layouts, random clips, the chunked evaluation stream, known motion, errors."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict

import numpy as np
import pytest
import torch
from lightning.pytorch import seed_everything
from torch.utils.data import DataLoader

from datamodules.io import read_image
from datamodules.video import (
    EVALUATION_ALIGNED,
    EVALUATION_WEAK,
    VideoDataModule,
    assign_videos,
    scale_motion,
)
from tests.conftest import tiny_target, write_tiny_video

pytestmark = pytest.mark.usefixtures("one_thread")


def _stream(loader):
    """(key, frame_start, chunk length, num_frames) of every batch, in arrival order."""
    out = []
    for batch in loader:
        assert batch["input"].shape[0] == 1 and len(batch["key"]) == 1
        out.append((batch["key"][0], int(batch["frame_start"]), batch["input"].shape[1], int(batch["num_frames"])))
    return out


def _check_coverage(stream, lengths: dict[str, int], chunk: int) -> None:
    """Every frame of every video exactly once, each video's chunks in order."""
    seen: dict[str, list[int]] = defaultdict(list)
    for key, start, size, total in stream:
        assert total == lengths[key]
        assert size == min(chunk, total - start)
        seen[key].extend(range(start, start + size))
    assert {key: frames for key, frames in seen.items()} == {key: list(range(n)) for key, n in lengths.items()}


# ------------------------------------------------------------------------------------------------
# Layouts


@pytest.mark.parametrize("layout, aligned, splits, keys", [
    ("generic", True, ("train", "test"), ["video0", "video1"]),
    ("ntire_vqm", False, ("Training", "Validation"), ["000", "001"]),
    ("intvid", True, ("Training", "Validation"), ["000", "001"]),
])
def test_layouts(tmp_path, layout, aligned, splits, keys):
    root = write_tiny_video(tmp_path, layout=layout, n_train=2, n_test=2, frames=4)
    dm = VideoDataModule(str(root), layout=layout, source_suffix="_600" if layout == "intvid" else "",
                         clip_length=2, crop_size=16, batch_size=2, eval_chunk=3)
    assert dm.aligned is aligned and dm.split == splits[1]
    info = dm.describe()
    assert info["kind"] == "video" and info["layout"] == layout and info["aligned"] is aligned
    assert info["splits"] == {"train": splits[0], "test": splits[1]}
    assert info["counts"] == {"train": {"videos": 2, "frames": 8}, "test": {"videos": 2, "frames": 9}}
    assert info["evaluation"] == (EVALUATION_ALIGNED if aligned else EVALUATION_WEAK)
    assert info["has_motion"] is (layout == "generic")
    dm.setup("test")
    dataset = dm.eval_dataset()
    assert dataset.keys == keys and dataset.total_chunks == 4
    batch = next(iter(dm.test_dataloader()))
    video = dm.videos("test")[0]
    first_input, first_target = read_image(video.inputs[0]), read_image(video.targets[0])
    assert torch.equal(batch["input"][0, 0], torch.from_numpy(first_input).permute(2, 0, 1))
    assert batch["protocol"] == ["f"] and batch["key"] == [keys[0]]
    if aligned:  # the right target for the right input
        np.testing.assert_allclose(first_target, tiny_target(first_input), atol=0.6 / 255)
        assert batch["target"].shape == batch["input"].shape
    else:  # weakly aligned: another resolution, and the explicit override wins
        assert batch["target"].shape[-2:] == (28, 36)
        assert VideoDataModule(str(root), layout=layout, aligned=True).aligned is True
    dm.setup("fit")
    train = next(iter(dm.train_dataloader()))
    assert train["input"].shape == train["target"].shape == (2, 2, 3, 16, 16)


def test_intvid_source_suffix_missing_is_explained(tmp_path):
    root = write_tiny_video(tmp_path, layout="intvid", n_train=1, n_test=1, frames=3, source_suffix="_1M")
    with pytest.raises(FileNotFoundError, match=r"TrainingSourceDomain.*TrainingSourceDomain_1M.*source_suffix"):
        VideoDataModule(str(root), layout="intvid").describe()


# ------------------------------------------------------------------------------------------------
# Training clips


def test_train_clips_aligned_and_deterministic(tiny_video):
    dm = VideoDataModule(str(tiny_video), clip_length=3, frame_step=2, crop_size=16, batch_size=4,
                         train_samples_per_epoch=8, cache_frames=True)
    dm.setup("fit")
    dataset = dm.train_dataset()
    assert len(dataset) == 3 * 2  # 6 frames, clips span 5: two starts per video

    def draw():
        seed_everything(7, verbose=False)
        return list(dm.train_dataloader())

    first, second = draw(), draw()
    assert len(first) == 2
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a["input"], b["input"]) and a["key"] == b["key"]
        assert torch.equal(a["frame_start"], b["frame_start"])
    batch = first[0]
    assert batch["input"].shape == batch["target"].shape == (4, 3, 3, 16, 16)
    assert batch["input"].dtype == torch.float32 and batch["frame_start"].dtype == torch.int64
    assert 0 <= float(batch["input"].min()) and float(batch["input"].max()) <= 1
    # Same crop and flip for input and target: target = tiny_target(input) pixelwise.
    np.testing.assert_allclose(batch["target"].numpy(), tiny_target(batch["input"].numpy().transpose(0, 1, 3, 4, 2))
                               .transpose(0, 1, 4, 2, 3), atol=0.6 / 255)
    # The clip is frames start, start+2, start+4 of its video, cropped at one position for all.
    for clip, key, start in zip(batch["input"], batch["key"], batch["frame_start"].tolist(), strict=True):
        video = next(v for v in dm.videos("train") if v.key == key)
        full = [torch.from_numpy(read_image(video.inputs[start + 2 * t])).permute(2, 0, 1) for t in range(3)]
        assert _find_crop(full, clip), f"{key} clip at {start} is not one crop of frames {start}, +2, +4"


def _find_crop(frames, clip) -> bool:
    """Whether ``clip`` (T, 3, c, c) is one crop position (possibly flipped) of ``frames``."""
    c = clip.shape[-1]
    h, w = frames[0].shape[-2:]
    for flip in (False, True):
        candidate = clip.flip(-1) if flip else clip
        for top in range(h - c + 1):
            for left in range(w - c + 1):
                crops = [f[:, top : top + c, left : left + c] for f in frames]
                if all(torch.equal(f, x) for f, x in zip(crops, candidate, strict=True)):
                    return True
    return False


def test_weak_train_crops_fit_or_fail(tmp_path):
    root = write_tiny_video(tmp_path, layout="ntire_vqm", n_train=1, n_test=1, frames=3)
    dm = VideoDataModule(str(root), layout="ntire_vqm", clip_length=2, crop_size=28, batch_size=1)
    with pytest.raises(ValueError, match=r"video '000'.*input frames are 32x24, smaller than crop_size=28"):
        next(iter(dm.train_dataloader()))
    seed_everything(3, verbose=False)
    dm = VideoDataModule(str(root), layout="ntire_vqm", clip_length=2, crop_size=16, batch_size=1)
    batch = next(iter(dm.train_dataloader()))
    video, start = dm.videos("train")[0], int(batch["frame_start"])
    for side, files in (("input", video.inputs), ("target", video.targets)):  # each its own crop
        frames = [torch.from_numpy(read_image(files[start + t])).permute(2, 0, 1) for t in range(2)]
        assert _find_crop(frames, batch[side][0])
    whole = VideoDataModule(str(root), layout="ntire_vqm", clip_length=2, crop_size=None, batch_size=1)
    batch = next(iter(whole.train_dataloader()))
    assert batch["input"].shape == (1, 2, 3, 24, 32) and batch["target"].shape == (1, 2, 3, 28, 36)


# ------------------------------------------------------------------------------------------------
# Evaluation stream


@pytest.mark.parametrize("chunk", [1, 4, 50])
def test_eval_stream_covers_every_frame_once_in_order(tiny_video, chunk):
    dm = VideoDataModule(str(tiny_video), eval_chunk=chunk)
    dm.setup("test")
    stream = _stream(dm.test_dataloader())
    assert [s[0] for s in stream] == sorted(s[0] for s in stream)  # one process: videos in order
    _check_coverage(stream, {"video0": 6, "video1": 7}, chunk)
    assert dm.eval_dataset().num_chunks == len(stream)
    assert dm.predict_dataloader().dataset.keys == ["video0", "video1"]


def test_eval_stream_with_two_workers(tmp_path):
    root = write_tiny_video(tmp_path, n_train=1, n_test=3, frames=5, size=(8, 8), motion=False)
    dm = VideoDataModule(str(root), eval_chunk=2, num_workers=2)
    assert dm.test_dataloader().num_workers == 2
    # A plain loader over the module's dataset: non-persistent workers stop when it is exhausted.
    stream = _stream(DataLoader(dm.eval_dataset(), batch_size=1, num_workers=2))
    _check_coverage(stream, {"video0": 5, "video1": 6, "video2": 7}, 2)


def test_eval_workers_keep_the_rank_captured_at_build_time(tmp_path, monkeypatch):
    """Spawned DataLoader workers have no process group: they use the rank seen when the loader
    was built (here a fake rank 1 of 2, gone before iterating)."""
    import datamodules.video as video

    root = write_tiny_video(tmp_path, n_train=1, n_test=3, frames=3, size=(8, 8), motion=False)
    dm = VideoDataModule(str(root), eval_chunk=2)
    monkeypatch.setattr(video, "_rank_and_world_size", lambda: (1, 2))
    dataset = dm.eval_dataset()
    monkeypatch.undo()
    assert dataset.keys == ["video0", "video1", "video2"]  # keys: every rank's videos
    assert _stream(DataLoader(dataset, batch_size=1, num_workers=1)) == [("video1", 0, 2, 4), ("video1", 2, 2, 4)]


def test_assign_videos():
    videos = [f"v{i}" for i in range(7)]
    assert assign_videos(videos, 0, 1, 0, 1) == videos
    assert assign_videos(videos, 1, 2, 0, 1) == ["v1", "v3", "v5"]
    assert assign_videos(videos, 1, 2, 1, 2) == ["v3"]
    parts = [assign_videos(videos, r, 2, w, 3) for r in range(2) for w in range(3)]
    assert sorted(v for part in parts for v in part) == videos  # each exactly once
    assert assign_videos(videos[:1], 1, 2, 0, 1) == []  # more ranks than videos: idle ranks
    with pytest.raises(ValueError, match="rank 2 is outside world size 2"):
        assign_videos(videos, 2, 2, 0, 1)


# ------------------------------------------------------------------------------------------------
# Known motion


def test_motion_read_and_chunked(tiny_video):
    dm = VideoDataModule(str(tiny_video), eval_chunk=4)
    batches = list(dm.test_dataloader())
    assert dm.describe()["has_motion"] is True
    for batch in batches:
        motion = batch["motion"]
        assert motion.dtype == torch.float64 and motion.shape == (1, batch["input"].shape[1], 2, 3)
        saved = json.loads((tiny_video / "test" / batch["key"][0] / "motion.json").read_text())["frames"]
        start = int(batch["frame_start"])
        expected = [saved[f"{start + t:06d}"] for t in range(motion.shape[1])]
        np.testing.assert_array_equal(motion[0].numpy(), np.array(expected))
    # The known motion is right: frame t, moved to the scene, matches frame 0 moved there.
    video = dm.videos("test")[1]
    (_, _, dx), (_, _, dy) = video.motion[2]
    frame0, frame2 = read_image(video.inputs[0]), read_image(video.inputs[2])
    h, w = frame0.shape[:2]
    np.testing.assert_array_equal(frame2[: h - int(dy), : w - int(dx)], frame0[int(dy) :, int(dx) :])


def test_motion_scaled_with_long_side(tmp_path):
    """A bright block tracked through the resize: its centre maps to the same scene point."""
    root = tmp_path / "v"
    frame = np.zeros((24, 32, 3), np.float32)
    frame[8:12, 16:24] = 1.0  # centre x 19.5, y 9.5 in file pixels
    affine = [[1.0, 0.0, 100.0], [0.0, 1.0, 50.0]]
    from tests.conftest import _write_png

    for side in ("input", "target"):
        _write_png(root / "test" / "clip" / side / "000000.png", frame)
    (root / "test" / "clip" / "motion.json").write_text(json.dumps({"convention": "x", "frames": {"000000": affine}}))
    batch = next(iter(VideoDataModule(str(root), long_side=16).test_dataloader()))
    image = batch["input"][0, 0, 0].numpy()
    assert image.shape == (12, 16)
    ys, xs = np.nonzero(image > 0.5)
    centre = np.array([xs.mean(), ys.mean(), 1.0])
    scene = batch["motion"][0, 0].numpy() @ centre
    np.testing.assert_allclose(scene, [119.5, 59.5])  # the block's centre in the scene
    np.testing.assert_allclose(scale_motion(np.array(affine), (24, 32), (12, 16)),
                               [[2.0, 0.0, 100.5], [0.0, 2.0, 50.5]])
    # No resize (long_side at or above the frame size): affines unchanged.
    same = next(iter(VideoDataModule(str(root), long_side=32).test_dataloader()))
    np.testing.assert_array_equal(same["motion"][0, 0].numpy(), affine)


def test_motion_missing_frame_names_the_file(tmp_path):
    root = write_tiny_video(tmp_path, n_train=1, n_test=1, frames=3, size=(8, 8))
    path = root / "test" / "video0" / "motion.json"
    data = json.loads(path.read_text())
    del data["frames"]["000001"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"{path}: no affine for 1 frame\(s\): 000001"):
        VideoDataModule(str(root)).setup("test")
    path.write_text("{not json")
    with pytest.raises(ValueError, match=rf"{path}: cannot read known motion"):
        VideoDataModule(str(root)).setup("test")


# ------------------------------------------------------------------------------------------------
# Errors


def test_missing_target_frame_names_video_and_stem(tmp_path):
    root = write_tiny_video(tmp_path, n_train=1, n_test=1, frames=4, size=(8, 8))
    (root / "test" / "video0" / "target" / "000002.png").unlink()
    with pytest.raises(ValueError, match=r"video 'video0' \(.*video0\).*1 input frame\(s\) without target: 000002"):
        VideoDataModule(str(root)).setup("test")


def test_empty_and_missing_split(tmp_path):
    root = write_tiny_video(tmp_path, n_train=1, n_test=1, frames=3, size=(8, 8))
    shutil.rmtree(root / "test" / "video0")
    with pytest.raises(ValueError, match=r"test split 'test': no video folders in .*test"):
        VideoDataModule(str(root)).setup("test")
    shutil.rmtree(root / "test")
    dm = VideoDataModule(str(root), clip_length=2)
    assert dm.describe()["counts"]["test"] is None  # a train-only copy still describes itself
    with pytest.raises(FileNotFoundError, match=r"test split folder does not exist: .*test; .* holds: train"):
        dm.setup("test")


def test_video_shorter_than_clip(tiny_video):
    with pytest.raises(ValueError, match=r"too short for clip_length=7.*'video0' \(.*video0, 6 frames\)"):
        VideoDataModule(str(tiny_video), clip_length=7).setup("fit")
    VideoDataModule(str(tiny_video), clip_length=7).setup("test")  # evaluation takes any length


def test_unreadable_frame_names_the_file(tmp_path):
    root = write_tiny_video(tmp_path, n_train=1, n_test=1, frames=2, size=(8, 8))
    bad = root / "test" / "video0" / "input" / "000001.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=rf"{bad}: cannot decode"):
        list(VideoDataModule(str(root)).test_dataloader())


def test_bad_arguments():
    with pytest.raises(ValueError, match="layout must be one of"):
        VideoDataModule("x", layout="reds")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eval_chunk must be positive"):
        VideoDataModule("x", eval_chunk=0)
    with pytest.raises(ValueError, match="source_suffix applies to the intvid layout only"):
        VideoDataModule("x", source_suffix="_600")


def test_data_check_reports_a_video_dataset_and_its_problems(tmp_path, capsys):
    import shutil

    from datamodules.check import main_check

    root = write_tiny_video(tmp_path / "ok", frames=6)
    assert main_check([str(root), "--video", "generic", "--deep"]) == 0
    out = capsys.readouterr().out
    assert "train: 3 videos, 18 frames" in out and "test: 2 videos, 13 frames" in out and "result: OK" in out
    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    (broken / "test" / "video1" / "target" / "000004.png").unlink()
    assert main_check([str(broken), "--video", "generic"]) == 1
    out = capsys.readouterr().out
    assert "video1" in out and "000004" in out and "PROBLEMS FOUND" in out
    # --deep decodes every frame: a frame of another size is named.
    resized = tmp_path / "resized"
    shutil.copytree(root, resized)
    from tests.conftest import _write_png

    _write_png(resized / "train" / "video0" / "input" / "000002.png", np.zeros((20, 32, 3), np.float32))
    assert main_check([str(resized), "--video", "generic"]) == 0  # headers only: not seen
    capsys.readouterr()
    assert main_check([str(resized), "--video", "generic", "--deep"]) == 1
    assert "000002.png" in capsys.readouterr().out
