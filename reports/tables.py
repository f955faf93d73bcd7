"""Method tables from result rows: summary statistics, Markdown, LaTeX and CSV writers, captions.

Pure pandas/numpy: importing this module never imports torch (``qmap report`` must start fast and
work on a machine without torch).

How a cell is computed (design.md sections 4 and 5):

1. rows are grouped by (label, dataset, protocol, metric, seed) and averaged over images (every row
   is one image, or one frame of a video), so PSNR is "per image, then averaged", never pooled;
2. those per-seed means are averaged over seeds; the spread is the *sample* standard deviation
   over seeds (``ddof=1``), shown only when a method has more than one seed.

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
    "DISPLAY_NAMES",
    "LATEX_NAMES",
    "LAYOUTS",
    "METRIC_ORDER",
    "NOT_SIGNIFICANT_MARK",
    "PROTOCOLS",
    "PROTOCOL_ORDER",
    "PROXY_MARK",
    "SUMMARY_COLUMNS",
    "Layout",
    "NoFinishedRunsError",
    "Table",
    "applicable_layouts",
    "caption",
    "column_name",
    "dataset_tables",
    "format_value",
    "label_order",
    "latex_escape",
    "layout_tables",
    "method_table",
    "proxy_labels",
    "significance_marks",
    "summary",
    "to_csv",
    "to_html",
    "to_latex",
    "to_markdown",
    "write_layouts",
    "write_report",
]

# Column order of a method table; metrics and protocols not listed follow in order of appearance.
METRIC_ORDER: tuple[str, ...] = ("psnr", "ssim", "ms_ssim", "delta_e76", "delta_e2000", "lpips", "seconds")
PROTOCOL_ORDER: tuple[str, ...] = ("d", "f", "100")

# Seed-style column ids (``PSNR_d``, ``seconds_f``): used in CSV headers and by column_name().
COLUMN_NAMES: dict[str, str] = {
    "psnr": "PSNR",
    "ssim": "SSIM",
    "ms_ssim": "MS-SSIM",
    "delta_e76": "ΔE76",
    "delta_e2000": "ΔE2000",
    "lpips": "LPIPS",
    "seconds": "seconds",
}
# Names shown in Markdown headers and captions.
DISPLAY_NAMES: dict[str, str] = {**COLUMN_NAMES, "seconds": "s/img"}
# Names shown in LaTeX headers (already LaTeX, not escaped again).
LATEX_NAMES: dict[str, str] = {
    "psnr": "PSNR",
    "ssim": "SSIM",
    "ms_ssim": "MS-SSIM",
    "delta_e76": r"$\Delta E_{76}$",
    "delta_e2000": r"$\Delta E_{2000}$",
    "lpips": "LPIPS",
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
    """Mean ± std over seeds of the per-seed image means, per (label, dataset, protocol, metric).

    Args:
        rows: result rows in long format (``benchmark.results.ROW_COLUMNS``).
        partial: what to do when a group mixes NaN ("n/a") and numbers: ``"raise"`` (default)
            raises ``ValueError`` naming the groups; ``"mark"`` keeps the group with a NaN mean
            and ``status == "incomplete"``.

    Returns:
        One row per group in order of first appearance, columns ``SUMMARY_COLUMNS``: ``mean``
        (mean of per-seed means), ``std`` (sample std over seeds, NaN with one seed),
        ``n_seeds``, ``n_images`` (distinct image keys over all seeds), ``n_missing`` /
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
    per_seed = (
        frame.groupby([*_GROUP, "seed"], sort=False, dropna=False)
        .agg(value=("value", "mean"), n_missing=("is_nan", "sum"), n_values=("value", "size"))
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


def _header(metric: str, protocol: str) -> str:
    return f"{DISPLAY_NAMES.get(metric, metric)}_{protocol}"


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
    per DPED phone).
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
    headers = ["Method"] + (table.headers or [_header(m, p) for m, p in table.columns])
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
    "—": "---",
    "…": r"\dots{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}
