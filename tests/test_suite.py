"""Suites: expansion, run ids, the skip rule, reruns on config edits, and an end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmark import results
from benchmark.suite import expand_suite, is_done, run_suite


def write_suite(path: Path, data_root: Path, rows: list[dict], seeds=(0,)) -> Path:
    suite = {
        "name": "unit",
        "seeds": list(seeds),
        "trainer": "trainer/quick.yaml",
        "datasets": {"tiny": {"config": "data/demo.yaml",
                              "overrides": {"data.init_args.root": str(data_root),
                                            "data.init_args.split": "tiny",
                                            "data.init_args.crop_size": 32,
                                            "data.init_args.batch_size": 2,
                                            "data.init_args.train_samples_per_epoch": 4}}},
        "rows": rows,
    }
    path.write_text(yaml.safe_dump(suite))
    return path


TWO_AUTOLEVELS = [
    {"label": "levels_tight", "method": "methods/autolevels.yaml",
     "overrides": {"model.init_args.low_percentile": 5.0, "model.init_args.high_percentile": 95.0}},
    {"label": "levels_loose", "method": "methods/autolevels.yaml"},
]


def test_expansion_gives_one_run_per_label_dataset_seed(tmp_path, tiny_paired):
    suite = write_suite(tmp_path / "s.yaml", tiny_paired, TWO_AUTOLEVELS, seeds=(0, 1))
    specs = expand_suite(suite, tmp_path / "runs")
    assert [s.run_id for s in specs] == ["levels_tight__tiny__s0", "levels_loose__tiny__s0",
                                         "levels_tight__tiny__s1", "levels_loose__tiny__s1"]
    assert specs[0].run_dir == tmp_path / "runs" / "unit" / "levels_tight__tiny__s0"
    # Same class, different overrides: different configs and hashes.
    assert specs[0].config["model"]["init_args"]["high_percentile"] == 95.0
    assert specs[1].config["model"]["init_args"]["high_percentile"] == 99.5
    assert specs[0].config_hash != specs[1].config_hash
    # The seed and the dataset label are part of the composed config.
    assert specs[2].config["seed_everything"] == 1
    assert specs[0].config["data"]["init_args"]["dataset"] == "tiny"


def test_duplicate_labels_are_rejected(tmp_path, tiny_paired):
    rows = [{"label": "x", "method": "methods/identity.yaml"}, {"label": "x", "method": "methods/clahe.yaml"}]
    with pytest.raises(ValueError, match="unique 'label'"):
        expand_suite(write_suite(tmp_path / "s.yaml", tiny_paired, rows), tmp_path / "runs")


def test_hash_ignores_output_location(tmp_path, tiny_paired):
    suite = write_suite(tmp_path / "s.yaml", tiny_paired, TWO_AUTOLEVELS)
    first = expand_suite(suite, tmp_path / "a")[0]
    second = expand_suite(suite, tmp_path / "b")[0]
    assert first.config_hash == second.config_hash


def test_two_rows_one_class_run_skip_and_rerun(tmp_path, tiny_paired, capsys):
    suite = write_suite(tmp_path / "s.yaml", tiny_paired, TWO_AUTOLEVELS)
    specs = expand_suite(suite, tmp_path / "runs")
    outcome = run_suite(specs)
    assert outcome == {"levels_tight__tiny__s0": "done", "levels_loose__tiny__s0": "done"}

    tight = results.read_rows(specs[0].run_dir / results.ROWS_FILE)
    loose = results.read_rows(specs[1].run_dir / results.ROWS_FILE)
    assert set(tight["label"]) == {"levels_tight"} and set(loose["label"]) == {"levels_loose"}
    psnr_tight = tight.query("metric == 'psnr'")["value"].to_numpy()
    psnr_loose = loose.query("metric == 'psnr'")["value"].to_numpy()
    assert not (psnr_tight == psnr_loose).all(), "different overrides must give different outputs"
    info = json.loads((specs[0].run_dir / results.RUN_FILE).read_text())
    assert info["status"] == "done" and info["config_hash"] == specs[0].config_hash
    assert (specs[0].run_dir / results.CONFIG_FILE).exists()
    assert list((specs[0].run_dir / results.SAMPLES_DIR).rglob("*.png")), "sample outputs must be saved"

    # Unchanged: both skipped, rows untouched.
    mtime = (specs[0].run_dir / results.ROWS_FILE).stat().st_mtime_ns
    assert run_suite(expand_suite(suite, tmp_path / "runs")) == {
        "levels_tight__tiny__s0": "skipped", "levels_loose__tiny__s0": "skipped"}
    assert (specs[0].run_dir / results.ROWS_FILE).stat().st_mtime_ns == mtime

    # Edit one row's config: only that run reruns.
    edited = [dict(TWO_AUTOLEVELS[0]), TWO_AUTOLEVELS[1]]
    edited[0]["overrides"] = {"model.init_args.low_percentile": 2.0, "model.init_args.high_percentile": 98.0}
    suite = write_suite(tmp_path / "s.yaml", tiny_paired, edited)
    assert run_suite(expand_suite(suite, tmp_path / "runs")) == {
        "levels_tight__tiny__s0": "done", "levels_loose__tiny__s0": "skipped"}


def test_failed_run_is_recorded_and_others_go_on(tmp_path, tiny_paired):
    rows = [{"label": "broken", "method": "methods/autolevels.yaml",
             "overrides": {"model.init_args.low_percentile": 70.0}},  # rejected by AutoLevels
            {"label": "identity", "method": "methods/identity.yaml"}]
    specs = expand_suite(write_suite(tmp_path / "s.yaml", tiny_paired, rows), tmp_path / "runs")
    outcome = run_suite(specs)
    assert outcome == {"broken__tiny__s0": "failed", "identity__tiny__s0": "done"}
    info = json.loads((specs[0].run_dir / results.RUN_FILE).read_text())
    assert info["status"] == "failed" and "low_percentile" in info["error"]
    assert not is_done(specs[0]) and is_done(specs[1])
    loaded = results.load_runs(tmp_path / "runs")
    assert set(loaded["label"]) == {"identity"}, "failed runs never reach the tables"


def test_identity_rows_have_schema_and_match_direct_scores(tmp_path, tiny_paired):
    rows = [{"label": "identity", "method": "methods/identity.yaml"}]
    specs = expand_suite(write_suite(tmp_path / "s.yaml", tiny_paired, rows), tmp_path / "runs")
    run_suite(specs)
    frame = results.read_rows(specs[0].run_dir / results.ROWS_FILE)
    assert list(frame.columns) == list(results.ROW_COLUMNS)
    assert set(frame["protocol"]) == {"d", "f"}
    assert set(frame["key"]) == {f"a{i:04d}" for i in range(7, 12)}
    assert {"psnr", "ssim", "ms_ssim", "delta_e76", "delta_e2000", "lpips", "seconds"} == set(frame["metric"])
    # Exactly one row per (protocol, key, metric).
    assert not frame.duplicated(["protocol", "key", "metric"]).any()
    # LPIPS has no backbone in the test TORCH_HOME: n/a, never a number.
    assert frame.query("metric == 'lpips'")["value"].isna().all()
    info = json.loads((specs[0].run_dir / results.RUN_FILE).read_text())
    assert "alexnet-owt-7be5be79.pth" in info["unavailable"]["lpips"]
    # The large test image (600 px tall) differs between d and f; PSNR_f of identity equals the
    # direct computation on the files.
    from datamodules.io import read_image
    from skimage.metrics import peak_signal_noise_ratio

    key = "a0009"
    expected = peak_signal_noise_ratio((read_image(tiny_paired / "target" / f"{key}.png") * 255).round(),
                                       (read_image(tiny_paired / "input" / f"{key}.png") * 255).round(),
                                       data_range=255)
    got = frame.query("metric == 'psnr' and protocol == 'f' and key == @key")["value"].item()
    assert got == pytest.approx(expected, abs=1e-3)
    pd.testing.assert_series_equal(frame["suite"], pd.Series(["unit"] * len(frame), name="suite"))


def test_multi_device_suite_runs_each_run_in_its_own_ddp_process(tmp_path, tiny_paired):
    """`qmap suite --devices 2 --strategy ddp` (as a subprocess): same rows as one device."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    suite = write_suite(tmp_path / "s.yaml", tiny_paired, [{"label": "levels", "method": "methods/autolevels.yaml"}])
    env = {k: v for k, v in os.environ.items()
           if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK")}
    env["PYTHONPATH"] = str(repo)
    for devices, out in ((2, "two"), (1, "one")):
        command = [sys.executable, "-m", "benchmark.cli", "suite", str(suite), "--out", str(tmp_path / out),
                   "--accelerator", "cpu", "--devices", str(devices), "--set", "evaluator.metrics=[psnr, ssim]"]
        if devices > 1:
            command += ["--strategy", "ddp"]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = Path("unit") / "levels__tiny__s0"
    two = results.read_rows(tmp_path / "two" / run_dir / results.ROWS_FILE)
    one = results.read_rows(tmp_path / "one" / run_dir / results.ROWS_FILE)
    info = json.loads((tmp_path / "two" / run_dir / results.RUN_FILE).read_text())
    assert info["status"] == "done" and info["world_size"] == 2
    quality = lambda rows: rows[rows["metric"] != "seconds"].set_index(["protocol", "key", "metric"])["value"]
    pd.testing.assert_series_equal(quality(one).sort_index(), quality(two).sort_index(), atol=1e-6, rtol=0)
