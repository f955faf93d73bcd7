"""Method tables from result rows: summary statistics, Markdown, LaTeX and CSV writers, captions.

Pure pandas/numpy: importing this module never imports torch (``qmap report`` must start fast and
work on a machine without torch).

How a cell is computed (design.md sections 4 and 5):

1. rows are grouped by (label, dataset, protocol, metric, seed); within a group the rows of one
   key are averaged first (an image has one row, frame 0; a video has one row per frame, or per
   consecutive frame pair for the temporal metrics ``warp_error`` and ``flicker``), then the
   per-key means are averaged over keys. So PSNR is "per image, then averaged", never pooled,
   and a video counts once however many frames it has ("per video, then over videos"); for
   image rows this is exactly the plain mean over images;
2. those per-seed means are averaged over seeds; the spread is the *sample* standard deviation
   over seeds (``ddof=1``), shown only when a method has more than one seed.

Video datasets (run.json ``data.kind == "video"``, or rows with ``frame > 0``) print the time
column as ``s/frame`` and their captions say how frames were scored and averaged, which motion
the warp error used, whether the pairs are only weakly aligned (then there is no full-reference
column at all), and which runs reused an image checkpoint (``checkpoint_from``) or were
fine-tuned from one (``init_from``). :func:`comparison_tables` compares each fine-tuned video
run with the per-frame run of the label it was initialised from (per-video wins/ties/losses).

Missing values (``NaN`` = "n/a", e.g. LPIPS without its backbone weights):

- all values of a (label, dataset, protocol, metric) group NaN: the cell reads ``n/a``;
- some NaN and some numbers: never averaged silently. :func:`summary` raises ``ValueError``
  naming the groups (``partial="raise"``, the default), or with ``partial="mark"`` leaves the
  mean NaN, sets ``status`` to ``"incomplete"`` and the cell reads ``incomplete (k/N n/a)``.

The best value per column is bold: compared after rounding to the displayed precision (so cells
that read the same are tied and both bold), respecting ``higher_is_better``, ignoring ``n/a``,
and only when at least two methods have a value in that column.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.results import HIGHER_IS_BETTER, ROW_COLUMNS, atomic_write_text, load_run_infos, load_runs

__all__ = [
    "COLUMN_NAMES",
    "DIFFERENCE_ROW",
    "DISPLAY_NAMES",
    "LATEX_NAMES",
    "LAYOUTS",
    "METRIC_ORDER",
    "NOT_SIGNIFICANT_MARK",
    "PROTOCOLS",
    "PER_FRAME_SECONDS",
    "PROTOCOL_ORDER",
    "PROXY_MARK",
    "SUMMARY_COLUMNS",
    "VIDEO_METRICS",
    "WEAKLY_ALIGNED_NOTE",
    "WINS_ROW",
    "Layout",
    "NoFinishedRunsError",
    "Table",
    "Comparison",
    "applicable_layouts",
    "caption",
    "column_name",
    "comparison_tables",
    "display_name",
    "is_video",
    "dataset_tables",
    "format_value",
    "label_order",
    "latex_escape",
    "per_key_values",
    "layout_tables",
    "method_table",
    "proxy_labels",
    "significance_marks",
    "summary",
    "to_csv",
    "to_html",
    "to_latex",
    "to_markdown",
    "write_comparison",
    "write_layouts",
    "write_report",
]

# Column order of a method table; metrics and protocols not listed follow in order of appearance.
METRIC_ORDER: tuple[str, ...] = (
    "psnr", "ssim", "ms_ssim", "delta_e76", "delta_e2000", "lpips", "warp_error", "flicker", "seconds",
)
# Temporal video metrics: one row per consecutive frame pair (frame = t for the pair t-1, t).
VIDEO_METRICS: tuple[str, ...] = ("warp_error", "flicker")
PROTOCOL_ORDER: tuple[str, ...] = ("d", "f", "100")

# Seed-style column ids (``PSNR_d``, ``seconds_f``): used in CSV headers and by column_name().
COLUMN_NAMES: dict[str, str] = {
    "psnr": "PSNR",
    "ssim": "SSIM",
    "ms_ssim": "MS-SSIM",
    "delta_e76": "ΔE76",
    "delta_e2000": "ΔE2000",
    "lpips": "LPIPS",
    "warp_error": "E_warp",
    "flicker": "flicker",
    "seconds": "seconds",
}
# Names shown in Markdown headers and captions (the time column of a video dataset: s/frame).
DISPLAY_NAMES: dict[str, str] = {**COLUMN_NAMES, "seconds": "s/img"}
PER_FRAME_SECONDS = "s/frame"
# Names shown in LaTeX headers (already LaTeX, not escaped again).
LATEX_NAMES: dict[str, str] = {
    "psnr": "PSNR",
    "ssim": "SSIM",
    "ms_ssim": "MS-SSIM",
    "delta_e76": r"$\Delta E_{76}$",
    "delta_e2000": r"$\Delta E_{2000}$",
    "lpips": "LPIPS",
    "warp_error": r"$E_{\mathrm{warp}}$",
    "flicker": "flicker",
    "seconds": "s/img",
}

# What each protocol means, for captions (design.md section 5).
PROTOCOLS: dict[str, str] = {
    "d": "d = long side 512 with area interpolation (rounded to nearest)",
    "f": "f = full resolution",
    "100": "100 = DPED 100×100 test patches",
}

# Display precision: ("decimals", n) or ("significant", n).
_PRECISION: dict[str, tuple[str, int]] = {
    "psnr": ("decimals", 2),
    "ssim": ("decimals", 4),
    "ms_ssim": ("decimals", 4),
    "lpips": ("decimals", 4),
    "delta_e76": ("decimals", 2),
    "delta_e2000": ("decimals", 2),
    "warp_error": ("significant", 3),
    "flicker": ("decimals", 2),
    "seconds": ("significant", 3),
}
_DEFAULT_PRECISION = ("significant", 4)

# Scoring conventions printed in captions, by the metric they concern (None: always printed).
_CONVENTIONS: tuple[tuple[str | None, str], ...] = (
    (None, "outputs clamped to [0, 1] and quantised as round(x·255) before scoring"),
    ("psnr", "PSNR per image then averaged (RGB, never pooled MSE)"),
    ("ssim", "SSIM Gaussian 11×11, σ 1.5, valid region, RGB mean, data range 255"),
    ("ms_ssim", "MS-SSIM as DPED's code computes it on 100×100 patches"),
    ("delta_e76", "ΔE76 in CIELAB (D65) from 8-bit sRGB"),
    ("delta_e2000", "ΔE2000 in CIELAB (D65) from 8-bit sRGB"),
    ("lpips", "LPIPS alex v0.1 with inputs mapped to [-1, 1]"),
    ("warp_error", "E_warp (warping error, Lai et al. 2018): mean squared difference in [0, 1] units between "
                   "output frame t and output frame t-1 warped by the motion, over non-occluded pixels"),
    ("flicker", "flicker: mean over channels of the absolute difference between the frame-to-frame change "
                "of the mean output and that of the mean target, in 8-bit levels"),
)

# Packages whose versions every caption records: (caption name, run.json key prefixes).
_VERSION_PACKAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("torch", ("torch",)),
    ("torchmetrics", ("torchmetrics",)),
    ("lpips", ("lpips",)),
    ("scikit-image", ("scikit-image", "skimage")),
    ("opencv", ("opencv-python-headless", "opencv-python", "opencv-contrib-python", "opencv", "cv2")),
)

# Marks shared by every table writer and by the labels of matrices and plots (reports/build.py).
PROXY_MARK = "‡"  # run.json has proxy_notes: the configuration stands in for the paper's
NOT_SIGNIFICANT_MARK = "†"  # the difference to the column's best is not significant

DEMO_NOTE = (
    "smoke-scale demo data built from photos shipped in scikit-image/scikit-learn wheels; "
    "not comparable to paper numbers"
)

SUMMARY_COLUMNS: tuple[str, ...] = (
    "label",
    "dataset",
    "protocol",
    "metric",
    "mean",
    "std",
    "n_seeds",
    "n_images",
    "n_missing",
    "n_values",
    "status",
    "higher_is_better",
)

_GROUP = ["label", "dataset", "protocol", "metric"]


class NoFinishedRunsError(ValueError):
    """Raised when a runs folder holds no finished run to report."""


# --------------------------------------------------------------------------------------------
# Summary statistics
# --------------------------------------------------------------------------------------------


def _as_bool(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "1.0", "yes"):
        return True
    if text in ("false", "0", "0.0", "no"):
        return False
    return None


def _prepare(rows: pd.DataFrame) -> pd.DataFrame:
    """Check the schema and normalise dtypes (protocol/label/dataset as text, value as float)."""
    missing = [c for c in ROW_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"result rows lack columns {missing}")
    frame = rows[list(ROW_COLUMNS)].copy()
    for column in ("suite", "run_id", "label", "method", "dataset", "protocol", "split", "key", "metric"):
        frame[column] = frame[column].map(_text, na_action="ignore")
    try:
        frame["value"] = pd.to_numeric(frame["value"], errors="raise").astype(float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"result rows hold non-numeric values ({err}); n/a must be written as NaN") from err
    return frame


def _text(value: Any) -> str:
    """Text form of an id-like cell: 100.0 (a CSV float) becomes "100"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_rows(frame: pd.DataFrame) -> None:
    """Refuse rows that would be averaged wrongly: duplicated images, one seed from two runs."""
    image = ["run_id", "protocol", "metric", "key", "frame"]
    dup = frame.duplicated(image, keep=False)
    if dup.any():
        first = frame.loc[dup, image].iloc[0].to_dict()
        raise ValueError(
            f"{int(dup.sum())} result rows repeat an image (run, protocol, metric, key, frame), "
            f"e.g. {first}; de-duplicate by key before reporting (DDP padding?)"
        )
    runs = frame.groupby(["label", "dataset", "seed"], sort=False, dropna=False)["run_id"].nunique()
    several = runs[runs > 1]
    if len(several):
        label, dataset, seed = several.index[0]
        same = (frame.label == label) & (frame.dataset == dataset) & (frame.seed == seed)
        ids = sorted(frame.loc[same, "run_id"].unique())
        suites = sorted(frame.loc[frame.run_id.isin(ids), "suite"].astype(str).unique())
        raise ValueError(
            f"label {label!r} seed {seed} on dataset {dataset!r} comes from several runs {ids} "
            f"(suites {suites}); report one suite at a time"
        )


