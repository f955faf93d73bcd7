"""``qmap report --wandb``: the report's tables, preference matrices and plots as a W&B run.

wandb is imported only inside :func:`export_report`. The report run joins the suite's group
(``group=<suite>``, ``job_type="report"``, name ``report-<suite>``) so that it sits beside the
suite's training runs in the W&B UI. Offline unless ``WANDB_MODE=online`` is set explicitly:
files land in ``<report folder>/wandb/offline-run-*`` and sync later with ``wandb sync``.

The four wandb folder variables (``WANDB_DIR``, ``WANDB_CACHE_DIR``, ``WANDB_DATA_DIR``,
``WANDB_CONFIG_DIR``) are pointed into the output folder while a run is open, so that nothing is
written to the home directory; :func:`restore_env` puts the user's values back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["WANDB_ENV_DIRS", "export_report", "point_env_to", "restore_env"]

WANDB_ENV_DIRS: tuple[str, ...] = ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR")
PROJECT = "qmap-bench"
_saved_env: dict[str, str | None] | None = None  # the user's values while a run owns the variables


def point_env_to(folder: Path) -> None:
    """Point wandb's four folders into ``folder`` (created); :func:`restore_env` undoes it."""
    global _saved_env
    if _saved_env is None:
        _saved_env = {name: os.environ.get(name) for name in WANDB_ENV_DIRS}
    for name in WANDB_ENV_DIRS:
        target = Path(folder) / name.removeprefix("WANDB_").lower()
        target.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(target)


def restore_env() -> None:
    """Put back the wandb folder variables as they were before :func:`point_env_to`."""
    global _saved_env
    if _saved_env is None:
        return
    for name, value in _saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved_env = None


def export_report(out_dir: str | Path, suite: str, tables: Sequence[tuple[str, pd.DataFrame]],
                  images: Sequence[tuple[str, Path, str]], config: Mapping[str, Any] | None = None,
                  notes: str = "") -> Path:
    """Log tables (``wandb.Table``) and PNG plots to one report run; returns its local folder.

    Args:
        out_dir: the report folder; W&B files go to ``out_dir/wandb/``.
        suite: the suite name (W&B group).
        tables: ``(key, frame)``; a key names the panel (``tables/demo``,
            ``preference/demo/matrix``).
        images: ``(key, PNG path, caption)``.
        config: logged as the run config (e.g. runs folder, layouts, bootstrap settings).
        notes: the run's notes (e.g. that preference panels come from virtual raters).
    """
    os.environ.setdefault("WANDB_MODE", "offline")  # qmap sets it too; this covers direct calls
    out_dir = Path(out_dir)
    point_env_to(out_dir / "wandb")
    try:
        import wandb

        run = wandb.init(project=PROJECT, group=suite, job_type="report", name=f"report-{suite}",
                         dir=str(out_dir), tags=["report", f"suite:{suite}"], config=dict(config or {}),
                         notes=notes or None)
        payload: dict[str, Any] = {key: wandb.Table(dataframe=frame.reset_index(drop=True)) for key, frame in tables}
        payload |= {key: wandb.Image(str(path), caption=caption) for key, path, caption in images}
        run.log(payload, step=0)
        folder = Path(run.dir).parent
        run.finish()
    finally:
        restore_env()
    return folder
