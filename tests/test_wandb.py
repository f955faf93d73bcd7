"""W&B offline: a suite run with the wandb trainer config and ``qmap report --wandb``.

Each test runs W&B in offline mode (tests/conftest.py disables it elsewhere) with its folders in
tmp_path, and proves that nothing touched the network: Python-side socket connections other
than wandb's local unix socket are recorded, and ``WANDB_BASE_URL`` points at a local sentinel
server that counts every connection wandb's own service process might open. ``wandb sync`` is
never called.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from pathlib import Path

import pytest
import yaml

from benchmark.suite import expand_suite, run_suite
from reports import cli
from report_runs import write_runs


@pytest.fixture
def offline_wandb(tmp_path: Path, monkeypatch):
    """WANDB_MODE=offline with WANDB_DIR in tmp_path; yields the record of network attempts."""
    attempts: list[object] = []
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def sentinel() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            attempts.append("connection to the W&B API sentinel")
            connection.close()

    thread = threading.Thread(target=sentinel, daemon=True)
    thread.start()
    original_connect = socket.socket.connect

    def guarded_connect(self, address):
        if self.family != socket.AF_UNIX and address != server.getsockname():
            attempts.append(address)
        return original_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "user_wandb_dir"))
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    yield attempts
    # wandb keeps its settings (offline mode included) in a process-wide singleton: free it so
    # later tests see WANDB_MODE=disabled again.
    import wandb

    wandb.teardown()
    stop.set()
    thread.join(timeout=2)
    server.close()


def wandb_records(path: Path) -> list:
    """The protobuf records of an offline ``.wandb`` file (a LevelDB-style log of 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data.startswith(b":W&B")
    records, pending, position = [], b"", 7
    while position + 7 <= len(data):
        left = 32768 - position % 32768
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:
            position += left
            continue
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind in (2, 3):
            pending += chunk
        elif kind == 4:
            records.append(pending + chunk)
            pending = b""
    parsed = []
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        parsed.append(record)
    return parsed


def offline_run(folder: Path, timeout: float = 20.0) -> tuple[Path, list]:
    """The run folder and its records, once wandb's service has written the final exit record.

    ``finish()`` can return while the separate service process is still flushing the log.
    """
    import time

    (run_dir,) = folder.glob("offline-run-*")
    (log,) = run_dir.glob("run-*.wandb")
    deadline = time.monotonic() + timeout
    while True:
        records = wandb_records(log)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return run_dir, records
        time.sleep(0.1)


def summary_keys(records: list) -> set[str]:
    """Top-level summary keys (a table's summary entry is nested: its first part is the key)."""
    return {item.key or item.nested_key[0] for r in records if r.WhichOneof("record_type") == "summary"
            for item in r.summary.update}


def test_report_run_is_logged_offline(tmp_path: Path, offline_wandb):
    runs = write_runs(tmp_path)
    assert cli.main([str(runs), "--wandb", "--bootstrap", "20"]) == 0
    run_dir, records = offline_run(runs / "report" / "wandb")
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.project, run.run_group, run.display_name, run.job_type) == ("qmap-bench", "rep", "report-rep", "report")
    tables = sorted(p.name.split("_")[0] for p in (run_dir / "files" / "media" / "table").rglob("*.table.json"))
    assert len(tables) >= 5  # generic table, two layouts, preference matrix and scores
    images = list((run_dir / "files" / "media" / "images").rglob("*.png"))
    assert len(images) == 4  # heatmap, JOD bars, quality vs latency, sample grid
    assert {"preference/demo/matrix", "tables/demo"} <= summary_keys(records)
    assert not offline_wandb, f"network access attempted: {offline_wandb}"
    assert os.environ["WANDB_DIR"] == str(tmp_path / "user_wandb_dir")  # restored after the run
    assert (runs / "report" / "wandb" / "cache_dir").is_dir()  # wandb's cache stayed in the report


def test_suite_run_logs_config_curves_panels_and_summary(tmp_path: Path, tiny_paired, offline_wandb, one_thread):
    suite = {
        "name": "wb",
        "seeds": [0],
        "trainer": "trainer/wandb.yaml",
        "datasets": {"tiny": {"config": "data/demo.yaml", "overrides": {
            "data.init_args.root": str(tiny_paired), "data.init_args.split": "tiny", "data.init_args.crop_size": 32,
            "data.init_args.batch_size": 2, "data.init_args.train_samples_per_epoch": 4,
            "data.init_args.val_count": 1, "data.init_args.cache_images": False}}},
        "rows": [{"label": "hdr", "method": "methods/hdrnet.yaml", "quick": True, "overrides": {
            "trainer.max_steps": 2, "trainer.log_every_n_steps": 1, "trainer.accelerator": "cpu",
            "trainer.enable_progress_bar": False, "model.init_args.net_input_size": 32,
            "model.init_args.spatial_bins": 4, "evaluator.metrics": ["psnr", "ssim"],
            "evaluator.num_samples": 2}}],
    }
    path = tmp_path / "wb.yaml"
    path.write_text(yaml.safe_dump(suite), encoding="utf-8")
    specs = expand_suite(path, tmp_path / "runs")
    assert run_suite(specs) == {"hdr__tiny__s0": "done"}

    run_folder = specs[0].run_dir
    run_dir, records = offline_run(run_folder / "wandb")
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.run_group, run.display_name) == ("wb", "hdr__tiny__s0")
    assert set(run.tags) == {"method:HDRNet", "label:hdr", "dataset:tiny", "quick"}
    history = {item.key or "/".join(item.nested_key) for r in records if r.WhichOneof("record_type") == "history"
               for item in r.history.item}
    assert any(key.startswith("train/") for key in history), history  # the method's curves
    # Image panels: one entry per key holding every sample id, i.e. side by side at one step.
    assert {"samples/d/_type", "samples/f/_type", "val/samples/_type", "val/psnr"} <= history
    config = {item.key or item.nested_key[0] for r in records if r.WhichOneof("record_type") == "config"
              for item in r.config.update}
    assert {"qmap_config", "qmap_run", "lr"} <= config
    assert {"test/psnr_d", "test/ssim_f", "durations/fit"} <= summary_keys(records)
    images = list((run_dir / "files" / "media" / "images").rglob("*.png"))
    assert len(images) >= 2 * 2 + 1  # two ids x two protocols, plus the validation id
    assert not offline_wandb, f"network access attempted: {offline_wandb}"
    assert os.environ["WANDB_DIR"] == str(tmp_path / "user_wandb_dir")
    for folder in ("dir", "cache_dir", "data_dir", "config_dir"):
        assert (run_folder / "wandb" / folder).is_dir()


def test_disabled_wandb_runs_the_suite_and_writes_nothing(tmp_path: Path, tiny_paired, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    suite = {"name": "off", "seeds": [0], "trainer": "trainer/wandb.yaml",
             "datasets": {"tiny": {"config": "data/demo.yaml", "overrides": {
                 "data.init_args.root": str(tiny_paired), "data.init_args.split": "tiny"}}},
             "rows": [{"label": "id", "method": "methods/identity.yaml",
                       "overrides": {"trainer.enable_progress_bar": False, "evaluator.metrics": ["psnr"]}}]}
    path = tmp_path / "off.yaml"
    path.write_text(yaml.safe_dump(suite), encoding="utf-8")
    specs = expand_suite(path, tmp_path / "runs")
    assert run_suite(specs) == {"id__tiny__s0": "done"}
    assert not (specs[0].run_dir / "wandb").exists()
    assert (specs[0].run_dir / "rows.csv").is_file()