def summary(rows: pd.DataFrame, partial: str = "raise") -> pd.DataFrame:
    """Mean ± std over seeds of the per-seed means, per (label, dataset, protocol, metric).

    A per-seed mean averages the frames of each key first, then the keys (module docstring):
    images as before, videos "per video, then over videos".

    Args:
        rows: result rows in long format (``benchmark.results.ROW_COLUMNS``).
        partial: what to do when a group mixes NaN ("n/a") and numbers: ``"raise"`` (default)
            raises ``ValueError`` naming the groups; ``"mark"`` keeps the group with a NaN mean
            and ``status == "incomplete"``.

    Returns:
        One row per group in order of first appearance, columns ``SUMMARY_COLUMNS``: ``mean``
        (mean of per-seed means), ``std`` (sample std over seeds, NaN with one seed),
        ``n_seeds``, ``n_images`` (distinct keys, i.e. images or videos, over all seeds), ``n_missing`` /
        ``n_values`` (NaN rows / all rows), ``status`` (``"ok"``, ``"n/a"`` when every value is
        NaN, ``"incomplete"``) and ``higher_is_better``.
    """
    if partial not in ("raise", "mark"):
        raise ValueError(f"partial must be 'raise' or 'mark', not {partial!r}")
    frame = _prepare(rows)
    if frame.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    _check_rows(frame)

    frame["is_nan"] = frame["value"].isna()
    # Frames within each key first (a video counts once), then keys; an image is one row per key.
    per_key = (
        frame.groupby([*_GROUP, "seed", "key"], sort=False, dropna=False)
        .agg(value=("value", "mean"), n_missing=("is_nan", "sum"), n_values=("value", "size"))
        .reset_index()
    )
    per_seed = (
        per_key.groupby([*_GROUP, "seed"], sort=False, dropna=False)
        .agg(value=("value", "mean"), n_missing=("n_missing", "sum"), n_values=("n_values", "sum"))
        .reset_index()
    )
    grouped = per_seed.groupby(_GROUP, sort=False, dropna=False)
    out = grouped.agg(
        mean=("value", "mean"),
        std=("value", "std"),
        n_seeds=("seed", "nunique"),
        n_missing=("n_missing", "sum"),
        n_values=("n_values", "sum"),
    ).reset_index()
    images = frame.groupby(_GROUP, sort=False, dropna=False)["key"].nunique().reset_index(name="n_images")
    out = out.merge(images, on=_GROUP, how="left", sort=False)
    hib = frame.groupby(_GROUP, sort=False, dropna=False)["higher_is_better"].agg(_first_bool).reset_index()
    out = out.merge(hib, on=_GROUP, how="left", sort=False)
    out["higher_is_better"] = [
        HIGHER_IS_BETTER.get(metric, True) if value is None else value
        for metric, value in zip(out["metric"], out["higher_is_better"], strict=True)
    ]

    out["n_missing"] = out["n_missing"].astype(int)
    out["n_values"] = out["n_values"].astype(int)
    out["status"] = np.where(
        out["n_missing"] == 0, "ok", np.where(out["n_missing"] == out["n_values"], "n/a", "incomplete")
    )
    bad = out["status"] != "ok"
    out.loc[bad, ["mean", "std"]] = np.nan
    incomplete = out[out["status"] == "incomplete"]
    if len(incomplete) and partial == "raise":
        where = "; ".join(
            f"{r.label} {column_name(r.metric, r.protocol)} on {r.dataset}: {r.n_missing} of {r.n_values} n/a"
            for r in incomplete.itertuples()
        )
        raise ValueError(
            f"some images have no value where others do ({where}); fix the runs, or pass "
            f"partial='mark' (qmap report --allow-incomplete) to report these cells as incomplete"
        )
    return out[list(SUMMARY_COLUMNS)].reset_index(drop=True)


def _first_bool(series: pd.Series) -> bool | None:
    for value in series:
        parsed = _as_bool(value)
        if parsed is not None:
            return parsed
    return None


# --------------------------------------------------------------------------------------------
# Names and number formatting
# --------------------------------------------------------------------------------------------


def column_name(metric: str, protocol: str) -> str:
    """Seed-style column id: ``column_name("psnr", "d") == "PSNR_d"``, ``"seconds_f"``, ``"ΔE76_d"``."""
    return f"{COLUMN_NAMES.get(metric, metric)}_{protocol}"


def display_name(metric: str, per_frame: bool = False) -> str:
    """Name shown in headers and captions; the time column of a video dataset reads ``s/frame``."""
    if per_frame and metric == "seconds":
        return PER_FRAME_SECONDS
    return DISPLAY_NAMES.get(metric, metric)


def _header(metric: str, protocol: str, per_frame: bool = False) -> str:
    return f"{display_name(metric, per_frame)}_{protocol}"


