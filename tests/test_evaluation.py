"""The Evaluator: one scoring path, identical rows with 1 and 2 DDP processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from benchmark import results
from benchmark.suite import CONFIG_ROOT, deep_merge, load_yaml, set_dotted

REPO = Path(__file__).resolve().parents[1]


def _test_config(data_root: Path, out_dir: Path) -> dict:
    config = deep_merge(load_yaml(CONFIG_ROOT / "trainer/quick.yaml"), load_yaml(CONFIG_ROOT / "methods/autolevels.yaml"))
    config = deep_merge(config, load_yaml(CONFIG_ROOT / "data/demo.yaml"))
    for key, value in {
        "data.init_args.root": str(data_root),
        "data.init_args.split": "tiny",
        "data.init_args.dataset": "tiny",
        "trainer.accelerator": "cpu",
        "trainer.enable_progress_bar": False,
        "trainer.default_root_dir": str(out_dir),
        "evaluator.out_dir": str(out_dir),
        "evaluator.suite": "ddp",
        "evaluator.label": "autolevels",
    }.items():
        set_dotted(config, key, value)
    return config


def _run_test_subprocess(config: dict, tmp: Path, devices: int) -> pd.DataFrame:
    config_path = tmp / f"config_{devices}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items()
           if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK")}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-m", "benchmark.cli", "test", "--config", str(config_path),
               "--trainer.devices", str(devices)]
    if devices > 1:
        command += ["--trainer.strategy", "ddp"]
    done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return results.read_rows(Path(config["evaluator"]["out_dir"]) / results.ROWS_FILE)


def test_ddp_two_processes_score_each_image_once(tmp_path, tiny_paired):
    """5 test images on 2 ranks: the sampler pads to 6; the rows must still be exactly the 1-process rows."""
    single = _run_test_subprocess(_test_config(tiny_paired, tmp_path / "one"), tmp_path, devices=1)
    double = _run_test_subprocess(_test_config(tiny_paired, tmp_path / "two"), tmp_path, devices=2)
    quality = lambda rows: rows[rows["metric"] != "seconds"].set_index(["protocol", "key", "metric"])["value"]
    one, two = quality(single), quality(double)
    assert len(one) == 5 * 2 * 5 + 5 * 2  # 5 images x 2 protocols x (5 metrics + lpips n/a)
    assert set(one.index) == set(two.index)
    assert not two.index.duplicated().any()
    joined = pd.concat([one, two], axis=1, keys=["one", "two"])
    finite = joined.dropna()
    np.testing.assert_allclose(finite["one"], finite["two"], atol=1e-6, rtol=0)
    assert joined["one"].isna().equals(joined["two"].isna())
    # Timing rows exist for every image and protocol under DDP too.
    assert len(double.query("metric == 'seconds'")) == 10


def test_evaluator_quantises_and_keys_rows(tiny_paired, tmp_path):
    from benchmark.lightning_cli import build_cli

    config = _test_config(tiny_paired, tmp_path)
    set_dotted(config, "trainer.devices", 1)
    set_dotted(config, "evaluator.metrics", ["psnr"])
    set_dotted(config, "evaluator.save_outputs", True)
    cli = build_cli(config, run=False, save_config=False)
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    rows = results.read_rows(tmp_path / results.ROWS_FILE)
    assert set(rows["run_id"]) == {"autolevels__tiny__s0"}
    assert set(rows["metric"]) == {"psnr", "seconds"}
    assert (rows.query("metric == 'seconds'")["value"] > 0).all()
    outputs = sorted((tmp_path / results.OUTPUTS_DIR / "f").glob("*.png"))
    assert [p.stem for p in outputs] == [f"a{i:04d}" for i in range(7, 12)]
    # Saved outputs are the scored ones: re-scoring the PNG gives the same PSNR.
    from benchmark.metrics import psnr
    from datamodules.io import read_image

    out = torch.from_numpy(read_image(outputs[0])).permute(2, 0, 1)[None]
    target = torch.from_numpy(read_image(tiny_paired / "target" / outputs[0].name)).permute(2, 0, 1)[None]
    expected = rows.query("metric == 'psnr' and protocol == 'f' and key == @outputs[0].stem")["value"].item()
    assert psnr(out, target).item() == pytest.approx(expected, abs=1e-6)
