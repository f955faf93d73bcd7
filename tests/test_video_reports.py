"""Video results in reports: per-video averaging, temporal metrics, weakly aligned captions,
per-frame vs fine-tuned comparisons, sample grids from saved references, a mixed ``qmap report``.

Synthetic runs only (tests/report_runs.py); no torch.
"""

from __future__ import annotations

import shutil
from io import StringIO
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from benchmark.results import load_run_infos, load_runs
from reports import cli, samples, tables
from report_runs import (
    VIDEO_DATASET,
    WEAK_VIDEO_DATASET,
    run_rows,
    video_rows,
    video_value,
    write_runs,
    write_video_runs,
)


def _loaded(runs: Path) -> tuple[pd.DataFrame, list[dict]]:
    infos = [i for i in load_run_infos(runs) if i.get("status") == "done"]
    return load_runs(runs), infos


# ---------------------------------------------------------------------------------------------
# averaging


def test_frames_are_averaged_per_video_then_over_videos():
    # Video v1: one frame at 30 dB; v2: three frames at 20 dB. Per video then over videos: 25;
    # pooled over the four frames it would be 22.5.
    def value(label, metric, video, frame, seed):
        return {"psnr": (30.0, 20.0)[video], "seconds": 0.01 * (1 + video)}[metric]

    rows = video_rows("upe", lengths={"v1": 1, "v2": 3}, value=value, metrics=("psnr", "seconds"))
    assert rows[rows.metric == "psnr"]["value"].mean() == pytest.approx(22.5)
    stats = tables.summary(rows).set_index("metric")
    assert stats.loc["psnr", "mean"] == pytest.approx(25.0)
    assert stats.loc["seconds", "mean"] == pytest.approx(0.015)  # (0.01 + 0.02) / 2, not (0.01 + 3·0.02) / 4
    assert stats.loc["psnr", "n_images"] == 2  # keys: videos

    table = tables.method_table(rows)
    assert table.cells.loc["upe", "PSNR_f"] == "25.00"
    assert table.per_frame
    assert "| Method | PSNR_f | s/frame_f |" in tables.to_markdown(table)
    assert r"\multicolumn{1}{c}{s/frame}" in tables.to_latex(table)


def test_image_rows_give_the_plain_mean_over_images():
    rows = pd.concat([run_rows(label, "demo", seed) for label in ("identity", "upe") for seed in (0, 1)],
                     ignore_index=True)
    stats = tables.summary(rows, partial="mark")
    plain = rows.groupby(["label", "protocol", "metric", "seed"])["value"].mean().groupby(
        ["label", "protocol", "metric"]).mean()
    for record in stats[stats.status == "ok"].itertuples():
        assert record.mean == plain.loc[(record.label, record.protocol, record.metric)]  # bit for bit
    table = tables.method_table(rows)
    assert not table.per_frame and "s/img_d" in tables.to_markdown(table)


def test_temporal_metric_names_order_and_precision():
    rows = video_rows("upe")
    table = tables.method_table(rows)
    assert table.column_names == ["PSNR_f", "SSIM_f", "E_warp_f", "flicker_f", "seconds_f"]
    assert not table.higher_is_better["E_warp_f"] and not table.higher_is_better["flicker_f"]
    assert tables.format_value("warp_error", 0.0012345) == "0.00123"
    assert tables.format_value("flicker", 1.2345) == "1.23"
    assert r"$E_{\mathrm{warp}}$" in tables.to_latex(table)
    text = tables.caption(rows)
    assert "E_warp ↓" in text and "flicker ↓" in text and "s/frame ↓" in text
    assert "Lai et al. 2018" in text and "8-bit levels" in text
    assert "s/frame = per-frame inference time" in text
    image_text = tables.caption(run_rows("upe", "demo", 0))
    assert "Lai et al." not in image_text and "flicker" not in image_text and "s/frame" not in image_text


# ---------------------------------------------------------------------------------------------
# captions


def test_video_caption_says_how_frames_were_scored(tmp_path: Path):
    runs = write_video_runs(tmp_path, samples=False)
    rows, infos = _loaded(runs)
    ((dataset, table, text),) = tables.dataset_tables(rows, infos)
    assert dataset == VIDEO_DATASET and table.per_frame
    assert "averaged over the frames of each video, then over the videos (3 videos, 13 frames, 2–7 per video)" in text
    assert "known motion" in text and "Farneback" not in text
    assert "Evaluation: pixel-aligned pairs: per-frame full-reference scores and temporal scores." in text
    assert "Scored frame by frame with the image checkpoint trained on demo (no video training): upe." in text
    assert "dacal_rec fine-tuned from upe's checkpoint trained on demo" in text
    assert "Weakly aligned" not in text
    assert tables.applicable_layouts(rows) == {}  # seed layouts reproduce image tables only


