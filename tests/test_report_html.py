"""``qmap report`` end to end: plots, image grids, the self-contained report.html in Chromium."""

from __future__ import annotations

import base64
import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from benchmark.results import load_run_infos
from reports import cli, plots, samples
from report_runs import KEYS, QUALITY, SIZES, write_runs

CHROMIUM = "/usr/bin/chromium"
# Exactly as shared/specs/environment.md says: without the background-networking flags Chromium
# floods the closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A full report of four labels on one dataset, two protocols, samples for three ids."""
    runs = write_runs(tmp_path_factory.mktemp("report"))
    assert cli.main([str(runs), "--reported"]) == 0
    return runs / "report"


def test_report_folder_holds_every_output(report: Path):
    expected = [
        "table.md", "table.tex", "table.csv", "report.html",
        "table_muspe_table1.md", "table_muspe_table1.tex", "table_muspe_table1.csv",
        "table_upe_fivek.md", "table_upe_fivek.tex", "table_upe_fivek.csv",
        "preference/demo/matrix.csv", "preference/demo/matrix.md", "preference/demo/matrix.tex",
        "preference/demo/scores.csv", "preference/demo/significance.csv", "preference/demo/observers.csv",
        "preference/demo/preference.md", "preference/demo/preference.json",
        "preference/demo/heatmap.png", "preference/demo/jod.png",
        "plots/quality_latency_demo.png", "plots/samples_demo.png",
    ]
    missing = [name for name in expected if not (report / name).is_file()]
    assert not missing
    summary = (report / "preference" / "demo" / "preference.md").read_text(encoding="utf-8")
    assert summary.startswith("# Preference matrix, demo (virtual raters: full-reference metrics, not human judgements)")
    scores = pd.read_csv(report / "preference" / "demo" / "scores.csv")
    assert list(scores["method"]) == list(QUALITY)  # suite order
    assert scores.set_index("method")["jod"].idxmax() == "upe"


def test_report_html_is_self_contained(report: Path):
    html = (report / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["'](?!data:)""", html), "every asset must be embedded"
    assert "<script" not in html and "<link" not in html and "@import" not in html
    sources = re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)
    assert len(sources) == 4  # heatmap, JOD bars, quality vs latency, sample grid
    for data in sources:
        image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[0] > 50 and image.shape[1] > 50
    assert html.count("virtual raters: full-reference metrics, not human judgements") >= 3
    assert "(reported in seed Table 1)" in html and "not comparable" in html


def test_grid_shows_protocol_f_with_input_and_target(tmp_path: Path, report: Path):
    infos = load_run_infos(report.parent)
    dirs = [Path(info["path"]) for info in infos]
    assert samples.sample_protocol(dirs) == "f"
    assert samples.sample_keys(dirs, "f") == list(KEYS[:3])
    rows, notes = samples.grid_rows([(info["label"], info) for info in infos], "f", ["a0001"], long_side=10_000)
    assert not notes
    ((_, panels),) = rows
    assert [title for title, _ in panels] == ["input", *[i["label"] for i in infos], "target"]
    data_root = Path(infos[0]["data"]["root"])
    stored = cv2.cvtColor(cv2.imread(str(data_root / "target" / "a0001.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(panels[-1][1], stored)  # protocol f: the file as it is


def test_protocol_d_input_is_resized_like_the_scorer(report: Path):
    from datamodules.io import read_image, to_uint8
    from datamodules.transforms import resize_long_side

    info = next(i for i in load_run_infos(report.parent) if i["label"] == "upe")
    source, output, target = samples.triplet(info, Path(info["path"]), "d", "a0003")
    assert output.shape[:2] == (512, 77) and max(SIZES["a0003"]) == 600
    root = Path(info["data"]["root"])
    expected = to_uint8(resize_long_side(read_image(root / "input" / "a0003.png")))
    np.testing.assert_array_equal(source, expected)
    assert target.shape == output.shape


def test_missing_dataset_root_is_said_not_hidden(tmp_path: Path):
    runs = write_runs(tmp_path)
    shutil.rmtree(tmp_path / "data")
    assert cli.main([str(runs), "--layout", "generic"]) == 0
    html = (runs / "report" / "report.html").read_text(encoding="utf-8")
    assert "input and target not shown: dataset root" in html


def test_plot_functions_write_pngs(tmp_path: Path):
    counts = pd.DataFrame([[0, 3, 4], [1, 0, 2.5], [0, 1.5, 0]], index=list("ABC"), columns=list("ABC"))
    scores = pd.DataFrame({"method": list("ABC"), "jod": [0.5, 0.0, -0.5], "jod_ci_low": [0.1, -0.3, -1.0],
                           "jod_ci_high": [0.9, 0.3, -0.1]})
    stats = pd.DataFrame({"label": ["A", "A", "B", "B"], "protocol": ["d"] * 4, "metric": ["psnr", "seconds"] * 2,
                          "mean": [22.0, 0.01, 24.0, 0.2]})
    grid = [("k1", [("input", np.zeros((8, 12, 3), np.uint8)), ("A", None)])]
    for path in (plots.preference_heatmap(counts, tmp_path / "h.png", "title"),
                 plots.jod_bars(scores, tmp_path / "j.png", "title"),
                 plots.quality_latency(stats, tmp_path / "q.png"),
                 plots.image_grid(grid, tmp_path / "g.png")):
        image = cv2.imread(str(path))
        assert image is not None and image.shape[0] >= 100
    with pytest.raises(ValueError, match="both psnr and seconds"):
        plots.quality_latency(stats[stats.metric == "psnr"], tmp_path / "none.png")


def _launch_chromium():
    """Playwright driving Debian's chromium, or a reason why not."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None, "the playwright package is not installed (make install-browser)"
    if not Path(CHROMIUM).exists():
        return None, f"{CHROMIUM} is missing (make install-browser)"
    return sync_playwright, ""


def test_report_renders_in_headless_chromium(report: Path):
    sync_playwright, reason = _launch_chromium()
    if sync_playwright is None:
        if os.environ.get("QMAP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"QMAP_REQUIRE_BROWSER=1 but no browser: {reason}")
        pytest.skip(f"browser test skipped: {reason}; set QMAP_REQUIRE_BROWSER=1 to make this a failure")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto((report / "report.html").resolve().as_uri())
            found = page.evaluate("""() => ({
                tables: Array.from(document.querySelectorAll('table.results')).map(t => t.tBodies[0].rows.length),
                frames: document.querySelectorAll('table.frame').length,
                widths: Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0),
                title: document.title,
                headings: Array.from(document.querySelectorAll('h3')).map(h => h.textContent),
            })""")
        finally:
            browser.close()
    # Generic table: 4 labels; muspe_table1 and upe_fivek: 4 labels + 9 and 5 reported rows.
    assert found["tables"] == [4, 4 + 9, 4 + 5]
    assert found["frames"] == 3  # count matrix, scores, metric observers
    assert len(found["widths"]) == 4 and all(width > 0 for width in found["widths"])
    assert found["title"] == "qmap-bench report: rep"
    assert any("virtual raters" in h for h in found["headings"])
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
