"""Result rows, run ids, run metadata and atomic writes.

Everything the runner produces lands in a run folder ``runs/<suite>/<run_id>/`` holding
``rows.csv`` (per-image, per-metric rows in long format), ``run.json`` (metadata and status),
``config.yaml`` (the resolved configuration) and ``samples/``. This module is torch-free so
that ``reports`` can read runs on a machine without torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

ROW_COLUMNS: tuple[str, ...] = (
    "suite",
    "run_id",
    "label",
    "method",
    "dataset",
    "protocol",
    "split",
    "seed",
    "key",
    "frame",
    "metric",
    "value",
    "higher_is_better",
)

# Direction of every metric name the suite writes. Reports use it for bolding and win rates.
HIGHER_IS_BETTER: dict[str, bool] = {
    "psnr": True,
    "ssim": True,
    "ms_ssim": True,
    "delta_e76": False,
    "delta_e2000": False,
    "lpips": False,
    "seconds": False,
    "warp_error": False,
    "flicker": False,
}

ROWS_FILE = "rows.csv"
RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
SAMPLES_DIR = "samples"
OUTPUTS_DIR = "outputs"
# Input and target of each sample, as scored: references/<protocol>/<key>/{input,target}.png
# (sample grids read them, so they need no access to the dataset).
REFERENCES_DIR = "references"


def make_run_id(label: str, dataset: str, seed: int) -> str:
    """Return the run id ``{label}__{dataset}__s{seed}`` (design.md section 4)."""
    for part, name in ((label, "label"), (dataset, "dataset")):
        if not part or "__" in part or "/" in part or os.sep in part:
            raise ValueError(f"{name} {part!r} must be non-empty and contain neither '__' nor '/'")
    return f"{label}__{dataset}__s{int(seed)}"


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of a configuration, independent of key order."""
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Mapping[str, Any]) -> None:
    """Atomically write ``data`` as indented JSON."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> dict[str, Any]:
    """Read a JSON file, naming the file when it is malformed."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def rows_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build a DataFrame with exactly the row columns, in schema order."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pd.DataFrame(columns=list(ROW_COLUMNS))
    missing = [c for c in ROW_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"result rows lack columns {missing}")
    return frame[list(ROW_COLUMNS)]


def write_rows(path: str | Path, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> None:
    """Atomically write result rows as CSV (``n/a`` metrics are written as empty values)."""
    frame = rows if isinstance(rows, pd.DataFrame) else rows_frame(rows)
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.10g"))


def read_rows(path: str | Path) -> pd.DataFrame:
    """Read one ``rows.csv`` and check its schema; the error names the file."""
    path = Path(path)
    frame = pd.read_csv(path, dtype={"key": str, "protocol": str, "split": str, "label": str})
    missing = [c for c in ROW_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a result-rows file, columns {missing} are missing")
    return frame


def load_runs(root: str | Path, only_done: bool = True) -> pd.DataFrame:
    """Concatenate the rows of every run folder below ``root``.

    Args:
        root: a suite folder (``runs/<suite>``) or a folder of suites.
        only_done: skip runs whose ``run.json`` does not say ``done`` (crashed or running).
    """
    root = Path(root)
    frames = []
    for rows_path in sorted(root.rglob(ROWS_FILE)):
        info_path = rows_path.with_name(RUN_FILE)
        if only_done and (not info_path.exists() or read_json(info_path).get("status") != "done"):
            continue
        frames.append(read_rows(rows_path))
    if not frames:
        return pd.DataFrame(columns=list(ROW_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def load_run_infos(root: str | Path) -> list[dict[str, Any]]:
    """Read every ``run.json`` below ``root`` (each gains a ``path`` entry)."""
    infos = []
    for info_path in sorted(Path(root).rglob(RUN_FILE)):
        info = read_json(info_path)
        info["path"] = str(info_path.parent)
        infos.append(info)
    return infos


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The current git commit (with ``-dirty`` when the tree has changes), or None outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def package_versions(names: Iterable[str] = ("torch", "torchvision", "torchmetrics", "lpips", "lightning",
                                             "scikit-image", "opencv-python-headless", "numpy")) -> dict[str, str]:
    """Installed versions of the packages that tables depend on (metadata only; imports nothing)."""
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions
