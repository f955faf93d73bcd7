"""Video in suites: image checkpoints scored frame by frame (checkpoint_from), recurrent DACAL
fine-tuned from an image run (init_from), video rows from the Evaluator, reruns that follow
their source runs, and clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmark import results
from benchmark.suite import expand_suite, is_done, run_suite
from datamodules.io import read_image

SMALL_DACAL = {"model.init_args.width": 8, "model.init_args.critic_width": 8, "model.init_args.critic_features": 16,
               "model.init_args.critic_steps": 1, "model.init_args.w_content": 0.0,
               "model.init_args.max_iterations": 2}


def write_video_suite(path: Path, paired: Path, video: Path, rows: list[dict]) -> Path:
    suite = {
        "name": "vid",
        "seeds": [0],
        "trainer": "trainer/quick.yaml",
        "datasets": {
            "tiny": {"config": "data/demo.yaml",
                     "overrides": {"data.init_args.root": str(paired), "data.init_args.split": "tiny",
                                   "data.init_args.crop_size": 32, "data.init_args.batch_size": 2,
                                   "data.init_args.train_samples_per_epoch": 4, "evaluator.metrics": ["psnr"]}},
            "tiny_video": {"config": "data/demo_video.yaml",
                           "overrides": {"data.init_args.root": str(video), "data.init_args.crop_size": 16,
                                         "data.init_args.clip_length": 3, "data.init_args.batch_size": 2,
                                         "data.init_args.train_samples_per_epoch": 4,
                                         "data.init_args.eval_chunk": 4}},
        },
        "rows": rows,
    }
    path.write_text(yaml.safe_dump(suite))
    return path


ROWS = [
    {"label": "identity", "method": "methods/identity.yaml"},
    {"label": "hdrnet", "method": "methods/hdrnet.yaml", "datasets": ["tiny", "tiny_video"],
     "checkpoint_from": "tiny",
     # A data override of the training set: never applied where the checkpoint is only scored
     # (the video data module has no 'protocols' and would refuse it).
     "overrides": {"trainer.max_steps": 2, "data.init_args.protocols": ["f"]}},
    {"label": "dacal", "method": "methods/dacal.yaml", "datasets": ["tiny"], "overrides": SMALL_DACAL},
    {"label": "recurrent", "method": "methods/dacal_recurrent.yaml", "datasets": ["tiny_video"],
     "init_from": {"row": "dacal", "dataset": "tiny"}, "overrides": SMALL_DACAL},
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_paired, tiny_video):
    tmp = tmp_path_factory.mktemp("video_suite")
    suite = write_video_suite(tmp / "s.yaml", tiny_paired, tiny_video, ROWS)
    specs = expand_suite(suite, tmp / "runs")
    outcome = run_suite(specs)
    return tmp, suite, specs, outcome


def test_runs_follow_their_sources_and_record_them(finished):
    tmp, suite, specs, outcome = finished
    order = [spec.run_id for spec in specs]
    assert set(outcome.values()) == {"done"}, outcome
    assert order.index("hdrnet__tiny_video__s0") > order.index("hdrnet__tiny__s0")
    assert order.index("recurrent__tiny_video__s0") > order.index("dacal__tiny__s0")
    by_id = {spec.run_id: spec for spec in specs}
    scored = json.loads((by_id["hdrnet__tiny_video__s0"].run_dir / results.RUN_FILE).read_text())
    assert scored["checkpoint_from"]["run_id"] == "hdrnet__tiny__s0"
    assert "fit" not in scored["durations"], "a checkpoint_from run trains nothing"
    assert "protocols" not in by_id["hdrnet__tiny_video__s0"].config["data"]["init_args"]
    tuned = json.loads((by_id["recurrent__tiny_video__s0"].run_dir / results.RUN_FILE).read_text())
    assert tuned["init_from"]["run_id"] == "dacal__tiny__s0" and "fit" in tuned["durations"]
    assert tuned["iterations"] == 2, "fine-tuning counts its own generator steps"
    config = yaml.safe_load((by_id["recurrent__tiny_video__s0"].run_dir / results.CONFIG_FILE).read_text())
    assert config["model"]["init_args"]["init_checkpoint"] == str(by_id["dacal__tiny__s0"].checkpoint)


def test_video_rows_score_every_frame_and_every_consecutive_pair(finished, tiny_video):
    tmp, suite, specs, outcome = finished
    by_id = {spec.run_id: spec for spec in specs}
    rows = results.read_rows(by_id["identity__tiny_video__s0"].run_dir / results.ROWS_FILE)
    lengths = {"video0": 6, "video1": 7}  # the tiny test videos
    for metric in ("psnr", "ssim", "seconds"):
        got = rows[rows["metric"] == metric].groupby("key")["frame"].apply(sorted).to_dict()
        assert got == {key: list(range(n)) for key, n in lengths.items()}, metric
    for metric in ("warp_error", "flicker"):
        got = rows[rows["metric"] == metric].groupby("key")["frame"].apply(sorted).to_dict()
        assert got == {key: list(range(1, n)) for key, n in lengths.items()}, metric
    # Identity on frame 3 of video1 equals PSNR computed from the files themselves.
    folder = tiny_video / "test" / "video1"
    x = np.round(read_image(folder / "input" / "000003.png").astype(np.float64) * 255)
    y = np.round(read_image(folder / "target" / "000003.png").astype(np.float64) * 255)
    expected = 10 * np.log10(255**2 / np.mean((x - y) ** 2))
    got = rows.query("metric == 'psnr' and key == 'video1' and frame == 3")["value"].item()
    assert got == pytest.approx(expected, abs=1e-6)
    # The tiny videos pan by whole pixels with known motion: identity's output (the input) is
    # warped exactly, so its warp error is zero, while a method's output is scored as it is.
    assert rows.query("metric == 'warp_error'")["value"].abs().max() < 1e-12
    assert (by_id["identity__tiny_video__s0"].run_dir / results.REFERENCES_DIR / "f").is_dir()
    for run_id in ("hdrnet__tiny_video__s0", "recurrent__tiny_video__s0"):
        frame = results.read_rows(by_id[run_id].run_dir / results.ROWS_FILE)
        assert set(frame["metric"]) == {"psnr", "ssim", "seconds", "warp_error", "flicker"}
        assert frame["value"].notna().all()


def test_unchanged_suite_is_skipped_and_a_changed_source_reruns_its_dependants(finished, tiny_paired, tiny_video):
    tmp, suite, specs, outcome = finished
    again = run_suite(expand_suite(suite, tmp / "runs"))
    assert set(again.values()) == {"skipped"}
    rows = [dict(row) for row in ROWS]
    rows[2]["overrides"] = SMALL_DACAL | {"model.init_args.lr": 2e-4}  # the DACAL image run changes
    edited = write_video_suite(tmp / "edited.yaml", tiny_paired, tiny_video, rows)
    outcome = run_suite(expand_suite(edited, tmp / "runs"))
    assert outcome["dacal__tiny__s0"] == "done" and outcome["recurrent__tiny_video__s0"] == "done"
    assert outcome["hdrnet__tiny_video__s0"] == "skipped"


def test_missing_source_checkpoint_fails_clearly(tmp_path, tiny_paired, tiny_video):
    rows = [ROWS[1]]
    specs = expand_suite(write_video_suite(tmp_path / "s.yaml", tiny_paired, tiny_video, rows), tmp_path / "runs")
    dependant = next(spec for spec in specs if spec.run_id == "hdrnet__tiny_video__s0")
    outcome = run_suite([dependant])  # its source never ran
    assert outcome == {"hdrnet__tiny_video__s0": "failed"}
    info = json.loads((dependant.run_dir / results.RUN_FILE).read_text())
    assert "last.ckpt does not exist" in info["error"] and "hdrnet__tiny__s0" in info["error"]
    assert not is_done(dependant)


def test_bad_source_references_are_refused(tmp_path, tiny_paired, tiny_video):
    bad_dataset = [dict(ROWS[1], checkpoint_from="elsewhere")]
    with pytest.raises(ValueError, match="does not run there"):
        expand_suite(write_video_suite(tmp_path / "a.yaml", tiny_paired, tiny_video, bad_dataset), tmp_path / "r")
    bad_row = [dict(ROWS[3], init_from={"row": "nobody", "dataset": "tiny"})]
    with pytest.raises(ValueError, match="not a run of this suite"):
        expand_suite(write_video_suite(tmp_path / "b.yaml", tiny_paired, tiny_video, bad_row), tmp_path / "r")


def test_weakly_aligned_videos_get_temporal_scores_only(tmp_path):
    """No full-reference score where pixels do not correspond; warp error from the input's flow."""
    from benchmark.lightning_cli import build_cli
    from benchmark.suite import CONFIG_ROOT, deep_merge, load_yaml, set_dotted
    from tests.conftest import write_tiny_video

    root = write_tiny_video(tmp_path / "vqm", layout="ntire_vqm", size=(40, 48))
    config = deep_merge(deep_merge(load_yaml(CONFIG_ROOT / "trainer/quick.yaml"),
                                   load_yaml(CONFIG_ROOT / "methods/identity.yaml")),
                        load_yaml(CONFIG_ROOT / "data/vid3oc.yaml"))
    for key, value in {"data.init_args.root": str(root), "data.init_args.num_workers": 0,
                       "data.init_args.eval_chunk": 4, "trainer.accelerator": "cpu",
                       "trainer.enable_progress_bar": False, "evaluator.out_dir": str(tmp_path / "run")}.items():
        set_dotted(config, key, value)
    cli = build_cli(config, run=False, save_config=False)
    assert cli.datamodule.aligned is False
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    rows = results.read_rows(tmp_path / "run" / results.ROWS_FILE)
    assert set(rows["metric"]) == {"warp_error", "flicker", "seconds"}
    # The input frames pan by whole pixels: Farneback recovers most of it, so identity's warp
    # error (its output is the input) is small — but not zero, unlike with known motion.
    warp = rows.query("metric == 'warp_error'")
    unwarped = []  # the same pairs compared without any motion compensation
    for row in warp.itertuples():
        folder = root / "ValidationSourceDomain" / row.key
        previous, current = (np.round(read_image(folder / f"{row.frame + d:06d}.png").astype(np.float64) * 255) / 255
                             for d in (-1, 0))
        unwarped.append(np.mean((current - previous) ** 2))
    assert warp["value"].mean() < 0.5 * np.mean(unwarped)
    assert rows["value"].notna().all()
