"""Synthetic finished runs for the report tests: rows, run.json, samples and a tiny dataset.

Image runs (:func:`write_runs`) and video runs (:func:`write_video_runs`: several frames per
video, videos of different lengths, temporal metrics, ``checkpoint_from`` / ``init_from``,
samples and ``references/``). No torch: the images are written with cv2 and the rows by
``benchmark.results``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from collections.abc import Callable, Mapping, Sequence

from benchmark.results import HIGHER_IS_BETTER, REFERENCES_DIR, SAMPLES_DIR, make_run_id, write_json, write_rows

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
               proxy: dict[str, list[str]] | None = None, samples: bool = True, data_root: Path | None = None,
               references: bool = False) -> Path:
    """A suite folder ``base/runs/rep`` with one done run per label × dataset × seed.

    ``references``: also save ``references/<protocol>/<key>/{input,target}.png`` beside each
    sample, as the Evaluator now does (input and target as scored at that protocol).
    """
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
                            if references:
                                write_references(folder, data_root, protocol, key)
    return suite_dir


def _scored(image: np.ndarray, protocol: str) -> np.ndarray:
    """``image`` as scored at ``protocol``: d is long side 512 (area), others unchanged."""
    if protocol == "d" and max(image.shape[:2]) > 512:
        scale = 512 / max(image.shape[:2])
        image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
    return image


def write_references(run_dir: Path, data_root: Path, protocol: str, key: str) -> None:
    """``references/<protocol>/<key>/{input,target}.png`` of an image run (as scored)."""
    folder = run_dir / REFERENCES_DIR / protocol / key
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("input", "target"):
        image = cv2.imread(str(data_root / name / f"{key}.png"))
        cv2.imwrite(str(folder / f"{name}.png"), _scored(image, protocol))


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


# ---------------------------------------------------------------------------------------------
# Video runs

VIDEO_DATASET = "demo_video"
WEAK_VIDEO_DATASET = "demo_video_weak"
# Video id -> number of frames: different lengths, so per-video means differ from pooled frames.
VIDEO_LENGTHS = {"v001": 2, "v002": 4, "v003": 7}
# Label -> quality offset on video (higher is better everywhere).
VIDEO_QUALITY = {"identity": 0.0, "upe": 1.0, "dacal_rec": 2.0}
VIDEO_METRICS = ("psnr", "ssim", "warp_error", "flicker", "seconds")
TEMPORAL = ("warp_error", "flicker")
# data.evaluation as datamodules.video describes it (copied: that module imports torch).
EVALUATION_ALIGNED = "pixel-aligned pairs: per-frame full-reference scores and temporal scores"
EVALUATION_WEAK = ("weakly aligned pairs: no full-reference score (pixels do not correspond); temporal scores only "
                   "(warp error from the input's optical flow, flicker from global statistics)")
ValueFn = Callable[[str, str, int, int, int], float]  # (label, metric, video index, frame, seed) -> value


def video_value(label: str, metric: str, video: int, frame: int, seed: int) -> float:
    """Default synthetic value: better with VIDEO_QUALITY, varying per video and frame."""
    quality = VIDEO_QUALITY.get(label, 0.0)
    wiggle = 0.1 * ((video * 3 + frame + seed) % 4)
    return {
        "psnr": 20.0 + quality + wiggle,
        "ssim": 0.70 + 0.02 * (quality + wiggle),
        "warp_error": 0.004 / (1.0 + quality) * (1.0 + wiggle),
        "flicker": 3.0 / (1.0 + quality) + wiggle,
        "seconds": 0.002 * (1.0 + quality),
    }[metric]


def video_rows(label: str, dataset: str = VIDEO_DATASET, seed: int = 0, aligned: bool = True,
               lengths: Mapping[str, int] = VIDEO_LENGTHS, value: ValueFn = video_value,
               metrics: Sequence[str] = VIDEO_METRICS) -> pd.DataFrame:
    """Rows of one video run (protocol f): per-frame metrics for frames 0..N-1, temporal metrics
    for frames 1..N-1 (the pair t-1, t); weakly aligned runs have no full-reference rows."""
    rows = []
    for index, (key, length) in enumerate(lengths.items()):
        for metric in metrics:
            if not aligned and metric not in (*TEMPORAL, "seconds"):
                continue
            for frame in range(1 if metric in TEMPORAL else 0, length):
                rows.append({
                    "suite": SUITE, "run_id": make_run_id(label, dataset, seed), "label": label,
                    "method": label.upper(), "dataset": dataset, "protocol": "f", "split": "test",
                    "seed": seed, "key": key, "frame": frame, "metric": metric,
                    "value": value(label, metric, index, frame, seed),
                    "higher_is_better": HIGHER_IS_BETTER[metric],
                })
    return pd.DataFrame(rows)


def _video_frame(key: str, seed: int) -> np.ndarray:
    """A small BGR frame, different per video."""
    rng = np.random.default_rng(sum(map(ord, key)) + seed)
    base = cv2.resize(rng.uniform(0, 255, (3, 3, 3)).astype(np.float32), (32, 24), interpolation=cv2.INTER_CUBIC)
    return np.clip(base, 0, 255).astype(np.uint8)


def write_video_runs(base: Path, dataset: str = VIDEO_DATASET, labels: Sequence[str] = tuple(VIDEO_QUALITY),
                     seeds: Sequence[int] = (0,), aligned: bool = True, has_motion: bool = True,
                     image_dataset: str = "demo", checkpoint_from: Sequence[str] = ("upe",),
                     init_from: Mapping[str, str] | None = None, lengths: Mapping[str, int] = VIDEO_LENGTHS,
                     value: ValueFn = video_value, samples: bool = True, references: bool = True,
                     order_start: int = 10, quick: bool = True) -> Path:
    """Done video runs in the suite folder ``base/runs/rep`` (shared with :func:`write_runs`).

    Args:
        checkpoint_from: labels that scored the image checkpoint of their ``image_dataset`` run
            frame by frame (run.json ``checkpoint_from``).
        init_from: fine-tuned label -> label whose image checkpoint it started from (run.json
            ``init_from``); default ``{"dacal_rec": "upe"}`` when both labels are given.
        samples / references: save the middle frame of the first two videos as
            ``samples/f/<key>.png`` and its input/target as ``references/f/<key>/``.
    """
    if init_from is None:
        init_from = {"dacal_rec": "upe"} if {"dacal_rec", "upe"} <= set(labels) else {}
    suite_dir = base / "runs" / SUITE
    for seed in seeds:
        for order, label in enumerate(labels):
            run_id = make_run_id(label, dataset, seed)
            folder = suite_dir / run_id
            write_rows(folder / "rows.csv", video_rows(label, dataset, seed, aligned, lengths, value))
            info = {
                "status": "done", "suite": SUITE, "run_id": run_id, "label": label, "method": label.upper(),
                "dataset": dataset, "split": "test", "seed": seed, "order": order_start + order,
                "versions": {"torch": "2.14.1", "torchmetrics": "1.9.0", "lpips": "0.1.4"},
                "device": "cpu (2 cores)", "quick": quick, "notes": [], "proxy_notes": [],
                "data": {"root": str(base / "no_such_video_root"), "dataset": dataset, "split": "test",
                         "protocols": ["f"], "kind": "video", "aligned": aligned, "has_motion": has_motion,
                         "evaluation": EVALUATION_ALIGNED if aligned else EVALUATION_WEAK},
            }
            if label in checkpoint_from:
                source = make_run_id(label, image_dataset, seed)
                info["checkpoint_from"] = {"label": label, "dataset": image_dataset, "run_id": source,
                                           "checkpoint": f"runs/{SUITE}/{source}/checkpoints/last.ckpt"}
            if label in init_from:
                source = make_run_id(init_from[label], image_dataset, seed)
                info["init_from"] = {"label": init_from[label], "dataset": image_dataset, "run_id": source,
                                     "checkpoint": f"runs/{SUITE}/{source}/checkpoints/last.ckpt"}
            write_json(folder / "run.json", info)
            if samples:
                for key in list(lengths)[:2]:
                    frame = _video_frame(key, 0)
                    shift = 20 * VIDEO_QUALITY.get(label, 0.0)
                    path = folder / SAMPLES_DIR / "f" / f"{key}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(path), np.clip(frame.astype(np.float32) + shift, 0, 255).astype(np.uint8))
                    if references:
                        refs = folder / REFERENCES_DIR / "f" / key
                        refs.mkdir(parents=True, exist_ok=True)
                        cv2.imwrite(str(refs / "input.png"), frame)
                        cv2.imwrite(str(refs / "target.png"), 255 - frame)
    return suite_dir
