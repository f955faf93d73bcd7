"""Unpaired data: a source domain and a target domain drawn independently, plus an optional
paired test split.

Training batches are ``{"input", "target", "key", "target_key"}`` where ``target`` is an
**unaligned target-domain image**: a random crop of some image of the target domain, unrelated
to ``input`` (``key`` names the source image, ``target_key`` the target image). Methods trained
on this data (WESPE, DPE's unpaired 2-way GAN, CycleGAN-style baselines) learn a mapping between
distributions, never from pixel correspondence.

Layouts (``layout``):

``folders`` (WESPE-style: two folders of arbitrary images; the demo uses it)::

    root/<source_dir>/*.png          default train_source/: source domain (poor quality)
    root/<target_dir>/*.png          default train_target/: target domain (high quality)
    root/<test_dir>/input/*.png      default test/: optional paired test split, matched by id
    root/<test_dir>/target/*.png     (target/ or expertC/)

  ``split`` is only a label here. ``test_dir=None`` means there is no paired test split.

``lists`` (the FiveK DPE split: one paired FiveK root and DPE's list files)::

    root/input/aNNNN.*   root/target/aNNNN.* (or expertC/)
    root/splits/<split>/train_input.txt   2250 ids: training inputs (their targets are never used)
    root/splits/<split>/train_label.txt   2250 *other* ids: their expert-C targets are the target domain
    root/splits/<split>/test.txt          498 ids: the paired test split

  The list files come from DPE via the 3D-LUT and AdaInt releases; we do not redistribute them.
  ``qmap data check ROOT --split dpe`` verifies counts (2250/2250/498), disjointness and partners
  and prints each file's SHA-256.

Independence of the two training streams. Each epoch, :class:`IndependentPairSampler` draws two
seeds from torch's global generator (so ``seed_everything`` makes runs reproducible) and seeds
two separate ``torch.Generator``s with them: one orders the source images, the other the target
images, each as successive random permutations of its own domain. Nothing couples the two
orders: which target image meets which source image changes from epoch to epoch, and the domains
may have different sizes. The random crops (and flips) of the two sides come from two separate
albumentations pipelines seeded on distinct streams, so even the crop positions are independent.

Resolution. DPE's Lightroom export had a long side of 512, so training images (both domains) are
downscaled on load to ``resize_long_side`` (area interpolation, never enlarged). Test images are
loaded as they are: protocol ``d`` already is "long side 512, area", DPE's evaluation
resolution, and protocol ``f`` keeps its meaning (the files' full resolution).

Without a paired test split only preference studies (human or no-reference) apply:
``test_dataloader`` returns no loader and ``describe()`` says so for the report caption.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # transforms imports albumentations

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Literal  # noqa: E402

import lightning as L  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.utilities import rank_zero_info  # noqa: E402
from torch.utils.data import DataLoader, Dataset, Sampler  # noqa: E402

from datamodules.io import (  # noqa: E402
    PairMatch,
    SplitSpec,
    find_target_dir,
    list_images,
    load_split,
    match_pairs,
    split_problems,
)
from datamodules.paired import (  # noqa: E402
    ImageStore,
    PairedEvalDataset,
    check_not_negative,
    check_positive,
    check_protocols,
    make_loader,
)
from datamodules.transforms import SeededTransform, paired_train_transform, to_tensor  # noqa: E402

PadMode = Literal["reflect", "canvas"]

__all__ = ["NO_TEST_NOTE", "IndependentPairSampler", "UnpairedDataModule", "UnpairedTrainDataset"]

NO_TEST_NOTE = "no paired test split: only preference studies apply"

Image = tuple[str, Path]
Pair = tuple[str, Path, Path]


def cycled_permutation(size: int, count: int, generator: torch.Generator) -> list[int]:
    """``count`` indices from successive random permutations of ``range(size)``.

    Every index appears once per ``size`` draws, so short epochs still cover the whole domain
    over time and long ones never favour an image.
    """
    if size < 1:
        raise ValueError(f"cannot draw from an empty domain (size {size})")
    order: list[int] = []
    while len(order) < count:
        order += torch.randperm(size, generator=generator).tolist()
    return order[:count]


class IndependentPairSampler(Sampler[tuple[int, int]]):
    """Yields ``(source index, target index)`` from two independent shuffles (see module docstring).

    Args:
        num_source: Images in the source domain.
        num_target: Images in the target domain.
        num_samples: Pairs per epoch.
    """

    def __init__(self, num_source: int, num_target: int, num_samples: int) -> None:
        check_positive(num_source=num_source, num_target=num_target, num_samples=num_samples)
        self.num_source = num_source
        self.num_target = num_target
        self.num_samples = num_samples

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        # Two seeds drawn from the global generator: reproducible under seed_everything, new each
        # epoch, and the two domains never share a generator.
        source_seed, target_seed = torch.randint(0, 2**62, (2,)).tolist()
        source = cycled_permutation(self.num_source, self.num_samples, torch.Generator().manual_seed(source_seed))
        target = cycled_permutation(self.num_target, self.num_samples, torch.Generator().manual_seed(target_seed))
        return iter(zip(source, target, strict=True))


class UnpairedTrainDataset(Dataset):
    """Independent random crops of a source image and a target-domain image.

    Indexed by ``(source index, target index)`` pairs from :class:`IndependentPairSampler`.

    Args:
        sources: ``(id, path)`` of the source-domain images.
        targets: ``(id, path)`` of the target-domain images.
        crop_size: Side of the square crops (reflect-padded when an image is smaller).
        store: Image loader (resizing and cache).
        flips: Random horizontal and vertical flips, drawn separately per side.
    """

    def __init__(self, sources: list[Image], targets: list[Image], crop_size: int, store: ImageStore,
                 flips: bool = True, pad_mode: PadMode = "reflect") -> None:
        if not sources or not targets:
            raise ValueError(f"unpaired training needs images on both sides (source {len(sources)}, "
                             f"target {len(targets)})")
        self.sources = sources
        self.targets = targets
        self.store = store
        # Distinct streams: the two crops must not move together.
        self.source_transform = SeededTransform(paired_train_transform(crop_size, flips=flips), stream=1)
        self.target_transform = SeededTransform(paired_train_transform(crop_size, flips=flips), stream=2)
        self.crop_size, self.flips, self.pad_mode = crop_size, flips, pad_mode

    @property
    def keys(self) -> list[str]:
        """Ids of the source images."""
        return [key for key, _ in self.sources]

    def __len__(self) -> int:
        return max(len(self.sources), len(self.targets))

    def __getitem__(self, index: tuple[int, int]) -> dict[str, torch.Tensor | str]:
        source_index, target_index = index
        source_key, source_path = self.sources[source_index]
        target_key, target_path = self.targets[target_index]
        if self.pad_mode == "canvas":
            source, source_hw = canvas_sample(self.store.image(source_path), self.crop_size, self.flips)
            target, target_hw = canvas_sample(self.store.image(target_path), self.crop_size, self.flips)
            return {"input": source, "target": target, "input_hw": source_hw, "target_hw": target_hw,
                    "key": source_key, "target_key": target_key}
        source = self.source_transform(image=self.store.image(source_path))["image"]
        target = self.target_transform(image=self.store.image(target_path))["image"]
        return {"input": to_tensor(source), "target": to_tensor(target), "key": source_key,
                "target_key": target_key}


def canvas_sample(image: np.ndarray, size: int, flips: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole photo (randomly cropped only where it exceeds ``size``), randomly flipped, and
    zero-padded at the bottom and right to ``size``², with its valid ``(h, w)``.

    This is how DPE batches whole FiveK photos of different shapes: the method reads the valid
    sizes (``input_hw``/``target_hw``) and pads each photo by its own rule, so this padding never
    reaches a loss. Draws come from torch's generator (seeded per worker by Lightning).
    """
    h, w = image.shape[:2]
    top = int(torch.randint(0, h - size + 1, ())) if h > size else 0
    left = int(torch.randint(0, w - size + 1, ())) if w > size else 0
    tensor = to_tensor(np.ascontiguousarray(image[top : top + size, left : left + size]))
    if flips and bool(torch.rand(()) < 0.5):
        tensor = tensor.flip(-1)
    if flips and bool(torch.rand(()) < 0.5):
        tensor = tensor.flip(-2)
    valid = torch.tensor(tensor.shape[-2:])
    canvas = torch.zeros(3, size, size, dtype=tensor.dtype)
    canvas[:, : tensor.shape[-2], : tensor.shape[-1]] = tensor
    return canvas, valid


