"""Seed layouts, second-best marks, the paired significance test, reported rows and proxy marks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.results import load_run_infos, load_runs
from reports import cli, tables
from report_runs import KEYS, run_rows, write_runs


def rows_of(labels=("identity", "clahe", "hdrnet", "upe"), dataset="demo", protocols=("d", "f")) -> pd.DataFrame:
    return pd.concat([run_rows(label, dataset, 0, protocols) for label in labels], ignore_index=True)


def test_second_best_is_underlined_only_with_three_or_more_methods():
    table = tables.method_table(rows_of())
    # PSNR_d means: upe 23.5 + wiggle > hdrnet > clahe > identity.
    assert table.best.loc["upe", "PSNR_d"] and table.second.loc["hdrnet", "PSNR_d"]
    assert not table.second.loc["upe", "PSNR_d"] and table.second["PSNR_d"].sum() == 1
    assert table.best.loc["identity", "seconds_d"] and table.second.loc["clahe", "seconds_d"]  # lower is better
    md, tex, html = tables.to_markdown(table), tables.to_latex(table), tables.to_html(table)
    second = table.cells.loc["hdrnet", "PSNR_d"]
    assert f"<u>{second}</u>" in md and rf"\underline{{{second}}}" in tex and f"<u>{second}</u>" in html
    two = tables.method_table(rows_of(("identity", "upe")))
    assert not two.second.to_numpy().any()


def test_layout_columns_follow_the_seed_tables():
    frame = pd.concat([rows_of(), rows_of(protocols=("100",), dataset="dped_iphone")], ignore_index=True)
    assert tables.applicable_layouts(frame) == {
        "muspe_table1": ["demo"], "muspe_table2": ["dped_iphone"], "upe_fivek": ["demo"],  # full images only
        "wespe_dped": ["dped_iphone"],
    }
    (t1,) = tables.layout_tables(frame, "muspe_table1")
    assert t1.table.column_names == ["PSNR_d", "PSNR_f", "SSIM_d", "SSIM_f"]
    (t2,) = tables.layout_tables(frame, "muspe_table2")
    assert t2.table.column_names == ["PSNR_100", "SSIM_100"]
    (upe,) = tables.layout_tables(frame, "upe_fivek")
    assert upe.table.column_names == ["PSNR_f", "SSIM_f"]  # f when scored
    (upe_d,) = tables.layout_tables(rows_of(protocols=("d",)), "upe_fivek")
    assert upe_d.table.column_names == ["PSNR_d", "SSIM_d"]
    with pytest.raises(ValueError, match="needs PSNR_100, SSIM_100"):
        tables.layout_tables(rows_of(), "muspe_table2")
    with pytest.raises(ValueError, match="unknown layout"):
        tables.layout_tables(rows_of(), "table9")


def test_wespe_layout_has_one_column_group_per_phone():
    iphone = rows_of(protocols=("100",), dataset="dped_iphone")
    sony = rows_of(("identity", "upe"), protocols=("100",), dataset="dped_sony")
    (result,) = tables.layout_tables(pd.concat([iphone, sony], ignore_index=True), "wespe_dped")
    table = result.table
    assert table.column_names == ["iphone:PSNR_100", "iphone:SSIM_100", "sony:PSNR_100", "sony:SSIM_100"]
    assert table.cells.loc["hdrnet", "sony:PSNR_100"] == "not run"
    assert table.best.loc["upe", "sony:SSIM_100"] and table.best.loc["upe", "iphone:PSNR_100"]
    tex = tables.to_latex(table, result.caption)
    assert r"\multicolumn{2}{c}{iphone} & \multicolumn{2}{c}{sony}" in tex
    assert r"\cmidrule(lr){2-3} \cmidrule(lr){4-5}" in tex
    assert "| Method | iphone PSNR_100 | iphone SSIM_100 | sony PSNR_100 | sony SSIM_100 |" in tables.to_markdown(table)
    assert "datasets dped_iphone, dped_sony" in result.caption


def test_paired_wilcoxon_marks_only_non_significant_differences():
    keys = [f"a{i:04d}" for i in range(1, 9)]
    rng = np.random.default_rng(0)
    base = rng.uniform(20, 30, len(keys))

    def rows(label, values):
        return pd.DataFrame({"suite": "s", "run_id": f"{label}__x__s0", "label": label, "method": label, "dataset": "x",
                             "protocol": "f", "split": "t", "seed": 0, "key": keys, "frame": 0, "metric": "psnr",
                             "value": values, "higher_is_better": True})

    frame = pd.concat([
        rows("best", base + 1.0),
        rows("worse", base + 1.0 - np.linspace(0.5, 1.2, 8)),             # 8 of 8 images worse
        rows("close", base + 1.0 + np.array([0.1, -0.2, 0.3, -0.1, 0.2, -0.3, 0.15, -0.25])),
    ], ignore_index=True)
    table = tables.method_table(frame)
    marks, p_values, text = tables.significance_marks(frame, table)
    # All 8 differences share a sign: the exact two-sided p is 2 / 2**8.
    assert p_values.loc["worse", "PSNR_f"] == pytest.approx(2 / 2**8)
    assert marks.loc["worse", "PSNR_f"] == "" and marks.loc["close", "PSNR_f"] == tables.NOT_SIGNIFICANT_MARK
    assert np.isnan(p_values.loc["best", "PSNR_f"]) and marks.loc["best", "PSNR_f"] == ""
    assert "Wilcoxon signed-rank" in text and "8 images" in text and "cannot be significant" not in text

    few = frame[frame["key"].isin(keys[:4])]
    _, _, text = tables.significance_marks(few, tables.method_table(few))
    assert "With 4 images no difference can be significant (smallest possible p = 0.125)" in text


def test_reported_rows_and_protocol_warnings(tmp_path: Path):
    frame = rows_of()
    (result,) = tables.layout_tables(frame, "muspe_table1", reported=True)
    table = result.table
    assert "DPE (reported in seed Table 1)" in table.labels and table.labels[-1] == "MUSPE_h (reported in seed Table 1)"
    assert table.cells.loc["DPE (reported in seed Table 1)", "PSNR_d"] == "22.10"  # as printed
    assert not table.best.loc[table.reported].to_numpy().any()  # never ranked
    assert any("smoke-scale demo data" in w for w in result.warnings)
    assert any("does not state its split" in w for w in result.warnings)
    tex = tables.to_latex(table, result.caption)
    assert tex.index(r"\midrule", tex.index("upe &")) < tex.index("WB (reported in seed Table 1)")
    assert "copied, not recomputed" in result.caption

    fivek = rows_of(dataset="fivek_upe").assign(split="upe")
    (upe,) = tables.layout_tables(fivek, "upe_fivek", reported=True)
    assert not any("split" in w for w in upe.warnings)
    assert any("does not state its resolution protocol" in w for w in upe.warnings)
    (dpe,) = tables.layout_tables(fivek.assign(split="dpe"), "upe_fivek", reported=True)
    assert any("split mismatch: ours dpe, seed UPE table upe" in w for w in dpe.warnings)


def test_proxy_runs_are_marked_in_every_table(tmp_path: Path):
    note = "content loss on a randomly initialised VGG (no weights)"
    runs = write_runs(tmp_path, proxy={"hdrnet": [note]}, samples=False)
    assert cli.main([str(runs), "--reported"]) == 0
    report = runs / "report"
    generic = (report / "table.md").read_text(encoding="utf-8")
    assert "| hdrnet‡ |" in generic and f"‡ Proxy results, not the paper's configuration: {note} (hdrnet)" in generic
    assert r"hdrnet$^{\ddagger}$ &" in (report / "table.tex").read_text(encoding="utf-8")
    layout = (report / "table_muspe_table1.md").read_text(encoding="utf-8")
    assert "| hdrnet‡ |" in layout and "‡ Proxy results" in layout
    assert pd.read_csv(report / "table_muspe_table1.csv").set_index("label").loc["hdrnet", "proxy"]
    generic_csv = pd.read_csv(report / "table.csv").set_index("label")["proxy"]
    assert generic_csv["hdrnet"] and not generic_csv["upe"]
    matrix = (report / "preference" / "demo" / "matrix.md").read_text(encoding="utf-8")
    assert "| hdrnet‡ |" in matrix
    html = (report / "report.html").read_text(encoding="utf-8")
    assert "hdrnet<sup>‡</sup>" in html


def test_layout_option_and_inapplicable_layout(tmp_path: Path, capsys):
    runs = write_runs(tmp_path, samples=False)
    assert cli.main([str(runs), "--layout", "generic", "--out", str(tmp_path / "g")]) == 0
    assert not list((tmp_path / "g").glob("table_*"))
    assert cli.main([str(runs), "--layout", "muspe_table2", "--out", str(tmp_path / "x")]) == 1
    assert "layout muspe_table2 needs PSNR_100, SSIM_100" in capsys.readouterr().err
    rows, infos = load_runs(runs), load_run_infos(runs)
    written = tables.write_layouts(rows, tmp_path / "w", ["muspe_table1"], infos, order=tables.label_order(infos))
    assert written["muspe_table1"][0].table.labels == ["identity", "clahe", "hdrnet", "upe"]  # suite order
    csv = pd.read_csv(tmp_path / "w" / "table_muspe_table1.csv")
    assert {"PSNR_d_p_vs_best", "kind", "proxy"} <= set(csv.columns) and set(csv["kind"]) == {"ours"}
    assert len(KEYS) == 6 and "6 images" in (tmp_path / "w" / "table_muspe_table1.md").read_text(encoding="utf-8")
