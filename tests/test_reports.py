"""Tables, captions and ``qmap report`` on synthetic result rows (no torch anywhere)."""

from __future__ import annotations

import math
import subprocess
import sys
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.results import HIGHER_IS_BETTER, make_run_id, write_json, write_rows
from reports import cli, tables

ROOT = Path(__file__).resolve().parents[1]
SUITE = "smoke"
DATASET = "demo"
SEEDS = (0, 1)
KEYS = ("a0001", "a0002", "a0003")
IMAGE_OFFSETS = (-1.0, 0.0, 1.0)  # mean 0 over images
SEED_OFFSETS = (0.0, 1.0)  # seed means base and base + scale: mean base + scale/2, std scale/sqrt(2)
SCALE = {"psnr": 1.0, "ssim": 0.01, "lpips": 0.0, "seconds": 0.01}
# Base values per label, metric and protocol; lpips is n/a (NaN) everywhere.
BASE = {
    "upe": {"psnr": {"d": 24.0, "f": 23.0}, "ssim": {"d": 0.85, "f": 0.80}, "seconds": {"d": 0.20, "f": 0.90}},
    "hdrnet": {"psnr": {"d": 22.0, "f": 21.0}, "ssim": {"d": 0.90, "f": 0.88}, "seconds": {"d": 0.05, "f": 0.10}},
    # A failed run whose numbers would win every column if they were (wrongly) reported.
    "dped": {"psnr": {"d": 40.0, "f": 40.0}, "ssim": {"d": 0.99, "f": 0.99}, "seconds": {"d": 0.001, "f": 0.001}},
}
METHODS = {"upe": "UPE", "hdrnet": "HDRNet", "dped": "DPED"}
LPIPS_MESSAGE = "AlexNet weights missing: put alexnet-owt-7be5be79.pth in $TORCH_HOME/hub/checkpoints/"


def expected(label: str, metric: str, protocol: str) -> tuple[float, float]:
    base, scale = BASE[label][metric][protocol], SCALE[metric]
    return base + scale * 0.5, scale / math.sqrt(2)


def run_rows(label: str, seed: int, dataset: str = DATASET) -> list[dict]:
    rows = []
    for protocol in ("d", "f"):
        for metric in ("psnr", "ssim", "lpips", "seconds"):
            for key, offset in zip(KEYS, IMAGE_OFFSETS, strict=True):
                if metric == "lpips":
                    value = float("nan")
                else:
                    value = BASE[label][metric][protocol] + SCALE[metric] * (SEED_OFFSETS[seed] + offset)
                rows.append(
                    {
                        "suite": SUITE,
                        "run_id": make_run_id(label, dataset, seed),
                        "label": label,
                        "method": METHODS[label],
                        "dataset": dataset,
                        "protocol": protocol,
                        "split": "test",
                        "seed": seed,
                        "key": key,
                        "frame": np.nan,
                        "metric": metric,
                        "value": value,
                        "higher_is_better": HIGHER_IS_BETTER[metric],
                    }
                )
    return rows


def all_rows(labels=("upe", "hdrnet")) -> pd.DataFrame:
    return pd.DataFrame([row for label in labels for seed in SEEDS for row in run_rows(label, seed)])


def run_info(label: str, seed: int, status: str = "done", order: int = 0) -> dict:
    return {
        "status": status,
        "label": label,
        "method": METHODS[label],
        "dataset": DATASET,
        "split": "test",
        "seed": seed,
        "order": order,
        "config_hash": "0123456789abcdef",
        "git_commit": "feedbeefcafe0123456789",
        "versions": {
            "torch": "2.14.1",
            "torchmetrics": "1.9.0",
            "lpips": "0.1.4",
            "scikit-image": "0.26.0",
            "opencv-python-headless": "5.0.0.93",
        },
        "durations": {"fit": 1.0, "test": 0.5},
        "iterations": 300,
        "params": 1000,
        "device": "cpu",
        "quick": True,
        "notes": ["quick config: 300 steps at 128 px crops", "50% of widths"],
        "data": {"root": "/tmp/demo", "dataset": DATASET, "split": "test", "protocols": ["d", "f"]},
        "full_resolution": "whole image" if label != "hdrnet" else "bilateral grid sliced at full resolution",
        "unavailable": {"lpips": LPIPS_MESSAGE},
    }


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """Suite folder: upe and hdrnet done (2 seeds each; upe first in the suite), dped failed."""
    suite = tmp_path / "runs" / SUITE
    for order, label in enumerate(("upe", "hdrnet", "dped")):
        for seed in SEEDS:
            folder = suite / make_run_id(label, DATASET, seed)
            write_rows(folder / "rows.csv", pd.DataFrame(run_rows(label, seed)))
            status = "failed" if label == "dped" else "done"
            write_json(folder / "run.json", run_info(label, seed, status, order))
    return suite