def _frame_numbers(frame: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(frame["frame"], errors="coerce")


def _video_infos(frame: pd.DataFrame, infos: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The run.json entries of ``frame``'s datasets whose ``data.kind`` is ``video``."""
    datasets = {str(d) for d in frame["dataset"].dropna()} if "dataset" in frame else set()
    out = []
    for info in infos:
        data = info.get("data") or {}
        dataset = info.get("dataset", data.get("dataset"))
        if str(data.get("kind", "")).lower() == "video" and (dataset is None or str(dataset) in datasets):
            out.append(info)
    return out


def is_video(frame: pd.DataFrame, infos: Iterable[Mapping[str, Any]] = ()) -> bool:
    """Whether rows are of a video dataset: run.json ``data.kind == "video"``, a row with
    ``frame > 0`` or a temporal metric (``warp_error``, ``flicker``)."""
    if _video_infos(frame, infos):
        return True
    if frame.empty:
        return False
    return bool((_frame_numbers(frame) > 0).any() or frame["metric"].isin(VIDEO_METRICS).any())


def _round(metric: str, value: float) -> float:
    """``value`` rounded as it is displayed (used to find ties for the best cell)."""
    if not math.isfinite(value):
        return value
    kind, digits = _PRECISION.get(metric, _DEFAULT_PRECISION)
    if kind == "decimals":
        return round(value, digits)
    return float(f"{value:.{digits}g}")


def format_value(metric: str, value: float) -> str:
    """Format one number with the metric's display precision (``"n/a"`` for NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    value = float(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    kind, digits = _PRECISION.get(metric, _DEFAULT_PRECISION)
    if kind == "decimals":
        return f"{value:.{digits}f}"
    return f"{value:.{digits}g}"


# --------------------------------------------------------------------------------------------
# The method table
# --------------------------------------------------------------------------------------------


@dataclass
class Table:
    """One method table: a row per label, a column per (metric, protocol).

    ``mean``, ``std``, ``n_seeds``, ``cells`` (text without bold markup) and ``best`` are
    DataFrames indexed by label with one column per ``column_name(metric, protocol)``, in
    ``columns`` order; numbers stay available for CSV and plots.

    Optional decorations (seed layouts, proxies): ``second`` marks the second-best cells
    (underlined), ``marks`` holds a suffix per cell (e.g. the non-significance dagger),
    ``row_marks`` a suffix per label (the proxy ``‡``), ``reported`` the labels of published
    rows (listed last, below a rule, never ranked), ``ids``/``headers`` override the column ids
    and Markdown headers, and ``groups``/``subheaders`` the two LaTeX header rows (e.g. one group
    per DPED phone). ``per_frame`` marks a video dataset: its time column reads ``s/frame``.
    """

    dataset: str | None
    labels: list[str]
    columns: list[tuple[str, str]]
    mean: pd.DataFrame
    std: pd.DataFrame
    n_seeds: pd.DataFrame
    cells: pd.DataFrame
    best: pd.DataFrame
    higher_is_better: dict[str, bool]
    methods: dict[str, str] = field(default_factory=dict)
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    second: pd.DataFrame | None = None
    marks: pd.DataFrame | None = None
    row_marks: dict[str, str] = field(default_factory=dict)
    reported: list[str] = field(default_factory=list)
    ids: list[str] | None = None
    headers: list[str] | None = None
    groups: list[tuple[str, int]] | None = None
    subheaders: list[str] | None = None
    per_frame: bool = False

    @property
    def column_names(self) -> list[str]:
        if self.ids is not None:
            return list(self.ids)
        return [column_name(m, p) for m, p in self.columns]

    def numeric_frame(self) -> pd.DataFrame:
        """Means and stds in separate columns (``PSNR_d_mean``, ``PSNR_d_std``, ...), one row per label.

        ``proxy`` says which rows carry the proxy mark (their run.json has ``proxy_notes``).
        """
        data: dict[str, Any] = {
            "dataset": [self.dataset] * len(self.labels),
            "label": list(self.labels),
            "method": [self.methods.get(label, "") for label in self.labels],
            "proxy": [label in self.row_marks for label in self.labels],
        }
        for name in self.column_names:
            data[f"{name}_mean"] = self.mean[name].to_numpy(dtype=float)
            data[f"{name}_std"] = self.std[name].to_numpy(dtype=float)
            data[f"{name}_n_seeds"] = self.n_seeds[name].to_numpy()
        return pd.DataFrame(data)


def _ordered(present: Iterable[str], preferred: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(present))
    return [p for p in preferred if p in present] + [p for p in present if p not in preferred]


def _cell(metric: str, record: Any) -> str:
    if record.status == "n/a":
        return "n/a"
    if record.status == "incomplete":
        return f"incomplete ({record.n_missing}/{record.n_values} n/a)"
    text = format_value(metric, record.mean)
    if record.n_seeds > 1 and math.isfinite(record.std):
        text += f" ± {format_value(metric, record.std)}"
    return text


def method_table(
    rows: pd.DataFrame,
    dataset: str | None = None,
    order: Sequence[str] | None = None,
    partial: str = "raise",
) -> Table:
    """Build the method table of one dataset.

    Args:
        rows: result rows (long format).
        dataset: which dataset; may be omitted when the rows hold only one.
        order: label order hint (e.g. the suite's order); labels not named follow in order of
            first appearance in ``rows``.
        partial: see :func:`summary`.
    """
    frame = _prepare(rows)
    datasets = list(dict.fromkeys(frame["dataset"]))
    if dataset is None:
        if len(datasets) > 1:
            raise ValueError(f"rows hold several datasets {datasets}: pass dataset=")
        dataset = datasets[0] if datasets else None
    elif dataset not in datasets:
        raise ValueError(f"no rows for dataset {dataset!r} (have {datasets})")
    if dataset is not None:
        frame = frame[frame["dataset"] == dataset]
    stats = summary(frame, partial=partial)

    labels = list(dict.fromkeys(frame["label"]))
    if order:
        labels = [label for label in dict.fromkeys(order) if label in labels] + [
            label for label in labels if label not in set(order)
        ]
    metrics = _ordered(stats["metric"], METRIC_ORDER)
    protocols = _ordered(stats["protocol"], PROTOCOL_ORDER)
    present = set(zip(stats["metric"], stats["protocol"], strict=True))
    columns = [(m, p) for m in metrics for p in protocols if (m, p) in present]
    names = [column_name(m, p) for m, p in columns]

    mean = pd.DataFrame(np.nan, index=pd.Index(labels, name="label"), columns=names, dtype=float)
    std = mean.copy()
    n_seeds = pd.DataFrame(0, index=mean.index, columns=names, dtype=int)
    cells = pd.DataFrame("n/a", index=mean.index, columns=names, dtype=object)
    best = pd.DataFrame(False, index=mean.index, columns=names, dtype=bool)
    hib: dict[str, bool] = {}
    for record in stats.itertuples(index=False):
        name = column_name(record.metric, record.protocol)
        mean.loc[record.label, name] = record.mean
        std.loc[record.label, name] = record.std
        n_seeds.loc[record.label, name] = int(record.n_seeds)
        cells.loc[record.label, name] = _cell(record.metric, record)
        hib.setdefault(name, bool(record.higher_is_better))

    second = best.copy()
    for (metric, _), name in zip(columns, names, strict=True):
        best[name], second[name] = _rank_marks(mean[name], metric, hib[name])

    methods = frame.groupby("label", sort=False)["method"].first().to_dict()
    return Table(
        dataset=dataset,
        labels=labels,
        columns=columns,
        mean=mean,
        std=std,
        n_seeds=n_seeds,
        cells=cells,
        best=best,
        higher_is_better=hib,
        methods=methods,
        summary=stats,
        second=second,
        per_frame=is_video(frame),
    )


def _rank_marks(values: pd.Series, metric: str, higher_is_better: bool) -> tuple[pd.Series, pd.Series]:
    """Best and second-best flags of one column, compared at display precision.

    Best needs at least two values; second best at least three (with two it is just "worst").
    Ties share the mark.
    """
    best = pd.Series(False, index=values.index)
    second = best.copy()
    present = values.dropna()
    if len(present) < 2:
        return best, second
    rounded = present.map(lambda v: _round(metric, v))
    ordered = sorted(rounded.unique(), reverse=higher_is_better)
    best[rounded.index[rounded == ordered[0]]] = True
    if len(present) >= 3 and len(ordered) >= 2:
        second[rounded.index[rounded == ordered[1]]] = True
    return best, second


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return str(text).replace("|", r"\|")


# How each writer shows a best cell, a second-best cell, and a cell or label mark.
_STYLES: dict[str, dict[str, str]] = {
    "md": {"best": "**{}**", "second": "<u>{}</u>", "mark": "{}{}"},
    "tex": {"best": r"\textbf{{{}}}", "second": r"\underline{{{}}}", "mark": "{}{}"},
    "html": {"best": "<b>{}</b>", "second": "<u>{}</u>", "mark": "{}<sup>{}</sup>"},
}


def _flag(frame: pd.DataFrame | None, label: str, name: str) -> bool:
    return frame is not None and bool(frame.loc[label, name])


def _decorated(table: Table, label: str, name: str, style: str, escape: Any) -> str:
    """One cell in a writer's markup: escaped text, best/second emphasis, then its mark."""
    form = _STYLES[style]
    text = escape(table.cells.loc[label, name])
    if _flag(table.best, label, name):
        text = form["best"].format(text)
    elif _flag(table.second, label, name):
        text = form["second"].format(text)
    mark = table.marks.loc[label, name] if table.marks is not None else ""
    return form["mark"].format(text, escape(mark)) if mark else text


def _label_text(table: Table, label: str, style: str, escape: Any) -> str:
    mark = table.row_marks.get(label, "")
    return _STYLES[style]["mark"].format(escape(label), escape(mark)) if mark else escape(label)


def to_markdown(table: Table, caption: str = "") -> str:
    """GitHub pipe table, best cells as ``**x**`` (second best ``<u>x</u>``), caption above."""
    headers = ["Method"] + (table.headers or [_header(m, p, table.per_frame) for m, p in table.columns])
    lines = []
    if caption:
        lines += [caption.strip(), ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in headers) + " |")
    lines.append("|" + "|".join([":---"] + ["---:"] * len(table.columns)) + "|")
    for label in table.labels:
        cells = [_label_text(table, label, "md", _md_escape)]
        cells += [_decorated(table, label, name, "md", _md_escape) for name in table.column_names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "×": r"$\times$",
    "·": r"$\cdot$",
    "σ": r"$\sigma$",
    "α": r"$\alpha$",
    "†": r"$^{\dagger}$",
    "‡": r"$^{\ddagger}$",
    "Δ": r"$\Delta$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "→": r"$\rightarrow$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "–": "--",
    "−": "$-$",
    "—": "---",
    "…": r"\dots{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}
_LATEX_TOKENS = {"ΔE76": r"$\Delta E_{76}$", "ΔE2000": r"$\Delta E_{2000}$", "ΔE": r"$\Delta E$",
                 "E_warp": r"$E_{\mathrm{warp}}$"}
_LATEX_RE = re.compile(
    "|".join(re.escape(t) for t in sorted(_LATEX_TOKENS, key=len, reverse=True))
    + "|["
    + "".join(re.escape(c) for c in _LATEX_SPECIAL)
    + "]"
)


def latex_escape(text: str) -> str:
    """Escape LaTeX specials (``_ % & $ # { } ~ ^ \\``) and map ``± × · σ ΔE`` to math."""
    return _LATEX_RE.sub(lambda m: _LATEX_TOKENS.get(m.group(0)) or _LATEX_SPECIAL[m.group(0)], str(text))


def _latex_label(dataset: str | None) -> str:
    return "tab:qmap-" + re.sub(r"[^A-Za-z0-9:-]+", "-", dataset or "results").strip("-")


def to_latex(table: Table, caption: str = "") -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs}``), best cells in ``\\textbf{}``.

    Two header rows: metric names spanning their protocols (with ``\\cmidrule``), then protocols.
    """
    spans: list[tuple[str, list[str]]] = []
    for metric, protocol in table.columns:
        if spans and spans[-1][0] == metric:
            spans[-1][1].append(protocol)
        else:
            spans.append((metric, [protocol]))

    if table.groups:
        groups = [(latex_escape(text), width) for text, width in table.groups]
        second = [""] + [latex_escape(h) for h in table.subheaders or []]
    else:
        groups = [(PER_FRAME_SECONDS if table.per_frame and metric == "seconds" else
                   LATEX_NAMES.get(metric) or latex_escape(DISPLAY_NAMES.get(metric, metric)), len(protocols))
                  for metric, protocols in spans]
        second = [""] + [latex_escape(p) for _, protocols in spans for p in protocols]
    top = ["Method"]
    rules = []
    start = 2
    for name, width in groups:
        top.append(rf"\multicolumn{{{width}}}{{c}}{{{name}}}")
        rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
        start += width

    short = f"qmap-bench results on {table.dataset}" if table.dataset else "qmap-bench results"
    lines = [
        r"% requires \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption[{latex_escape(short)}]{{{latex_escape(caption.strip())}}}" if caption else "",
        rf"\label{{{_latex_label(table.dataset)}}}",
        r"\begin{tabular}{l" + "c" * len(table.columns) + "}",
        r"\toprule",
        " & ".join(top) + r" \\",
        " ".join(rules),
        " & ".join(second) + r" \\",
        r"\midrule",
    ]
    for label in table.labels:
        if table.reported and label == table.reported[0]:
            lines.append(r"\midrule")  # published rows below a rule: not scored by this code
        cells = [_label_text(table, label, "tex", latex_escape)]
        cells += [_decorated(table, label, name, "tex", latex_escape) for name in table.column_names]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(line for line in lines if line) + "\n"


def to_html(table: Table, caption: str = "") -> str:
    """An HTML ``<table>`` (best in ``<b>``, second best in ``<u>``) after its caption paragraph.

    The caption is a ``<p class="caption">`` rather than ``<caption>``: a ``<caption>`` is as
    narrow as its table, and a long caption over a two-column table becomes a tall ribbon.
    """
    from html import escape

    headers = ["Method"] + (table.headers or [_header(m, p, table.per_frame) for m, p in table.columns])
    parts = [f"<p class=\"caption\">{escape(caption.strip())}</p>"] if caption else []
    parts.append("<table class=\"results\">")
    parts.append("<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr></thead><tbody>")
    for label in table.labels:
        kind = " class=\"reported\"" if label in table.reported else ""
        cells = [f"<th scope=\"row\">{_label_text(table, label, 'html', escape)}</th>"]
        cells += [f"<td>{_decorated(table, label, name, 'html', escape)}</td>" for name in table.column_names]
        parts.append(f"<tr{kind}>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts) + "\n"


def to_csv(table: Table) -> str:
    """Numbers only: one row per label, ``<column>_mean``, ``<column>_std``, ``<column>_n_seeds``."""
    return table.numeric_frame().to_csv(index=False, float_format="%.10g")


# --------------------------------------------------------------------------------------------
# Captions
# --------------------------------------------------------------------------------------------


def _run_id(info: Mapping[str, Any]) -> str:
    return str(info.get("run_id") or Path(str(info.get("path", ""))).name)


def _relevant_infos(rows: pd.DataFrame, infos: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The run.json entries of the runs behind ``rows`` (all done entries when ids do not match)."""
    infos = list(infos)
    run_ids = set(rows["run_id"].astype(str)) if "run_id" in rows else set()
    matched = [info for info in infos if _run_id(info) in run_ids]
    if matched:
        return matched
    return [info for info in infos if info.get("status", "done") == "done"]


def _join(items: Iterable[str]) -> str:
    return ", ".join(str(item) for item in items)


def _versions(infos: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for name, keys in _VERSION_PACKAGES:
        found: list[str] = []
        for info in infos:
            versions = info.get("versions") or {}
            for key in keys:
                if key in versions:
                    found.append(str(versions[key]))
                    break
        found = list(dict.fromkeys(found))
        if not found:
            parts.append(f"{name} not recorded")
        elif len(found) == 1:
            parts.append(f"{name} {found[0]}")
        else:
            parts.append(f"{name} {' / '.join(found)} (differs between runs)")
    return "Versions: " + ", ".join(parts) + "."


def _seed_sort_key(seed: Any) -> tuple[int, Any]:
    try:
        return (0, int(seed))
    except (TypeError, ValueError):
        return (1, str(seed))


def caption(rows: pd.DataFrame, infos: Iterable[Mapping[str, Any]] = ()) -> str:
    """A caption stating everything a reader needs to reproduce and judge the table.

    Suite, dataset(s), split(s), protocols, seeds, averaging, scoring conventions (for the
    metrics shown), package versions, notes from the runs (deduplicated), the demo-data warning,
    how each method produced protocol ``f``, and unavailable metrics with their message. Video
    datasets add how frames were scored and averaged (with the number of videos and frames),
    the motion behind the warp error, the weak-alignment notice, and which runs reused an image
    checkpoint (``checkpoint_from``) or were fine-tuned from one (``init_from``).

    Args:
        rows: the result rows behind the table.
        infos: ``run.json`` contents (``load_run_infos``); entries whose run id (``run_id`` or
            the folder name in ``path``) matches ``rows`` are used, else every ``done`` entry.
    """
    frame = _prepare(rows)
    infos = _relevant_infos(frame, infos)
    labels = _label_order(frame, infos)
    datasets = list(dict.fromkeys(frame["dataset"].dropna()))
    protocols = _ordered(frame["protocol"].dropna(), PROTOCOL_ORDER)
    metrics = _ordered(frame["metric"].dropna(), METRIC_ORDER)
    video = is_video(frame, infos)

    parts = [
        _caption_head(frame, datasets, protocols),
        *(_caption_video(frame, infos, labels) if video else []),
        _caption_seeds(frame, video),
        _caption_scoring(metrics, infos, video),
        _versions(infos),
    ]
    commits = list(dict.fromkeys(_short_commit(str(i["git_commit"])) for i in infos if i.get("git_commit")))
    if commits:
        parts.append(f"Code: git {_join(commits)}.")
    if any(str(d).startswith("demo") for d in datasets):
        parts.append(f"Data: {DEMO_NOTE}.")
    parts += _caption_notes(infos, labels)
    parts += _caption_proxy(infos, labels)
    if "f" in protocols:
        parts += _caption_full_resolution(infos, labels)
    parts += _caption_missing(frame, infos)
    return " ".join(part for part in parts if part)


def _label_order(frame: pd.DataFrame, infos: Sequence[Mapping[str, Any]]) -> list[str]:
    hint = _order_hint(infos)
    present = list(dict.fromkeys(frame["label"]))
    return [label for label in hint if label in present] + [label for label in present if label not in hint]


def _short_commit(commit: str) -> str:
    return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")


def _caption_head(frame: pd.DataFrame, datasets: list[str], protocols: list[str]) -> str:
    suites = list(dict.fromkeys(frame["suite"].dropna()))
    splits = list(dict.fromkeys(frame["split"].dropna()))
    head = f"Suite {_join(suites)}" if suites else "Results"
    head += f": dataset {_join(datasets)}" if len(datasets) == 1 else f": datasets {_join(datasets)}"
    if splits:
        head += f" (split {_join(splits)})"
    described = (PROTOCOLS.get(p, f"{p} = as defined by the dataset") for p in protocols)
    return f"{head}. Protocols: " + "; ".join(described) + "."


def _caption_seeds(frame: pd.DataFrame, video: bool = False) -> str:
    seeds = sorted(dict.fromkeys(frame["seed"].dropna()), key=_seed_sort_key)
    text = f"{len(seeds)} {'seed' if len(seeds) == 1 else 'seeds'} ({_join(_text(s) for s in seeds)}); "
    per = ("the mean over the frames (frame pairs) of each video, then over videos, per seed" if video
           else "the mean over images per seed")
    text = text[0].upper() + text[1:] + "each cell is " + per
    if len(seeds) > 1:
        text += ", then mean ± sample std over seeds"
    per_label = frame.groupby("label", sort=False)["seed"].nunique()
    if per_label.nunique() > 1:
        text += " (seeds per method: " + _join(f"{k} {v}" for k, v in per_label.items()) + ")"
    return text + "."


def _caption_scoring(metrics: list[str], infos: Sequence[Mapping[str, Any]], video: bool = False) -> str:
    arrows = {True: "↑", False: "↓"}
    directions = [f"{display_name(m, video)} {arrows[HIGHER_IS_BETTER[m]]}" for m in metrics if m in HIGHER_IS_BETTER]
    text = "Best per column in bold" + (f" ({_join(directions)})" if directions else "")
    text += ", second best underlined (with three or more methods). "
    conventions = [text for metric, text in _CONVENTIONS if metric is None or metric in metrics]
    text += "Scoring: " + "; ".join(conventions) + "."
    if "seconds" in metrics:
        devices = list(dict.fromkeys(str(i["device"]) for i in infos if i.get("device")))
        what = f"{PER_FRAME_SECONDS} = per-frame inference time" if video else "s/img = per-image inference time"
        text += f" {what}" + (f" on {_join(devices)}" if devices else "") + "."
    return text


WEAKLY_ALIGNED_NOTE = ("Weakly aligned pairs: no full-reference score (pixels do not correspond); "
                       "temporal metrics only.")


def _video_counts(frame: pd.DataFrame) -> tuple[int, int, int, int]:
    """Videos, frames, and the fewest and most frames of one video.

    Frames are the distinct (video, frame) pairs of the per-frame metrics (temporal metrics have
    one row per consecutive pair, frame >= 1); without per-frame rows, every row's frame counts.
    """
    per_frame = frame[~frame["metric"].isin(VIDEO_METRICS)]
    source = per_frame if len(per_frame) else frame
    pairs = source.assign(frame=_frame_numbers(source))[["key", "frame"]].drop_duplicates()
    lengths = pairs.groupby("key", dropna=False).size()
    if lengths.empty:
        return 0, 0, 0, 0
    return int(frame["key"].nunique()), int(lengths.sum()), int(lengths.min()), int(lengths.max())


def _run_ref(ref: Any) -> dict[str, str]:
    """A ``checkpoint_from`` / ``init_from`` entry as text fields (empty when malformed)."""
    if not isinstance(ref, Mapping):
        return {}
    return {key: str(ref[key]) for key in ("label", "dataset", "run_id", "checkpoint") if ref.get(key) is not None}


def _caption_video(frame: pd.DataFrame, infos: Sequence[Mapping[str, Any]], labels: list[str]) -> list[str]:
    """How a video table was scored: frames, averaging, motion, alignment, checkpoint reuse."""
    videos, frames, shortest, longest = _video_counts(frame)
    span = f"{shortest}" if shortest == longest else f"{shortest}–{longest}"
    text = (f"Video: every frame scored at its stored resolution ({display_name('warp_error')} and flicker on "
            f"each pair of consecutive frames), averaged over the frames of each video, then over the videos "
            f"({videos} {'video' if videos == 1 else 'videos'}, {frames} frames, {span} per video).")
    parts = [text]
    video_infos = _video_infos(frame, infos)
    data = [info.get("data") or {} for info in video_infos]
    weak = [_as_bool(d.get("aligned")) is False for d in data]
    if "warp_error" in set(frame["metric"]):
        motion = []
        for d, weakly in zip(data, weak, strict=True):
            if d.get("has_motion") is True:
                motion.append("the known motion of the videos (no flow estimated)")
            elif d.get("has_motion") is False:
                motion.append(f"OpenCV Farneback optical flow between consecutive {'input' if weakly else 'target'} "
                              f"frames")
        motion = list(dict.fromkeys(motion))
        if motion:
            parts.append(f"{display_name('warp_error')} warps frame t-1 with {' / '.join(motion)}"
                         + (" (differs between runs)" if len(motion) > 1 else "") + "; pairs without an unoccluded "
                         "pixel (scene cuts) have no E_warp.")
    if {"warp_error", "flicker"} & set(frame["metric"]):
        parts.append("Temporal scores alone reward a static or washed-out output (it cannot flicker): read them "
                     "together with the fidelity columns.")
    if any(weak):
        parts.append(WEAKLY_ALIGNED_NOTE)
    covered = WEAKLY_ALIGNED_NOTE.split("(")[0].strip().lower()  # "weakly aligned pairs: no full-reference score"
    evaluations = [str(d["evaluation"]).strip().rstrip(".") for d in data if d.get("evaluation")]
    evaluations = [text for text in dict.fromkeys(evaluations) if not text.lower().startswith(covered)]
    if evaluations:
        parts.append("Evaluation: " + "; ".join(evaluations) + ".")
    rank = {label: i for i, label in enumerate(labels)}
    reused: dict[str, list[str]] = {}
    tuned: list[str] = []
    for info in sorted(infos, key=lambda i: rank.get(str(i.get("label")), len(rank))):
        label = str(info.get("label", ""))
        source = _run_ref(info.get("checkpoint_from"))
        if source:
            reused.setdefault(source.get("dataset", "another dataset"), [])
            if label not in reused[source.get("dataset", "another dataset")]:
                reused[source.get("dataset", "another dataset")].append(label)
        start = _run_ref(info.get("init_from"))
        if start:
            note = (f"{label} fine-tuned from {start.get('label', 'another run')}'s checkpoint trained on "
                    f"{start.get('dataset', 'another dataset')}")
            if note not in tuned:
                tuned.append(note)
    parts += [f"Scored frame by frame with the image checkpoint trained on {dataset} (no video training): "
              f"{_join(names)}." for dataset, names in reused.items()]
    if tuned:
        parts.append("; ".join(tuned) + ".")
    return parts


def _caption_notes(infos: Sequence[Mapping[str, Any]], labels: list[str]) -> list[str]:
    notes: dict[str, list[str]] = {}
    for info in infos:
        for note in info.get("notes") or []:
            notes.setdefault(str(note).strip().rstrip("."), []).append(str(info.get("label", "")))
    quiet_quick = [str(i.get("label", "")) for i in infos if i.get("quick") and not i.get("notes")]
    if quiet_quick:
        notes.setdefault("quick (smoke-scale) config", []).extend(quiet_quick)
    if not notes:
        return []
    rank = {label: i for i, label in enumerate(labels)}

    def who(names: list[str]) -> str:
        return _join(sorted(dict.fromkeys(names), key=lambda name: rank.get(name, len(rank))))

    return ["Notes: " + "; ".join(f"{note} ({who(names)})" for note, names in notes.items()) + "."]


def proxy_labels(infos: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Labels whose run.json carries non-empty ``proxy_notes``, with their notes (deduplicated)."""
    found: dict[str, list[str]] = {}
    for info in infos:
        notes = [str(note).strip().rstrip(".") for note in info.get("proxy_notes") or [] if str(note).strip()]
        if notes and info.get("label") is not None:
            known = found.setdefault(str(info["label"]), [])
            known += [note for note in notes if note not in known]
    return found


def _caption_proxy(infos: Sequence[Mapping[str, Any]], labels: list[str]) -> list[str]:
    proxies = proxy_labels(infos)
    if not proxies:
        return []
    by_note: dict[str, list[str]] = {}
    for label in [label for label in labels if label in proxies] + [p for p in proxies if p not in labels]:
        for note in proxies[label]:
            by_note.setdefault(note, []).append(label)
    text = "; ".join(f"{note} ({_join(names)})" for note, names in by_note.items())
    return [f"{PROXY_MARK} Proxy results, not the paper's configuration: {text}."]


def _caption_full_resolution(infos: Sequence[Mapping[str, Any]], labels: list[str]) -> list[str]:
    modes = []
    for label in labels:
        found = [i["full_resolution"] for i in infos if str(i.get("label")) == label and i.get("full_resolution")]
        if found:
            mode = found[0] if isinstance(found[0], str) else json.dumps(found[0], sort_keys=True)
            modes.append(f"{label}: {mode}")
    return ["Protocol f produced as: " + "; ".join(modes) + "."] if modes else []


def _caption_missing(frame: pd.DataFrame, infos: Sequence[Mapping[str, Any]]) -> list[str]:
    """Unavailable metrics with their recorded message; n/a without a message; incomplete cells."""
    parts = []
    messages: dict[tuple[str, str], None] = {}
    for info in infos:
        for metric, message in (info.get("unavailable") or {}).items():
            messages[(str(metric), str(message).strip().rstrip("."))] = None
    parts += [f"{DISPLAY_NAMES.get(metric, metric)} n/a: {message}." for metric, message in messages]
    explained = {metric for metric, _ in messages}
    stats = _quiet_summary(frame)
    if stats is None:
        return parts
    silent = stats[(stats["status"] == "n/a") & ~stats["metric"].isin(explained)]
    for metric, group in silent.groupby("metric", sort=False):
        who = _join(dict.fromkeys(group["label"]))
        parts.append(f"{DISPLAY_NAMES.get(metric, metric)} n/a for {who} (no reason recorded).")
    incomplete = stats[stats["status"] == "incomplete"]
    if len(incomplete):
        cells = (
            f"{r.label} {column_name(r.metric, r.protocol)} {r.n_missing}/{r.n_values}" for r in incomplete.itertuples()
        )
        parts.append("Incomplete (some images n/a; not averaged): " + "; ".join(cells) + ".")
    return parts


def _quiet_summary(frame: pd.DataFrame) -> pd.DataFrame | None:
    try:
        return summary(frame, partial="mark")
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Report files
# --------------------------------------------------------------------------------------------


def _order_hint(infos: Sequence[Mapping[str, Any]]) -> list[str]:
    """Labels in suite order when run.json files carry an integer ``order`` (position in the suite)."""
    ranked = []
    for info in infos:
        order = info.get("order")
        if isinstance(order, (int, float)) and not isinstance(order, bool) and info.get("label") is not None:
            ranked.append((order, str(info["label"])))
    return list(dict.fromkeys(label for _, label in sorted(ranked, key=lambda item: item[0])))


def label_order(infos: Sequence[Mapping[str, Any]]) -> list[str]:
    """Labels in suite order (run.json ``order``), for every table, matrix and plot of a report."""
    return _order_hint(infos)


def dataset_tables(rows: pd.DataFrame, infos: Sequence[Mapping[str, Any]], order: Sequence[str] | None = None,
                   partial: str = "raise") -> list[tuple[str, Table, str]]:
    """The generic method table of every dataset, with its caption and proxy marks.

    Returns:
        ``(dataset, table, caption)`` per dataset, in order of appearance.
    """
    frame = _prepare(rows)
    out = []
    for dataset in dict.fromkeys(frame["dataset"]):
        subset = frame[frame["dataset"] == dataset]
        table = method_table(subset, dataset=dataset, order=order, partial=partial)
        table.row_marks = {label: PROXY_MARK for label in proxy_labels(_relevant_infos(subset, infos))}
        table.per_frame = table.per_frame or is_video(subset, _relevant_infos(subset, infos))
        out.append((dataset, table, caption(subset, infos)))
    return out


# --------------------------------------------------------------------------------------------
# Per-frame vs fine-tuned (recurrent) comparison on a video dataset
# --------------------------------------------------------------------------------------------

DIFFERENCE_ROW = "difference (fine-tuned − per-frame)"
WINS_ROW = "per-video wins/ties/losses of fine-tuned"


@dataclass
class Comparison:
    """A fine-tuned video run against the per-frame run of the label it was initialised from.

    ``table`` has four rows: the per-frame label, the fine-tuned label (cells as in the dataset
    table, the better of the two in bold), :data:`DIFFERENCE_ROW` and :data:`WINS_ROW`;
    ``numbers`` holds one row per column (means, difference, wins, ties, losses) for CSV.
    """

    dataset: str
    per_frame: str
    fine_tuned: str
    table: Table
    caption: str
    numbers: pd.DataFrame

    @property
    def stem(self) -> str:
        """File name stem: ``compare_<dataset>_<fine-tuned label>``."""
        return "compare_" + re.sub(r"[^A-Za-z0-9._-]+", "-", f"{self.dataset}_{self.fine_tuned}")

    @property
    def title(self) -> str:
        return f"Per-frame vs recurrent, {self.dataset}: {self.fine_tuned} vs {self.per_frame}"


def _format_signed(metric: str, value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    kind, digits = _PRECISION.get(metric, _DEFAULT_PRECISION)
    text = f"{value:+.{digits}f}" if kind == "decimals" else f"{value:+.{digits}g}"
    return text.replace("-", "−") if text.startswith("-") else text


def _wins(values: pd.DataFrame, metric: str, a: str, b: str, higher: bool) -> tuple[int, int, int, int]:
    """Wins, ties, losses of ``b`` against ``a`` over keys where both have a value (display precision)."""
    if a not in values.columns or b not in values.columns:
        return 0, 0, 0, 0
    both = values[[a, b]].dropna()
    wins = ties = losses = 0
    for x, y in zip(both[a], both[b], strict=True):
        x, y = _round(metric, float(x)), _round(metric, float(y))
        if x == y:
            ties += 1
        elif (y > x) == higher:
            wins += 1
        else:
            losses += 1
    return wins, ties, losses, len(both)


def _info_of(infos: Sequence[Mapping[str, Any]], label: str, dataset: str) -> Mapping[str, Any] | None:
    return next((i for i in infos if str(i.get("label")) == label and str(i.get("dataset")) == dataset), None)


def comparison_tables(rows: pd.DataFrame, infos: Sequence[Mapping[str, Any]], order: Sequence[str] | None = None,
                      partial: str = "raise") -> list[Comparison]:
    """Per-frame vs fine-tuned tables of every video dataset (driven by run.json ``init_from``).

    For every done run on a video dataset whose run.json has ``init_from`` (``{"label", "dataset",
    "run_id", "checkpoint"}``: fine-tuned starting from that run's checkpoint) and whose
    ``init_from.label`` also has a run on the same video dataset (typically the image checkpoint
    scored frame by frame, ``checkpoint_from``), one :class:`Comparison`: the two rows with every
    column of the dataset table, the difference fine-tuned − per-frame of the means, and per-video
    wins/ties/losses of the fine-tuned run (per-video means over frames then seeds, compared at
    display precision in the column's direction). Nothing is hard-coded about methods.
    """
    frame = _prepare(rows)
    out: list[Comparison] = []
    for dataset in dict.fromkeys(frame["dataset"]):
        subset = frame[frame["dataset"] == dataset]
        ds_infos = [i for i in _relevant_infos(subset, infos) if str(i.get("dataset", dataset)) == dataset]
        if not is_video(subset, ds_infos):
            continue
        present = set(subset["label"])
        pairs = []
        for info in ds_infos:
            start = _run_ref(info.get("init_from"))
            label = str(info.get("label", ""))
            if start.get("label") in present and label in present and start["label"] != label:
                pairs.append((start["label"], label))
        if not pairs:
            continue
        full = method_table(subset, dataset=dataset, order=order, partial=partial)
        full.per_frame = True
        for per_frame, tuned in dict.fromkeys(pairs):
            out.append(_comparison(subset, full, dataset, per_frame, tuned, ds_infos, infos))
    return out


def _comparison(subset: pd.DataFrame, full: Table, dataset: str, a: str, b: str,
                ds_infos: Sequence[Mapping[str, Any]], infos: Sequence[Mapping[str, Any]]) -> Comparison:
    labels = [a, b, DIFFERENCE_ROW, WINS_ROW]
    names = full.column_names
    mean = full.mean.loc[[a, b]].reindex(labels)
    std = full.std.loc[[a, b]].reindex(labels)
    n_seeds = full.n_seeds.loc[[a, b]].reindex(labels, fill_value=0)
    cells = full.cells.loc[[a, b]].reindex(labels)
    best = pd.DataFrame(False, index=mean.index, columns=names, dtype=bool)
    records = []
    pair_rows = subset[subset["label"].isin([a, b])]
    for (metric, protocol), name in zip(full.columns, names, strict=True):
        higher = full.higher_is_better.get(name, HIGHER_IS_BETTER.get(metric, True))
        marks, _ = _rank_marks(full.mean.loc[[a, b], name], metric, higher)
        best.loc[[a, b], name] = marks.to_numpy()
        difference = float(full.mean.loc[b, name] - full.mean.loc[a, name])
        mean.loc[DIFFERENCE_ROW, name] = difference
        cells.loc[DIFFERENCE_ROW, name] = _format_signed(metric, difference)
        wins, ties, losses, videos = _wins(per_key_values(pair_rows, metric, protocol), metric, a, b, higher)
        cells.loc[WINS_ROW, name] = f"{wins}/{ties}/{losses}" if videos else "n/a"
        records.append({
            "dataset": dataset, "column": name, "metric": metric, "protocol": protocol, "higher_is_better": higher,
            "per_frame_label": a, "fine_tuned_label": b,
            "per_frame_mean": full.mean.loc[a, name], "per_frame_std": full.std.loc[a, name],
            "per_frame_n_seeds": int(full.n_seeds.loc[a, name]),
            "fine_tuned_mean": full.mean.loc[b, name], "fine_tuned_std": full.std.loc[b, name],
            "fine_tuned_n_seeds": int(full.n_seeds.loc[b, name]),
            "difference": difference, "wins": wins, "ties": ties, "losses": losses, "n_videos": videos,
        })
    proxies = proxy_labels(ds_infos)
    table = Table(dataset=f"{dataset} ({b} vs {a})", labels=labels, columns=list(full.columns), mean=mean, std=std,
                  n_seeds=n_seeds, cells=cells.fillna("n/a"), best=best, higher_is_better=dict(full.higher_is_better),
                  methods={k: v for k, v in full.methods.items() if k in (a, b)}, per_frame=True,
                  row_marks={label: PROXY_MARK for label in (a, b) if label in proxies})
    numbers = pd.DataFrame(records)
    return Comparison(dataset, a, b, table, _comparison_caption(pair_rows, dataset, a, b, numbers, ds_infos, infos),
                      numbers)


def _comparison_caption(rows: pd.DataFrame, dataset: str, a: str, b: str, numbers: pd.DataFrame,
                        ds_infos: Sequence[Mapping[str, Any]], infos: Sequence[Mapping[str, Any]]) -> str:
    info_a, info_b = _info_of(ds_infos, a, dataset) or {}, _info_of(ds_infos, b, dataset) or {}
    source = _run_ref(info_a.get("checkpoint_from"))
    start = _run_ref(info_b.get("init_from"))
    how_a = (f"its image checkpoint trained on {source.get('dataset', 'another dataset')} applied frame by frame, "
             f"no video training" if source else "per-frame")
    how_b = f"fine-tuned on video from {a}'s checkpoint trained on {start.get('dataset', 'another dataset')}"
    arrows = {True: "↑", False: "↓"}
    directions = [f"{display_name(m, True)} {arrows[bool(h)]}"
                  for m, h in dict(zip(numbers["metric"], numbers["higher_is_better"], strict=True)).items()]
    videos = int(numbers["n_videos"].max()) if len(numbers) else 0
    parts = [
        f"Per-frame vs recurrent on {dataset}: {a} ({how_a}) against {b} ({how_b}).",
        f"Rows {a} and {b}: the cells of the dataset table (bold: the better of the two).",
        f"'{DIFFERENCE_ROW}': {b} minus {a}, of the means; positive favours {b} in ↑ columns, negative in ↓ "
        f"columns ({_join(directions)}).",
        f"'{WINS_ROW}': videos on which {b} is better / equal / worse than {a}, per-video means (over frames, then "
        f"seeds) compared at display precision in each column's direction; {videos} videos.",
    ]
    seeds = rows.groupby("label")["seed"].nunique()
    caveats = []
    if len(seeds) and int(seeds.max()) == 1:
        shown = _join(_text(s) for s in sorted(dict.fromkeys(rows["seed"].dropna()), key=_seed_sort_key))
        caveats.append(f"one seed ({shown}), so no spread over seeds")
    pair_infos = [i for i in (info_a, info_b) if i]
    if str(dataset).startswith("demo") or any(i.get("quick") for i in pair_infos):
        caveats.append("smoke scale (quick configs and/or demo data)")
    if caveats:
        parts.append(f"Caution: {'; '.join(caveats)}. This compares two runs; it does not show that one "
                     f"method is better in general.")
    parts.append(caption(rows, infos))
    return " ".join(parts)


def write_comparison(result: Comparison, out_dir: str | Path) -> dict[str, Path]:
    """Write ``compare_<dataset>_<label>.md``, ``.tex`` and ``.csv`` (one row per column)."""
    out_dir = Path(out_dir)
    paths = {ext: out_dir / f"{result.stem}.{ext}" for ext in ("md", "tex", "csv")}
    atomic_write_text(paths["md"], f"## {result.title}\n\n" + to_markdown(result.table, result.caption))
    atomic_write_text(paths["tex"], to_latex(result.table, result.caption))
    atomic_write_text(paths["csv"], result.numbers.to_csv(index=False, float_format="%.10g"))
    return paths


def write_report(
    runs_dir: str | Path, out_dir: str | Path | None = None, partial: str = "raise"
) -> dict[str, Path]:
    """Write ``table.md``, ``table.tex`` and ``table.csv`` for every finished run below ``runs_dir``.

    One table per dataset (with a heading per dataset when there are several). Runs that are not
    done (failed, running) are left out and named in a warning line of the Markdown (and a
    comment in the LaTeX). Labels follow the suite order when run.json files carry ``order``,
    else the order in which they are found.

    Args:
        runs_dir: a suite folder ``runs/<suite>`` (or a folder of suites).
        out_dir: where to write; default ``runs_dir/report``.
        partial: see :func:`summary`.

    Returns:
        ``{"md": path, "tex": path, "csv": path}``.

    Raises:
        NoFinishedRunsError: no finished run below ``runs_dir``.
        ValueError: rows that cannot be averaged honestly (see :func:`summary`).
    """
    runs_dir = Path(runs_dir)
    out_dir = Path(out_dir) if out_dir is not None else runs_dir / "report"
    if not runs_dir.is_dir():
        raise NoFinishedRunsError(f"no such directory: {runs_dir}")
    infos = load_run_infos(runs_dir)
    pending = [info for info in infos if info.get("status") != "done"]
    rows = load_runs(runs_dir)
    if rows.empty:
        message = f"no finished runs under {runs_dir}"
        if pending:
            message += " (" + _join(f"{_run_id(i)}: {i.get('status', 'no status')}" for i in pending) + ")"
        raise NoFinishedRunsError(message)
    done = [info for info in infos if info.get("status") == "done"]
    order = _order_hint(done)
    frame = _prepare(rows)
    datasets = list(dict.fromkeys(frame["dataset"]))

    warning = ""
    if pending:
        word = "run is" if len(pending) == 1 else "runs are"
        warning = (
            f"**Warning:** {len(pending)} {word} not done and left out of this report: "
            + _join(f"`{_run_id(i)}` ({i.get('status', 'no status')})" for i in pending)
            + "."
        )

    md_parts, tex_parts, csv_frames = [], [], []
    if warning:
        md_parts.append(warning + "\n")
        tex_parts.append("% " + warning.replace("**", "").replace("`", "") + "\n")
    for dataset, table, text in dataset_tables(frame, done, order, partial):
        if len(datasets) > 1:
            md_parts.append(f"## {dataset}\n")
            tex_parts.append(f"% ---- {dataset} ----\n")
        md_parts.append(to_markdown(table, text))
        tex_parts.append(to_latex(table, text))
        csv_frames.append(table.numeric_frame())

    paths = {"md": out_dir / "table.md", "tex": out_dir / "table.tex", "csv": out_dir / "table.csv"}
    atomic_write_text(paths["md"], "\n".join(md_parts))
    atomic_write_text(paths["tex"], "\n".join(tex_parts))
    combined = pd.concat(csv_frames, ignore_index=True, sort=False)
    atomic_write_text(paths["csv"], combined.to_csv(index=False, float_format="%.10g"))
    return paths


# --------------------------------------------------------------------------------------------
# Seed layouts: the form of the seed's tables, with significance, proxy and reported rows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """A named table layout reproducing the form of a published table.

    Attributes:
        name: the ``--layout`` name.
        title: what it reproduces (printed above the table and in the caption).
        columns: ``(metric, protocol)`` in published order; protocol ``None`` is the dataset's
            protocol (:func:`dataset_protocol`).
        group_prefix: when set, every dataset whose label starts with it becomes a column group
            (WESPE's DPED table: one group per phone, ``dped_<phone>``); else one table per dataset.
        dataset_protocols: which protocols may stand in for ``None`` columns, in order of
            preference (a FiveK table takes full images, ``f`` or else ``d``, never DPED patches).
    """

    name: str
    title: str
    columns: tuple[tuple[str, str | None], ...]
    group_prefix: str | None = None
    dataset_protocols: tuple[str, ...] = ("f", "d", "100")


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("muspe_table1", "form of the seed's MUSPE Table 1 (FiveK: PSNR_d, PSNR_f, SSIM_d, SSIM_f)",
               (("psnr", "d"), ("psnr", "f"), ("ssim", "d"), ("ssim", "f"))),
        Layout("muspe_table2", "form of the seed's MUSPE Table 2 (DPED 100×100 patches: PSNR_100, SSIM_100)",
               (("psnr", "100"), ("ssim", "100"))),
        Layout("upe_fivek", "form of the UPE FiveK table in the seed (PSNR, SSIM at the dataset's protocol)",
               (("psnr", None), ("ssim", None)), dataset_protocols=("f", "d")),
        Layout("wespe_dped", "form of WESPE's DPED table (per phone PSNR/SSIM on 100×100 patches)",
               (("psnr", "100"), ("ssim", "100")), group_prefix="dped_"),
    )
}
SIGNIFICANCE_ALPHA = 0.05


def dataset_protocol(frame: pd.DataFrame, allowed: Sequence[str] = ("f", "d", "100")) -> str | None:
    """The protocol a one-protocol layout uses: the first of ``allowed`` that was scored (``f``
    first: the UPE protocol is full resolution, ``fivek_upe.yaml``), else None."""
    present = set(frame["protocol"].dropna())
    return next((protocol for protocol in allowed if protocol in present), None)


def _layout_columns(layout: Layout, frame: pd.DataFrame) -> list[tuple[str, str | None]]:
    protocol = dataset_protocol(frame, layout.dataset_protocols)
    return [(metric, p if p is not None else protocol) for metric, p in layout.columns]


def _has_columns(frame: pd.DataFrame, columns: Sequence[tuple[str, str | None]]) -> bool:
    present = set(zip(frame["metric"], frame["protocol"], strict=True))
    return all(p is not None and (m, p) in present for m, p in columns)


def applicable_layouts(rows: pd.DataFrame) -> dict[str, list[str]]:
    """Layout name -> datasets it can show (those with every column the layout needs).

    The seed layouts reproduce image tables: video datasets (rows with ``frame > 0`` or temporal
    metrics) never get one.
    """
    frame = _prepare(rows)
    found: dict[str, list[str]] = {}
    videos = {dataset for dataset in dict.fromkeys(frame["dataset"]) if is_video(frame[frame["dataset"] == dataset])}
    for layout in LAYOUTS.values():
        datasets = []
        for dataset in dict.fromkeys(frame["dataset"]):
            if layout.group_prefix and not str(dataset).startswith(layout.group_prefix):
                continue
            if dataset in videos:
                continue
            subset = frame[frame["dataset"] == dataset]
            if _has_columns(subset, _layout_columns(layout, subset)):
                datasets.append(dataset)
        if datasets:
            found[layout.name] = datasets
    return found


def per_key_values(frame: pd.DataFrame, metric: str, protocol: str) -> pd.DataFrame:
    """Key × label values of one column: frames averaged within each key and seed, then seeds.

    The unit of the paired tests and of per-video wins: an image, or a video (one value per
    video however many frames it has).
    """
    part = frame[(frame["metric"] == metric) & (frame["protocol"] == protocol)]
    per_seed = part.groupby(["label", "seed", "key"], sort=False, dropna=False)["value"].mean().reset_index()
    return per_seed.pivot_table(index="key", columns="label", values="value", aggfunc="mean", dropna=False)


def _wilcoxon(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Two-sided Wilcoxon signed-rank p-value of paired values and the number of pairs.

    Pairs with a NaN are left out; zero differences are dropped (Wilcoxon's convention); exact
    when there are no tied magnitudes and at most 50 pairs, else the normal approximation.
    """
    from scipy.stats import wilcoxon

    diff = x - y
    diff = diff[np.isfinite(diff)]
    pairs = len(diff)
    diff = diff[diff != 0]
    if len(diff) == 0:
        return 1.0, pairs
    exact = len(diff) <= 50 and len(np.unique(np.abs(diff))) == len(diff)
    result = wilcoxon(diff, zero_method="wilcox", method="exact" if exact else "approx")
    return float(result.pvalue), pairs


def significance_marks(rows: pd.DataFrame, table: Table, alpha: float = SIGNIFICANCE_ALPHA
                       ) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Mark cells whose difference to their column's best is not significant.

    Per column, every label with a value is compared with the (first) best label by a paired
    two-sided Wilcoxon signed-rank test over images (videos: per-video means over frames), on
    values averaged over seeds.
    Cells with ``p >= alpha`` get :data:`NOT_SIGNIFICANT_MARK`.

    Returns:
        ``(marks, p_values, caption sentence)``; marks and p-values are label × column frames.
    """
    frame = _prepare(rows)
    marks = pd.DataFrame("", index=table.mean.index, columns=table.column_names, dtype=object)
    p_values = pd.DataFrame(np.nan, index=table.mean.index, columns=table.column_names)
    sizes = []
    for (metric, protocol), name in zip(table.columns, table.column_names, strict=True):
        winners = [label for label in table.labels if _flag(table.best, label, name)]
        if not winners:
            continue
        values = per_key_values(frame, metric, protocol)
        reference = values[winners[0]].to_numpy(dtype=float)
        for label in table.labels:
            if label in winners or label not in values.columns or not np.isfinite(table.mean.loc[label, name]):
                continue
            p, pairs = _wilcoxon(values[label].to_numpy(dtype=float), reference)
            sizes.append(pairs)
            p_values.loc[label, name] = p
            if p >= alpha:
                marks.loc[label, name] = NOT_SIGNIFICANT_MARK
    if not sizes:
        return marks, p_values, ""
    images = min(sizes)
    unit = "video" if table.per_frame or is_video(frame) else "image"
    values_of = "per-video values (mean over frames)" if unit == "video" else "per-image values"
    text = (f"{NOT_SIGNIFICANT_MARK}: the difference to the best of its column is not significant (two-sided "
            f"Wilcoxon signed-rank test paired by {unit}, {values_of} averaged over seeds, α = {alpha:g}; "
            f"{images} {unit}s); unmarked differences are.")
    smallest = 2.0 / 2**images
    if smallest >= alpha:
        text += f" With {images} {unit}s no difference can be significant (smallest possible p = {smallest:.3g})."
    return marks, p_values, text


def _reported_value(reported: Mapping[str, str], metric: str, protocol: str) -> str | None:
    name = COLUMN_NAMES.get(metric, metric)
    return reported.get(f"{name}_{protocol}", reported.get(name))


def _reported_warnings(name: str, frame: pd.DataFrame, protocols: Sequence[str]) -> list[str]:
    """Where our data, split or protocol differ from the published rows'."""
    from reports.reported import REPORTED

    published = REPORTED[name]
    datasets = list(dict.fromkeys(frame["dataset"]))
    splits = list(dict.fromkeys(frame["split"].dropna()))
    warnings = []
    if any(str(d).startswith("demo") for d in datasets):
        warnings.append(f"our rows are on the smoke-scale demo data ({_join(datasets)}), the reported rows on "
                        f"{published.dataset}: different images, so the numbers are not comparable")
    elif not all(str(d).startswith(published.dataset) for d in datasets):
        warnings.append(f"our rows are on {_join(datasets)}, the reported rows on {published.dataset}")
    if published.split is None:
        warnings.append(f"{published.short} does not state its split (ours: {_join(splits) or 'unknown'})")
    elif splits != [published.split]:
        warnings.append(f"split mismatch: ours {_join(splits) or 'unknown'}, {published.short} {published.split}")
    if published.protocol is None:
        ours = "; ".join(PROTOCOLS.get(p, p) for p in protocols)
        warnings.append(f"{published.short} does not state its resolution protocol (ours: {ours})")
    return warnings


def _add_reported(table: Table, name: str) -> Table:
    """Append the published rows of layout ``name`` below ours (never ranked, never marked)."""
    from reports.reported import REPORTED

    published = REPORTED[name]
    for method, values in published.rows.items():
        label = f"{method} (reported in {published.short})"
        table.labels.append(label)
        table.reported.append(label)
        for (metric, protocol), column in zip(table.columns, table.column_names, strict=True):
            text = _reported_value(values, metric, protocol)
            table.cells.loc[label, column] = text if text is not None else "–"
            table.mean.loc[label, column] = float(text) if text is not None else np.nan
        for frame, fill in ((table.std, np.nan), (table.n_seeds, 0), (table.best, False), (table.second, False),
                            (table.marks, "")):
            if frame is not None:
                frame.loc[label] = fill
    return table


def _concat_tables(parts: Sequence[tuple[str, Table]], order: Sequence[str]) -> Table:
    """Side-by-side column groups (one per dataset) sharing one label column."""
    labels = [label for label in order if any(label in t.labels for _, t in parts)]
    labels += [label for _, t in parts for label in t.labels if label not in labels]
    labels = list(dict.fromkeys(labels))

    def joined(attribute: str, fill: Any) -> pd.DataFrame:
        frames = []
        for group, table in parts:
            frame = getattr(table, attribute)
            frame = frame.reindex(labels, fill_value=fill) if frame is not None else None
            frames.append(frame.set_axis([f"{group}:{c}" for c in frame.columns], axis=1))
        return pd.concat(frames, axis=1)

    columns = [column for _, table in parts for column in table.columns]
    ids = [f"{group}:{name}" for group, table in parts for name in table.column_names]
    cells = joined("cells", "not run")
    return Table(
        dataset=_join(group for group, _ in parts), labels=labels, columns=columns,
        mean=joined("mean", np.nan), std=joined("std", np.nan), n_seeds=joined("n_seeds", 0), cells=cells,
        best=joined("best", False).astype(bool), second=joined("second", False).astype(bool),
        marks=joined("marks", ""), higher_is_better={f"{g}:{k}": v for g, t in parts for k, v in t.higher_is_better.items()},
        methods={k: v for _, t in parts for k, v in t.methods.items()}, ids=ids,
        headers=[f"{g} {_header(m, p)}" for g, t in parts for m, p in t.columns],
        groups=[(group, len(table.columns)) for group, table in parts],
        subheaders=[_header(m, p) for _, t in parts for m, p in t.columns],
    )


@dataclass
class LayoutTable:
    """One rendered layout: its table, caption, warnings and per-cell p-values."""

    layout: str
    title: str
    table: Table
    caption: str
    warnings: list[str] = field(default_factory=list)
    p_values: pd.DataFrame = field(default_factory=pd.DataFrame)


def _decorated_table(rows: pd.DataFrame, columns: Sequence[tuple[str, str]], infos: Sequence[Mapping[str, Any]],
                     order: Sequence[str] | None, partial: str, dataset: str) -> tuple[Table, pd.DataFrame, str]:
    subset = rows[rows[["metric", "protocol"]].apply(tuple, axis=1).isin(set(columns))]
    table = method_table(subset, dataset=dataset, order=order, partial=partial)
    marks, p_values, text = significance_marks(subset, table)
    table.marks = marks
    table.row_marks = {label: PROXY_MARK for label in proxy_labels(_relevant_infos(subset, infos))}
    return table, p_values, text


def layout_tables(rows: pd.DataFrame, name: str, infos: Iterable[Mapping[str, Any]] = (),
                  reported: bool = False, order: Sequence[str] | None = None,
                  partial: str = "raise") -> list[LayoutTable]:
    """Build the tables of one seed layout (one per dataset, or one grouped table).

    Args:
        rows: result rows (all datasets); the layout keeps what it applies to.
        name: a key of :data:`LAYOUTS`.
        infos: run.json contents (captions, proxy marks).
        reported: append the published rows of :mod:`reports.reported` with warnings where our
            data, split or protocol differ.
        order: label order hint.
        partial: see :func:`summary`.

    Raises:
        ValueError: unknown layout, or no dataset has the layout's columns.
    """
    if name not in LAYOUTS:
        raise ValueError(f"unknown layout {name!r}; known: {', '.join(['generic', *LAYOUTS])}")
    layout = LAYOUTS[name]
    frame = _prepare(rows)
    infos = list(infos)
    datasets = applicable_layouts(frame).get(name)
    if not datasets:
        needed = ", ".join(column_name(m, p or "<dataset protocol>") for m, p in layout.columns)
        prefix = f" on datasets named {layout.group_prefix}*" if layout.group_prefix else ""
        raise ValueError(f"layout {name} needs {needed}{prefix}; no dataset in these runs has them")
    from reports.reported import REPORTED

    groups: list[tuple[str, pd.DataFrame, list[tuple[str, str]]]] = []
    for dataset in datasets:
        subset = frame[frame["dataset"] == dataset]
        groups.append((dataset, subset, _layout_columns(layout, subset)))
    if layout.group_prefix:
        built = [(d, *_decorated_table(s, c, infos, order, partial, d)) for d, s, c in groups]
        table = _concat_tables([(d[len(layout.group_prefix):], t) for d, t, _, _ in built], order or [])
        p_values = pd.concat([p.set_axis([f"{d[len(layout.group_prefix):]}:{c}" for c in p.columns], axis=1)
                              .reindex(table.labels) for d, _, p, _ in built], axis=1)
        units = [(_join(datasets), pd.concat([s for _, s, _ in groups]), table, p_values,
                  next((text for *_, text in built if text), ""), groups[0][2])]
    else:
        units = []
        for dataset, subset, columns in groups:
            table, p_values, text = _decorated_table(subset, columns, infos, order, partial, dataset)
            units.append((dataset, subset, table, p_values, text, columns))

    out = []
    for dataset, subset, table, p_values, significance_text, columns in units:
        subset = subset[subset[["metric", "protocol"]].apply(tuple, axis=1).isin(set(columns))] \
            if not layout.group_prefix else subset
        warnings = []
        parts = [f"Layout: {layout.title}.", caption(subset, infos), significance_text]
        if reported and name in REPORTED:
            table = _add_reported(table, name)
            warnings = _reported_warnings(name, subset, list(dict.fromkeys(p for _, p in columns)))
            parts.append(f"Rows '(reported in {REPORTED[name].short})': numbers as printed in "
                         f"{REPORTED[name].source}; copied, not recomputed by qmap-bench, and never ranked.")
        elif reported:
            parts.append(f"No published numbers are available for the {name} layout.")
        if warnings:
            parts.append("Warning: " + "; ".join(warnings) + ".")
        out.append(LayoutTable(name, f"{layout.title} — {dataset}", table, " ".join(p for p in parts if p),
                               warnings, p_values))
    return out


def layout_csv(result: LayoutTable) -> str:
    """Numbers of a layout: means, stds, seeds and p-values against the best, plus row kinds."""
    from reports.reported import REPORTED

    frame = result.table.numeric_frame()
    if result.table.reported:
        frame.loc[frame["label"].isin(result.table.reported), "dataset"] = f"{REPORTED[result.layout].dataset} (reported)"
    frame.insert(3, "kind", ["reported" if label in result.table.reported else "ours" for label in frame["label"]])
    for column in result.table.column_names:
        if column in result.p_values.columns:
            frame[f"{column}_p_vs_best"] = result.p_values[column].reindex(frame["label"]).to_numpy()
    return frame.to_csv(index=False, float_format="%.10g")


def write_layouts(rows: pd.DataFrame, out_dir: str | Path, names: Sequence[str],
                  infos: Iterable[Mapping[str, Any]] = (), reported: bool = False,
                  order: Sequence[str] | None = None, partial: str = "raise") -> dict[str, list[LayoutTable]]:
    """Write ``table_<layout>.md``, ``.tex`` and ``.csv`` for each layout name.

    Returns:
        Layout name -> its tables (for the HTML report).
    """
    out_dir = Path(out_dir)
    infos = list(infos)
    written: dict[str, list[LayoutTable]] = {}
    for name in names:
        results = layout_tables(rows, name, infos, reported=reported, order=order, partial=partial)
        md, tex, csv = [], [], []
        for result in results:
            md.append(f"## {result.title}\n")
            md += [f"**Warning:** {w}.\n" for w in result.warnings]
            md.append(to_markdown(result.table, result.caption))
            tex.append(to_latex(result.table, result.caption))
            csv.append(layout_csv(result))
        atomic_write_text(out_dir / f"table_{name}.md", "\n".join(md))
        atomic_write_text(out_dir / f"table_{name}.tex", "\n".join(tex))
        header, *bodies = csv
        atomic_write_text(out_dir / f"table_{name}.csv",
                          header + "".join(body.split("\n", 1)[1] for body in bodies))
        written[name] = results
    return written
