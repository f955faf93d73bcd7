"""One self-contained ``report.html``: tables, plots and image grids, nothing external.

Every image is embedded as a ``data:image/png;base64`` URI and the style sheet is inline, so the
file opens from disk (or as a CI artifact, or an e-mail attachment) with no other file, no
network and no JavaScript.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.results import atomic_write_text

__all__ = ["Section", "frame_html", "image_data_uri", "render", "write_html"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
caption { caption-side: top; text-align: left; font-size: 0.85em; color: #444; max-width: 1100px; padding-bottom: 0.5em; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }
th[scope=row], thead th:first-child { text-align: left; }
thead th { border-bottom: 2px solid #444; }
tr.reported { color: #555; font-style: italic; background: #f6f6f6; }
.warning { background: #fff3cd; border: 1px solid #e0c36c; padding: 0.5em 0.8em; margin: 0.5em 0; }
.virtual { background: #e8f0fe; border: 1px solid #9bb5e6; padding: 0.5em 0.8em; margin: 0.5em 0; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #444; }
p.caption { font-size: 0.85em; color: #444; max-width: 1100px; }
footer { margin-top: 3em; font-size: 0.8em; color: #666; }
"""


@dataclass
class Section:
    """One part of the report.

    Attributes:
        title: heading.
        caption: paragraph under the heading (escaped).
        html: pre-rendered HTML (e.g. :func:`reports.tables.to_html`), inserted as is.
        images: ``(caption, PNG path)`` pairs, embedded as data URIs.
        warnings: highlighted lines (escaped).
        banner: a highlighted line that labels the whole section (e.g. virtual raters).
        level: heading level (2 or 3).
    """

    title: str
    caption: str = ""
    html: str = ""
    images: list[tuple[str, Path]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    banner: str = ""
    level: int = 2


def image_data_uri(path: str | Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    data = Path(path).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"{path}: not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def frame_html(frame: pd.DataFrame, caption: str = "", digits: int = 3) -> str:
    """A DataFrame as a plain HTML table (floats rounded to ``digits``), first column as row header."""
    parts = [f'<p class="caption">{escape(caption)}</p>'] if caption else []
    parts.append('<table class="frame">')
    parts.append("<thead><tr>" + "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns) + "</tr></thead><tbody>")
    for row in frame.itertuples(index=False):
        cells = []
        for index, value in enumerate(row):
            text = _number(value, digits)
            cells.append(f'<th scope="row">{escape(text)}</th>' if index == 0 else f"<td>{escape(text)}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts) + "\n"


def _number(value: object, digits: int) -> str:
    """Whole numbers without decimals (counts), other floats with ``digits``, text as is."""
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return "n/a"
        return str(int(value)) if float(value).is_integer() else f"{value:.{digits}f}"
    return str(value)


def _section_html(section: Section) -> str:
    level = min(max(section.level, 2), 4)
    parts = [f"<section><h{level}>{escape(section.title)}</h{level}>"]
    if section.banner:
        parts.append(f'<p class="virtual">{escape(section.banner)}</p>')
    parts += [f'<p class="warning"><strong>Warning:</strong> {escape(w)}</p>' for w in section.warnings]
    if section.caption:
        parts.append(f'<p class="caption">{escape(section.caption)}</p>')
    if section.html:
        parts.append(section.html)
    for caption, path in section.images:
        parts.append(f'<figure><img src="{image_data_uri(path)}" alt="{escape(caption, quote=True)}">'
                     f"<figcaption>{escape(caption)}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def render(title: str, sections: Sequence[Section], intro: Sequence[str] = ()) -> str:
    """The whole document as a string."""
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    body = [f"<h1>{escape(title)}</h1>"]
    body += [f'<p class="warning">{escape(line)}</p>' for line in intro]
    body += [_section_html(section) for section in sections]
    body.append(f"<footer>Generated by qmap report at {generated}. Self-contained: every image is embedded.</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_html(path: str | Path, title: str, sections: Sequence[Section], intro: Sequence[str] = ()) -> Path:
    """Write :func:`render` to ``path`` atomically and return it."""
    path = Path(path)
    atomic_write_text(path, render(title, sections, intro))
    return path