# ---------------------------------------------------------------------------------------------
# summary


def test_summary_means_and_stds_by_hand():
    stats = tables.summary(all_rows())
    assert list(stats.columns) == list(tables.SUMMARY_COLUMNS)
    assert list(dict.fromkeys(stats["label"])) == ["upe", "hdrnet"]  # input order kept
    for label in ("upe", "hdrnet"):
        for metric in ("psnr", "ssim", "seconds"):
            for protocol in ("d", "f"):
                row = stats[(stats.label == label) & (stats.metric == metric) & (stats.protocol == protocol)]
                assert len(row) == 1
                mean, std = expected(label, metric, protocol)
                assert row["mean"].iloc[0] == pytest.approx(mean)
                assert row["std"].iloc[0] == pytest.approx(std)
                assert row["n_seeds"].iloc[0] == 2
                assert row["n_images"].iloc[0] == 3
                assert row["status"].iloc[0] == "ok"
                assert bool(row["higher_is_better"].iloc[0]) is HIGHER_IS_BETTER[metric]
    lpips = stats[stats.metric == "lpips"]
    assert len(lpips) == 4
    assert lpips["mean"].isna().all() and lpips["std"].isna().all()
    assert (lpips["status"] == "n/a").all()
    assert not lpips["higher_is_better"].astype(bool).any()


def test_summary_averages_images_per_seed_first():
    rows = pd.DataFrame(run_rows("upe", 0) + run_rows("upe", 1))
    rows = rows[(rows.metric == "psnr") & (rows.protocol == "d")]
    # Seed 0 keeps one image (value 23), seed 1 keeps three (24, 25, 26): pooled mean 24.5,
    # mean of seed means (23 + 25) / 2 = 24, sample std over seeds sqrt(2).
    rows = rows[(rows.seed == 1) | (rows.key == "a0001")]
    stats = tables.summary(rows)
    assert stats["mean"].iloc[0] == pytest.approx(24.0)
    assert stats["std"].iloc[0] == pytest.approx(math.sqrt(2))
    assert stats["n_images"].iloc[0] == 3


def test_one_seed_has_no_std_and_the_cell_shows_only_the_mean():
    rows = pd.DataFrame(run_rows("upe", 0) + run_rows("hdrnet", 0))
    stats = tables.summary(rows)
    assert stats["std"].isna().all() and (stats["n_seeds"] == 1).all()
    table = tables.method_table(rows)
    assert table.cells.loc["upe", "PSNR_d"] == "24.00"
    assert "±" not in "".join(table.cells.to_numpy().ravel())


def test_partial_nan_raises_or_is_marked():
    rows = all_rows()
    where = (rows.label == "upe") & (rows.metric == "psnr") & (rows.protocol == "d") & (rows.key == "a0002")
    hit = rows.index[where][0]
    rows.loc[hit, "value"] = np.nan
    with pytest.raises(ValueError, match=r"upe PSNR_d on demo: 1 of 6 n/a"):
        tables.summary(rows)
    stats = tables.summary(rows, partial="mark")
    row = stats[(stats.label == "upe") & (stats.metric == "psnr") & (stats.protocol == "d")].iloc[0]
    assert row["status"] == "incomplete" and math.isnan(row["mean"])
    table = tables.method_table(rows, partial="mark")
    assert table.cells.loc["upe", "PSNR_d"] == "incomplete (1/6 n/a)"
    assert not table.best["PSNR_d"].any()  # one complete value left: nothing to compare
    assert "Incomplete" in tables.caption(rows, [])


