"""Synthetic finished runs for the report tests: rows, run.json, samples and a tiny dataset.

No torch: the images are written with cv2 and the rows by ``benchmark.results``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from benchmark.results import HIGHER_IS_BETTER, make_run_id, write_json, write_rows

SUITE = "rep"
KEYS = ("a0001", "a0002", "a0003", "a0004", "a0005", "a0006")
SIZES = {"a0001": (40, 60), "a0002": (64, 48), "a0003": (600, 90)}  # a0003: long side > 512
# Label -> PSNR offset (dB) over the identity baseline: upe is best on every image.
QUALITY = {"identity": 0.0, "clahe": 1.0, "hdrnet": 1.5, "upe": 3.0}
METRICS = ("psnr", "ssim", "delta_e76", "lpips", "seconds")


def write_dataset(root: Path, keys=KEYS, seed: int = 0) -> Path:
    """Paired layout ``root/input``, ``root/target`` with smooth random colour images."""
    rng = np.random.default_rng(seed)
    for folder in ("input", "target"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for key in keys:
        h, w = SIZES.get(key, (32, 48))
        base = cv2.resize(rng.uniform(0, 255, (4, 4, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        image = np.clip(base, 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / "input" / f"{key}.png"), image)
        cv2.imwrite(str(root / "target" / f"{key}.png"), 255 - image)
    return root


def _value(label: str, metric: str, key_index: int, seed: int, protocol: str) -> float:
    wiggle = 0.1 * ((key_index * 7 + seed * 3 + len(label)) % 5)  # differs per image, not per rank
    quality = QUALITY[label] + wiggle + (0.5 if protocol == "d" else 0.0)
    return {
        "psnr": 20.0 + quality,
        "ssim": 0.70 + 0.02 * quality,
        "delta_e76": 15.0 - quality,
        "lpips": float("nan"),
        "seconds": 0.001 * (1 + 10 * QUALITY[label]),
    }[metric]


def run_rows(label: str, dataset: str, seed: int, protocols=("d", "f"), keys=KEYS) -> pd.DataFrame:
    rows = []
    for protocol in protocols:
        for index, key in enumerate(keys):
            for metric in METRICS:
                rows.append({
                    "suite": SUITE, "run_id": make_run_id(label, dataset, seed), "label": label,
                    "method": label.upper(), "dataset": dataset, "protocol": protocol, "split": "test",
                    "seed": seed, "key": key, "frame": 0, "metric": metric,
                    "value": _value(label, metric, index, seed, protocol),
                    "higher_is_better": HIGHER_IS_BETTER[metric],
                })
    return pd.DataFrame(rows)


def write_runs(base: Path, labels=tuple(QUALITY), datasets=("demo",), seeds=(0,), protocols=("d", "f"),
               proxy: dict[str, list[str]] | None = None, samples: bool = True, data_root: Path | None = None) -> Path:
    """A suite folder ``base/runs/rep`` with one done run per label × dataset × seed."""
    suite_dir = base / "runs" / SUITE
    data_root = data_root or write_dataset(base / "data")
    for dataset in datasets:
        for seed in seeds:
            for order, label in enumerate(labels):
                folder = suite_dir / make_run_id(label, dataset, seed)
                write_rows(folder / "rows.csv", run_rows(label, dataset, seed, protocols))
                write_json(folder / "run.json", {
                    "status": "done", "suite": SUITE, "run_id": make_run_id(label, dataset, seed), "label": label,
                    "method": label.upper(), "dataset": dataset, "split": "test", "seed": seed, "order": order,
                    "versions": {"torch": "2.14.1", "torchmetrics": "1.9.0", "lpips": "0.1.4"},
                    "device": "cpu (2 cores)", "quick": False, "notes": [], "proxy_notes": (proxy or {}).get(label, []),
                    "data": {"root": str(data_root), "dataset": dataset, "split": "test", "protocols": list(protocols)},
                    "unavailable": {"lpips": "weights missing (test)"},
                })
                if samples:
                    for protocol in protocols:
                        for key in KEYS[:3]:
                            write_sample(folder, data_root, protocol, key, QUALITY[label])
    return suite_dir


def write_sample(run_dir: Path, data_root: Path, protocol: str, key: str, shift: float) -> None:
    """An 8-bit output as the Evaluator saves it; protocol d at long side 512 (area resize)."""
    image = cv2.imread(str(data_root / "input" / f"{key}.png"))
    if protocol == "d" and max(image.shape[:2]) > 512:
        scale = 512 / max(image.shape[:2])
        image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
    out = np.clip(image.astype(np.float32) + 10 * shift, 0, 255).astype(np.uint8)
    path = run_dir / "samples" / protocol / f"{key}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), out)
