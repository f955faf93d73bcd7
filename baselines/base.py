"""Base classes every method builds on.

A method implements ``forward`` (and, when it learns, ``training_step`` and
``configure_optimizers``). Validation, test and predict steps are written once here, and
scoring happens outside the method, in ``benchmark.evaluation.Evaluator``, so that every method
is measured by the same code.
"""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor


class EnhancementMethod(L.LightningModule):
    """A quality-mapping method: ``forward(input) -> output``.

    Contract (design.md section 4): ``input`` is float32 RGB in [0, 1] of shape ``(B, 3, H, W)``
    and the output has the same shape, roughly in [0, 1]; the Evaluator clamps and quantises it.
    Batches are dicts with ``input``, ``target`` (when the data has one) and ``key``.

    Class attributes a method may override:
        trainable: False for reference rows that learn nothing; the suite then skips ``fit``.
        full_resolution: how protocol ``f`` is produced, printed in captions ("whole image",
            "bilateral grid predicted at low resolution, sliced at full resolution", ...).
    """

    trainable: ClassVar[bool] = True
    full_resolution: ClassVar[str] = "whole image"

    def enhance(self, image: Tensor) -> Tensor:
        """Enhance one evaluation batch at whatever size it comes in.

        Evaluation calls this rather than ``forward`` so that a method whose paper evaluates
        differently at full resolution (e.g. down-scale, enhance, up-scale) overrides one place.
        """
        return self(image)

    def _eval_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return {"pred": self.enhance(batch["input"])}

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        return self._eval_step(batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        return self._eval_step(batch)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        return {"pred": self.enhance(batch["input"]).clamp(0, 1), "key": batch["key"]}

    def log_terms(self, stage: str, terms: dict[str, Tensor], batch_size: int) -> None:
        """Log each loss term as ``{stage}/{name}`` (W&B groups panels by the prefix)."""
        self.log_dict({f"{stage}/{name}": value.detach() for name, value in terms.items()},
                      batch_size=batch_size, prog_bar=False)

    def configure_optimizers(self) -> Any:
        if not self.trainable:
            return None
        raise NotImplementedError(f"{type(self).__name__} learns, so it must define configure_optimizers")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} learns, so it must define training_step")


class NonLearnedMethod(EnhancementMethod):
    """A reference row that learns nothing (identity, auto-levels, CLAHE).

    It owns one dummy buffer so that Lightning knows its device; it has no parameters.
    """

    trainable: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)
