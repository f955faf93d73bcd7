"""Video data: pairs of frame sequences, trained on random clips and evaluated as whole videos.

Layouts (``layout``; the domain folder names follow the public loaders of the NTIRE 2020 video
quality mapping challenge, see ``datasets_protocols.md`` A.4, which marks several details of those
datasets UNCERTAIN: counts, resolutions and how track 2 was scored)::

    generic     root/<split>/<video>/input/*.png            default splits train / test
                root/<split>/<video>/target/*.png           default aligned=True
                root/<split>/<video>/motion.json            optional known motion (below)

    ntire_vqm   root/<Split>SourceDomain/NNN/%06d.png        Vid3oC track (weakly supervised):
                root/<Split>TargetDomain/NNN/%06d.png        default splits Training / Validation
                                                             (the challenge's test targets were
                                                             withheld); default aligned=False:
                                                             different cameras, weakly aligned

    intvid      root/<Split>SourceDomain{source_suffix}/NNN/*.png   IntVID track (supervised):
                root/<Split>TargetDomain/NNN/*.png           more -> less compressed; the source
                                                             folder carries a bitrate suffix;
                                                             default aligned=True (re-encodings)

Video ids (the ``key`` of batches and result rows) are the video folder names. Frames are the
image files of a video folder (:func:`datamodules.io.is_image_file`) in natural order of their
stems (``9`` before ``10``; zero-padded names sort as they read). Input and target frames are
matched by stem; a frame on one side only is an error naming the video and the stems.

Training: random clips (:class:`VideoTrainDataset`). Every (video, start) pair with room for
``clip_length`` frames spaced ``frame_step`` is one sample, so a video is drawn in proportion to
its number of start positions. One crop position and one horizontal flip serve a whole clip;
pixel-aligned pairs share the crop position, weakly aligned targets get their own (they may have
another resolution). Draws come from torch's generator, so ``seed_everything`` fixes them (and
Lightning seeds each DataLoader worker differently). An image method (``EnhancementMethod.video``
False) gets each training batch of clips as a batch of frames (:func:`clips_as_images`, in the
data module's ``on_after_batch_transfer``), so every image method trains on video frames as on
images; a video method gets the clips.

Evaluation: whole videos, streamed in order in chunks of ``eval_chunk`` frames
(:class:`VideoEvalDataset`, an IterableDataset: Lightning inserts no DistributedSampler). Under
DDP each rank takes ``videos[rank::world_size]``, and DataLoader workers split a rank's videos
again (:func:`assign_videos`), so all chunks of one video come from one worker, in order, and
every frame is yielded exactly once over all ranks. Chunks of different videos may interleave
when there are several workers: consumers keep per-video state keyed by ``key``. Frames are
scored at the files' resolution (protocol ``f``), after the optional ``long_side`` downscale.

Known motion (``motion.json``, generic layout; the demo builder writes it)::

    {"convention": "...", "frames": {"<frame stem>": [[a, b, c], [d, e, f]], ...}}

one 2x3 affine per frame mapping that frame's pixel coordinates (x right, y down, pixel centres at
integers) to a common scene plane. It must cover every frame. When ``long_side`` downscales a frame
from ``W x H`` to ``W' x H'``, the affines are rewritten for the resized frame: a resized pixel
``x'`` has its centre at ``x = (x' + 0.5) * W / W' - 0.5`` in the original frame (area
interpolation keeps pixel footprints aligned), so ``A' = A @ S`` with the homogeneous
``S = [[W/W', 0, (W/W' - 1)/2], [0, H/H', (H/H' - 1)/2], [0, 0, 1]]`` — for a uniform factor
``f = W'/W`` that is ``diag(1/f, 1/f, 1)`` plus the half-pixel offset ``(1/f - 1)/2``.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler, get_worker_info

from datamodules.io import abbreviate, is_image_file, read_image
from datamodules.paired import check_not_negative, check_positive, make_loader
from datamodules.transforms import resize_long_side, to_tensor

__all__ = [
    "LAYOUTS",
    "FrameStore",
    "Video",
    "VideoDataModule",
    "VideoEvalDataset",
    "VideoTrainDataset",
    "assign_videos",
    "clips_as_images",
    "scale_motion",
]

Layout = Literal["generic", "ntire_vqm", "intvid"]

# layout -> (default train split, default test split, default aligned)
LAYOUTS: dict[str, tuple[str, str, bool]] = {
    "generic": ("train", "test", True),
    "ntire_vqm": ("Training", "Validation", False),
    "intvid": ("Training", "Validation", True),
}

MOTION_FILE = "motion.json"
EVAL_PROTOCOL = "f"
EVALUATION_ALIGNED = "pixel-aligned pairs: per-frame full-reference scores and temporal scores"
EVALUATION_WEAK = (
    "weakly aligned pairs: no full-reference score (pixels do not correspond); temporal scores only "
    "(warp error from the input's optical flow, flicker from global statistics)"
)

_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True, eq=False)
class Video:
    """One input/target video: matched frame files and optional known motion.

    Attributes:
        key: Video id (the video folder name).
        folder: Where the video lives, for error messages (the generic video folder, or the
            source-domain video folder).
        stems: Frame stems in order.
        inputs: Input frame files, one per stem.
        targets: Target frame files, one per stem.
        motion: ``(N, 2, 3)`` float64 affines from ``motion.json`` in file pixel coordinates, or None.
    """

    key: str
    folder: Path
    stems: tuple[str, ...]
    inputs: tuple[Path, ...]
    targets: tuple[Path, ...]
    motion: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        """Number of frames."""
        return len(self.stems)


# ------------------------------------------------------------------------------------------------
# Pure helpers


def assign_videos(videos: list, rank: int, world_size: int, worker_id: int, num_workers: int) -> list:
    """The videos one DataLoader worker of one DDP rank streams.

    Rank ``r`` takes ``videos[r::world_size]``; worker ``w`` of that rank takes every
    ``num_workers``-th of those from position ``w``. Over all ranks and workers every video is
    assigned exactly once, and a video is never split.

    Args:
        videos: All videos (any items), in a fixed order shared by every process.
        rank: DDP rank (0 without DDP).
        world_size: DDP world size (1 without DDP).
        worker_id: DataLoader worker id (0 without workers).
        num_workers: DataLoader workers (1 without workers: the main process loads).

    Returns:
        The assigned videos, in their original order.

    Raises:
        ValueError: A rank or worker id outside its range.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world size {world_size}")
    if num_workers < 1 or not 0 <= worker_id < num_workers:
        raise ValueError(f"worker id {worker_id} is outside {num_workers} worker(s)")
    return list(videos)[rank::world_size][worker_id::num_workers]