def test_weakly_aligned_table_has_no_full_reference_column_and_says_why(tmp_path: Path):
    runs = write_video_runs(tmp_path, dataset=WEAK_VIDEO_DATASET, aligned=False, has_motion=False, samples=False)
    rows, infos = _loaded(runs)
    ((_, table, text),) = tables.dataset_tables(rows, infos)
    assert table.column_names == ["E_warp_f", "flicker_f", "seconds_f"]
    assert "PSNR" not in tables.to_markdown(table, "")
    assert tables.WEAKLY_ALIGNED_NOTE in text
    assert "no full-reference score (pixels do not correspond); temporal metrics only" in text
    assert "OpenCV Farneback optical flow between consecutive input frames" in text
    assert text.count("no full-reference score") == 1  # data.evaluation says it too: printed once
    assert "13 frames" in text  # counted from the per-frame time rows


# ---------------------------------------------------------------------------------------------
# per-frame vs fine-tuned comparison

PSNR = {"upe": (20.0, 22.0, 24.0), "dacal_rec": (21.0, 23.0, 24.0)}  # dacal_rec: 2 wins, 1 tie
WARP = {"upe": (0.010, 0.010, 0.010), "dacal_rec": (0.005, 0.020, 0.030)}  # lower better: 1 win, 2 losses


def _constructed(label, metric, video, frame, seed):
    if label in PSNR and metric == "psnr":
        return PSNR[label][video] + 0.1 * frame  # same frame profile for both: ties stay ties
    if label in WARP and metric == "warp_error":
        return WARP[label][video]
    return video_value(label, metric, video, frame, seed)


def test_comparison_rows_difference_and_wins(tmp_path: Path):
    runs = write_video_runs(tmp_path, value=_constructed, samples=False)
    rows, infos = _loaded(runs)
    (result,) = tables.comparison_tables(rows, infos)
    assert (result.dataset, result.per_frame, result.fine_tuned) == (VIDEO_DATASET, "upe", "dacal_rec")
    table = result.table
    assert table.labels == ["upe", "dacal_rec", tables.DIFFERENCE_ROW, tables.WINS_ROW]
    full = tables.method_table(rows[rows.dataset == VIDEO_DATASET])
    assert table.column_names == full.column_names  # every column of the dataset table
    for label in ("upe", "dacal_rec"):
        assert list(table.cells.loc[label]) == list(full.cells.loc[label])
    # Difference = fine-tuned − per-frame of the means.
    assert table.mean.loc[tables.DIFFERENCE_ROW, "PSNR_f"] == pytest.approx(2.0 / 3.0)
    assert table.cells.loc[tables.DIFFERENCE_ROW, "PSNR_f"] == "+0.67"
    assert table.mean.loc[tables.DIFFERENCE_ROW, "E_warp_f"] == pytest.approx(0.055 / 3 - 0.010)
    assert table.cells.loc[tables.DIFFERENCE_ROW, "E_warp_f"] == "+0.00833"
    assert table.cells.loc[tables.DIFFERENCE_ROW, "flicker_f"].startswith("−")  # dacal_rec flickers less
    # Wins/ties/losses of the fine-tuned run, per video, in each column's direction.
    assert table.cells.loc[tables.WINS_ROW, "PSNR_f"] == "2/1/0"
    assert table.cells.loc[tables.WINS_ROW, "E_warp_f"] == "1/0/2"
    assert table.cells.loc[tables.WINS_ROW, "flicker_f"] == "3/0/0"
    assert table.cells.loc[tables.WINS_ROW, "seconds_f"] == "0/0/3"  # slower on every video
    assert table.best.loc["dacal_rec", "PSNR_f"] and not table.best.loc["upe", "PSNR_f"]
    assert table.best.loc["upe", "E_warp_f"]  # lower mean warp error
    assert not table.best.loc[[tables.DIFFERENCE_ROW, tables.WINS_ROW]].to_numpy().any()

    numbers = result.numbers.set_index("column")
    assert (numbers.loc["E_warp_f", ["wins", "ties", "losses", "n_videos"]].tolist() == [1, 0, 2, 3])
    assert numbers.loc["PSNR_f", "difference"] == pytest.approx(2.0 / 3.0)
    assert "fine-tuned − per-frame" in result.caption and "dacal_rec minus upe" in result.caption
    assert "one seed (0)" in result.caption and "smoke scale" in result.caption

    paths = tables.write_comparison(result, tmp_path / "out")
    assert paths["md"].name == "compare_demo_video_dacal_rec.md"
    assert "| per-video wins/ties/losses of fine-tuned | 2/1/0 |" in paths["md"].read_text(encoding="utf-8")
    csv = pd.read_csv(paths["csv"])
    assert set(csv["column"]) == set(table.column_names) and list(csv["fine_tuned_label"].unique()) == ["dacal_rec"]
    tex = paths["tex"].read_text(encoding="utf-8")
    assert r"\toprule" in tex and "−" not in tex


def test_no_comparison_without_init_from_or_without_the_per_frame_run(tmp_path: Path):
    runs = write_video_runs(tmp_path / "a", init_from={}, samples=False)
    assert tables.comparison_tables(*_loaded(runs)) == []
    runs = write_video_runs(tmp_path / "b", labels=("identity", "dacal_rec"), init_from={"dacal_rec": "upe"},
                            samples=False)
    assert tables.comparison_tables(*_loaded(runs)) == []
    runs = write_runs(tmp_path / "c", samples=False)  # image runs never compare
    assert tables.comparison_tables(*_loaded(runs)) == []


