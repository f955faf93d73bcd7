"""Non-learned reference rows: identity, auto-levels and CLAHE.

They anchor every table: a learned method that does not beat ``Identity`` has learned nothing,
and auto-levels / CLAHE are the classical one-line answers to "fix the colours" and "fix the
contrast". They are scored by the same Evaluator as every learned method.
"""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np
import torch
from torch import Tensor

from baselines.base import NonLearnedMethod


class Identity(NonLearnedMethod):
    """Returns the input unchanged: the score of doing nothing."""

    def forward(self, image: Tensor) -> Tensor:
        return image


class AutoLevels(NonLearnedMethod):
    """Per-channel contrast stretch between two percentiles, as in photo editors' "auto levels".

    Each channel is mapped linearly so that its ``low_percentile`` goes to 0 and its
    ``high_percentile`` to 1, then clipped. Stretching channels independently also removes a
    global colour cast (the "auto colour" behaviour); set ``per_channel=False`` to stretch all
    channels with one shared range, which keeps the cast.

    Args:
        low_percentile: lower clipping percentile in [0, 50).
        high_percentile: upper clipping percentile in (50, 100].
        per_channel: stretch each channel with its own range.
    """

    def __init__(self, low_percentile: float = 0.5, high_percentile: float = 99.5, per_channel: bool = True) -> None:
        super().__init__()
        if not 0 <= low_percentile < 50 < high_percentile <= 100:
            raise ValueError("need 0 <= low_percentile < 50 < high_percentile <= 100")
        self.low = low_percentile / 100
        self.high = high_percentile / 100
        self.per_channel = per_channel

    def forward(self, image: Tensor) -> Tensor:
        flat = image.flatten(2) if self.per_channel else image.flatten(1).unsqueeze(1)
        # kthvalue-based quantiles: torch.quantile refuses inputs above 16 M elements (12 MP photos).
        low = _quantile(flat, self.low)
        high = _quantile(flat, self.high)
        scale = (high - low).clamp_min(1e-6)
        return ((image - low[..., None, None]) / scale[..., None, None]).clamp(0, 1)


def _quantile(values: Tensor, q: float) -> Tensor:
    """Lower-nearest quantile over the last dimension (no interpolation, no size limit)."""
    n = values.shape[-1]
    k = min(max(int(q * (n - 1)) + 1, 1), n)
    return values.kthvalue(k, dim=-1).values


class CLAHE(NonLearnedMethod):
    """Contrast-limited adaptive histogram equalisation on the lightness channel (OpenCV).

    The image is converted to CIELAB, CLAHE is applied to L only (equalising RGB channels
    separately would shift hues), and converted back. Runs on 8-bit data, as OpenCV's CLAHE does.

    Args:
        clip_limit: OpenCV's contrast limit per tile.
        tile_grid: number of tiles along each side.
    """

    full_resolution: ClassVar[str] = "whole image (8-bit CLAHE on CIELAB lightness)"

    def __init__(self, clip_limit: float = 2.0, tile_grid: int = 8) -> None:
        super().__init__()
        self.clip_limit = clip_limit
        self.tile_grid = tile_grid

    def forward(self, image: Tensor) -> Tensor:
        clahe = cv2.createCLAHE(clipLimit=self.clip_limit, tileGridSize=(self.tile_grid, self.tile_grid))
        outputs = []
        for picture in image.detach().clamp(0, 1).cpu():
            rgb = np.ascontiguousarray((picture.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
            lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
            lab[..., 0] = clahe.apply(lab[..., 0])
            out = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32) / 255
            outputs.append(torch.from_numpy(out).permute(2, 0, 1))
        return torch.stack(outputs).to(image.device, image.dtype)
