"""UnpairedDataModule (two folders, or FiveK + DPE lists), its independent sampling, the DPE list
check and the unpaired demo set."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from datamodules.check import check_dataset, format_report, main_check
from datamodules.demo import DEMO_PHOTOS, DEMO_SPLIT, UNPAIRED_HALVES, demo_split_ids
from datamodules.io import EXPECTED_SPLIT_COUNTS, list_images, sha256_file, write_image
from datamodules.paired import ImageStore
from datamodules.unpaired import (
    NO_TEST_NOTE,
    IndependentPairSampler,
    UnpairedDataModule,
    UnpairedTrainDataset,
    cycled_permutation,
)

# ---------------------------------------------------------------------------------------------
# Independent sampling


def _epochs(sampler: IndependentPairSampler, count: int) -> list[list[tuple[int, int]]]:
    return [list(sampler) for _ in range(count)]


def test_source_and_target_orders_are_independent_shuffles() -> None:
    torch.manual_seed(0)
    epochs = _epochs(IndependentPairSampler(8, 8, 8), 6)
    sources = [tuple(s for s, _ in epoch) for epoch in epochs]
    targets = [tuple(t for _, t in epoch) for epoch in epochs]
    for order in sources + targets:
        assert sorted(order) == list(range(8))  # each epoch is a permutation of its own domain
    assert len(set(sources)) == 6 and len(set(targets)) == 6  # reshuffled every epoch
    # Not locked together: the target met by each source image changes between epochs, and the
    # two orders are different permutations.
    partners = [dict(epoch) for epoch in epochs]
    assert all(len({p[i] for p in partners}) > 1 for i in range(8))
    assert all(s != t for s, t in zip(sources, targets, strict=True))
    offsets = {tuple((t - s) % 8 for s, t in epoch) for epoch in epochs}
    assert all(len(set(offset)) > 1 for offset in offsets)  # not a fixed shift either


def test_sampler_follows_the_torch_seed_and_cycles_unequal_domains() -> None:
    sampler = IndependentPairSampler(3, 5, 10)
    torch.manual_seed(7)
    first = _epochs(sampler, 2)
    torch.manual_seed(7)
    assert _epochs(sampler, 2) == first
    sources = [s for s, _ in first[0]]
    targets = [t for _, t in first[0]]
    assert len(first[0]) == len(sampler) == 10
    assert sorted(sources[:3]) == [0, 1, 2] and sorted(sources[3:6]) == [0, 1, 2]
    assert sorted(targets[:5]) == [0, 1, 2, 3, 4] and sorted(targets[5:]) == [0, 1, 2, 3, 4]


def test_cycled_permutation_reference() -> None:
    generator = torch.Generator().manual_seed(3)
    reference = torch.Generator().manual_seed(3)
    expected = torch.randperm(4, generator=reference).tolist() + torch.randperm(4, generator=reference).tolist()[:2]
    assert cycled_permutation(4, 6, generator) == expected
    with pytest.raises(ValueError, match="empty domain"):
        cycled_permutation(0, 3, generator)


def test_crops_of_the_two_sides_are_independent(tmp_path: Path) -> None:
    ys, xs = np.mgrid[0:64, 0:64].astype(np.float32)
    path = tmp_path / "ramp.png"  # every pixel position has its own colour
    write_image(path, np.stack([xs / 63, ys / 63, np.zeros_like(xs)], axis=-1))
    dataset = UnpairedTrainDataset([("s", path)], [("t", path)], crop_size=16, store=ImageStore(cache=True),
                                   flips=False)
    torch.manual_seed(0)
    samples = [dataset[(0, 0)] for _ in range(20)]
    same = sum(torch.equal(sample["input"], sample["target"]) for sample in samples)
    assert same <= 2  # same image on both sides, yet the crops differ
    corners = {tuple(s["input"][:2, 0, 0].tolist()) for s in samples}
    assert len(corners) > 5


# ---------------------------------------------------------------------------------------------
# The two layouts


def test_folders_layout_batches_hold_unaligned_targets(tiny_unpaired: Path) -> None:
    dm = UnpairedDataModule(str(tiny_unpaired), dataset="tiny_u", layout="folders", split="tiny", crop_size=16,
                            batch_size=3, resize_long_side=None)
    dm.setup("fit")
    torch.manual_seed(0)
    batches = [next(iter(dm.train_dataloader())) for _ in range(4)]
    for batch in batches:
        assert batch["input"].shape == batch["target"].shape == (3, 3, 16, 16)
        assert set(batch["key"]) == {"a0001", "a0002", "a0003"}
        assert set(batch["target_key"]) == {"a0004", "a0005", "a0006"}
    assert len({tuple(zip(b["key"], b["target_key"], strict=True)) for b in batches}) > 1
    info = dm.describe()
    assert info["counts"] == {"train_source": 3, "train_target": 3, "test": 5}
    assert info["evaluation"] == "paired test split" and info["split"] == "tiny"
    loaders = dm.test_dataloader()
    assert [loader.dataset.protocol for loader in loaders] == ["d", "f"]
    assert loaders[0].dataset.keys == [f"a{n:04d}" for n in range(7, 12)]
    wide = {loader.dataset.protocol: loader.dataset[2]["input"].shape for loader in loaders}  # a0009: 600x90
    assert wide == {"d": (3, 512, 77), "f": (3, 600, 90)}


def test_lists_layout_follows_dpe_roles(tiny_unpaired: Path) -> None:
    dm = UnpairedDataModule(str(tiny_unpaired), dataset="tiny_dpe", layout="lists", split="tiny", crop_size=16,
                            batch_size=3)
    dm.setup("fit")
    loader = dm.train_dataloader()
    dataset = loader.dataset
    assert [key for key, _ in dataset.sources] == ["a0001", "a0002", "a0003"]
    assert all(path.parent.name == "input" for _, path in dataset.sources)  # inputs of train_input
    assert [key for key, _ in dataset.targets] == ["a0004", "a0005", "a0006"]
    assert all(path.parent.name == "target" for _, path in dataset.targets)  # targets of train_label
    assert dataset.store.long_side == 512  # DPE's training resolution
    test = dm.test_dataloader()
    assert test[0].dataset.keys == [f"a{n:04d}" for n in range(7, 12)]
    assert test[0].dataset.store.long_side is None  # test images are never resized on load
    info = dm.describe()
    assert set(Path(f).name for f in info["list_files"]) == {"train_input.txt", "train_label.txt", "test.txt"}
    assert all(len(digest) == 64 for digest in info["list_files"].values())


def test_training_images_resized_on_load(tiny_unpaired: Path) -> None:
    dm = UnpairedDataModule(str(tiny_unpaired), layout="lists", split="tiny", crop_size=8, resize_long_side=32)
    dm.setup("fit")
    dataset = dm.train_dataloader().dataset
    assert dataset.store.image(dataset.sources[0][1]).shape == (24, 32, 3)  # 48x64 -> long side 32
    with pytest.raises(ValueError, match="long_side"):
        ImageStore(long_side=0)


def test_without_a_paired_test_split_nothing_is_scored(tiny_unpaired: Path) -> None:
    dm = UnpairedDataModule(str(tiny_unpaired), dataset="tiny_u", layout="folders", test_dir=None, crop_size=16)
    dm.setup("test")
    assert dm.test_dataloader() == [] and dm.predict_dataloader() == []
    info = dm.describe()
    assert info["evaluation"] == NO_TEST_NOTE == "no paired test split: only preference studies apply"
    assert info["protocols"] == [] and not dm.has_test_split


def test_missing_or_bad_folders_named(tiny_unpaired: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="paired test folder does not exist: .*nowhere"):
        UnpairedDataModule(str(tiny_unpaired), layout="folders", test_dir="nowhere").setup("fit")
    with pytest.raises(FileNotFoundError, match="train_source"):
        UnpairedDataModule(str(tmp_path), layout="folders").setup("fit")
    (tmp_path / "splits" / "p").mkdir(parents=True)
    (tmp_path / "splits" / "p" / "train.txt").write_text("a0001\n")
    (tmp_path / "splits" / "p" / "test.txt").write_text("a0002\n")
    for side in ("input", "target"):
        (tmp_path / side).mkdir()
    with pytest.raises(ValueError, match="not an unpaired split"):
        UnpairedDataModule(str(tmp_path), layout="lists", split="p").setup("fit")


# ---------------------------------------------------------------------------------------------
# `qmap data check ROOT --split dpe`


def _fivek_like(root: Path, count: int = 5000) -> list[str]:
    """A FiveK-shaped root: aNNNN input and expertC files (hard links to one 1x1 PNG: fast)."""
    import os

    ok, png = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))
    assert ok
    original = root / "pixel.bin"
    original.write_bytes(png.tobytes())
    ids = [f"a{n:04d}" for n in range(1, count + 1)]
    for side in ("input", "expertC"):
        (root / side).mkdir(parents=True)
        for key in ids:
            os.link(original, root / side / f"{key}.png")
    return ids


def _write_lists(root: Path, name: str, parts: dict[str, list[str]]) -> None:
    (root / "splits" / name).mkdir(parents=True, exist_ok=True)
    for part, ids in parts.items():
        (root / "splits" / name / f"{part}.txt").write_text("\n".join(ids) + "\n")


def test_dpe_lists_check_counts_disjointness_and_hashes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _fivek_like(tmp_path)
    rng = np.random.default_rng(0)
    order = [ids[i] for i in rng.permutation(len(ids))]  # DPE's lists are not numeric ranges
    _write_lists(tmp_path, "dpe", {"train_input": order[:2250], "train_label": order[2250:4500],
                                   "test": order[4500:4998]})
    assert EXPECTED_SPLIT_COUNTS["dpe"] == {"train_input": 2250, "train_label": 2250, "test": 498}
    assert main_check([str(tmp_path), "--split", "dpe"]) == 0
    out = capsys.readouterr().out
    assert "split dpe: train_input 2250, train_label 2250, test 498" in out and "result: OK" in out
    for part in ("train_input", "train_label", "test"):
        path = tmp_path / "splits" / "dpe" / f"{part}.txt"
        assert f"sha256 {sha256_file(path)}  {path}" in out

    dm = UnpairedDataModule(str(tmp_path), layout="lists", split="dpe")
    assert dm.describe()["counts"] == {"train_source": 2250, "train_target": 2250, "test": 498}


def test_dpe_lists_problems_named(tmp_path: Path) -> None:
    ids = _fivek_like(tmp_path, count=12)
    (tmp_path / "expertC" / "a0012.png").unlink()
    _write_lists(tmp_path, "dpe", {"train_input": ids[0:5], "train_label": ids[4:8], "test": ids[8:12]})
    report = check_dataset(str(tmp_path), split="dpe")
    text = format_report(report)
    assert not report.ok
    assert "train_input and train_label share 1 id(s): a0005" in text
    assert "train_input lists 5 ids, the published split has 2250" in text
    assert "test lists 4 ids, the published split has 498" in text
    assert "1 test id(s) have no input/target pair: a0012" in text
    with pytest.raises(ValueError, match="share 1 id"):
        UnpairedDataModule(str(tmp_path), layout="lists", split="dpe").setup("fit")


def test_dpe_lists_need_all_three_files(tmp_path: Path) -> None:
    ids = _fivek_like(tmp_path, count=4)
    _write_lists(tmp_path, "dpe", {"train_input": ids[:2], "test": ids[2:]})
    text = format_report(check_dataset(str(tmp_path), split="dpe"))
    assert "missing list file" in text and "train_label.txt" in text


# ---------------------------------------------------------------------------------------------
# The unpaired demo


def test_unpaired_halves_split_the_train_photos() -> None:
    source, target = set(UNPAIRED_HALVES["source"]), set(UNPAIRED_HALVES["target"])
    assert not source & target and source | target == set(DEMO_SPLIT["train"])


def test_unpaired_demo_layout(demo_all: dict[str, Path]) -> None:
    root, paired = demo_all["unpaired"], demo_all["paired"]
    ids = {role: sorted(k for photo in UNPAIRED_HALVES[role] for k in DEMO_PHOTOS[photo]) for role in UNPAIRED_HALVES}
    assert list(list_images(root / "train_source")) == ids["source"]
    assert list(list_images(root / "train_target")) == ids["target"]
    for key in ids["source"]:  # degraded versions of the source half
        assert sha256_file(root / "train_source" / f"{key}.png") == sha256_file(paired / "input" / f"{key}.png")
    for key in ids["target"]:  # clean versions of the other half
        assert sha256_file(root / "train_target" / f"{key}.png") == sha256_file(paired / "target" / f"{key}.png")
    for side in ("input", "target"):  # the paired demo's test set, byte for byte
        assert list(list_images(root / "test" / side)) == demo_split_ids("test")
        for key in demo_split_ids("test"):
            assert sha256_file(root / "test" / side / f"{key}.png") == sha256_file(paired / side / f"{key}.png")
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["halves"] == UNPAIRED_HALVES and manifest["seed"] == 0

    dm = UnpairedDataModule(str(root), dataset="demo_unpaired", layout="folders", split="demo", crop_size=64,
                            batch_size=4, resize_long_side=None)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch["key"]) <= set(ids["source"]) and set(batch["target_key"]) <= set(ids["target"])


def test_canvas_mode_batches_whole_photos_with_their_valid_sizes(tmp_path):
    """pad_mode="canvas": photos of different shapes share a batch, zero-padded, sizes reported."""
    import cv2
    import numpy as np

    from datamodules.unpaired import UnpairedDataModule

    rng = np.random.default_rng(0)
    for side, shapes in (("train_source", [(30, 50), (50, 30)]), ("train_target", [(40, 20), (20, 40)])):
        (tmp_path / side).mkdir()
        for i, (h, w) in enumerate(shapes):
            cv2.imwrite(str(tmp_path / side / f"{side}_{i}.png"), rng.integers(1, 255, (h, w, 3), dtype=np.uint8))
    dm = UnpairedDataModule(str(tmp_path), dataset="t", layout="folders", split="t", test_dir=None, crop_size=48,
                            batch_size=2, resize_long_side=None, pad_mode="canvas", train_samples_per_epoch=8)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input"].shape == (2, 3, 48, 48) and batch["target"].shape == (2, 3, 48, 48)
    for images, sizes in ((batch["input"], batch["input_hw"]), (batch["target"], batch["target_hw"])):
        for image, (h, w) in zip(images, sizes.tolist()):
            assert (h, w) in {(30, 48), (48, 30), (40, 20), (20, 40)}  # a 50-px side is cropped to 48
            assert image[:, :h, :w].min() > 0, "inside the valid part: the photo (no zero pixels drawn)"
            assert image[:, h:, :].abs().sum() == 0 and image[:, :, w:].abs().sum() == 0