# ---------------------------------------------------------------------------------------------
# sample grids from saved references


def test_video_grid_reads_references_without_the_dataset(tmp_path: Path):
    runs = write_video_runs(tmp_path)
    infos = [i for i in load_run_infos(runs)]
    assert not Path(infos[0]["data"]["root"]).exists()
    dirs = [Path(i["path"]) for i in infos]
    assert samples.sample_protocol(dirs) == "f"
    keys = samples.sample_keys(dirs, "f")
    assert keys == ["v001", "v002"]
    rows, notes = samples.grid_rows([(i["label"], i) for i in infos], "f", keys, long_side=10_000)
    assert not notes
    for key, panels in rows:
        assert [title for title, _ in panels] == ["input", *[i["label"] for i in infos], "target"]
        assert all(image is not None for _, image in panels)
        saved = Path(infos[0]["path"]) / "references" / "f" / key
        for (_, image), name in ((panels[0], "input"), (panels[-1], "target")):
            stored = cv2.cvtColor(cv2.imread(str(saved / f"{name}.png")), cv2.COLOR_BGR2RGB)
            np.testing.assert_array_equal(image, stored)


def test_image_grid_prefers_references_and_falls_back_to_the_dataset(tmp_path: Path):
    runs = write_runs(tmp_path, labels=("identity", "upe"), references=True)
    shutil.rmtree(tmp_path / "data")
    infos = load_run_infos(runs)
    rows, notes = samples.grid_rows([(i["label"], i) for i in infos], "d", ["a0003"], long_side=10_000)
    assert not notes
    ((_, panels),) = rows
    assert panels[0][1].shape == panels[1][1].shape == panels[-1][1].shape  # protocol d: the scored size
    source, output, target = samples.triplet(infos[0], Path(infos[0]["path"]), "d", "a0003")
    assert source.shape == output.shape == target.shape
    # Without references (old runs) and without the dataset: said, not hidden.
    for info in infos:
        shutil.rmtree(Path(info["path"]) / "references")
    rows, notes = samples.grid_rows([(i["label"], i) for i in infos], "d", ["a0003"])
    assert notes and "input and target not shown" in notes[0]
    assert rows[0][1][0][1] is None and rows[0][1][-1][1] is None


# ---------------------------------------------------------------------------------------------
# qmap report on a mixed folder


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("mixed")
    runs = write_runs(base, references=True)
    write_video_runs(base)
    write_video_runs(base, dataset=WEAK_VIDEO_DATASET, aligned=False, has_motion=False)
    assert cli.main([str(runs), "--bootstrap", "20"]) == 0
    return runs / "report"


def test_mixed_report_writes_every_output(mixed: Path):
    for name in ("table.md", "table.tex", "table.csv", "report.html",
                 "compare_demo_video_dacal_rec.md", "compare_demo_video_dacal_rec.tex",
                 "compare_demo_video_dacal_rec.csv", "compare_demo_video_weak_dacal_rec.md",
                 "plots/samples_demo.png", "plots/samples_demo_video.png", "plots/samples_demo_video_weak.png",
                 "plots/quality_latency_demo_video.png", "preference/demo_video/matrix.csv"):
        assert (mixed / name).is_file(), name
    assert not (mixed / "preference" / WEAK_VIDEO_DATASET).exists()  # no full-reference metric to vote
    md = (mixed / "table.md").read_text(encoding="utf-8")
    assert "## demo_video\n" in md and "## demo_video_weak\n" in md and "s/frame_f" in md
    assert "| Method | PSNR_d | PSNR_f |" in md  # the image table is unchanged
    assert set(pd.read_csv(mixed / "table_muspe_table1.csv")["dataset"]) == {"demo"}
    csv = pd.read_csv(mixed / "table.csv")
    assert {"demo", VIDEO_DATASET, WEAK_VIDEO_DATASET} == set(csv["dataset"])
    assert "E_warp_f_mean" in csv.columns


def test_mixed_report_html_has_video_tables_and_comparison(mixed: Path):
    html = (mixed / "report.html").read_text(encoding="utf-8")
    for fragment in ("All metrics, demo_video", "All metrics, demo_video_weak",
                     "<h2>Per-frame vs recurrent</h2>", "Per-frame vs recurrent, demo_video: dacal_rec vs upe",
                     "per-video wins/ties/losses of fine-tuned", "no full-reference score (pixels do not correspond)",
                     "middle frame of each sample video", "s/frame_f", "each &#x27;image&#x27; is a whole video"):
        assert fragment in html, fragment
    assert "input and target not shown" not in html  # every grid from the runs' references
    compare = pd.read_csv(StringIO((mixed / "compare_demo_video_dacal_rec.csv").read_text(encoding="utf-8")))
    assert compare.set_index("column").loc["PSNR_f", "wins"] == 3
