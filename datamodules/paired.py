"""Paired data: an input folder and a target folder matched by image id.

Layout: ``root/input/`` and ``root/target/`` (FiveK: ``root/expertC/`` is accepted as target).
Splits come from built-in FiveK id ranges (``upe``), from list files
``root/splits/<split>/{train,test}.txt`` (``val.txt`` optional), or from a folder path given
as ``split``. Training samples are aligned random crops; evaluation samples are whole images
prepared for each protocol (``d``: long side 512, ``f``: full resolution).
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # transforms imports albumentations

from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import lightning as L  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.utilities import rank_zero_info  # noqa: E402
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler  # noqa: E402

from datamodules.io import (  # noqa: E402
    BUILTIN_SPLITS,
    SplitSpec,
    find_target_dir,
    match_pairs,
    read_image,
    resolve_split,
)
from datamodules.transforms import (  # noqa: E402
    PROTOCOLS,
    SeededTransform,
    apply_protocol,
    paired_train_transform,
    resize_long_side,
    to_tensor,
)

__all__ = [
    "BUILTIN_SPLITS",
    "ImageStore",
    "PairedDataModule",
    "PairedEvalDataset",
    "PairedTrainDataset",
    "check_positive",
    "make_loader",
]

Pair = tuple[str, Path, Path]

# Split parts each Lightning stage cannot run without (validation may be empty: it is skipped).
_REQUIRED_PARTS: dict[str, tuple[str, ...]] = {"fit": ("train",), "test": ("test",), "predict": ("test",)}


class ImageStore:
    """Decodes input/target pairs, optionally keeping them in memory.

    Args:
        cache: Keep decoded images (demo sets are tiny; FiveK at full resolution is not).
        long_side: Downscale on load to this long side (area interpolation, never enlarging);
            None keeps the files' resolution. The resized image is what gets cached.
    """

    def __init__(self, cache: bool = False, long_side: int | None = None) -> None:
        if long_side is not None and long_side < 1:
            raise ValueError(f"long_side must be positive or None, got {long_side}")
        self.cache = cache
        self.long_side = long_side
        self._images: dict[Path, np.ndarray] = {}

    def _load(self, path: Path) -> np.ndarray:
        image = read_image(path)
        return image if self.long_side is None else resize_long_side(image, self.long_side)

    def image(self, path: Path) -> np.ndarray:
        """Decoded image, from memory when cached."""
        if not self.cache:
            return self._load(path)
        if path not in self._images:
            self._images[path] = self._load(path)
        return self._images[path]

    def pair(self, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        """Input and target of one pair.

        Raises:
            ValueError: The two images differ in size (both files are named).
        """
        key, input_path, target_path = pair
        source, target = self.image(input_path), self.image(target_path)
        if source.shape != target.shape:
            raise ValueError(
                f"{key}: input {input_path} is {source.shape[1]}x{source.shape[0]} but target "
                f"{target_path} is {target.shape[1]}x{target.shape[0]}"
            )
        return source, target


class PairedTrainDataset(Dataset):
    """Aligned random crops of training pairs.

    Args:
        pairs: ``(id, input, target)`` triples.
        crop_size: Side of the square crops.
        store: Image loader (shared cache).
        flips: Random horizontal and vertical flips.
    """

    def __init__(
        self,
        pairs: list[Pair],
        crop_size: int,
        store: ImageStore,
        flips: bool = True,
    ) -> None:
        if not pairs:
            raise ValueError("no training pairs")
        self.pairs = pairs
        self.store = store
        self.transform = SeededTransform(paired_train_transform(crop_size, flips=flips))

    @property
    def keys(self) -> list[str]:
        """Ids of the training images (each may be drawn several times per epoch)."""
        return [pair[0] for pair in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        pair = self.pairs[index]
        source, target = self.store.pair(pair)
        out = self.transform(image=source, target=target)
        return {"input": to_tensor(out["image"]), "target": to_tensor(out["target"]), "key": pair[0]}


class PairedEvalDataset(Dataset):
    """Whole evaluation pairs prepared for one protocol.

    Args:
        pairs: ``(id, input, target)`` triples.
        protocol: ``d``, ``f`` or ``100`` (see :data:`datamodules.transforms.PROTOCOLS`).
        store: Image loader (shared cache).
    """

    def __init__(self, pairs: list[Pair], protocol: str, store: ImageStore) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
        self.pairs = pairs
        self.protocol = protocol
        self.store = store

    @property
    def keys(self) -> list[str]:
        """Image ids in loading order (the Evaluator picks its sample ids from these)."""
        return [pair[0] for pair in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        pair = self.pairs[index]
        source, target = self.store.pair(pair)
        return {
            "input": to_tensor(apply_protocol(source, self.protocol)),
            "target": to_tensor(apply_protocol(target, self.protocol)),
            "key": pair[0],
            "protocol": self.protocol,
        }


class PairedDataModule(L.LightningDataModule):
    """Paired input/target images matched by id, split by id ranges or list files.

    Args:
        root: Dataset root holding ``input/`` and ``target/`` (or ``expertC/``).
        dataset: Dataset label written into result rows (``fivek_upe``, ``demo``).
        split: Built-in split (``upe``), a split folder name under ``root/splits``, or a path to
            a folder holding ``train.txt`` and ``test.txt``.
        crop_size: Side of the square training crops.
        batch_size: Training batch size.
        eval_batch_size: Validation/test/predict batch size; 1 because full-resolution images
            differ in size.
        num_workers: DataLoader workers.
        protocols: Test protocols; ``test_dataloader`` returns one loader per protocol.
        train_samples_per_epoch: Random crops per epoch, cycling over the training images.
            None: one crop per training image.
        val_count: Carve this many validation ids from the end of the sorted training ids
            (never from test). 0: no validation unless the split has ``val.txt``.
        cache_images: Keep decoded images in memory.
        target_dir: Target folder, relative to ``root`` or absolute; overrides the search.
    """

    def __init__(
        self,
        root: str,
        dataset: str = "fivek_upe",
        split: str = "upe",
        crop_size: int = 256,
        batch_size: int = 8,
        eval_batch_size: int = 1,
        num_workers: int = 0,
        protocols: tuple[str, ...] = ("d", "f"),
        train_samples_per_epoch: int | None = None,
        val_count: int = 0,
        cache_images: bool = False,
        target_dir: str | None = None,
    ) -> None:
        super().__init__()
        check_positive(crop_size=crop_size, batch_size=batch_size, eval_batch_size=eval_batch_size,
                       train_samples_per_epoch=train_samples_per_epoch)
        check_not_negative(num_workers=num_workers, val_count=val_count)
        check_protocols(protocols)
        self.save_hyperparameters()
        self.root = Path(root)
        self.dataset = dataset
        # A folder path as split is labelled by its folder name in rows and run names.
        self.split = split if split in BUILTIN_SPLITS or os.sep not in split else Path(split).name
        self.protocols = tuple(protocols)
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.train_samples_per_epoch = train_samples_per_epoch
        self.val_count = val_count
        self._split_arg = split
        self._target_dir_arg = target_dir
        self._store = ImageStore(cache=cache_images)
        self._parts: dict[str, list[Pair]] | None = None
        self._spec: SplitSpec | None = None
        self._target_dir: Path | None = None

    # ----------------------------------------------------------------------------------------
    # Resolving the folders and the split (cheap: listings only, no decoding)

    def _resolve(self) -> dict[str, list[Pair]]:
        if self._parts is not None:
            return self._parts
        target_dir = find_target_dir(self.root, self._target_dir_arg)
        match = match_pairs(self.root / "input", target_dir)
        problems = match.problems()
        if problems:
            raise ValueError(
                f"{self.root}: unmatched images between {self.root / 'input'} and {target_dir}: "
                + "; ".join(problems)
                + " (run `qmap data check` for the full list)"
            )
        spec = resolve_split(self.root, self._split_arg, match.ids)
        ids = _with_validation(spec, self.val_count)
        by_id = {pair[0]: pair for pair in match.pairs}
        self._parts = {part: [by_id[k] for k in keys] for part, keys in ids.items()}
        self._spec = spec
        self._target_dir = target_dir
        return self._parts

    def split_ids(self, part: str) -> list[str]:
        """Sorted ids of ``train``, ``val`` or ``test`` (empty when the part is absent)."""
        return [pair[0] for pair in self._resolve().get(part, [])]

    def describe(self) -> dict[str, object]:
        """Run metadata: where the data is, which split and protocols, how many images."""
        parts = self._resolve()
        assert self._spec is not None and self._target_dir is not None
        return {
            "root": str(self.root),
            "dataset": self.dataset,
            "split": self.split,
            "split_source": self._spec.source,
            "list_files": dict(self._spec.list_files),
            "target_dir": str(self._target_dir),
            "protocols": list(self.protocols),
            "counts": {part: len(parts.get(part, [])) for part in ("train", "val", "test")},
            "crop_size": self.crop_size,
            "train_samples_per_epoch": self.train_samples_per_epoch,
        }

    # ----------------------------------------------------------------------------------------
    # Lightning hooks

    def setup(self, stage: str | None = None) -> None:
        """Resolves the split and checks the parts the stage needs are not empty."""
        parts = self._resolve()
        for part in _REQUIRED_PARTS.get(stage or "", ()):
            if not parts.get(part):
                raise ValueError(f"{self.root}: split {self.split!r} has no {part} images")

    def train_dataloader(self) -> DataLoader:
        """Aligned random crops, reshuffled every epoch."""
        dataset = PairedTrainDataset(
            self._resolve()["train"],
            self.crop_size,
            self._store,
        )
        # Without replacement, a sampler longer than the dataset chains fresh permutations: an
        # epoch shorter than the image list still draws from every image over the run.
        sampler = RandomSampler(dataset, num_samples=self.train_samples_per_epoch or len(dataset))
        return make_loader(dataset, self.batch_size, self.num_workers, sampler=sampler)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """Protocol ``d`` over the validation ids; an empty list (no validation) when there are none."""
        pairs = self._resolve().get("val", [])
        if not pairs:
            # Lightning skips a val loop without loaders but warns "Total length of `list` across
            # ranks is zero", which reads like a bug; say plainly what happens instead.
            warnings.filterwarnings("ignore", message="Total length of `list` across ranks is zero")
            rank_zero_info(f"{self.dataset}: no validation ids (val_count=0, no val.txt): skipped")
            return []
        return self._loader(PairedEvalDataset(pairs, "d", self._store), self.eval_batch_size)

    def test_dataloader(self) -> list[DataLoader]:
        """One loader per protocol, in ``protocols`` order; each sample carries its protocol."""
        pairs = self._resolve()["test"]
        return [
            self._loader(PairedEvalDataset(pairs, protocol, self._store), self.eval_batch_size)
            for protocol in self.protocols
        ]

    def predict_dataloader(self) -> DataLoader:
        """The test images at full resolution (protocol ``f``)."""
        dataset = PairedEvalDataset(self._resolve()["test"], "f", self._store)
        return self._loader(dataset, self.eval_batch_size)

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool = False) -> DataLoader:
        return make_loader(dataset, batch_size, self.num_workers, shuffle=shuffle)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    shuffle: bool = False,
    sampler: Sampler | None = None,
) -> DataLoader:
    """The DataLoader every data module builds (workers kept alive between epochs).

    Args:
        dataset: The dataset.
        batch_size: Batch size.
        num_workers: Worker processes (0: load in the main process).
        shuffle: Reshuffle every epoch (only without ``sampler``).
        sampler: Explicit sampler. Under DDP Lightning wraps it in a distributed sampler; without
            one it inserts a DistributedSampler itself.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