def test_duplicated_images_and_mixed_suites_are_refused():
    rows = all_rows()
    with pytest.raises(ValueError, match="repeat an image"):
        tables.summary(pd.concat([rows, rows.iloc[:1]]))
    other = rows[rows.label == "upe"].assign(suite="other", run_id=lambda f: "x" + f["run_id"])
    with pytest.raises(ValueError, match="several runs"):
        tables.summary(pd.concat([rows, other]))


# ---------------------------------------------------------------------------------------------
# names, table, best marking, writers


def test_column_names():
    assert tables.column_name("psnr", "d") == "PSNR_d"
    assert tables.column_name("ssim", "f") == "SSIM_f"
    assert tables.column_name("psnr", "100") == "PSNR_100"
    assert tables.column_name("ms_ssim", "100") == "MS-SSIM_100"
    assert tables.column_name("delta_e76", "d") == "ΔE76_d"
    assert tables.column_name("delta_e2000", "d") == "ΔE2000_d"
    assert tables.column_name("lpips", "d") == "LPIPS_d"
    assert tables.column_name("seconds", "f") == "seconds_f"
    assert tables.DISPLAY_NAMES["seconds"] == "s/img"
    assert tables.LATEX_NAMES["delta_e76"] == r"$\Delta E_{76}$"


def test_method_table_cells_order_and_best():
    rows = all_rows()
    rows = rows.assign(protocol=rows["protocol"].astype(object))  # order below must not follow input
    rows = pd.concat([rows[rows.metric == "seconds"], rows[rows.metric != "seconds"]], ignore_index=True)
    table = tables.method_table(rows)
    assert table.labels == ["upe", "hdrnet"]
    assert table.column_names == [
        "PSNR_d", "PSNR_f", "SSIM_d", "SSIM_f", "LPIPS_d", "LPIPS_f", "seconds_d", "seconds_f",
    ]
    assert table.cells.loc["upe", "PSNR_d"] == "24.50 ± 0.71"
    assert table.cells.loc["hdrnet", "SSIM_d"] == "0.9050 ± 0.0071"
    assert table.cells.loc["hdrnet", "seconds_d"] == "0.055 ± 0.00707"
    assert table.cells.loc["upe", "LPIPS_d"] == "n/a"
    assert table.mean.loc["upe", "PSNR_d"] == pytest.approx(24.5)
    assert table.std.loc["upe", "PSNR_d"] == pytest.approx(1 / math.sqrt(2))
    # Higher PSNR/SSIM is better; lower seconds is better; n/a is never best.
    assert table.best.loc["upe", "PSNR_d"] and not table.best.loc["hdrnet", "PSNR_d"]
    assert table.best.loc["hdrnet", "SSIM_f"] and not table.best.loc["upe", "SSIM_f"]
    assert table.best.loc["hdrnet", "seconds_d"] and not table.best.loc["upe", "seconds_d"]
    assert not table.best[["LPIPS_d", "LPIPS_f"]].to_numpy().any()
    assert table.methods == {"upe": "UPE", "hdrnet": "HDRNet"}
    assert tables.method_table(rows, order=["hdrnet"]).labels == ["hdrnet", "upe"]


def test_ties_at_displayed_precision_are_both_bold():
    rows = all_rows()
    psnr = (rows.metric == "psnr") & (rows.label == "hdrnet") & (rows.protocol == "d")
    rows.loc[psnr, "value"] += 2.001  # 24.501 shows as 24.50, as upe's 24.5
    table = tables.method_table(rows)
    assert table.best.loc["upe", "PSNR_d"] and table.best.loc["hdrnet", "PSNR_d"]


