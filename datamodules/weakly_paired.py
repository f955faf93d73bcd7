"""Weakly-paired data: approximately aligned patch pairs, as in DPED (phone -> DSLR).

Layouts (``layout``):

``dped`` (DPED's own, ``aiff22/DPED:load_dataset.py``)::

    root/<phone>/training_data/<phone>/N.jpg      root/<phone>/training_data/canon/N.jpg
    root/<phone>/test_data/patches/<phone>/N.jpg  root/<phone>/test_data/patches/canon/N.jpg

  Pairs are matched by the identical integer file name ``N`` (``.jpg`` or ``.png``; ``7.jpg``
  pairs with ``7.png`` and with ``007.jpg``); the key of a pair is ``str(N)``, unique within a
  part. ``qmap data align`` writes this layout from raw captures. When a part folder holds an
  ``align.json`` (written by the aligner) that is not ``complete``, loading stops with an error:
  the alignment was interrupted.

``folders`` (any folder of aligned patch pairs)::

    root/train/input/<id>.png   root/train/target/<id>.png   (target/ or expertC/)
    root/test/input/<id>.png    root/test/target/<id>.png

  matched by image id (:func:`datamodules.io.image_id`); ``phone`` is unused.

Training samples are the training patches, randomly cropped to ``patch_size`` (the whole patch
when equal) with the geometric-only paired augmentation of ``paired.py``. Test samples are the
test patches as they are, scored under protocol ``100`` (which requires 100x100 patches).

Sampling. DPED's code keeps 30 000 random training patches in memory and redraws them every
1000 iterations, then draws each batch uniformly (with replacement) from that pool. That is a
memory device: averaged over the redraws, every patch has the same probability of appearing in
any batch. We stream from *all* patches instead (patches are small files, read on demand or
cached), one reshuffled pass after another; every draw is again uniform over all patches, so
the sampling distribution is the same, only without repeats inside a pass.
``train_samples_per_epoch`` sets an epoch's length in samples (drawn from successive random
permutations of all patches), so epochs can be shorter than a pass over 160 000 patches.

There is no validation split: DPED validated on its test patches, which this benchmark never
uses for anything but the final score.
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # transforms imports albumentations

from pathlib import Path  # noqa: E402
from typing import Literal  # noqa: E402

import lightning as L  # noqa: E402
from torch.utils.data import DataLoader, RandomSampler  # noqa: E402

from datamodules.align import DSLR_FOLDER, PART_DIRS, read_align_status  # noqa: E402
from datamodules.io import PairMatch, abbreviate, find_target_dir, list_images, match_pairs  # noqa: E402
from datamodules.paired import (  # noqa: E402
    ImageStore,
    PairedEvalDataset,
    PairedTrainDataset,
    check_not_negative,
    check_positive,
    check_protocols,
    make_loader,
)

__all__ = ["WeaklyPairedDataModule", "match_dped_folders"]

Pair = tuple[str, Path, Path]
_PARTS = ("train", "test")
_STAGE_PARTS: dict[str, tuple[str, ...]] = {"fit": ("train",), "test": ("test",), "predict": ("test",)}


def _integer_keys(files: dict[str, Path], folder: Path) -> dict[int, Path]:
    """Maps integer stems to files; raises on non-integer stems and on two files for one integer."""
    numbered: dict[int, Path] = {}
    not_numbers = sorted(path.name for stem, path in files.items() if not stem.isdigit())
    if not_numbers:
        raise ValueError(f"{folder}: DPED patch files are named by integers (N.jpg); found "
                         f"{len(not_numbers)} other name(s): {abbreviate(not_numbers)}")
    for stem, path in files.items():
        number = int(stem)
        if number in numbered:
            raise ValueError(f"{folder}: {numbered[number].name} and {path.name} are both patch {number}")
        numbered[number] = path
    return numbered


def match_dped_folders(phone_dir: str | os.PathLike[str], dslr_dir: str | os.PathLike[str]) -> PairMatch:
    """Matches DPED patch files by integer file name.

    Args:
        phone_dir: Folder of phone patches (``.../<phone>``).
        dslr_dir: Folder of DSLR patches (``.../canon``).

    Returns:
        Pairs ``(str(N), phone, dslr)`` sorted by N, and the numbers missing on either side
        (``missing_target``: phone patches without a DSLR patch).

    Raises:
        FileNotFoundError: A folder is missing.
        ValueError: A file name is not an integer, or two files name the same integer.
    """
    phone_dir, dslr_dir = Path(phone_dir), Path(dslr_dir)
    phone = _integer_keys(list_images(phone_dir), phone_dir)
    dslr = _integer_keys(list_images(dslr_dir), dslr_dir)
    return PairMatch(
        pairs=[(str(n), phone[n], dslr[n]) for n in sorted(phone) if n in dslr],
        missing_target=[str(n) for n in sorted(set(phone) - set(dslr))],
        missing_input=[str(n) for n in sorted(set(dslr) - set(phone))],
    )


class WeaklyPairedDataModule(L.LightningDataModule):
    """Approximately aligned patch pairs (DPED layout or two folders), tested under protocol ``100``.

    Batches are ``{"input", "target", "key"}`` (test batches add ``"protocol"``); ``target`` is
    the DSLR patch registered to the phone patch by a global warp, so it is aligned up to the
    residual the aligner allowed (2 px by default), not pixel-exactly.

    Args:
        root: DPED root (holding ``<phone>/``) or, for ``layout="folders"``, the folder holding
            ``train/`` and ``test/``.
        phone: Phone name (``iphone``, ``blackberry``, ``sony``, or the name given to
            ``qmap data align``); names the subfolders in the ``dped`` layout.
        dataset: Dataset label written into result rows (``dped_iphone``, ``demo_weak``).
        layout: ``dped`` or ``folders`` (see the module docstring).
        patch_size: Side of the random training crops taken from the training patches; equal to
            the patch side (100 for DPED) to use whole patches.
        batch_size: Training batch size (DPED: 50).
        eval_batch_size: Test batch size; patches share one size, so batching is safe.
        num_workers: DataLoader workers.
        train_samples_per_epoch: Samples per epoch, drawn from successive random permutations of
            all training patches; None: one pass over them.
        flips: Random horizontal and vertical flips of training pairs (DPED's code has none).
        cache_images: Keep decoded patches in memory (the demo's few hundred; not 160 000).
        protocols: Test protocols; ``100`` scores the patches as they are.
    """

    def __init__(
        self,
        root: str,
        phone: str = "iphone",
        dataset: str = "dped_iphone",
        layout: Literal["dped", "folders"] = "dped",
        patch_size: int = 100,
        batch_size: int = 50,
        eval_batch_size: int = 50,
        num_workers: int = 0,
        train_samples_per_epoch: int | None = None,
        flips: bool = True,
        cache_images: bool = False,
        protocols: tuple[str, ...] = ("100",),
    ) -> None:
        super().__init__()
        check_positive(patch_size=patch_size, batch_size=batch_size, eval_batch_size=eval_batch_size,
                       train_samples_per_epoch=train_samples_per_epoch)
        check_not_negative(num_workers=num_workers)
        if layout not in ("dped", "folders"):
            raise ValueError(f"layout must be 'dped' or 'folders', got {layout!r}")
        check_protocols(protocols)
        self.save_hyperparameters()
        self.root = Path(root)
        self.phone = phone
        self.dataset = dataset
        self.layout = layout
        self.split = layout  # the parts come from the layout itself (training_data / test_data)
        self.protocols = tuple(protocols)
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.train_samples_per_epoch = train_samples_per_epoch
        self.flips = flips
        self._store = ImageStore(cache=cache_images)
        self._parts: dict[str, list[Pair]] = {}

    # ----------------------------------------------------------------------------------------
    # Resolving the folders (listings only, no decoding)

    def part_folders(self, part: str) -> tuple[Path, Path]:
        """``(input folder, target folder)`` of ``train`` or ``test`` in the chosen layout."""
        if part not in _PARTS:
            raise ValueError(f"unknown part {part!r}; known: {', '.join(_PARTS)}")
        if self.layout == "dped":
            base = self.root.joinpath(self.phone, *PART_DIRS[part])
            return base / self.phone, base / DSLR_FOLDER
        base = self.root / part
        return base / "input", find_target_dir(base)

    def _resolve(self, part: str) -> list[Pair]:
        if part in self._parts:
            return self._parts[part]
        input_dir, target_dir = self.part_folders(part)
        if self.layout == "dped":
            status = read_align_status(input_dir.parent)
            if status not in (None, "complete"):
                raise ValueError(f"{input_dir.parent}: alignment {status} (align.json); rerun `qmap data align`")
            match = match_dped_folders(input_dir, target_dir)
        else:
            match = match_pairs(input_dir, target_dir)
        if match.problems():
            raise ValueError(f"{self.root}: unmatched {part} patches between {input_dir} (input) and "
                             f"{target_dir} (target): " + "; ".join(match.problems()))
        if not match.pairs:
            raise ValueError(f"{self.root}: no {part} patch pairs in {input_dir} and {target_dir}")
        self._parts[part] = match.pairs
        return match.pairs

    def describe(self) -> dict[str, object]:
        """Run metadata: where the data is, which layout and protocols, how many patches."""
        folders = {part: [str(folder) for folder in self.part_folders(part)] for part in _PARTS}
        return {
            "root": str(self.root),
            "dataset": self.dataset,
            "split": self.split,
            "regime": "weakly paired (globally registered patch pairs)",
            "phone": self.phone if self.layout == "dped" else None,
            "folders": folders,
            "protocols": list(self.protocols),
            "counts": {part: len(self._resolve(part)) for part in _PARTS},
            "patch_size": self.patch_size,
            "train_samples_per_epoch": self.train_samples_per_epoch,
            "sampling": "uniform over all training patches, reshuffled passes (DPED: pools of 30k redrawn every 1k iterations)",
        }

    # ----------------------------------------------------------------------------------------
    # Lightning hooks

    def setup(self, stage: str | None = None) -> None:
        """Resolves the parts the stage needs; checks training patches can hold the crops."""
        for part in _STAGE_PARTS.get(stage or "", _PARTS):
            pairs = self._resolve(part)
            if part == "train":
                height, width = self._store.image(pairs[0][1]).shape[:2]
                if self.patch_size > min(height, width):
                    raise ValueError(f"patch_size {self.patch_size} exceeds the {width}x{height} training "
                                     f"patches ({pairs[0][1]}); crops would be padded with invented pixels")

    def train_dataloader(self) -> DataLoader:
        """Random crops of the training patches, reshuffled every epoch."""
        dataset = PairedTrainDataset(self._resolve("train"), self.patch_size, self._store, flips=self.flips)
        if self.train_samples_per_epoch is None:
            return make_loader(dataset, self.batch_size, self.num_workers, shuffle=True)
        # Successive permutations of all patches (RandomSampler without replacement cycles them),
        # so a short epoch still draws from every patch, never only the first ones.
        sampler = RandomSampler(dataset, num_samples=self.train_samples_per_epoch)
        return make_loader(dataset, self.batch_size, self.num_workers, sampler=sampler)

    def test_dataloader(self) -> list[DataLoader]:
        """One loader per protocol; each sample carries its protocol."""
        pairs = self._resolve("test")
        return [
            make_loader(PairedEvalDataset(pairs, protocol, self._store), self.eval_batch_size, self.num_workers)
            for protocol in self.protocols
        ]

    def predict_dataloader(self) -> DataLoader:
        """The test patches, under the first protocol."""
        dataset = PairedEvalDataset(self._resolve("test"), self.protocols[0], self._store)
        return make_loader(dataset, self.eval_batch_size, self.num_workers)
