"""Transforms, the paired datamodule and the dataset checker on tiny generated data."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from datamodules.check import check_dataset, format_report, main_check
from datamodules.io import write_image
from datamodules.paired import BUILTIN_SPLITS, PairedDataModule
from datamodules.transforms import (
    apply_protocol,
    paired_train_transform,
    resize_long_side,
    resized_shape,
    to_tensor,
)

SIZES = {"a0006": (100, 700)}  # one wide test image, so protocol d differs from f


def _make_dataset(
    root: Path,
    ids: list[str],
    target_name: str = "target",
    train: list[str] | None = None,
    test: list[str] | None = None,
) -> Path:
    """Random 40x50 inputs with target = 1 - input, pixelwise; optional list-file split ``s``."""
    rng = np.random.default_rng(0)
    for key in ids:
        pixels = rng.integers(0, 256, (*SIZES.get(key, (40, 50)), 3), dtype=np.uint8)
        write_image(root / "input" / f"{key}.png", pixels)
        write_image(root / target_name / f"{key}.png", 255 - pixels)
    if train is not None and test is not None:
        (root / "splits" / "s").mkdir(parents=True)
        (root / "splits" / "s" / "train.txt").write_text("\n".join(train) + "\n")
        (root / "splits" / "s" / "test.txt").write_text("\n".join(test) + "\n")
    return root


IDS = [f"a000{i}" for i in range(1, 7)]


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    return _make_dataset(tmp_path / "data", IDS, train=IDS[:4], test=IDS[4:])


def _assert_aligned(batch: dict) -> None:
    torch.testing.assert_close(batch["target"], 1 - batch["input"], atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------
# transforms


def test_resized_shape_rounds_half_up() -> None:
    assert resized_shape(872, 1000, 512) == (446, 512)  # 446.46 -> 446
    assert resized_shape(5, 1024, 512) == (3, 512)  # 2.5 -> 3, where round() would give 2
    assert resized_shape(500, 741, 512) == (345, 512)


def test_resize_long_side_never_enlarges() -> None:
    small = np.zeros((300, 512, 3), np.float32)
    assert resize_long_side(small) is small
    big = np.random.default_rng(0).random((600, 1000, 3)).astype(np.float32)
    out = resize_long_side(big)
    assert out.shape == (307, 512, 3) and out.dtype == np.float32
    assert out.mean() == pytest.approx(big.mean(), abs=1e-3)  # area interpolation averages


def test_apply_protocol() -> None:
    image = np.zeros((1411, 1411, 3), np.float32)
    assert apply_protocol(image, "d").shape == (512, 512, 3)
    assert apply_protocol(image, "f") is image
    with pytest.raises(ValueError, match="unknown protocol"):
        apply_protocol(image, "x")
    patch = np.zeros((100, 100, 3), np.float32)
    assert apply_protocol(patch, "100") is patch
    with pytest.raises(ValueError, match="100x100 test patches; got a 1411x1411"):
        apply_protocol(image, "100")


def test_paired_transform_shares_geometry_and_pads_small_images() -> None:
    transform = paired_train_transform(64)
    source = np.random.default_rng(0).random((30, 40, 3)).astype(np.float32)
    for _ in range(5):
        out = transform(image=source, target=1 - source)
        assert out["image"].shape == (64, 64, 3)
        np.testing.assert_allclose(out["target"], 1 - out["image"], atol=1e-6)


def test_to_tensor() -> None:
    image = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32)
    tensor = to_tensor(image)
    assert tensor.shape == (3, 4, 5) and tensor.dtype == torch.float32 and tensor.is_contiguous()
    assert tensor[2, 3, 4] == pytest.approx(float(image[3, 4, 2]))


# ---------------------------------------------------------------------------------------------
# PairedDataModule


def test_train_batches_are_aligned_crops(dataset: Path) -> None:
    dm = PairedDataModule(str(dataset), dataset="tiny", split="s", crop_size=32, batch_size=2)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 2  # 4 training images
    keys = []
    for batch in batches:
        assert batch["input"].shape == batch["target"].shape == (2, 3, 32, 32)
        assert batch["input"].dtype == torch.float32
        _assert_aligned(batch)
        keys += batch["key"]
    assert sorted(keys) == IDS[:4]


def test_train_samples_per_epoch_cycles_and_pads(dataset: Path) -> None:
    dm = PairedDataModule(str(dataset), split="s", crop_size=64, batch_size=5, train_samples_per_epoch=10)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert [b["input"].shape for b in batches] == [(5, 3, 64, 64)] * 2  # crop above 40x50: reflect pad
    for batch in batches:
        _assert_aligned(batch)


def test_train_crops_reproducible_under_torch_seed(dataset: Path) -> None:
    dm = PairedDataModule(str(dataset), split="s", crop_size=16, batch_size=4)
    dm.setup("fit")

    def first_batch() -> torch.Tensor:
        torch.manual_seed(7)
        return next(iter(dm.train_dataloader()))["input"]

    torch.testing.assert_close(first_batch(), first_batch())


def test_workers_draw_different_crops(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path, ["a0001", "a0002"], train=["a0001"], test=["a0002"])
    dm = PairedDataModule(
        str(root), split="s", crop_size=8, batch_size=1, num_workers=2, train_samples_per_epoch=8
    )
    dm.setup("fit")
    torch.manual_seed(0)
    crops = [batch["input"] for batch in dm.train_dataloader()]
    # Batches alternate between the two workers; copies of one generator would repeat crops.
    assert not all(torch.equal(crops[i], crops[i + 1]) for i in range(0, 8, 2))


def test_test_loaders_one_per_protocol(dataset: Path) -> None:
    dm = PairedDataModule(str(dataset), dataset="tiny", split="s")
    dm.setup("test")
    loaders = dm.test_dataloader()
    assert len(loaders) == 2
    shapes = {}
    for protocol, loader in zip(("d", "f"), loaders):
        for batch in loader:
            assert batch["protocol"] == [protocol]
            _assert_aligned(batch)
            shapes[(protocol, batch["key"][0])] = tuple(batch["input"].shape[2:])
    assert shapes == {
        ("d", "a0005"): (40, 50),
        ("f", "a0005"): (40, 50),
        ("d", "a0006"): (73, 512),
        ("f", "a0006"): (100, 700),
    }
    assert [loader.dataset.keys for loader in loaders] == [["a0005", "a0006"]] * 2  # the Evaluator reads these
    predict = list(dm.predict_dataloader())
    assert [b["protocol"] for b in predict] == [["f"], ["f"]]


def test_validation_carved_from_training_end(dataset: Path) -> None:
    dm = PairedDataModule(str(dataset), split="s", val_count=1)
    dm.setup("fit")
    assert dm.split_ids("train") == ["a0001", "a0002", "a0003"]
    assert dm.split_ids("val") == ["a0004"]
    assert [b["protocol"] for b in dm.val_dataloader()] == [["d"]]
    assert dm.describe()["counts"] == {"train": 3, "val": 1, "test": 2}
    assert PairedDataModule(str(dataset), split="s").val_dataloader() == []


def test_lightning_runs_fit_without_validation_and_tests_every_protocol(dataset: Path) -> None:
    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[tuple[str, str]] = []

        def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
            return (batch["input"] + self.bias - batch["target"]).abs().mean()

        def validation_step(self, batch: dict, batch_idx: int) -> None:
            raise AssertionError("validation must be skipped when there are no val ids")

        def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
            self.seen.append((batch["protocol"][0], batch["key"][0]))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    dm = PairedDataModule(str(dataset), split="s", crop_size=16, batch_size=2)
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu",
    )
    model = Tiny()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "Total length ... is zero" would be one
        warnings.filterwarnings("ignore", message=".*(LeafSpec|num_workers|does not have many workers).*")
        trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    assert sorted(model.seen) == [("d", "a0005"), ("d", "a0006"), ("f", "a0005"), ("f", "a0006")]


def test_expertc_folder_accepted(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path, IDS, target_name="expertC", train=IDS[:4], test=IDS[4:])
    dm = PairedDataModule(str(root), split="s")
    dm.setup("test")
    assert dm.describe()["target_dir"].endswith("expertC")
    _assert_aligned(next(iter(dm.test_dataloader()[1])))


def test_target_dir_override(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path, IDS, target_name="expertA", train=IDS[:4], test=IDS[4:])
    _make_dataset(tmp_path, IDS, target_name="target")
    dm = PairedDataModule(str(root), split="s", target_dir="expertA")
    assert dm.describe()["target_dir"] == str(root / "expertA")


def test_builtin_upe_ranges(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path, ["a4499", "a4500", "a4501", "a4502"])
    dm = PairedDataModule(str(root), dataset="fivek_upe", split="upe")
    dm.setup("fit")
    assert BUILTIN_SPLITS["upe"]["test"] == ("a4501", "a5000")
    assert dm.split_ids("train") == ["a4499", "a4500"]
    assert dm.split_ids("test") == ["a4501", "a4502"]
    assert dm.describe()["split"] == "upe"


def test_split_given_as_folder_path(dataset: Path) -> None:
    dm = PairedDataModule(str(dataset), split=str(dataset / "splits" / "s"))
    assert dm.split == "s"
    assert dm.split_ids("test") == ["a0005", "a0006"]


def test_missing_partner_error_names_id(dataset: Path) -> None:
    (dataset / "target" / "a0003.png").unlink()
    dm = PairedDataModule(str(dataset), split="s")
    with pytest.raises(ValueError, match=r"without target: a0003"):
        dm.setup("fit")


def test_listed_id_without_image_named(dataset: Path) -> None:
    (dataset / "splits" / "s" / "test.txt").write_text("a0005\na0099\n")
    with pytest.raises(ValueError, match=r"a0099"):
        PairedDataModule(str(dataset), split="s").setup("test")


def test_overlapping_train_and_test_rejected(dataset: Path) -> None:
    (dataset / "splits" / "s" / "test.txt").write_text("a0004\na0005\n")
    with pytest.raises(ValueError, match=r"share 1 id.*a0004"):
        PairedDataModule(str(dataset), split="s").setup("fit")


def test_size_mismatch_named_when_loading(dataset: Path) -> None:
    write_image(dataset / "target" / "a0005.png", np.zeros((10, 10, 3), np.uint8))
    dm = PairedDataModule(str(dataset), split="s")
    dm.setup("test")
    with pytest.raises(ValueError, match=r"a0005.*50x40.*10x10"):
        list(dm.test_dataloader()[0])


def test_cache_images_keeps_decoded_arrays(dataset: Path) -> None:
    dm = PairedDataModule(str(dataset), split="s", cache_images=True)
    dm.setup("test")
    first = [b["input"] for b in dm.test_dataloader()[1]]
    (dataset / "input" / "a0005.png").unlink()  # served from memory now
    second = [b["input"] for b in dm.test_dataloader()[1]]
    assert all(torch.equal(a, b) for a, b in zip(first, second))


# ---------------------------------------------------------------------------------------------
# qmap data check


def test_check_reports_each_problem_by_name(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (dataset / "target" / "a0002.png").unlink()  # missing partner
    write_image(dataset / "target" / "a0003.png", np.zeros((10, 12, 3), np.uint8))  # size mismatch
    (dataset / "input" / "a0004.png").write_bytes(b"not an image")  # unreadable
    report = check_dataset(str(dataset), split="s")
    assert not report.ok
    assert report.missing_target == ["a0002"]
    assert report.size_mismatches == [("a0003", (50, 40), (12, 10))]
    assert [Path(path).name for path, _ in report.unreadable] == ["a0004.png"]
    assert report.splits[0].missing == {"train": ["a0002"]}
    text = format_report(report)
    for needle in ("a0002", "SIZE MISMATCH a0003", "a0004.png", "PROBLEMS"):
        assert needle in text
    assert main_check([str(dataset), "--split", "s"]) == 1
    assert "a0004.png" in capsys.readouterr().out


def test_check_clean_dataset(dataset: Path) -> None:
    report = check_dataset(str(dataset))
    assert report.ok, format_report(report)
    assert report.target_dir == dataset / "target"
    assert report.long_side["input"] == {"min": 50, "median": 50, "max": 700}
    (split,) = [s for s in report.splits if s.name == "s"]
    assert split.counts == {"train": 4, "test": 2}
    assert set(split.list_files) == {str(dataset / "splits" / "s" / f"{p}.txt") for p in ("train", "test")}
    assert all(len(digest) == 64 for digest in split.list_files.values())
    assert main_check([str(dataset), "--split", "s", "--deep"]) == 0
