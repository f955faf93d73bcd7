"""Weights & Biases for suite runs — active only when the trainer config has a ``WandbLogger``.

``benchmark/configs/trainer/wandb.yaml`` adds the logger; without it nothing here does anything
and wandb is never imported. For each run :func:`configure` (before the trainer is built)

- names the W&B run after the run id, groups it by suite and tags it ``method:<Class>``,
  ``label:<label>``, ``dataset:<dataset>`` and ``quick`` (smoke-scale configs);
- puts the W&B files in the run folder: ``save_dir`` is the run folder, and ``WANDB_DIR``,
  ``WANDB_CACHE_DIR``, ``WANDB_DATA_DIR`` and ``WANDB_CONFIG_DIR`` point into ``<run>/wandb/``
  until :func:`log_run` finishes the W&B run and restores them;

and after testing :func:`log_run` logs the resolved config, the fixed sample ids as
side-by-side panels ``input | output | target`` (one panel per id, all at the same step, one key
per protocol) and the means of ``rows.csv`` per metric and protocol into the run summary. During
training, :class:`ValidationPanels` logs the same panels for fixed validation ids when the data
has a validation split.

Offline by default: ``qmap`` sets ``WANDB_MODE=offline`` unless the user set it, so nothing
leaves the machine (an air-gapped cluster with a stored key would otherwise hang); runs land in
``<run>/wandb/offline-run-*`` and sync later with ``wandb sync``. ``WANDB_MODE=online`` is the
only way to log online.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L

from benchmark import results
from reports.wandb_export import point_env_to, restore_env

__all__ = ["ValidationPanels", "configure", "log_run", "panel", "wandb_logger"]

_PROJECT = "qmap-bench"


def _is_wandb(entry: Any) -> bool:
    return isinstance(entry, Mapping) and str(entry.get("class_path", "")).endswith("WandbLogger")


def _logger_entries(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    logger = (config.get("trainer") or {}).get("logger")
    entries = logger if isinstance(logger, list) else [logger]
    return [entry for entry in entries if _is_wandb(entry)]


def configure(config: dict[str, Any], info: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    """Name, group, tag and place every ``WandbLogger`` of a run's config (a copy is returned).

    Args:
        config: the run's composed config (``config.yaml``).
        info: its run.json (``run_id``, ``suite``, ``label``, ``dataset``, ``quick``).
        run_dir: the run folder; W&B files go to ``run_dir/wandb/``.

    Returns:
        ``config`` itself when it has no WandbLogger, else an updated copy.
    """
    if not _logger_entries(config):
        return config
    config = copy.deepcopy(config)
    model_class = str((config.get("model") or {}).get("class_path", "")).rsplit(".", 1)[-1]
    tags = [f"method:{model_class}", f"label:{info.get('label')}", f"dataset:{info.get('dataset')}"]
    if info.get("quick"):
        tags.append("quick")
    for entry in _logger_entries(config):
        args = entry.setdefault("init_args", {})
        args.setdefault("project", _PROJECT)
        args.update({"save_dir": str(run_dir), "name": str(info.get("run_id") or run_dir.name),
                     "group": str(info.get("suite", "adhoc")), "tags": tags})
    # A previous run that crashed before log_run would otherwise absorb this run's logging.
    _finish_active_run()
    if os.environ.get("WANDB_MODE") != "disabled":  # disabled W&B writes nothing: no folders either
        point_env_to(run_dir / "wandb")
    return config


def _finish_active_run() -> None:
    import sys

    wandb = sys.modules.get("wandb")  # only if something already imported it
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=1)


def wandb_logger(trainer: L.Trainer) -> Any:
    """The trainer's ``WandbLogger``, or None."""
    from lightning.pytorch.loggers import WandbLogger

    return next((logger for logger in trainer.loggers if isinstance(logger, WandbLogger)), None)


def panel(images: list[Any], gap: int = 4) -> Any:
    """Side-by-side uint8 RGB panel (same height; missing images drawn grey) with white gaps."""
    import numpy as np

    height = max(image.shape[0] for image in images if image is not None)
    width = max(image.shape[1] for image in images if image is not None)
    tiles = [image if image is not None else np.full((height, width, 3), 128, np.uint8) for image in images]
    spacer = np.full((height, gap, 3), 255, np.uint8)
    row = []
    for index, tile in enumerate(tiles):
        if tile.shape[0] != height:
            tile = np.pad(tile, ((0, height - tile.shape[0]), (0, 0), (0, 0)), constant_values=255)
        row += [tile] + ([spacer] if index < len(tiles) - 1 else [])
    return np.concatenate(row, axis=1)


