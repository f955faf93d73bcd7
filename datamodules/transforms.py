"""Geometric augmentation for paired training and the resizing that defines the protocols.

Protocols (design.md section 5): ``d`` scores at long side 512 with area interpolation, ``f`` at
full resolution, ``100`` on DPED's 100x100 test patches as they are. Only geometry is augmented:
input and target share one crop and flip.
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # before the import: no PyPI check

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

PROTOCOLS: dict[str, str] = {
    "d": "long side 512, area interpolation",
    "f": "full resolution",
    "100": "DPED 100x100 test patches, scored as they are",
}
PROTOCOL_D_LONG_SIDE = 512
PROTOCOL_100_SIDE = 100


def resized_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """Shape after scaling the long side to ``long_side``, each side rounded half up.

    ``int(x + 0.5)`` rather than Python's ``round`` (half to even) so that the rule is the one
    people state ("rounded to nearest") and a .5 case never depends on the parity of the integer.

    Args:
        height: Image height.
        width: Image width.
        long_side: Target long side.

    Returns:
        ``(new_height, new_width)``, each at least 1.
    """
    scale = long_side / max(height, width)
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def resize_long_side(image: np.ndarray, long_side: int = PROTOCOL_D_LONG_SIDE) -> np.ndarray:
    """Downscales so the long side equals ``long_side``, with area interpolation.

    Images whose long side is already at most ``long_side`` are returned unchanged: protocol
    ``d`` never enlarges.

    Args:
        image: ``(H, W, C)`` array.
        long_side: Target long side in pixels.

    Returns:
        The resized image (same dtype), or ``image`` itself.
    """
    height, width = image.shape[:2]
    if max(height, width) <= long_side:
        return image
    new_height, new_width = resized_shape(height, width, long_side)
    return cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_AREA)


def apply_protocol(image: np.ndarray, protocol: str) -> np.ndarray:
    """Prepares an evaluation image for a protocol (``d``: long side 512, ``f`` and ``100``: unchanged).

    Raises:
        ValueError: Unknown protocol, or a protocol ``100`` image that is not 100x100.
    """
    if protocol == "d":
        return resize_long_side(image, PROTOCOL_D_LONG_SIDE)
    if protocol == "f":
        return image
    if protocol == "100":
        # DPED's protocol is defined by its patches; another size would be a different protocol.
        if image.shape[:2] != (PROTOCOL_100_SIDE, PROTOCOL_100_SIDE):
            raise ValueError(
                f"protocol '100' scores DPED's 100x100 test patches; got a {image.shape[1]}x{image.shape[0]} image"
            )
        return image
    raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


def paired_train_transform(crop_size: int, flips: bool = True) -> A.Compose:
    """Random crop (reflect-padded when the image is small) and flips, shared by input and target.

    No photometric transform is included on purpose: brightness, colour or noise jitter would
    change the colour mapping the methods must learn, and albumentations would apply the same
    jitter to the target as well.

    Args:
        crop_size: Side of the square crop.
        flips: Add random horizontal and vertical flips.

    Returns:
        A Compose called as ``t(image=input, target=target)``.
    """
    if crop_size < 1:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    steps: list[A.BasicTransform] = [
        A.PadIfNeeded(min_height=crop_size, min_width=crop_size, border_mode=cv2.BORDER_REFLECT_101),
        A.RandomCrop(height=crop_size, width=crop_size),
    ]
    if flips:
        steps += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    return A.Compose(steps, additional_targets={"target": "image"})


class SeededTransform:
    """An albumentations pipeline reseeded from torch's seed, so crops follow ``seed_everything``.

    albumentations keeps its own generator, blind to ``seed_everything``, and every DataLoader
    worker would inherit a copy of the same state (identical crops in all workers).
    ``torch.initial_seed()`` is the seeded base seed in the main process and base + worker id in a
    worker, so reseeding from it whenever it changes makes crops reproducible and distinct per
    worker. ``stream`` separates pipelines that must not draw the same numbers (the source and
    target crops of unpaired training).

    Args:
        transform: The pipeline.
        stream: Small integer mixed into the seed.
    """

    def __init__(self, transform: A.Compose, stream: int = 0) -> None:
        self.transform = transform
        self.stream = stream
        self._seeded_with: int | None = None

    def __call__(self, **data: np.ndarray) -> dict[str, np.ndarray]:
        """Applies the pipeline (same keywords as the wrapped Compose)."""
        seed = torch.initial_seed()
        if seed != self._seeded_with:
            # The odd 64-bit constant spreads streams far apart; worker ids only add small offsets.
            self.transform.set_random_seed((seed + self.stream * 0x9E3779B97F4A7C15) % 2**32)
            self._seeded_with = seed
        return self.transform(**data)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` array -> contiguous float32 tensor ``(3, H, W)``."""
    chw = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    return torch.from_numpy(chw)
