"""WeaklyPairedDataModule (DPED layout and aligned folders) and the demo sets' determinism and cache."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.align import part_dir
from datamodules.demo import WEAK_PHONE, build_demo, build_unpaired_demo, build_weak_demo, demo_split_ids
from datamodules.io import sha256_file, write_image
from datamodules.weakly_paired import WeaklyPairedDataModule, match_dped_folders
from tests.conftest import tiny_target


def _touch_png(path: Path, value: float = 0.5, side: int = 8) -> None:
    write_image(path, np.full((side, side, 3), value, np.float32))


# ---------------------------------------------------------------------------------------------
# Pairing by integer stem


def test_dped_pairs_by_integer_stem_across_extensions(tmp_path: Path) -> None:
    phone, canon = tmp_path / "iphone", tmp_path / "canon"
    for name in ("0.jpg", "1.png", "2.jpg", "10.jpg", "007.png"):
        _touch_png(phone / name)
    for name in ("0.png", "1.jpg", "3.jpg", "10.png", "7.jpg"):
        _touch_png(canon / name)
    match = match_dped_folders(phone, canon)
    assert [(key, p.name, c.name) for key, p, c in match.pairs] == [
        ("0", "0.jpg", "0.png"), ("1", "1.png", "1.jpg"), ("7", "007.png", "7.jpg"), ("10", "10.jpg", "10.png")]
    assert match.missing_target == ["2"] and match.missing_input == ["3"]


def test_dped_rejects_non_integer_and_duplicate_numbers(tmp_path: Path) -> None:
    _touch_png(tmp_path / "a" / "1.jpg")
    _touch_png(tmp_path / "a" / "patch_2.jpg")
    _touch_png(tmp_path / "b" / "1.jpg")
    with pytest.raises(ValueError, match=r"named by integers.*patch_2\.jpg"):
        match_dped_folders(tmp_path / "a", tmp_path / "b")
    _touch_png(tmp_path / "c" / "7.jpg")
    _touch_png(tmp_path / "c" / "07.png")
    with pytest.raises(ValueError, match="both patch 7"):
        match_dped_folders(tmp_path / "c", tmp_path / "b")


def test_mismatched_stems_reported_by_the_module(tiny_weak: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "dped"
    shutil.copytree(tiny_weak, root)
    (root / "tiny" / "training_data" / "canon" / "2.png").unlink()
    _touch_png(root / "tiny" / "training_data" / "canon" / "99.png")
    dm = WeaklyPairedDataModule(str(root), phone="tiny", patch_size=32)
    with pytest.raises(ValueError) as error:
        dm.setup("fit")
    message = str(error.value)
    assert "1 input(s) without target: 2" in message and "1 target(s) without input: 99" in message
    assert str(root / "tiny" / "training_data" / "canon") in message
    dm.setup("test")  # the test part is complete and loads on its own


# ---------------------------------------------------------------------------------------------
# Batches


def test_train_batches_are_aligned_crops_of_the_patches(tiny_weak: Path) -> None:
    dm = WeaklyPairedDataModule(str(tiny_weak), phone="tiny", dataset="tiny_weak", patch_size=32, batch_size=3)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert [b["input"].shape for b in batches] == [(3, 3, 32, 32)] * 2
    assert sorted(k for b in batches for k in b["key"]) == [str(n) for n in range(6)]
    for batch in batches:
        expected = torch.from_numpy(tiny_target(batch["input"].permute(0, 2, 3, 1).numpy())).permute(0, 3, 1, 2)
        # Crops and flips are shared: the target is the mapped input, up to 8-bit rounding.
        assert (batch["target"] - expected).abs().max() < 2.5 / 255


def test_short_epochs_still_draw_from_every_patch(tiny_weak: Path) -> None:
    dm = WeaklyPairedDataModule(str(tiny_weak), phone="tiny", patch_size=32, batch_size=2, train_samples_per_epoch=2)
    dm.setup("fit")
    torch.manual_seed(0)
    seen = [key for _ in range(8) for batch in dm.train_dataloader() for key in batch["key"]]
    assert len(seen) == 16 and set(seen) == {str(n) for n in range(6)}


def test_test_loaders_carry_protocol_100_and_patch_keys(tiny_weak: Path) -> None:
    dm = WeaklyPairedDataModule(str(tiny_weak), phone="tiny", dataset="tiny_weak", eval_batch_size=50)
    dm.setup("test")
    loaders = dm.test_dataloader()
    assert len(loaders) == 1 and loaders[0].dataset.keys == ["0", "1", "2", "3"]
    batch = next(iter(loaders[0]))
    assert batch["input"].shape == (4, 3, 100, 100) and batch["protocol"] == ["100"] * 4
    info = dm.describe()
    assert info["counts"] == {"train": 6, "test": 4} and info["split"] == "dped" and info["protocols"] == ["100"]
    assert dm.split == "dped" and dm.dataset == "tiny_weak"


def test_protocol_100_rejects_other_patch_sizes(tmp_path: Path) -> None:
    for part in (("training_data",), ("test_data", "patches")):
        for side in ("p", "canon"):
            _touch_png(tmp_path.joinpath("p", *part, side, "0.png"), side=64)
    dm = WeaklyPairedDataModule(str(tmp_path), phone="p", patch_size=32)
    dm.setup("test")
    with pytest.raises(ValueError, match="100x100 test patches; got a 64x64"):
        next(iter(dm.test_dataloader()[0]))


def test_patch_size_larger_than_the_patches_is_refused(tiny_weak: Path) -> None:
    with pytest.raises(ValueError, match="patch_size 64 exceeds the 48x48 training patches"):
        WeaklyPairedDataModule(str(tiny_weak), phone="tiny", patch_size=64).setup("fit")


def test_folders_layout(tmp_path: Path) -> None:
    for part, count in (("train", 3), ("test", 2)):
        for index in range(count):
            _touch_png(tmp_path / part / "input" / f"x{index}.png", 0.2, side=100)
            _touch_png(tmp_path / part / "target" / f"x{index}.png", 0.6, side=100)
    dm = WeaklyPairedDataModule(str(tmp_path), layout="folders", patch_size=40, batch_size=3)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input"].shape == (3, 3, 40, 40) and sorted(batch["key"]) == ["x0", "x1", "x2"]
    dm.setup("test")
    assert dm.test_dataloader()[0].dataset.keys == ["x0", "x1"]


def test_interrupted_alignment_is_refused(tiny_weak: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "dped"
    shutil.copytree(tiny_weak, root)
    (root / "tiny" / "training_data" / "align.json").write_text(json.dumps({"status": "partial"}))
    with pytest.raises(ValueError, match="alignment partial"):
        WeaklyPairedDataModule(str(root), phone="tiny", patch_size=32).setup("fit")


def test_bad_arguments_named() -> None:
    with pytest.raises(ValueError, match="protocols"):
        WeaklyPairedDataModule("x", protocols=("p",))
    with pytest.raises(ValueError, match="patch_size"):
        WeaklyPairedDataModule("x", patch_size=0)
    with pytest.raises(ValueError, match="train_samples_per_epoch"):
        WeaklyPairedDataModule("x", train_samples_per_epoch=0)


def test_scored_end_to_end_under_protocol_100(tiny_weak: Path, tmp_path: Path) -> None:
    from benchmark.lightning_cli import build_cli
    from benchmark.suite import CONFIG_ROOT, deep_merge, load_yaml, set_dotted

    config: dict = {}
    for name in ("trainer/quick.yaml", "methods/identity.yaml", "data/demo_weak.yaml"):
        config = deep_merge(config, load_yaml(CONFIG_ROOT / name))
    for key, value in {"data.init_args.root": str(tiny_weak), "data.init_args.phone": "tiny",
                       "data.init_args.patch_size": 32, "trainer.accelerator": "cpu",
                       "trainer.enable_progress_bar": False, "trainer.default_root_dir": str(tmp_path),
                       "evaluator.out_dir": str(tmp_path), "evaluator.metrics": ["psnr"]}.items():
        set_dotted(config, key, value)
    cli = build_cli(config, run=False, save_config=False)
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    rows = next(cb for cb in cli.trainer.callbacks if type(cb).__name__ == "Evaluator").rows
    psnr = rows[rows["metric"] == "psnr"]
    assert sorted(psnr["key"]) == ["0", "1", "2", "3"] and set(psnr["protocol"]) == {"100"}
    assert set(psnr["dataset"]) == {"demo_weak"} and set(psnr["split"]) == {"dped"}


# ---------------------------------------------------------------------------------------------
# The weakly-paired demo


def test_demo_patch_pairs_load_with_test_photos_only_in_test(demo_all: dict[str, Path]) -> None:
    manifest = json.loads((demo_all["weak_raw"] / "manifest.json").read_text())
    dm = WeaklyPairedDataModule(str(demo_all["weak"]), phone=WEAK_PHONE, dataset="demo_weak", patch_size=64)
    dm.setup("fit")
    dm.setup("test")
    counts = dm.describe()["counts"]
    assert counts == {part: manifest["totals"][part]["kept"] for part in ("train", "test")}
    assert counts["train"] >= 50 and counts["test"] >= 100
    for part in ("train", "test"):
        index = json.loads((part_dir(demo_all["weak"], WEAK_PHONE, part) / "align.json").read_text())["patches"]
        assert {entry["scene"] for entry in index} <= set(demo_split_ids(part))  # one photo-level split
    batch = next(iter(dm.test_dataloader()[0]))
    assert batch["input"].shape[1:] == (3, 100, 100) and batch["target"].shape == batch["input"].shape
    # Phone patches are darker renderings of the DSLR patches: a weak pair, not identical images.
    assert batch["input"].mean() < batch["target"].mean()
    aligned = torch.corrcoef(torch.stack([batch["input"].mean(1).flatten(), batch["target"].mean(1).flatten()]))
    assert aligned[0, 1] > 0.8


def _states(root: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, sha256_file(p))
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_demo_second_build_is_a_cache_hit(demo_all: dict[str, Path]) -> None:
    out = demo_all["paired"].parent
    before = _states(out)
    lines: list[str] = []
    start = time.perf_counter()
    build_demo(out, seed=0, progress=lines.append)
    assert time.perf_counter() - start < 1.0
    assert _states(out) == before
    assert [line.split()[0] for line in lines] == ["paired", "weak", "unpaired", "video"]
    assert all("cached" in line for line in lines)


def test_demo_rebuilt_after_a_deletion_byte_identical(demo_all: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    out = demo_all["paired"].parent
    for name in ("weak_raw", "dped", "paired"):  # the paired set's own rebuild is tested beside it
        shutil.copytree(out / name, tmp_path / name)
    (tmp_path / "dped" / WEAK_PHONE / "training_data" / "canon" / "3.png").unlink()
    lines: list[str] = []
    build_weak_demo(tmp_path, seed=0, progress=lines.append)  # a missing patch invalidates the cache
    assert lines and not any("cached" in line for line in lines)
    build_unpaired_demo(tmp_path, seed=0)
    for name in ("weak_raw", "dped", "unpaired"):
        first = {k: v[1] for k, v in _states(out / name).items()}
        second = {k: v[1] for k, v in _states(tmp_path / name).items()}
        assert first == second, name
        assert len(first) > 10