def _sample_panels(info: Mapping[str, Any], run_dir: Path) -> dict[str, tuple[list[Any], list[str]]]:
    """``protocol -> (panels, captions)`` of the saved samples (input | output | target)."""
    from reports.samples import sample_keys, thumbnail, triplet

    folder = run_dir / results.SAMPLES_DIR
    out = {}
    for protocol in sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        panels, captions = [], []
        for key in sample_keys([run_dir], protocol):
            source, output, target = triplet(info, run_dir, protocol, key, list(run_dir.resolve().parents))
            panels.append(panel([thumbnail(image, 512) for image in (source, output, target)]))
            captions.append(f"{key}: input | output | target (protocol {protocol})")
        if panels:
            out[protocol] = (panels, captions)
    return out


def _summary(run_dir: Path) -> dict[str, float]:
    """Mean per metric and protocol of the run's rows (NaN metrics left out)."""
    from reports.tables import summary

    stats = summary(results.read_rows(run_dir / results.ROWS_FILE), partial="mark")
    return {f"test/{r.metric}_{r.protocol}": float(r.mean) for r in stats.itertuples() if r.status == "ok"}


def log_run(trainer: L.Trainer, info: Mapping[str, Any], run_dir: Path) -> bool:
    """Log config, sample panels and the test summary of a finished run, then finish W&B.

    Returns:
        True when something was logged (a WandbLogger exists and this is rank 0).
    """
    logger = wandb_logger(trainer)
    if logger is None:
        return False
    try:
        if not trainer.is_global_zero:
            return False
        experiment = logger.experiment
        config = results.read_json(run_dir / results.RUN_FILE) if (run_dir / results.RUN_FILE).exists() else {}
        from benchmark.suite import load_yaml

        experiment.config.update({"qmap_config": load_yaml(run_dir / results.CONFIG_FILE),
                                  "qmap_run": {k: config.get(k, info.get(k)) for k in
                                               ("run_id", "suite", "label", "dataset", "seed", "config_hash",
                                                "git_commit", "quick", "notes", "proxy_notes")}},
                                 allow_val_change=True)
        for protocol, (panels, captions) in _sample_panels(info, run_dir).items():
            logger.log_image(key=f"samples/{protocol}", images=panels, caption=captions, step=trainer.global_step)
        experiment.summary.update({**_summary(run_dir),
                                   **{f"durations/{k}": v for k, v in (info.get("durations") or {}).items()},
                                   "params": info.get("params"), "iterations": info.get("iterations")})
        experiment.finish()
    finally:
        restore_env()
    return True


class ValidationPanels(L.Callback):
    """Logs ``input | output | target`` panels of fixed validation ids after each validation.

    The ids are the first ``num_samples`` validation keys in sorted order, fixed for the whole
    run, and every epoch's panels are logged together at the trainer's global step. Nothing
    happens without a WandbLogger or without validation data.

    Args:
        num_samples: how many validation ids to show.
        long_side: panels are downscaled (area) to this long side before logging.
    """

    def __init__(self, num_samples: int = 4, long_side: int = 384) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.long_side = long_side
        self._keys: set[str] | None = None
        self._panels: dict[str, Any] = {}

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._panels = {}
        if self._keys is None:
            loaders = trainer.val_dataloaders
            loaders = loaders if isinstance(loaders, list | tuple) else [loaders]
            keys = [k for loader in loaders for k in getattr(getattr(loader, "dataset", None), "keys", [])]
            self._keys = set(sorted(keys)[: self.num_samples])

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if not self._keys or not isinstance(outputs, dict) or "target" not in batch or wandb_logger(trainer) is None:
            return
        from datamodules.io import to_uint8
        from reports.samples import thumbnail

        for index, key in enumerate(batch["key"]):
            if key in self._keys:
                images = [to_uint8(t[index].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
                          for t in (batch["input"], outputs["pred"], batch["target"])]
                self._panels[key] = panel([thumbnail(image, self.long_side) for image in images])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = wandb_logger(trainer)
        if logger is None or not self._panels or not trainer.is_global_zero or trainer.sanity_checking:
            return
        keys = sorted(self._panels)
        logger.log_image(key="val/samples", images=[self._panels[k] for k in keys],
                         caption=[f"{k}: input | output | target" for k in keys], step=trainer.global_step)