def check_positive(**values: int | None) -> None:
    """Raises ValueError naming the first argument that is below 1 (None means "not set": allowed)."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise ValueError(f"{name} must be positive, got {value}")


def check_not_negative(**values: int) -> None:
    """Raises ValueError naming the first argument that is below 0 (worker counts, counts to carve)."""
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")


def check_protocols(protocols: Sequence[str]) -> None:
    """Raises ValueError unless ``protocols`` is a non-empty subset of the known protocols."""
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise ValueError(f"protocols must be a non-empty subset of {list(PROTOCOLS)}, got {list(protocols)}")


def _with_validation(spec: SplitSpec, val_count: int) -> dict[str, list[str]]:
    """Split ids with validation: the split's ``val.txt``, or the last ``val_count`` training ids.

    Raises:
        ValueError: Both ``val.txt`` and ``val_count`` given, or ``val_count`` leaves no training.
    """
    ids = {part: sorted(keys) for part, keys in spec.ids.items()}
    if val_count == 0:
        return ids
    if "val" in ids:
        raise ValueError(
            f"split {spec.name!r} has its own val.txt; set val_count=0 to use it, or remove it"
        )
    train = ids.get("train", [])
    if val_count >= len(train):
        raise ValueError(f"val_count={val_count} leaves no training images (split has {len(train)})")
    # The end of the sorted ids, so the choice never depends on listing order or a random seed.
    ids["train"], ids["val"] = train[:-val_count], train[-val_count:]
    return ids