def test_markdown_latex_csv():
    table = tables.method_table(all_rows())
    md = tables.to_markdown(table, "Caption paragraph.")
    lines = md.splitlines()
    assert lines[0] == "Caption paragraph." and lines[1] == ""
    assert lines[2] == "| Method | PSNR_d | PSNR_f | SSIM_d | SSIM_f | LPIPS_d | LPIPS_f | s/img_d | s/img_f |"
    assert lines[3].startswith("|:---|---:|")
    assert "| upe | **24.50 ± 0.71** | **23.50 ± 0.71** | 0.8550 ± 0.0071 |" in md
    assert "| hdrnet | 22.50 ± 0.71 |" in md and "**0.055 ± 0.00707**" in md
    assert "| n/a | n/a |" in md and "**n/a**" not in md

    tex = tables.to_latex(table, "Scores with 50% crops & data_range ± 1 on x_y.")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\cmidrule(lr){2-3}", r"\begin{tabular}{lcccccccc}"):
        assert rule in tex
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    assert r"\textbf{24.50 $\pm$ 0.71}" in tex
    assert r"\textbf{0.055 $\pm$ 0.00707}" in tex
    assert r"22.50 $\pm$ 0.71" in tex and r"\textbf{22.50" not in tex
    assert r"\multicolumn{2}{c}{PSNR}" in tex and r"\multicolumn{2}{c}{s/img}" in tex
    assert r"50\% crops \& data\_range $\pm$ 1 on x\_y." in tex
    assert r"\caption[qmap-bench results on demo]" in tex and r"\label{tab:qmap-demo}" in tex
    escaped = r"$\Delta E_{76}$ \#1 \{a\}\textasciitilde{}\textasciicircum{}\textbackslash{}"
    assert tables.latex_escape("ΔE76 #1 {a}~^\\") == escaped

    frame = pd.read_csv(StringIO(tables.to_csv(table)))
    assert list(frame["label"]) == ["upe", "hdrnet"]
    assert {"PSNR_d_mean", "PSNR_d_std", "seconds_f_mean", "LPIPS_d_mean"} <= set(frame.columns)
    assert frame.loc[0, "PSNR_d_mean"] == pytest.approx(24.5)
    assert frame.loc[0, "PSNR_d_std"] == pytest.approx(1 / math.sqrt(2))
    assert frame["LPIPS_d_mean"].isna().all()
    assert "±" not in tables.to_csv(table) and "**" not in tables.to_csv(table)


def test_latex_header_with_delta_e_and_protocol_100():
    rows = all_rows()
    extra = rows[rows.metric == "psnr"].assign(metric="delta_e76", higher_is_better=False)
    extra = pd.concat([extra, rows[(rows.metric == "ssim") & (rows.protocol == "d")].assign(protocol="100")])
    table = tables.method_table(pd.concat([rows, extra], ignore_index=True))
    assert table.column_names[:5] == ["PSNR_d", "PSNR_f", "SSIM_d", "SSIM_f", "SSIM_100"]
    assert "ΔE76_d" in table.column_names
    assert table.best.loc["hdrnet", "ΔE76_d"]  # lower ΔE is better
    tex = tables.to_latex(table)
    assert r"\multicolumn{3}{c}{SSIM}" in tex and r"\multicolumn{2}{c}{$\Delta E_{76}$}" in tex


# ---------------------------------------------------------------------------------------------
# caption and report files


def test_caption_states_settings(runs_dir: Path):
    from benchmark.results import load_run_infos, load_runs

    rows, infos = load_runs(runs_dir), load_run_infos(runs_dir)
    text = tables.caption(rows, infos)
    for fragment in (
        "Suite smoke",
        "dataset demo",
        "split test",
        "d = long side 512 with area interpolation",
        "f = full resolution",
        "2 seeds (0, 1)",
        "mean ± sample std over seeds",
        "round(x·255)",
        "PSNR per image then averaged",
        "SSIM Gaussian 11×11, σ 1.5, valid region, RGB mean, data range 255",
        "LPIPS alex v0.1 with inputs mapped to [-1, 1]",
        "torch 2.14.1",
        "torchmetrics 1.9.0",
        "lpips 0.1.4",
        "scikit-image 0.26.0",
        "opencv 5.0.0.93",
        "smoke-scale demo data built from photos shipped in scikit-image/scikit-learn wheels",
        "not comparable to paper numbers",
        "quick config: 300 steps at 128 px crops (upe, hdrnet)",
        "hdrnet: bilateral grid sliced at full resolution",
        "upe: whole image",
        f"LPIPS n/a: {LPIPS_MESSAGE.rstrip('.')}",
        "s/img = per-image inference time on cpu",
    ):
        assert fragment in text, fragment
    assert text.count("quick config: 300 steps") == 1  # deduplicated over runs
    assert "dped" not in text  # failed runs do not describe the table
    assert "ΔE" not in text and "MS-SSIM" not in text  # conventions only for metrics shown


