"""Report figures: preference heatmap, JOD bars, quality vs latency, per-image grids.

matplotlib is imported inside each function and used through ``matplotlib.figure.Figure``
with the Agg canvas — never ``pyplot`` — so plotting needs no display, leaves no global figure
state behind, and importing this module stays cheap (``qmap report`` must start fast).
Every function writes one PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["image_grid", "jod_bars", "preference_heatmap", "quality_latency"]

DPI = 100
_CHARS_PER_INCH = 11  # title characters per inch of figure width at font size 9


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _wrap(title: str, figure: Any) -> str:
    """Wrap a title to the figure's width (long virtual-rater titles must not be clipped)."""
    import textwrap

    width = max(20, int(figure.get_figwidth() * _CHARS_PER_INCH))
    return "\n".join(textwrap.wrap(title, width)) if title else ""


def _save(figure: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path


def preference_heatmap(counts: pd.DataFrame, path: str | Path, title: str = "Preference matrix") -> Path:
    """Share of judgements preferring the row over the column, annotated with the counts.

    Args:
        counts: square count matrix, ``C[i, j]`` = times row ``i`` beat column ``j``.
        path: PNG to write.
        title: figure title (says "virtual raters" when the judgements are metrics').
    """
    values = counts.to_numpy(dtype=float)
    total = values + values.T
    share = np.divide(values, total, out=np.full(values.shape, np.nan), where=total > 0)
    np.fill_diagonal(share, np.nan)
    n = len(counts)
    figure = _figure(max(4.5, 1.0 + 0.9 * n), max(3.8, 0.9 + 0.75 * n))
    axes = figure.subplots()
    image = axes.imshow(share, cmap="RdBu", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if i != j and total[i, j] > 0:
                count = values[i, j]
                text = str(int(count)) if float(count).is_integer() else f"{count:.1f}"
                dark = abs(share[i, j] - 0.5) > 0.3
                axes.text(j, i, f"{text}\n{100 * share[i, j]:.0f}%", ha="center", va="center", fontsize=8,
                          color="white" if dark else "black")
    names = [str(m) for m in counts.index]
    axes.set_xticks(range(n), names, rotation=30, ha="right")
    axes.set_yticks(range(n), names)
    axes.set_xlabel("compared with (column)")
    axes.set_ylabel("method (row)")
    figure.colorbar(image, ax=axes, label="share of judgements preferring the row")
    axes.set_title(_wrap(title, figure), fontsize=9)
    return _save(figure, path)


def jod_bars(scores: pd.DataFrame, path: str | Path, title: str = "Thurstone Case V scores",
             interval: str = "95% bootstrap interval") -> Path:
    """JOD score per method with its bootstrap interval, sorted from worst to best.

    Args:
        scores: ``method, jod, jod_ci_low, jod_ci_high`` (as :func:`reports.preference.analyse_trials`).
        path: PNG to write.
        title: figure title.
        interval: what the error bars are (printed in the title).
    """
    frame = scores.sort_values("jod").reset_index(drop=True)
    jod = frame["jod"].to_numpy(dtype=float)
    errors = np.vstack([jod - frame["jod_ci_low"].to_numpy(dtype=float),
                        frame["jod_ci_high"].to_numpy(dtype=float) - jod])
    figure = _figure(max(4.5, 1.2 + 0.8 * len(frame)), 3.6)
    axes = figure.subplots()
    axes.bar(range(len(frame)), jod, yerr=np.clip(errors, 0, None), capsize=4, color="#4c72b0")
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(frame)), frame["method"].astype(str), rotation=30, ha="right")
    axes.set_ylabel("JOD (1 JOD = 75% preference)")
    axes.set_title(_wrap(f"{title} — error bars: {interval}", figure), fontsize=9)
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def quality_latency(stats: pd.DataFrame, path: str | Path, metric: str = "psnr", title: str = "",
                    labels: Mapping[str, str] | None = None, unit: str = "image") -> Path:
    """Quality against per-image (or per-frame) time (log x), one panel per protocol that has both.

    Args:
        stats: :func:`reports.tables.summary` output (``label, protocol, metric, mean``).
        path: PNG to write.
        metric: quality metric on the y axis.
        title: figure title.
        labels: display names per label (e.g. with a proxy marker).
        unit: what ``seconds`` is per: ``image``, or ``frame`` for video.
    """
    from reports.tables import DISPLAY_NAMES, PROTOCOLS

    quality = stats[stats["metric"] == metric].set_index(["label", "protocol"])["mean"]
    seconds = stats[stats["metric"] == "seconds"].set_index(["label", "protocol"])["mean"]
    joined = pd.concat({"quality": quality, "seconds": seconds}, axis=1).dropna().reset_index()
    joined = joined[joined["seconds"] > 0]
    if joined.empty:
        raise ValueError(f"no label has both {metric} and seconds for one protocol")
    protocols = list(dict.fromkeys(joined["protocol"]))
    figure = _figure(4.2 * len(protocols) + 0.6, 3.8)
    panels = np.atleast_1d(figure.subplots(1, len(protocols), squeeze=False)[0])
    for axes, protocol in zip(panels, protocols, strict=True):
        part = joined[joined["protocol"] == protocol]
        axes.scatter(part["seconds"], part["quality"], color="#c44e52", zorder=3)
        for row in part.itertuples(index=False):
            name = (labels or {}).get(row.label, row.label)
            axes.annotate(name, (row.seconds, row.quality), textcoords="offset points", xytext=(4, 4), fontsize=8)
        axes.set_xscale("log")
        axes.margins(x=0.25, y=0.12)  # room for the labels next to the outermost points
        axes.set_xlabel(f"seconds per {unit} (log scale)")
        over = "mean per video, then over videos" if unit == "frame" else "mean over images"
        axes.set_ylabel(f"{DISPLAY_NAMES.get(metric, metric)} ({over})")
        axes.set_title(PROTOCOLS.get(str(protocol), f"protocol {protocol}"), fontsize=8)
        axes.grid(alpha=0.3, which="both")
    if title:
        figure.suptitle(_wrap(title, figure), fontsize=9)
    return _save(figure, path)


def image_grid(rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray | None]]]], path: str | Path,
               title: str = "", panel_inches: float = 2.2) -> Path:
    """A grid of images: one row per image id, one column per source (input, methods, target).

    Args:
        rows: ``(row title, [(column title, uint8 RGB array or None), ...])``; every row has the
            same columns; ``None`` draws an empty panel reading "not available".
        path: PNG to write.
        title: figure title.
        panel_inches: width of one panel.
    """
    if not rows:
        raise ValueError("an image grid needs at least one row")
    n_cols = len(rows[0][1])
    figure = _figure(panel_inches * n_cols, panel_inches * 0.8 * len(rows) + (0.5 if title else 0.2))
    axes = np.atleast_2d(figure.subplots(len(rows), n_cols, squeeze=False))
    for r, (row_title, panels) in enumerate(rows):
        if len(panels) != n_cols:
            raise ValueError(f"grid row {row_title!r} has {len(panels)} panels, expected {n_cols}")
        for c, (column_title, image) in enumerate(panels):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if image is None:
                ax.text(0.5, 0.5, "not available", ha="center", va="center", fontsize=8, transform=ax.transAxes)
            else:
                ax.imshow(image)
            if r == 0:
                ax.set_title(column_title, fontsize=8)
            if c == 0:
                ax.set_ylabel(row_title, fontsize=8)
    if title:
        figure.suptitle(_wrap(title, figure), fontsize=9)
    return _save(figure, path)
