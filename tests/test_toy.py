"""``qmap toy`` (benchmark/toy.py): toy data, distances, the training loop's shared maths, outputs."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from baselines.critics import SlicedHead
from benchmark import toy
from benchmark.cli import main as qmap

pytestmark = pytest.mark.usefixtures("one_thread")


def test_toy_data_sets_match_the_wgan_gp_toy_suite():
    rng = np.random.default_rng(0)
    eight = toy.sample_target("8gaussians", 4000, rng)
    radius = np.linalg.norm(eight, axis=1)
    assert eight.shape == (4000, 2) and eight.dtype == np.float32
    assert np.abs(radius - 2 / 1.414).max() < 0.1  # centres on a circle of radius 2, divided by 1.414
    angles = np.round(np.degrees(np.arctan2(eight[:, 1], eight[:, 0])) / 45) % 8
    assert set(angles.astype(int)) == set(range(8))
    grid = toy.sample_target("25gaussians", 5000, rng) * 2.828
    centres = np.round(grid / 2) * 2
    assert set(map(tuple, centres.astype(int))) == set(itertools.product(range(-4, 5, 2), repeat=2))
    assert np.abs(grid - centres).max() < 0.05 * 6
    # The Swiss roll written out equals scikit-learn's, draw for draw.
    from sklearn.datasets import make_swiss_roll

    ours = toy.sample_target("swissroll", 300, np.random.RandomState(7))
    theirs = make_swiss_roll(300, noise=0.25, random_state=7)[0][:, [0, 2]] / 7.5
    assert np.allclose(ours, theirs, atol=1e-6)
    with pytest.raises(ValueError, match="unknown toy data set"):
        toy.sample_target("moons", 3, rng)


def test_sliced_wasserstein_against_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 2)), rng.normal(1.0, 2.0, size=(200, 2))
    directions = toy.random_directions(7, seed=3)
    assert np.allclose(np.linalg.norm(directions, axis=1), 1)
    expected = np.mean([wasserstein_distance(a @ d, b @ d) for d in directions])
    assert toy.sliced_wasserstein(a, b, directions) == pytest.approx(expected, rel=1e-10)
    assert toy.sliced_wasserstein(a, a[::-1], directions) == pytest.approx(0.0, abs=1e-12)


def test_exact_w1_against_brute_force_and_1d():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    cost = np.linalg.norm(a[:, None] - b[None], axis=2)
    brute = min(cost[np.arange(6), list(p)].mean() for p in itertools.permutations(range(6)))
    assert toy.exact_w1(a, b) == pytest.approx(brute, rel=1e-12)
    # On a line the Euclidean W1 is the 1-D W1.
    x, y = rng.normal(size=50), rng.normal(2, 1, size=50)
    line = lambda t: np.stack([t, np.zeros_like(t)], 1)  # noqa: E731
    assert toy.exact_w1(line(x), line(y)) == pytest.approx(wasserstein_distance(x, y), rel=1e-10)


def test_toy_critic_replaces_the_last_layer_by_the_shared_sliced_head():
    scalar, sliced = toy.ToyCritic(32, sliced=False), toy.ToyCritic(32, sliced=True, features=8, projections=3)
    assert sliced.head is not None and isinstance(sliced.head, SlicedHead) and scalar.head is None
    assert sliced.body[-1].out_features == 8 and scalar.body[-1].out_features == 1
    points = torch.randn(5, 2)
    assert scalar(points).shape == sliced(points).shape == (5,)


def test_adaptive_objectives_raise_lambda_and_sliced_ones_stay_orthogonal():
    config = toy.ToyConfig(iterations=20, snapshots=(20,), eval_every=20, width=16, features=8, batch_size=64,
                           eval_samples=64, w1_samples=32, swd_projections=20, grid_points=8)
    finals = {}
    for objective in toy.OBJECTIVES:
        result = toy.train_run("8gaussians", objective, 0, config, log=lambda line: None)
        finals[objective] = result.rows[-1]
        assert set(result.snapshots[20]) == {"fake", "target", "critic"}
        assert result.snapshots[20]["critic"].shape == (8, 8)
    # λ0 = 0.1 with the one-sided penalty: the adaptive rule has raised it within 100 critic steps.
    assert finals["AdaWGAN"]["lambda"] > 0.1 and finals["AdaSWGAN"]["lambda"] > 0.1
    assert finals["WGAN"]["lambda"] == pytest.approx(0.1) and finals["SWGAN"]["lambda"] == pytest.approx(0.1)
    assert finals["SWGAN"]["orthogonality_error"] < 1e-4 and finals["AdaSWGAN"]["orthogonality_error"] < 1e-4
    assert finals["WGAN"]["orthogonality_error"] == ""


def test_qmap_toy_writes_figure_and_tables(tmp_path, capsys):
    out = tmp_path / "toy"
    # One data set keeps the test short; the loop over data sets is the same code.
    code = qmap(["toy", "--iterations", "20", "--snapshots", "10", "20", "--eval-every", "10", "--width", "16",
                 "--projections", "50", "--jobs", "1", "--datasets", "8gaussians", "swissroll", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "[toy] 8gaussians WGAN seed 0: iteration 10/20" in printed and str(out / "toy_samples.png") in printed
    assert (out / "toy_samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (out / "toy_table.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 8 and {"sw1_10_mean", "w1_20_mean"} <= set(table[0])
    assert all(np.isfinite(float(row["w1_20_mean"])) for row in table)
    with (out / "toy_metrics.csv").open() as handle:
        metrics = list(csv.DictReader(handle))
    assert len(metrics) == 8 * 2 and {r["iteration"] for r in metrics} == {"10", "20"}
    markdown = (out / "toy_table.md").read_text()
    assert "NARROW default run" in markdown and "MLP width 16" in markdown and "| Swiss roll | AdaSWGAN |" in markdown
    assert '"iterations": 20' in (out / "toy_config.json").read_text()


def test_qmap_toy_rejects_snapshots_outside_the_run(capsys):
    with pytest.raises(SystemExit):
        qmap(["toy", "--iterations", "20", "--snapshots", "30"])
    assert "outside 1..20" in capsys.readouterr().err