def test_write_report(runs_dir: Path, tmp_path: Path):
    paths = tables.write_report(runs_dir)
    assert set(paths) == {"md", "tex", "csv"}
    assert all(path.parent == runs_dir / "report" and path.exists() for path in paths.values())
    md = paths["md"].read_text(encoding="utf-8")
    assert md.startswith("**Warning:** 2 runs are not done")
    assert "`dped__demo__s0` (failed)" in md and "`dped__demo__s1` (failed)" in md
    assert "| dped |" not in md and "40.00" not in md
    assert md.index("| upe |") < md.index("| hdrnet |")  # suite order from run.json, not path order
    assert "**24.50 ± 0.71**" in md and "Suite smoke" in md
    tex = paths["tex"].read_text(encoding="utf-8")
    assert r"\toprule" in tex and "% Warning: 2 runs are not done" in tex
    assert r"50\% of widths" in tex
    csv = pd.read_csv(paths["csv"])
    assert list(csv["label"]) == ["upe", "hdrnet"] and set(csv["dataset"]) == {DATASET}

    # Several datasets: one table each, a heading per dataset, one CSV with a dataset column.
    for seed in SEEDS:
        folder = runs_dir / make_run_id("upe", "fivek_upe", seed)
        write_rows(folder / "rows.csv", pd.DataFrame(run_rows("upe", seed, dataset="fivek_upe")))
        write_json(folder / "run.json", {**run_info("upe", seed), "dataset": "fivek_upe"})
    paths = tables.write_report(runs_dir, tmp_path / "out")
    md = paths["md"].read_text(encoding="utf-8")
    assert "## demo" in md and "## fivek_upe" in md
    assert paths["tex"].read_text(encoding="utf-8").count(r"\begin{table}") == 2
    csv = pd.read_csv(paths["csv"])
    assert list(csv["dataset"]) == ["demo", "demo", "fivek_upe"]
    fivek = md[md.index("## fivek_upe"):]
    assert "smoke-scale demo data" not in fivek  # the demo warning is per dataset


# ---------------------------------------------------------------------------------------------
# qmap report


def test_cli_report(runs_dir: Path, capsys):
    assert cli.main([str(runs_dir), "--out", str(runs_dir / "tables")]) == 0
    out = capsys.readouterr().out
    assert "| Method | PSNR_d |" in out and "**24.50 ± 0.71**" in out
    assert f"Report written to {runs_dir / 'tables'}: table.md, table.tex, table.csv" in out
    assert (runs_dir / "tables" / "table.tex").exists()


def test_cli_errors(tmp_path: Path, capsys):
    assert cli.main([str(tmp_path)]) == 1
    assert "no finished runs under" in capsys.readouterr().err
    assert cli.main([str(tmp_path / "missing")]) == 1
    assert "no such directory" in capsys.readouterr().err


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: qmap report") and "--out" in out


def test_reports_package_never_imports_torch():
    code = (
        "import sys, importlib, pkgutil, reports\n"
        "names = [m.name for m in pkgutil.walk_packages(reports.__path__, 'reports.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "heavy = ('torch', 'torchvision', 'lightning', 'torchmetrics', 'lpips', 'albumentations', 'wandb')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print('reports.tables' in names, 'reports.cli' in names, heavy)\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["True True []", "False"]