class UnpairedDataModule(L.LightningDataModule):
    """Unpaired training (independent source and target domains), optional paired test split.

    Training batches hold unaligned targets (see the module docstring for both layouts and how
    the two streams are kept independent); test batches are paired, one loader per protocol.

    Args:
        root: Dataset root (see the module docstring).
        dataset: Dataset label written into result rows (``fivek_dpe``, ``demo_unpaired``).
        layout: ``folders`` (two folders + optional paired test folder) or ``lists`` (one paired
            root with ``splits/<split>/{train_input,train_label,test}.txt``).
        split: ``lists``: split folder name under ``root/splits`` (or a folder path).
            ``folders``: a label for result rows only.
        source_dir: ``folders``: source-domain folder, relative to ``root``.
        target_dir: ``folders``: target-domain folder, relative to ``root``.
        test_dir: ``folders``: paired test folder (``input/`` + ``target/``) relative to
            ``root``; None: no paired test split. A given folder that is missing is an error.
        crop_size: Side of the random training crops (each side cropped independently).
        batch_size: Training batch size (DPE: 3).
        eval_batch_size: Test batch size; 1 because full-resolution images differ in size.
        num_workers: DataLoader workers.
        protocols: Test protocols; ``test_dataloader`` returns one loader per protocol.
        train_samples_per_epoch: Pairs per epoch; None: the larger domain's size.
        resize_long_side: Downscale training images on load to this long side (DPE: 512);
            None keeps their resolution. Test images are never resized on load.
        flips: Random flips of each training crop.
        cache_images: Keep decoded images in memory.
        pad_mode: how a training image smaller than ``crop_size`` is filled: ``reflect``
            (reflect-padded crops, the default) or ``canvas`` (whole photos zero-padded at the
            bottom/right, with their valid sizes in the batch as ``input_hw``/``target_hw`` — what
            DPE needs to keep padding out of its losses; ``fivek_dpe.yaml`` uses it).
    """

    def __init__(
        self,
        root: str,
        dataset: str = "fivek_dpe",
        layout: Literal["folders", "lists"] = "lists",
        split: str = "dpe",
        source_dir: str = "train_source",
        target_dir: str = "train_target",
        test_dir: str | None = "test",
        crop_size: int = 256,
        batch_size: int = 3,
        eval_batch_size: int = 1,
        num_workers: int = 0,
        protocols: tuple[str, ...] = ("d", "f"),
        train_samples_per_epoch: int | None = None,
        resize_long_side: int | None = 512,
        flips: bool = True,
        cache_images: bool = False,
        pad_mode: PadMode = "reflect",
    ) -> None:
        super().__init__()
        check_positive(crop_size=crop_size, batch_size=batch_size, eval_batch_size=eval_batch_size,
                       train_samples_per_epoch=train_samples_per_epoch)
        check_not_negative(num_workers=num_workers)
        if layout not in ("folders", "lists"):
            raise ValueError(f"layout must be 'folders' or 'lists', got {layout!r}")
        check_protocols(protocols)
        self.save_hyperparameters()
        self.root = Path(root)
        self.dataset = dataset
        self.layout = layout
        # A folder path as split is labelled by its folder name, as in PairedDataModule.
        self.split = split if os.sep not in split else Path(split).name
        self.protocols = tuple(protocols)
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.train_samples_per_epoch = train_samples_per_epoch
        self.resize_long_side = resize_long_side
        self.flips = flips
        self.pad_mode = pad_mode
        self._split_arg = split
        self._dirs = {"source": source_dir, "target": target_dir, "test": test_dir}
        self._train_store = ImageStore(cache=cache_images, long_side=resize_long_side)
        self._test_store = ImageStore(cache=cache_images)
        self._resolved: dict[str, list] | None = None
        self._spec: SplitSpec | None = None

    # ----------------------------------------------------------------------------------------
    # Resolving the folders and lists (listings only, no decoding)

    def _resolve(self) -> dict[str, list]:
        if self._resolved is None:
            self._resolved = self._resolve_lists() if self.layout == "lists" else self._resolve_folders()
        return self._resolved

    def _resolve_folders(self) -> dict[str, list]:
        resolved: dict[str, list] = {}
        for side in ("source", "target"):
            folder = self.root / str(self._dirs[side])
            resolved[side] = list(list_images(folder).items())
            if not resolved[side]:
                raise ValueError(f"{folder}: no {side}-domain images")
        resolved["test"] = []
        if self._dirs["test"] is not None:
            test_root = self.root / str(self._dirs["test"])
            if not test_root.is_dir():
                raise FileNotFoundError(f"paired test folder does not exist: {test_root} "
                                        "(set test_dir: null when there is no paired test split)")
            resolved["test"] = _complete_pairs(match_pairs(test_root / "input", find_target_dir(test_root)),
                                               test_root)
        return resolved

    def _resolve_lists(self) -> dict[str, list]:
        target_dir = find_target_dir(self.root)
        match = match_pairs(self.root / "input", target_dir)
        spec = load_split(self.root, self._split_arg, match.ids)
        if set(spec.ids) != {"train_input", "train_label", "test"}:
            raise ValueError(f"split {self._split_arg!r} ({spec.source}) is not an unpaired split: it needs "
                             "train_input.txt, train_label.txt and test.txt")
        problems = split_problems(spec, match.ids)
        if problems:
            raise ValueError("; ".join(problems) + " (run `qmap data check ROOT --split NAME` for details)")
        by_id = {key: (input_path, target_path) for key, input_path, target_path in match.pairs}
        self._spec = spec
        return {
            # DPE's unpaired recipe: inputs of one half, expert targets of the *other* half.
            "source": [(key, by_id[key][0]) for key in spec.ids["train_input"]],
            "target": [(key, by_id[key][1]) for key in spec.ids["train_label"]],
            "test": [(key, *by_id[key]) for key in spec.ids["test"]],
        }

    @property
    def has_test_split(self) -> bool:
        """Whether a paired test split exists (full-reference scoring possible)."""
        return bool(self._resolve()["test"])

    def describe(self) -> dict[str, object]:
        """Run metadata: folders or lists, counts, resizing, and how the run can be evaluated."""
        resolved = self._resolve()
        info: dict[str, object] = {
            "root": str(self.root),
            "dataset": self.dataset,
            "split": self.split,
            "layout": self.layout,
            "regime": "unpaired: training targets are unaligned target-domain images",
            "protocols": list(self.protocols) if resolved["test"] else [],
            "counts": {"train_source": len(resolved["source"]), "train_target": len(resolved["target"]),
                       "test": len(resolved["test"])},
            "crop_size": self.crop_size,
            "pad_mode": self.pad_mode,
            "resize_long_side": self.resize_long_side,
            "train_samples_per_epoch": self.train_samples_per_epoch,
            "evaluation": "paired test split" if resolved["test"] else NO_TEST_NOTE,
        }
        if self.layout == "folders":
            info["folders"] = {side: self._dirs[side] for side in ("source", "target", "test")}
        elif self._spec is not None:
            info["split_source"] = self._spec.source
            info["list_files"] = dict(self._spec.list_files)
        return info

    # ----------------------------------------------------------------------------------------
    # Lightning hooks

    def setup(self, stage: str | None = None) -> None:
        """Resolves the folders or lists (errors name the files and ids)."""
        self._resolve()

    def train_dataloader(self) -> DataLoader:
        """Independent random crops of the two domains (see the module docstring)."""
        resolved = self._resolve()
        dataset = UnpairedTrainDataset(resolved["source"], resolved["target"], self.crop_size, self._train_store,
                                       flips=self.flips, pad_mode=self.pad_mode)
        sampler = IndependentPairSampler(len(dataset.sources), len(dataset.targets),
                                         self.train_samples_per_epoch or len(dataset))
        return make_loader(dataset, self.batch_size, self.num_workers, sampler=sampler)

    def test_dataloader(self) -> list[DataLoader]:
        """One loader per protocol over the paired test split; none without one."""
        pairs = self._resolve()["test"]
        if not pairs:
            # Lightning then warns "Total length of `list` across ranks is zero", which reads
            # like a bug; say plainly what happens instead.
            warnings.filterwarnings("ignore", message="Total length of `list` across ranks is zero")
            rank_zero_info(f"{self.dataset}: {NO_TEST_NOTE}")
            return []
        return [
            make_loader(PairedEvalDataset(pairs, protocol, self._test_store), self.eval_batch_size, self.num_workers)
            for protocol in self.protocols
        ]

    def predict_dataloader(self) -> list[DataLoader]:
        """The paired test inputs at full resolution (protocol ``f``); none without a test split."""
        pairs = self._resolve()["test"]
        if not pairs:
            return []
        return [make_loader(PairedEvalDataset(pairs, "f", self._test_store), self.eval_batch_size, self.num_workers)]


def _complete_pairs(match: PairMatch, folder: Path) -> list[Pair]:
    """The pairs of a paired test folder; unmatched files are an error naming the ids."""
    if match.problems():
        raise ValueError(f"{folder}: unmatched test images: " + "; ".join(match.problems()))
    if not match.pairs:
        raise ValueError(f"{folder}: the paired test folder holds no input/target pairs")
    return match.pairs