_LATEX_TOKENS = {"ΔE76": r"$\Delta E_{76}$", "ΔE2000": r"$\Delta E_{2000}$", "ΔE": r"$\Delta E$"}
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
        groups = [(LATEX_NAMES.get(metric) or latex_escape(DISPLAY_NAMES.get(metric, metric)), len(protocols))
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

    headers = ["Method"] + (table.headers or [_header(m, p) for m, p in table.columns])
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
    how each method produced protocol ``f``, and unavailable metrics with their message.

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

    parts = [
        _caption_head(frame, datasets, protocols),
        _caption_seeds(frame),
        _caption_scoring(metrics, infos),
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


def _caption_seeds(frame: pd.DataFrame) -> str:
    seeds = sorted(dict.fromkeys(frame["seed"].dropna()), key=_seed_sort_key)
    text = f"{len(seeds)} {'seed' if len(seeds) == 1 else 'seeds'} ({_join(_text(s) for s in seeds)}); "
    text = text[0].upper() + text[1:] + "each cell is the mean over images per seed"
    if len(seeds) > 1:
        text += ", then mean ± sample std over seeds"
    per_label = frame.groupby("label", sort=False)["seed"].nunique()
    if per_label.nunique() > 1:
        text += " (seeds per method: " + _join(f"{k} {v}" for k, v in per_label.items()) + ")"
    return text + "."


def _caption_scoring(metrics: list[str], infos: Sequence[Mapping[str, Any]]) -> str:
    arrows = {True: "↑", False: "↓"}
    directions = [f"{DISPLAY_NAMES.get(m, m)} {arrows[HIGHER_IS_BETTER[m]]}" for m in metrics if m in HIGHER_IS_BETTER]
    text = "Best per column in bold" + (f" ({_join(directions)})" if directions else "")
    text += ", second best underlined (with three or more methods). "
    conventions = [text for metric, text in _CONVENTIONS if metric is None or metric in metrics]
    text += "Scoring: " + "; ".join(conventions) + "."
    if "seconds" in metrics:
        devices = list(dict.fromkeys(str(i["device"]) for i in infos if i.get("device")))
        text += " s/img = per-image inference time" + (f" on {_join(devices)}" if devices else "") + "."
    return text


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
        out.append((dataset, table, caption(subset, infos)))
    return out


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
    """Layout name -> datasets it can show (those with every column the layout needs)."""
    frame = _prepare(rows)
    found: dict[str, list[str]] = {}
    for layout in LAYOUTS.values():
        datasets = []
        for dataset in dict.fromkeys(frame["dataset"]):
            if layout.group_prefix and not str(dataset).startswith(layout.group_prefix):
                continue
            subset = frame[frame["dataset"] == dataset]
            if _has_columns(subset, _layout_columns(layout, subset)):
                datasets.append(dataset)
        if datasets:
            found[layout.name] = datasets
    return found


def _per_image(frame: pd.DataFrame, metric: str, protocol: str) -> pd.DataFrame:
    """Image × label values of one column, averaged over seeds (the unit of the paired test)."""
    part = frame[(frame["metric"] == metric) & (frame["protocol"] == protocol)]
    return part.pivot_table(index=["key", "frame"], columns="label", values="value", aggfunc="mean", dropna=False)


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
    two-sided Wilcoxon signed-rank test over images, on per-image values averaged over seeds.
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
        values = _per_image(frame, metric, protocol)
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
    text = (f"{NOT_SIGNIFICANT_MARK}: the difference to the best of its column is not significant (two-sided "
            f"Wilcoxon signed-rank test paired by image, per-image values averaged over seeds, α = {alpha:g}; "
            f"{images} images); unmarked differences are.")
    smallest = 2.0 / 2**images
    if smallest >= alpha:
        text += f" With {images} images no difference can be significant (smallest possible p = {smallest:.3g})."
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
