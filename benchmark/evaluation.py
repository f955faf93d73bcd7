"""The Evaluator: one scoring path for every method.

Every method's test outputs pass through the same steps here: clamp to [0, 1], quantise as
``round(x * 255)`` (papers score their saved 8-bit outputs), per-image metrics from
``benchmark.metrics``, and per-image inference time (metric ``seconds``, measured around the
method's test step only, so data loading is not counted). Rows are gathered from every DDP rank
and de-duplicated by image key, because ``DistributedSampler`` pads the test set by repeating
images; rank 0 writes them atomically to ``rows.csv``.

Video (batches of clips ``(1, T, 3, H, W)`` streamed in consecutive chunks per video, see
``datamodules.video``): every frame gets the per-frame metrics (row ``frame`` = frame index,
``seconds`` per frame), and every consecutive pair of frames ``(t − 1, t)`` of a video gets the
temporal metrics ``warp_error`` and ``flicker`` (row ``frame`` = t), computed from the previous
frame the Evaluator keeps per video — memory stays constant however long the video. The warp
error follows the known motion when the data has it (demo videos), else OpenCV optical flow on
the target frames (or on the input frames when the pairs are only weakly aligned). Weakly
aligned pairs (``datamodule.aligned`` False) get no full-reference score at all: their pixels
do not correspond. A pair with no unoccluded pixel (a scene cut) gets no warp-error row.
Reports average per video, then over videos.

The Evaluator never selects a checkpoint: it scores whatever weights the trainer holds (the
last ones, in a suite run).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_only

from benchmark import results
from benchmark.metrics import (
    METRIC_NAMES,
    TEMPORAL_METRIC_NAMES,
    ImageScorer,
    flicker,
    motion_flow,
    optical_flow,
    psnr,
    quantize,
    warp_error,
)

_ANNOUNCED: set[str] = set()


class Evaluator(L.Callback):
    """Scores test outputs identically for every method and writes per-image rows.

    Args:
        out_dir: run folder; ``rows.csv``, ``samples/`` and (with ``save_outputs``) ``outputs/``
            go there. Without it rows are only kept in memory (``self.rows``).
        suite: suite name written into every row.
        run_id: run id written into every row (defaults to ``{label}__{dataset}__s{seed}``).
        label: the suite's row label (defaults to the method's class name).
        seed: the run's seed.
        metrics: per-image (per-frame) metric names to compute (``benchmark.metrics.METRIC_NAMES``);
            video data always gets the temporal metrics too (``TEMPORAL_METRIC_NAMES``).
        sample_keys: image ids whose outputs are always saved to ``samples/`` (for image grids
            and W&B panels); by default the first ``num_samples`` test ids in sorted order.
        num_samples: how many ids to pick when ``sample_keys`` is not given.
        save_outputs: also save every output to ``outputs/<protocol>/<key>.png``.
        lpips_weights: explicit path of the AlexNet weights for LPIPS (default: TORCH_HOME).
    """

    def __init__(
        self,
        out_dir: str | None = None,
        suite: str = "adhoc",
        run_id: str | None = None,
        label: str | None = None,
        seed: int = 0,
        metrics: list[str] = list(METRIC_NAMES),
        sample_keys: list[str] | None = None,
        num_samples: int = 4,
        save_outputs: bool = False,
        lpips_weights: str | None = None,
    ) -> None:
        super().__init__()
        self.out_dir = Path(out_dir) if out_dir else None
        self.suite = suite
        self.run_id = run_id
        self.label = label
        self.seed = seed
        self.metrics = [name for name in metrics if name not in TEMPORAL_METRIC_NAMES]
        self.sample_keys = set(sample_keys) if sample_keys else None
        self.num_samples = num_samples
        self.save_outputs = save_outputs
        self.lpips_weights = lpips_weights
        self.rows: pd.DataFrame = results.rows_frame([])
        self.unavailable: dict[str, str] = {}
        self._scorer: ImageScorer | None = None
        self._pending: list[dict[str, Any]] = []
        self._started = 0.0
        # Per video: (frame index, quantised output, target, input, motion) of its last frame.
        self._previous: dict[str, tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]] = {}
        self.skipped_pairs = 0

    # -- test: the scored path ---------------------------------------------------------------
    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._scorer is None:
            self._scorer = ImageScorer(self.metrics, lpips_weights=self.lpips_weights)
            self.unavailable = dict(self._scorer.unavailable)
            if trainer.is_global_zero:
                for metric, message in self.unavailable.items():
                    if message not in _ANNOUNCED:  # once per process, not once per suite run
                        _ANNOUNCED.add(message)
                        print(f"[qmap] {metric} is n/a: {message}", file=sys.stderr)
        self._pending = []
        self._previous = {}
        self.skipped_pairs = 0
        if self.sample_keys is None:
            self._chosen_samples = _first_keys(trainer.test_dataloaders, self.num_samples)
        else:
            self._chosen_samples = self.sample_keys

    def on_test_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                            batch_idx: int, dataloader_idx: int = 0) -> None:
        self._started = time.perf_counter()

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        pred = outputs["pred"] if isinstance(outputs, dict) else outputs
        # The step's outputs may still be computing on an accelerator: wait before reading the clock.
        if pred.is_cuda:
            torch.cuda.synchronize(pred.device)
        images = pred.shape[0] * (pred.shape[1] if pred.ndim == 5 else 1)
        seconds = (time.perf_counter() - self._started) / images
        if "target" not in batch:
            raise ValueError("the test data has no 'target': full-reference scoring needs a paired test split")
        if pred.shape != batch["input"].shape:
            raise ValueError(f"{type(pl_module).__name__} returned {tuple(pred.shape)} for inputs of "
                             f"{tuple(batch['input'].shape)}: a method must keep the input size")
        pred = quantize(pred.detach().float())
        target = quantize(batch["target"].float())
        if pred.ndim == 5:
            self._score_video(pl_module, trainer.datamodule, batch, pred, target, seconds)
            return
        if pred.shape != target.shape:
            raise ValueError(f"{type(pl_module).__name__} returned {tuple(pred.shape)} for targets of "
                             f"{tuple(target.shape)}: a method must keep the input size")
        datamodule = trainer.datamodule
        for i, key in enumerate(batch["key"]):
            protocol = batch["protocol"][i] if "protocol" in batch else "f"
            scores = self._scorer.score(pred[i], target[i])
            scores["seconds"] = seconds
            for metric, value in scores.items():
                self._pending.append(self._row(pl_module, datamodule, key, protocol, metric, value))
            if key in self._chosen_samples and self.out_dir is not None:
                self._save_sample(protocol, key, pred[i], quantize(batch["input"][i].float()), target[i])
            if self.save_outputs and self.out_dir is not None:
                _save_png(self.out_dir / results.OUTPUTS_DIR / protocol / f"{key}.png", pred[i])

    def _score_video(self, pl_module: L.LightningModule, datamodule: Any, batch: dict[str, Any], pred: torch.Tensor,
                     target: torch.Tensor, seconds: float) -> None:
        """Rows of one chunk of each video in the batch: per-frame scores, then temporal scores."""
        aligned = bool(getattr(datamodule, "aligned", True))
        inputs = quantize(batch["input"].float())
        for i, key in enumerate(batch["key"]):
            protocol = batch["protocol"][i] if "protocol" in batch else "f"
            start = int(batch["frame_start"][i])
            total = int(batch["num_frames"][i])
            if start == 0:
                self._previous.pop(key, None)
            for t in range(pred.shape[1]):
                frame = start + t
                output, reference, source = pred[i, t], target[i, t], inputs[i, t]
                motion = batch["motion"][i, t] if "motion" in batch else None
                scores: dict[str, float] = {}
                if aligned:
                    if output.shape != reference.shape:
                        raise ValueError(f"video {key!r} frame {frame}: output {tuple(output.shape)} and aligned "
                                         f"target {tuple(reference.shape)} differ in size")
                    scores = self._scorer.score(output, reference)
                scores["seconds"] = seconds
                previous = self._previous.get(key)
                if previous is not None:
                    if previous[0] != frame - 1:
                        raise RuntimeError(f"video {key!r}: frame {frame} arrived after frame {previous[0]} "
                                           "(chunks must come in order)")
                    scores |= self._temporal(previous, output, reference, source, motion, aligned)
                for metric, value in scores.items():
                    self._pending.append(self._row(pl_module, datamodule, key, protocol, metric, value, frame))
                if frame == total // 2 and key in self._chosen_samples and self.out_dir is not None:
                    self._save_sample(protocol, key, output, source, reference)
                if self.save_outputs and self.out_dir is not None:
                    _save_png(self.out_dir / results.OUTPUTS_DIR / protocol / key / f"{frame:06d}.png", output)
                self._previous[key] = (frame, output, reference, source, motion)
            if start + pred.shape[1] >= total:
                self._previous.pop(key, None)  # the video is finished: keep nothing of it

    def _temporal(self, previous: tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None],
                  output: torch.Tensor, target: torch.Tensor, source: torch.Tensor, motion: torch.Tensor | None,
                  aligned: bool) -> dict[str, float]:
        """warp_error and flicker of the pair (previous frame, this frame); no warp_error without
        any unoccluded pixel."""
        _, previous_output, previous_target, previous_source, previous_motion = previous
        if motion is not None and previous_motion is not None:
            flow, valid = motion_flow(previous_motion, motion, *output.shape[-2:])
        elif aligned:
            flow, valid = optical_flow(previous_target, target)
        else:  # the target's pixels do not correspond to the output's: follow the input's motion
            flow, valid = optical_flow(previous_source, source)
        scores = {"flicker": flicker(previous_output, output, previous_target, target)}
        error = warp_error(previous_output, output, flow, valid)
        if math.isnan(error):
            self.skipped_pairs += 1
        else:
            scores["warp_error"] = error
        return scores

    def _save_sample(self, protocol: str, key: str, output: torch.Tensor, source: torch.Tensor,
                     target: torch.Tensor) -> None:
        """The output in ``samples/`` and, beside it in ``references/``, the input and target as scored."""
        assert self.out_dir is not None
        _save_png(self.out_dir / results.SAMPLES_DIR / protocol / f"{key}.png", output)
        references = self.out_dir / results.REFERENCES_DIR / protocol / key
        _save_png(references / "input.png", source)
        _save_png(references / "target.png", target)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rows = _gather(self._pending)
        frame = results.rows_frame(rows)
        # DistributedSampler repeats images to give every rank the same count: keep one row each.
        frame = frame.drop_duplicates(subset=["protocol", "key", "frame", "metric"], keep="first")
        self.rows = frame.sort_values(["protocol", "key", "metric", "frame"], kind="stable").reset_index(drop=True)
        self._write_rows()

    @rank_zero_only
    def _write_rows(self) -> None:
        if self.out_dir is not None:
            results.write_rows(self.out_dir / results.ROWS_FILE, self.rows)

    def _row(self, pl_module: L.LightningModule, datamodule: Any, key: str, protocol: str, metric: str,
             value: float, frame: int = 0) -> dict[str, Any]:
        dataset = getattr(datamodule, "dataset", None) or "unknown"
        label = self.label or type(pl_module).__name__.lower()
        return {
            "suite": self.suite,
            "run_id": self.run_id or results.make_run_id(label, dataset, self.seed),
            "label": label,
            "method": type(pl_module).__name__,
            "dataset": dataset,
            "protocol": protocol,
            "split": getattr(datamodule, "split", None) or "",
            "seed": self.seed,
            "key": key,
            "frame": int(frame),
            "metric": metric,
            "value": float(value),
            "higher_is_better": results.HIGHER_IS_BETTER[metric],
        }

    # -- validation: a quick curve for dashboards, never used to select anything ------------------
    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if not isinstance(outputs, dict) or "target" not in batch:
            return
        pred, target = outputs["pred"].detach().float(), batch["target"].float()
        if pred.ndim == 5:  # video: every frame of the chunk, when the pairs are pixel-aligned
            if not getattr(trainer.datamodule, "aligned", True):
                return
            pred, target = pred.flatten(0, 1), target.flatten(0, 1)
        values = psnr(quantize(pred), quantize(target))
        pl_module.log("val/psnr", values.float().mean(), batch_size=len(values), sync_dist=True,
                      add_dataloader_idx=False)


def _first_keys(dataloaders: Any, count: int) -> set[str]:
    """The first ``count`` ids (sorted) of the test set, known on every rank alike."""
    loaders = dataloaders if isinstance(dataloaders, list | tuple) else [dataloaders]
    keys: set[str] = set()
    for loader in loaders:
        dataset_keys = getattr(getattr(loader, "dataset", None), "keys", None)
        if dataset_keys is None:
            raise TypeError("the Evaluator needs test datasets that expose `keys` (their image ids) to pick "
                            "sample ids; pass Evaluator(sample_keys=[...]) otherwise")
        keys.update(sorted(dataset_keys)[:count])
    return keys


def _gather(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All ranks' rows on every rank (plain list on a single process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return rows
    gathered: list[list[dict[str, Any]] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, rows)
    return [row for part in gathered for row in (part or [])]


def _save_png(path: Path, image: torch.Tensor) -> None:
    from datamodules.io import write_image

    write_image(path, image.permute(1, 2, 0).cpu().numpy())