def scale_motion(motion: np.ndarray, original_hw: tuple[int, int], resized_hw: tuple[int, int]) -> np.ndarray:
    """Rewrites frame->scene affines for a frame resized from ``original_hw`` to ``resized_hw``.

    See the module docstring: ``A' = A @ S`` with ``S`` mapping resized pixel centres to original
    pixel centres (``x = (x' + 0.5) * W / W' - 0.5``, likewise for y).

    Args:
        motion: ``(..., 2, 3)`` affines in original frame coordinates.
        original_hw: Frame size before resizing.
        resized_hw: Frame size after resizing.

    Returns:
        ``(..., 2, 3)`` float64 affines in resized frame coordinates (a copy).
    """
    sy = original_hw[0] / resized_hw[0]
    sx = original_hw[1] / resized_hw[1]
    scale = np.array([[sx, 0.0, (sx - 1.0) / 2.0], [0.0, sy, (sy - 1.0) / 2.0], [0.0, 0.0, 1.0]])
    return np.asarray(motion, dtype=np.float64) @ scale


def natural_key(stem: str) -> tuple:
    """Sort key that orders digit runs by value (``9`` before ``10``)."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(stem))


def list_frames(folder: Path) -> dict[str, Path]:
    """Maps stem -> file for the frames directly inside a folder, in natural stem order.

    Raises:
        FileNotFoundError: The folder does not exist.
        ValueError: Two files share a stem (both are named).
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"frame folder does not exist: {folder}")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not is_image_file(path):
            continue
        if path.stem in found:
            raise ValueError(f"two frames share the stem {path.stem!r}: {found[path.stem]} and {path}")
        found[path.stem] = path
    return {stem: found[stem] for stem in sorted(found, key=natural_key)}


def read_motion(path: Path, stems: list[str]) -> np.ndarray:
    """Reads ``motion.json`` (see the module docstring) for the given frames.

    Args:
        path: The file.
        stems: Frame stems that must be covered, in order (extra entries are ignored).

    Returns:
        ``(len(stems), 2, 3)`` float64 affines.

    Raises:
        ValueError: Unreadable JSON, no ``frames`` mapping, a frame without an affine, or an
            affine that is not a finite 2x3 matrix. The message names the file.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read known motion ({err})") from err
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, dict):
        raise ValueError(f"{path}: expected an object with a 'frames' mapping of frame stem -> 2x3 affine")
    missing = [stem for stem in stems if stem not in frames]
    if missing:
        raise ValueError(f"{path}: no affine for {len(missing)} frame(s): {abbreviate(missing)}")
    affines = []
    for stem in stems:
        try:
            affine = np.asarray(frames[stem], dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: frame {stem!r}: affine is not numeric ({err})") from err
        if affine.shape != (2, 3) or not np.all(np.isfinite(affine)):
            raise ValueError(f"{path}: frame {stem!r}: expected a finite 2x3 affine, got {frames[stem]!r}")
        affines.append(affine)
    return np.stack(affines)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _one_sided(first: list[str], second: list[str], sides: tuple[str, str], what: str) -> list[str]:
    """What is on one side only, one message per side (empty when both sides hold the same names)."""
    problems = []
    for mine, other, (name, other_name) in ((first, second, sides), (second, first, sides[::-1])):
        present = set(other)
        alone = [item for item in mine if item not in present]
        if alone:
            problems.append(f"{len(alone)} {name} {what}(s) without {other_name}: {abbreviate(alone)}")
    return problems


def _match_frames(key: str, where: str, input_dir: Path, target_dir: Path) -> tuple[list[str], list[Path], list[Path]]:
    """Frames of one video matched by stem (errors name the video and the unmatched stems)."""
    inputs, targets = list_frames(input_dir), list_frames(target_dir)
    problems = _one_sided(list(inputs), list(targets), ("input", "target"), "frame")
    if problems:
        raise ValueError(f"video {key!r} ({where}): unmatched frames between {input_dir} and {target_dir}: "
                         + "; ".join(problems))
    if not inputs:
        raise ValueError(f"video {key!r} ({where}): no frames in {input_dir}")
    stems = list(inputs)
    return stems, [inputs[s] for s in stems], [targets[s] for s in stems]


# ------------------------------------------------------------------------------------------------
# Decoding


class FrameStore:
    """Decodes frames (downscaled to ``long_side``), optionally keeping them in memory.

    Args:
        cache: Keep decoded, resized frames.
        long_side: Downscale on load so the long side is at most this (area interpolation, never
            enlarging); None keeps the files' resolution.
    """

    def __init__(self, cache: bool = False, long_side: int | None = None) -> None:
        if long_side is not None and long_side < 1:
            raise ValueError(f"long_side must be positive or None, got {long_side}")
        self.cache = cache
        self.long_side = long_side
        self._frames: dict[Path, tuple[np.ndarray, tuple[int, int]]] = {}

    def load(self, path: Path) -> tuple[np.ndarray, tuple[int, int]]:
        """The frame as float32 RGB ``(H, W, 3)`` after resizing, and its size in the file."""
        if path in self._frames:
            return self._frames[path]
        image = read_image(path)
        original = (image.shape[0], image.shape[1])
        if self.long_side is not None:
            image = resize_long_side(image, self.long_side)
        if self.cache:
            self._frames[path] = (image, original)
        return image, original

    def frames(self, paths: list[Path], video: Video, side: str) -> tuple[list[np.ndarray], tuple[int, int]]:
        """Frames of one side of a video and their size in the files; they must share one size
        (the odd frame is named)."""
        loaded = [self.load(path) for path in paths]
        images = [image for image, _ in loaded]
        for path, image in zip(paths, images, strict=True):
            if image.shape != images[0].shape:
                raise ValueError(
                    f"video {video.key!r} ({video.folder}): {side} frame {path} is "
                    f"{image.shape[1]}x{image.shape[0]} but {paths[0]} is {images[0].shape[1]}x{images[0].shape[0]}"
                )
        return images, loaded[0][1]


def _check_same_size(video: Video, inputs: list[np.ndarray], targets: list[np.ndarray], first: int) -> None:
    if inputs[0].shape != targets[0].shape:
        raise ValueError(
            f"video {video.key!r} ({video.folder}): pixel-aligned pairs need equal sizes, but input "
            f"{video.inputs[first]} is {inputs[0].shape[1]}x{inputs[0].shape[0]} and target "
            f"{video.targets[first]} is {targets[0].shape[1]}x{targets[0].shape[0]} (set aligned: false "
            "for weakly aligned videos)"
        )


def _stack(images: list[np.ndarray]) -> torch.Tensor:
    return torch.stack([to_tensor(image) for image in images])


# ------------------------------------------------------------------------------------------------
# Datasets


class VideoTrainDataset(Dataset):
    """Random clips: one sample per (video, start) pair; crop and flip drawn per clip.

    Args:
        videos: Training videos.
        clip_length: Frames per clip.
        frame_step: Spacing of the clip's frames in the video.
        crop_size: Side of the square crop; None: whole frames.
        aligned: Pixel-aligned pairs share the crop position; weakly aligned targets get their own.
        store: Frame loader (resizing and cache).
        flips: One random horizontal flip per clip (input and target together).

    Raises:
        ValueError: No videos, or a video too short for one clip (the video is named).
    """

    def __init__(self, videos: list[Video], clip_length: int, frame_step: int, crop_size: int | None,
                 aligned: bool, store: FrameStore, flips: bool = True) -> None:
        if not videos:
            raise ValueError("no training videos")
        span = (clip_length - 1) * frame_step + 1
        short = [v for v in videos if v.num_frames < span]
        if short:
            names = ", ".join(f"{v.key!r} ({v.folder}, {v.num_frames} frames)" for v in short[:5])
            raise ValueError(f"{len(short)} training video(s) too short for clip_length={clip_length}, "
                             f"frame_step={frame_step} (a clip spans {span} frames): {names}")
        self.videos = videos
        self.clip_length = clip_length
        self.frame_step = frame_step
        self.crop_size = crop_size
        self.aligned = aligned
        self.store = store
        self.flips = flips
        # Cumulative counts of start positions: sample index -> (video, start) by bisection.
        self._ends = np.cumsum([v.num_frames - span + 1 for v in videos]).tolist()

    @property
    def keys(self) -> list[str]:
        """Ids of the training videos."""
        return [v.key for v in self.videos]

    def __len__(self) -> int:
        return int(self._ends[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """``(video index, start frame)`` of a sample index."""
        if not 0 <= index < len(self):
            raise IndexError(f"clip index {index} out of range ({len(self)} clips)")
        video = bisect.bisect_right(self._ends, index)
        return video, index - (self._ends[video - 1] if video else 0)

    def _crop_origin(self, video: Video, image: np.ndarray, side: str) -> tuple[int, int]:
        if self.crop_size is None:
            return 0, 0
        h, w = image.shape[:2]
        if h < self.crop_size or w < self.crop_size:
            raise ValueError(f"video {video.key!r} ({video.folder}): {side} frames are {w}x{h}, smaller "
                             f"than crop_size={self.crop_size}")
        top = int(torch.randint(0, h - self.crop_size + 1, ()))
        left = int(torch.randint(0, w - self.crop_size + 1, ()))
        return top, left

    def _crop(self, images: list[np.ndarray], origin: tuple[int, int]) -> list[np.ndarray]:
        if self.crop_size is None:
            return images
        top, left = origin
        return [image[top : top + self.crop_size, left : left + self.crop_size] for image in images]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str | int]:
        video_index, start = self.locate(index)
        video = self.videos[video_index]
        positions = list(range(start, start + self.clip_length * self.frame_step, self.frame_step))
        inputs, _ = self.store.frames([video.inputs[i] for i in positions], video, "input")
        targets, _ = self.store.frames([video.targets[i] for i in positions], video, "target")
        if self.aligned:
            _check_same_size(video, inputs, targets, start)
        origin = self._crop_origin(video, inputs[0], "input")
        target_origin = origin if self.aligned else self._crop_origin(video, targets[0], "target")
        source, target = _stack(self._crop(inputs, origin)), _stack(self._crop(targets, target_origin))
        if self.flips and bool(torch.rand(()) < 0.5):
            source, target = source.flip(-1), target.flip(-1)
        return {"input": source, "target": target, "key": video.key, "frame_start": start}


class VideoEvalDataset(IterableDataset):
    """Whole videos in order, in chunks of ``chunk`` frames (the last chunk of a video shorter).

    Each item: ``input`` ``(Tc, 3, H, W)``, ``target`` ``(Tc, 3, H', W')``, ``key`` (video id),
    ``frame_start`` (index of the chunk's first frame), ``num_frames`` (video length),
    ``protocol`` (``"f"``) and, when the video has known motion, ``motion`` ``(Tc, 2, 3)`` float64
    in the coordinates of the loaded (possibly resized) frames. Which videos a process streams:
    :func:`assign_videos` with the DDP rank and DataLoader worker id at iteration time.

    Args:
        videos: All evaluation videos (every rank gets the full list and picks its share).
        chunk: Frames per chunk.
        aligned: Pixel-aligned pairs (input and target must have equal sizes).
        store: Frame loader (resizing and cache).
    """

    def __init__(self, videos: list[Video], chunk: int, aligned: bool, store: FrameStore) -> None:
        check_positive(chunk=chunk)
        self.videos = sorted(videos, key=lambda v: v.key)
        self.chunk = chunk
        self.aligned = aligned
        self.store = store
        # DataLoader workers started by spawn (ddp_spawn, or a spawned parent) do not share the
        # process group, so the rank is captured here, where the loader is built (after DDP init).
        self._rank_and_world_size = _rank_and_world_size()

    @property
    def keys(self) -> list[str]:
        """Sorted ids of all evaluation videos (every rank's, not only this one's)."""
        return [v.key for v in self.videos]

    @property
    def num_frames(self) -> int:
        """Frames over all videos."""
        return sum(v.num_frames for v in self.videos)

    @property
    def total_chunks(self) -> int:
        """Chunks over all videos (all ranks together)."""
        return sum(math.ceil(v.num_frames / self.chunk) for v in self.videos)

    @property
    def num_chunks(self) -> int:
        """Chunks this process (DDP rank, all its DataLoader workers together) streams."""
        rank, world_size = self._partition()
        mine = assign_videos(self.videos, rank, world_size, 0, 1)
        return sum(math.ceil(v.num_frames / self.chunk) for v in mine)

    def assigned(self) -> list[Video]:
        """The videos of the calling process and DataLoader worker (see :func:`assign_videos`)."""
        rank, world_size = self._partition()
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return assign_videos(self.videos, rank, world_size, worker_id, num_workers)

    def _partition(self) -> tuple[int, int]:
        """``(rank, world size)``: the live process group where there is one, else (in a
        DataLoader worker) the one captured when the dataset was built."""
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return self._rank_and_world_size if get_worker_info() is not None else (0, 1)

    def __iter__(self) -> Iterator[dict[str, object]]:
        for video in self.assigned():
            for start in range(0, video.num_frames, self.chunk):
                yield self.item(video, start)

    def item(self, video: Video, start: int) -> dict[str, object]:
        """The chunk of ``video`` starting at frame ``start``."""
        stop = min(start + self.chunk, video.num_frames)
        inputs, original = self.store.frames(list(video.inputs[start:stop]), video, "input")
        targets, _ = self.store.frames(list(video.targets[start:stop]), video, "target")
        if self.aligned:
            _check_same_size(video, inputs, targets, start)
        out: dict[str, object] = {
            "input": _stack(inputs),
            "target": _stack(targets),
            "key": video.key,
            "frame_start": start,
            "num_frames": video.num_frames,
            "protocol": EVAL_PROTOCOL,
        }
        if video.motion is not None:
            motion = video.motion[start:stop]
            resized = (inputs[0].shape[0], inputs[0].shape[1])
            out["motion"] = motion.copy() if original == resized else scale_motion(motion, original, resized)
        return out


def clips_as_images(batch: dict[str, object]) -> dict[str, object]:
    """A training batch of clips ``(B, T, 3, H, W)`` as a batch of ``B·T`` frames.

    ``input`` and ``target`` are flattened frame-major per clip; ``key`` is repeated per frame;
    per-clip entries (``frame_start``) are dropped, since frames of a batch no longer form clips.
    """
    out: dict[str, object] = {}
    frames = batch["input"].shape[1]  # type: ignore[union-attr]
    for name, value in batch.items():
        if isinstance(value, torch.Tensor) and value.ndim == 5:
            out[name] = value.flatten(0, 1)
        elif name == "key":
            out[name] = [key for key in value for _ in range(frames)]  # type: ignore[union-attr]
    return out


def _rank_and_world_size() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# ------------------------------------------------------------------------------------------------
# The data module


class VideoDataModule(L.LightningDataModule):
    """Paired videos (pixel-aligned or weakly aligned): random clips for training, whole videos
    streamed in chunks for evaluation.

    The folder names of the ``ntire_vqm`` and ``intvid`` layouts follow the public loaders of the
    NTIRE 2020 video quality mapping challenge; ``datasets_protocols.md`` A.4 marks several details
    of those datasets UNCERTAIN (counts, resolutions, how the weakly supervised track was scored).
    See the module docstring for the layouts, batching and known motion.

    Args:
        root: Dataset root.
        dataset: Dataset label written into result rows.
        layout: ``generic``, ``ntire_vqm`` or ``intvid`` (module docstring).
        aligned: Whether input and target pixels correspond; None: the layout's default
            (generic and intvid True, ntire_vqm False).
        train_split: Training split folder (generic) or prefix (``Training``); None: the layout's
            default.
        test_split: Evaluated split, likewise (``test`` / ``Validation``); its name is ``split``
            in result rows.
        source_suffix: ``intvid``: suffix of the source-domain folder (its bitrate).
        clip_length: Frames per training clip.
        frame_step: Spacing of a training clip's frames.
        crop_size: Side of the square training crops; None: whole frames (then all training
            frames must share one size to be batched).
        batch_size: Training clips per batch.
        train_samples_per_epoch: Clips per epoch; None: the number of clip start positions.
        eval_chunk: Frames per evaluation chunk.
        long_side: Downscale every frame on load so its long side is at most this (area
            interpolation, never enlarging); None keeps the files' resolution.
        num_workers: DataLoader workers.
        cache_frames: Keep decoded (resized) frames in memory (per worker process).
    """

    def __init__(
        self,
        root: str,
        dataset: str = "video",
        layout: Layout = "generic",
        aligned: bool | None = None,
        train_split: str | None = None,
        test_split: str | None = None,
        source_suffix: str = "",
        clip_length: int = 5,
        frame_step: int = 1,
        crop_size: int | None = 128,
        batch_size: int = 4,
        train_samples_per_epoch: int | None = None,
        eval_chunk: int = 8,
        long_side: int | None = None,
        num_workers: int = 0,
        cache_frames: bool = False,
    ) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        check_positive(clip_length=clip_length, frame_step=frame_step, batch_size=batch_size, eval_chunk=eval_chunk,
                       crop_size=crop_size, long_side=long_side, train_samples_per_epoch=train_samples_per_epoch)
        check_not_negative(num_workers=num_workers)
        if source_suffix and layout != "intvid":
            raise ValueError(f"source_suffix applies to the intvid layout only, got {source_suffix!r} "
                             f"with layout {layout!r}")
        self.save_hyperparameters()
        default_train, default_test, default_aligned = LAYOUTS[layout]
        self.root = Path(root)
        self.dataset = dataset
        self.layout = layout
        self.aligned = default_aligned if aligned is None else bool(aligned)
        self.splits = {"train": train_split or default_train, "test": test_split or default_test}
        self.split = self.splits["test"]
        self.source_suffix = source_suffix
        self.clip_length = clip_length
        self.frame_step = frame_step
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.train_samples_per_epoch = train_samples_per_epoch
        self.eval_chunk = eval_chunk
        self.long_side = long_side
        self.num_workers = num_workers
        self._store = FrameStore(cache=cache_frames, long_side=long_side)
        self._videos: dict[str, list[Video]] = {}

    # --------------------------------------------------------------------------------------------
    # Resolving folders (listings and motion.json only, no decoding)

    def folders(self, part: str) -> tuple[Path, Path]:
        """``(input side, target side)`` folders of ``train`` or ``test`` (the split folder twice
        for the generic layout, whose videos hold both sides)."""
        split = self.splits[part]
        if self.layout == "generic":
            return self.root / split, self.root / split
        suffix = self.source_suffix if self.layout == "intvid" else ""
        return self.root / f"{split}SourceDomain{suffix}", self.root / f"{split}TargetDomain"

    def has_split(self, part: str) -> bool:
        """Whether the folders of ``train`` or ``test`` exist."""
        return all(folder.is_dir() for folder in self.folders(part))

    def videos(self, part: str) -> list[Video]:
        """Videos of ``train`` or ``test``, sorted by id (resolved once).

        Raises:
            FileNotFoundError: A split folder is missing.
            ValueError: No videos, videos on one side only, unmatched frames, bad motion.json.
        """
        if part not in self._videos:
            self._videos[part] = self._resolve(part)
        return self._videos[part]

    def _resolve(self, part: str) -> list[Video]:
        source_dir, target_dir = self.folders(part)
        for folder in dict.fromkeys((source_dir, target_dir)):
            if not folder.is_dir():
                raise FileNotFoundError(f"{part} split folder does not exist: {folder}" + self._folder_hint(folder))
        if self.layout == "generic":
            videos = [self._generic_video(folder) for folder in _subfolders(source_dir)]
        else:
            videos = self._domain_videos(source_dir, target_dir)
        if not videos:
            where = source_dir if source_dir == target_dir else f"{source_dir} / {target_dir}"
            raise ValueError(f"{part} split {self.splits[part]!r}: no video folders in {where}")
        return videos

    def _folder_hint(self, folder: Path) -> str:
        if not self.root.is_dir():
            return f" (the dataset root {self.root} does not exist)"
        present = ", ".join(sorted(p.name for p in _subfolders(self.root))) or "nothing"
        hint = f"; {self.root} holds: {present}"
        if self.layout == "intvid" and "SourceDomain" in folder.name:
            hint += " (source_suffix is the bitrate suffix of the source-domain folder)"
        return hint

    def _generic_video(self, folder: Path) -> Video:
        for side in ("input", "target"):
            if not (folder / side).is_dir():
                raise ValueError(f"video folder {folder} has no {side}/ folder (generic layout: "
                                 "<split>/<video>/input/ and <split>/<video>/target/)")
        stems, inputs, targets = _match_frames(folder.name, str(folder), folder / "input", folder / "target")
        motion_path = folder / MOTION_FILE
        motion = read_motion(motion_path, stems) if motion_path.is_file() else None
        return Video(folder.name, folder, tuple(stems), tuple(inputs), tuple(targets), motion)

    def _domain_videos(self, source_dir: Path, target_dir: Path) -> list[Video]:
        sources = {p.name: p for p in _subfolders(source_dir)}
        targets = {p.name: p for p in _subfolders(target_dir)}
        problems = _one_sided(sorted(sources), sorted(targets), ("source", "target"), "video")
        if problems:
            raise ValueError(f"unmatched videos between {source_dir} and {target_dir}: " + "; ".join(problems))
        videos = []
        for key in sorted(sources):
            stems, inputs, targets_ = _match_frames(key, str(sources[key]), sources[key], targets[key])
            videos.append(Video(key, sources[key], tuple(stems), tuple(inputs), tuple(targets_)))
        return videos

    def describe(self) -> dict[str, object]:
        """Run metadata: layout, folders, splits, counts, clip and chunk settings, how it is scored.

        A split whose folders are missing is reported with ``None`` counts (a test-only copy can
        still be scored); a present but broken split, or no split at all, raises as :meth:`videos`
        does.
        """
        present = [part for part in ("train", "test") if self.has_split(part)]
        counts: dict[str, dict[str, int] | None] = {}
        for part in ("train", "test"):
            videos = self.videos(part) if part in present or not present else None
            counts[part] = None if videos is None else {
                "videos": len(videos), "frames": sum(v.num_frames for v in videos)}
        test_videos = self.videos("test") if counts["test"] is not None else []
        return {
            "kind": "video",
            "root": str(self.root),
            "dataset": self.dataset,
            "layout": self.layout,
            "aligned": self.aligned,
            "split": self.split,
            "splits": dict(self.splits),
            "folders": {part: {"input": str(s), "target": str(t)} for part, (s, t) in
                        ((p, self.folders(p)) for p in ("train", "test"))},
            "counts": counts,
            "clip_length": self.clip_length,
            "frame_step": self.frame_step,
            "crop_size": self.crop_size,
            "batch_size": self.batch_size,
            "train_samples_per_epoch": self.train_samples_per_epoch,
            "long_side": self.long_side,
            "eval_chunk": self.eval_chunk,
            "protocol": EVAL_PROTOCOL,
            "has_motion": bool(test_videos) and all(v.motion is not None for v in test_videos),
            "evaluation": EVALUATION_ALIGNED if self.aligned else EVALUATION_WEAK,
        }

    # --------------------------------------------------------------------------------------------
    # Lightning hooks

    def setup(self, stage: str | None = None) -> None:
        """Resolves the split(s) the stage needs (errors name the folders, videos and frames)."""
        if stage in (None, "fit"):
            self.train_dataset()
        if stage in (None, "test", "predict"):
            self.videos("test")

    def train_dataset(self) -> VideoTrainDataset:
        """The random-clip dataset of the training split."""
        return VideoTrainDataset(self.videos("train"), self.clip_length, self.frame_step, self.crop_size,
                                 self.aligned, self._store)

    def eval_dataset(self) -> VideoEvalDataset:
        """The chunk stream of the evaluated split."""
        return VideoEvalDataset(self.videos("test"), self.eval_chunk, self.aligned, self._store)

    def on_after_batch_transfer(self, batch: object, dataloader_idx: int) -> object:
        """Training clips become batches of frames when the method is an image method
        (``EnhancementMethod.video`` False): it then trains on video frames as on images."""
        trainer = self.trainer
        if (trainer is not None and trainer.training and not getattr(trainer.lightning_module, "video", False)
                and isinstance(batch, dict) and getattr(batch.get("input"), "ndim", 0) == 5):
            return clips_as_images(batch)
        return batch

    def train_dataloader(self) -> DataLoader:
        """Random clips, reshuffled every epoch (``train_samples_per_epoch`` per epoch)."""
        dataset = self.train_dataset()
        # Without replacement; an epoch longer than the clip list chains fresh permutations.
        sampler = RandomSampler(dataset, num_samples=self.train_samples_per_epoch or len(dataset))
        return make_loader(dataset, self.batch_size, self.num_workers, sampler=sampler)

    def val_dataloader(self) -> list[DataLoader]:
        """No validation (an empty list): the evaluated split is never used for selection."""
        warnings.filterwarnings("ignore", message="Total length of `list` across ranks is zero")
        rank_zero_info(f"{self.dataset}: no validation for video data: skipped")
        return []

    def test_dataloader(self) -> DataLoader:
        """Whole videos in chunks, batch size 1 (see :class:`VideoEvalDataset`)."""
        return make_loader(self.eval_dataset(), 1, self.num_workers)

    def predict_dataloader(self) -> DataLoader:
        """The test stream."""
        return self.test_dataloader()
