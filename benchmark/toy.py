"""``qmap toy``: WGAN, AdaWGAN, SWGAN and AdaSWGAN on 2-D toy data (the DACAL seed's toy study).

The seed talk compares the four objectives on 2-D toy data at 2.5k and 5k iterations and shows
samples (methods.md §7.1b); its distributions, widths and metrics are not given. The setup here
is the WGAN-GP toy suite (igul222/improved_wgan_training ``gan_toy.py``, caogang/wgan-gp;
methods.md §7.2):

* data: 8 Gaussians (centres on a radius-2 circle, σ 0.02, divided by 1.414), 25 Gaussians
  (5×5 grid of spacing 2, σ 0.05, divided by 2.828) and the Swiss roll (scikit-learn, noise 0.25,
  columns 0 and 2, divided by 7.5); every batch is drawn fresh (``gan_toy.py`` cycles over a
  fixed pool of 100k points for the 25 Gaussians);
* G: MLP z ∈ R² (standard normal) → 3 hidden ReLU layers → R²; D: MLP R² → 3 hidden ReLU layers →
  one score (WGAN, AdaWGAN) or, for the sliced objectives, its last layer replaced by a linear
  layer to ``features`` dims and SWGAN's sliced head (``critics.SlicedHead``: K orthogonal
  projections, 1-D potentials, mean);
* batch 256, 5 critic iterations per generator iteration, Adam lr 1e-4 with betas (0.5, 0.9)
  for both nets, penalty weight λ0 = 0.1 (the toy suite's);
* the penalty is the one-sided, non-squared ``E[max(0, ‖∇D‖ − 1)]`` of the seed's AdaSWGAN slide
  for all four objectives, so that they differ only in the head (sliced or scalar) and in λ
  (adaptive or fixed); ``--penalty two_sided`` gives WGAN-GP's form (the toy suite's own);
* the adaptive λ is DPE's rule (``critics.AdaptiveLambda``: η 0.99, ×2 above 0.05, 50-step
  cool-down, never decreased), starting from 0.1;
* Stiefel projection of the sliced head's gradients before each critic step and sign-preserving
  QR retraction after it (``SlicedHead.project_gradients`` / ``retract``) — the very functions
  DACAL uses, as are ``critics.gradient_penalty`` and ``critics.AdaptiveLambda``.

Metrics, every ``--eval-every`` generator iterations and at the snapshots, on ``--eval-samples``
generated points (a fixed noise batch per run) against as many fresh target points (one fixed
draw per data set and seed, shared by the four objectives): the sliced 1-Wasserstein distance
SW1 (mean over ``--projections`` fixed random directions of the 1-D W1 between the projected
samples) and the exact W1 between equal-size subsamples of ``--w1-samples`` points (optimal
assignment, ``scipy.optimize.linear_sum_assignment``: for two empirical measures with the same
number of equally weighted points the optimal transport plan is a permutation, so this is the
exact W1 between them). Lower is better for both.

The default run is narrow — MLP width 64 and a sliced head of d = 16 (the spec allows 2–16-d
features), one seed, two runs at a time (``--jobs``): a critic step costs 2–3 ms of autograd
overhead on a 2-core CPU whatever the width, and 12 runs × 5000 iterations × 6 steps took 12 min
of wall time on the shared development machine (runs of 63–103 s unperturbed, i.e. about 9 min
when it is quiet) — not the 5 min first aimed at. It says so on the figure and the tables.
``--paper`` uses the toy suite's width 512, d = 128 and three seeds (hours on a CPU).

Outputs in ``--out`` (default ``runs/toy``): ``toy_samples.png`` (samples over the target and
critic contours, per data set, snapshot and objective), ``toy_metrics.csv`` (every evaluation),
``toy_table.csv`` / ``toy_table.md`` (the snapshots, mean ± std over seeds) and ``toy_config.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from torch import Tensor, nn

from baselines.critics import AdaptiveLambda, OptionalSlicedHead, SlicedHead, gradient_penalty

DATASETS = ("8gaussians", "25gaussians", "swissroll")
DATASET_TITLES = {"8gaussians": "8 Gaussians", "25gaussians": "25 Gaussians", "swissroll": "Swiss roll"}
#: objective -> (sliced head, adaptive λ)
OBJECTIVES: dict[str, tuple[bool, bool]] = {
    "WGAN": (False, False), "AdaWGAN": (False, True), "SWGAN": (True, False), "AdaSWGAN": (True, True)}
#: Half-width of the square the figure shows (``gan_toy.py``'s RANGE).
PLOT_RANGE = 3.0
PAPER_WIDTH, PAPER_FEATURES, PAPER_SEEDS = 512, 128, (0, 1, 2)


# ---------------------------------------------------------------------------------------------
# Data and metrics (pure functions)
# ---------------------------------------------------------------------------------------------


def sample_target(name: str, count: int, rng: np.random.Generator | np.random.RandomState) -> np.ndarray:
    """``count`` points of a toy distribution, float32 ``(count, 2)``.

    Args:
        name: ``8gaussians``, ``25gaussians`` or ``swissroll``.
        count: number of points.
        rng: numpy ``Generator`` (the Swiss roll also takes a ``RandomState``: seeded like
            scikit-learn's ``random_state``, it gives exactly ``make_swiss_roll``'s points).
    """
    if name == "8gaussians":
        s = 1 / math.sqrt(2)
        centres = 2 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
        points = centres[rng.integers(0, 8, count)] + 0.02 * rng.standard_normal((count, 2))
        return (points / 1.414).astype(np.float32)
    if name == "25gaussians":
        centres = 2 * np.stack(np.meshgrid(np.arange(-2, 3), np.arange(-2, 3), indexing="ij"), -1).reshape(-1, 2)
        points = centres[rng.integers(0, 25, count)] + 0.05 * rng.standard_normal((count, 2))
        return (points / 2.828).astype(np.float32)
    if name == "swissroll":
        # scikit-learn's make_swiss_roll(noise=0.25) written out (its argument checks cost ~2 ms
        # a batch, as much as a critic step): t = 1.5π(1 + 2u), (t·cos t, 21·u', t·sin t) plus
        # 0.25·N(0, 1) on each coordinate, the draws in scikit-learn's order; columns 0 and 2.
        t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=count))
        height = 21 * rng.uniform(size=count)
        points = np.vstack((t * np.cos(t), height, t * np.sin(t))) + 0.25 * rng.standard_normal(size=(3, count))
        return (points.T[:, [0, 2]] / 7.5).astype(np.float32)
    raise ValueError(f"unknown toy data set {name!r}; known: {', '.join(DATASETS)}")


def random_directions(count: int, dim: int = 2, seed: int = 0) -> np.ndarray:
    """``(count, dim)`` unit vectors, uniform on the sphere (normalised Gaussians)."""
    directions = np.random.default_rng(seed).standard_normal((count, dim))
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, directions: np.ndarray) -> float:
    """Sliced 1-Wasserstein distance between two equal-size point clouds.

    ``SW1 = mean_θ W1(⟨a, θ⟩, ⟨b, θ⟩)``; in 1-D, W1 between two equal-size samples is the mean
    absolute difference of their sorted values.

    Args:
        a, b: ``(n, d)`` samples of the same size.
        directions: ``(m, d)`` unit vectors θ.
    """
    if a.shape != b.shape:
        raise ValueError(f"equal-size samples needed, got {a.shape} and {b.shape}")
    pa = np.sort(a @ directions.T, axis=0)
    pb = np.sort(b @ directions.T, axis=0)
    return float(np.abs(pa - pb).mean())


def exact_w1(a: np.ndarray, b: np.ndarray) -> float:
    """Exact 1-Wasserstein distance (Euclidean ground cost) between two equal-size samples.

    With n equally weighted points on each side the optimal plan is a permutation (Birkhoff),
    so W1 is the mean cost of the optimal assignment.
    """
    if a.shape != b.shape:
        raise ValueError(f"equal-size samples needed, got {a.shape} and {b.shape}")
    cost = cdist(a, b)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------


def _mlp(width: int, out: int) -> nn.Sequential:
    """2 → width → width → width → out with ReLUs between (gan_toy.py's G and D bodies)."""
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU(), nn.Linear(width, out))


class ToyCritic(OptionalSlicedHead):
    """The toy D: the MLP, whose last layer is a score (scalar) or features + SlicedHead (sliced).

    Args:
        width: hidden width (512 in the toy suite).
        sliced: replace the last layer by a linear map to ``features`` dims and a SlicedHead.
        features: d of the sliced head.
        projections: K of the sliced head.
    """

    def __init__(self, width: int, sliced: bool, features: int = 128, projections: int = 4) -> None:
        super().__init__()
        self.body = _mlp(width, features if sliced else 1)
        self.head = SlicedHead(features, projections) if sliced else None

    def forward(self, points: Tensor) -> Tensor:
        """``(B, 2)`` → ``(B,)`` critic values."""
        out = self.body(points)
        return self.head(out) if self.head is not None else out.squeeze(1)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass
class ToyConfig:
    """Settings of one toy study (see the module docstring)."""

    iterations: int = 5000
    snapshots: tuple[int, ...] = (2500, 5000)
    eval_every: int = 500
    width: int = 64
    features: int = 16
    projections: int = 4
    seeds: tuple[int, ...] = (0,)
    batch_size: int = 256
    critic_iters: int = 5
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    lambda_initial: float = 0.1
    penalty: Literal["one_sided", "two_sided"] = "one_sided"
    eval_samples: int = 2048
    w1_samples: int = 512
    swd_projections: int = 1000
    grid_points: int = 100
    datasets: tuple[str, ...] = DATASETS
    objectives: tuple[str, ...] = tuple(OBJECTIVES)
    paper: bool = False
    jobs: int = 1

    def describe(self) -> str:
        scale = ("paper scale" if self.paper else "NARROW default run (toy suite: width 512, d 128; --paper runs "
                 "that with 3 seeds)")
        return (f"{scale}: MLP width {self.width}, seeds {list(self.seeds)}, batch {self.batch_size}, "
                f"{self.critic_iters} critic iters, Adam lr {self.lr:g} betas {tuple(self.betas)}, "
                f"λ0 {self.lambda_initial:g} ({self.penalty} penalty), "
                f"sliced head d={self.features} K={self.projections}")


@dataclass
class RunResult:
    """What one (data set, objective, seed) run leaves: metric rows and snapshot panels."""

    rows: list[dict] = field(default_factory=list)
    snapshots: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)


def train_run(dataset: str, objective: str, seed: int, config: ToyConfig,
              log: Callable[[str], None] = print) -> RunResult:
    """Train one toy GAN and evaluate it on the schedule of ``config``."""
    sliced, adaptive = OBJECTIVES[objective]
    torch.manual_seed(seed)
    generator = _mlp(config.width, 2)
    critic = ToyCritic(config.width, sliced, config.features, config.projections)
    lam = AdaptiveLambda(initial=config.lambda_initial, adaptive=adaptive)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=config.betas, foreach=True)
    opt_d = torch.optim.Adam(critic.parameters(), lr=config.lr, betas=config.betas, foreach=True)
    # Separate streams: the data draws and the evaluation set depend only on (data set, seed).
    data_rng = np.random.default_rng([seed, DATASETS.index(dataset), 0])
    eval_rng = np.random.default_rng([seed, DATASETS.index(dataset), 1])
    noise = torch.Generator().manual_seed(seed)
    eval_target = sample_target(dataset, config.eval_samples, eval_rng)
    eval_noise = torch.randn(config.eval_samples, 2, generator=torch.Generator().manual_seed(10_000 + seed))
    directions = random_directions(config.swd_projections)
    grid = np.linspace(-PLOT_RANGE, PLOT_RANGE, config.grid_points, dtype=np.float32)
    grid_points = torch.from_numpy(np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2))
    result, started = RunResult(), time.perf_counter()

    def evaluate(iteration: int) -> None:
        with torch.no_grad():
            fake = generator(eval_noise).numpy()
        n = config.w1_samples
        result.rows.append({
            "dataset": dataset, "objective": objective, "seed": seed, "iteration": iteration,
            "sw1": sliced_wasserstein(fake, eval_target, directions),
            "w1": exact_w1(fake[:n], eval_target[:n]), "lambda": float(lam()),
            # max ‖WᵀW − I‖ of the sliced head's projections (empty for the scalar critics)
            "orthogonality_error": float(critic.head.orthogonality_error()) if critic.head is not None else "",
            "seconds": round(time.perf_counter() - started, 2)})
        if iteration in config.snapshots:
            with torch.no_grad():
                surface = critic(grid_points).numpy().reshape(config.grid_points, config.grid_points)
            result.snapshots[iteration] = {"fake": fake[:512], "target": eval_target[:512], "critic": surface}

    for iteration in range(1, config.iterations + 1):
        critic.requires_grad_(True)
        for _ in range(config.critic_iters):
            real = torch.from_numpy(sample_target(dataset, config.batch_size, data_rng))
            with torch.no_grad():
                fake = generator(torch.randn(config.batch_size, 2, generator=noise))
            scores = critic(torch.cat([real, fake]))
            alpha = torch.rand(config.batch_size, 1, generator=noise)
            penalty = gradient_penalty(critic, real, fake, alpha, config.penalty)
            loss = scores[config.batch_size:].mean() - scores[: config.batch_size].mean() + lam() * penalty
            opt_d.zero_grad(set_to_none=True)
            loss.backward()
            critic.project_gradients()
            opt_d.step()
            critic.retract()
            lam.update(penalty.detach())
        critic.requires_grad_(False)
        loss_g = -critic(generator(torch.randn(config.batch_size, 2, generator=noise))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if iteration % config.eval_every == 0 or iteration in config.snapshots or iteration == config.iterations:
            evaluate(iteration)
            row = result.rows[-1]
            log(f"[toy] {dataset} {objective} seed {seed}: iteration {iteration}/{config.iterations} "
                f"SW1 {row['sw1']:.4f} W1 {row['w1']:.4f} λ {row['lambda']:.3g} ({row['seconds']:.0f} s)")
    return result


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------


def summary_table(rows: list[dict], config: ToyConfig) -> list[dict]:
    """Mean ± std over seeds of SW1 and W1 at each snapshot, one row per (data set, objective)."""
    table = []
    for dataset in config.datasets:
        for objective in config.objectives:
            row: dict = {"dataset": dataset, "objective": objective}
            for snapshot in config.snapshots:
                for metric in ("sw1", "w1"):
                    values = [r[metric] for r in rows if r["dataset"] == dataset and r["objective"] == objective
                              and r["iteration"] == snapshot]
                    row[f"{metric}_{snapshot}_mean"] = float(np.mean(values)) if values else float("nan")
                    row[f"{metric}_{snapshot}_std"] = float(np.std(values)) if len(values) > 1 else float("nan")
                    row[f"{metric}_{snapshot}_n"] = len(values)
            table.append(row)
    return table


def _cell(mean: float, std: float, best: bool) -> str:
    text = f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"
    return f"**{text}**" if best else text


def write_tables(out: Path, rows: list[dict], config: ToyConfig) -> tuple[Path, Path, Path]:
    """Write ``toy_metrics.csv`` (every evaluation), ``toy_table.csv`` and ``toy_table.md``."""
    import csv

    metrics_path = out / "toy_metrics.csv"
    with metrics_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = summary_table(rows, config)
    table_path = out / "toy_table.csv"
    with table_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    columns = [(metric, s) for s in config.snapshots for metric in ("sw1", "w1")]
    header = "| data | objective | " + " | ".join(f"{m.upper()} @{s}" for m, s in columns) + " |"
    lines = ["# Toy study: distance to the target (lower is better; best per data set in bold)", "",
             f"Configuration: {config.describe()}.", "",
             f"SW1: sliced 1-Wasserstein over {config.swd_projections} fixed random directions, "
             f"{config.eval_samples} generated vs {config.eval_samples} target points. W1: exact "
             f"1-Wasserstein (optimal assignment) between {config.w1_samples}-point subsamples. "
             f"Iterations are generator iterations ({config.critic_iters} critic iterations each). "
             + ("Mean ± std over seeds." if len(config.seeds) > 1 else "One seed: no spread is estimated."),
             "", header, "|" + "---|" * (2 + len(columns))]
    for dataset in config.datasets:
        subset = [r for r in table if r["dataset"] == dataset]
        best = {c: min(r[f"{c[0]}_{c[1]}_mean"] for r in subset) for c in columns}
        for r in subset:
            cells = [_cell(r[f"{m}_{s}_mean"], r[f"{m}_{s}_std"], r[f"{m}_{s}_mean"] == best[(m, s)])
                     for m, s in columns]
            lines.append(f"| {DATASET_TITLES[dataset]} | {r['objective']} | " + " | ".join(cells) + " |")
    markdown_path = out / "toy_table.md"
    markdown_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return metrics_path, table_path, markdown_path


def write_figure(out: Path, results: dict[tuple[str, str], RunResult], config: ToyConfig) -> Path:
    """Samples over the target with critic contours: rows (data set, snapshot), columns objectives."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(d, s) for d in config.datasets for s in config.snapshots]
    fig, axes = plt.subplots(len(panels), len(config.objectives), squeeze=False,
                             figsize=(2.6 * len(config.objectives), 2.6 * len(panels) + 0.8))
    grid = np.linspace(-PLOT_RANGE, PLOT_RANGE, config.grid_points)
    for i, (dataset, snapshot) in enumerate(panels):
        for j, objective in enumerate(config.objectives):
            ax = axes[i][j]
            shot = results[(dataset, objective)].snapshots.get(snapshot)
            ax.set_xlim(-PLOT_RANGE, PLOT_RANGE)
            ax.set_ylim(-PLOT_RANGE, PLOT_RANGE)
            ax.set_xticks([])
            ax.set_yticks([])
            if shot is not None:
                ax.contourf(grid, grid, shot["critic"], levels=20, cmap="viridis", alpha=0.6)
                ax.scatter(*shot["target"].T, s=2, c="orange", label="target")
                ax.scatter(*shot["fake"].T, s=2, c="white", edgecolors="black", linewidths=0.2, label="generated")
            if i == 0:
                ax.set_title(objective)
            if j == 0:
                ax.set_ylabel(f"{DATASET_TITLES[dataset]}\n{snapshot} it.")
    seed_note = f"seed {config.seeds[0]} shown" + (f" of {list(config.seeds)}" if len(config.seeds) > 1 else "")
    width = 30 * len(config.objectives)  # characters per title line
    fig.suptitle(f"Toy study ({seed_note}): samples (white) over target (orange), critic contours\n"
                 + textwrap.fill(config.describe(), width), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    path = out / "toy_samples.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _train_task(task: tuple[str, str, int, ToyConfig]) -> RunResult:
    """One run in a worker process (progress lines go to the shared stdout)."""
    torch.set_num_threads(1)
    dataset, objective, seed, config = task
    return train_run(dataset, objective, seed, config, lambda line: print(line, flush=True))


def run_toy(config: ToyConfig, out: Path, log: Callable[[str], None] = print) -> dict[str, Path]:
    """Run every (data set, objective, seed) of ``config`` and write the outputs into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "toy_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")
    tasks = [(d, o, s) for s in config.seeds for d in config.datasets for o in config.objectives]
    log(f"[toy] {len(tasks)} runs of {config.iterations} generator iterations, {config.jobs} at a time; "
        f"{config.describe()}")
    if config.jobs > 1:
        # Runs are independent; one process each (spawned: no inherited torch thread pools).
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(config.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_train_task, [(*task, config) for task in tasks]))
    else:
        results = [train_run(*task, config, log) for task in tasks]
    rows: list[dict] = []
    figure_runs: dict[tuple[str, str], RunResult] = {}
    for (dataset, objective, seed), result in zip(tasks, results, strict=True):
        rows += result.rows
        if seed == config.seeds[0]:
            figure_runs[(dataset, objective)] = result
    metrics_path, table_path, markdown_path = write_tables(out, rows, config)
    figure_path = write_figure(out, figure_runs, config)
    return {"figure": figure_path, "metrics": metrics_path, "table_csv": table_path, "table_md": markdown_path,
            "config": out / "toy_config.json"}


def parse_args(argv: Sequence[str]) -> tuple[ToyConfig, Path]:
    parser = argparse.ArgumentParser(prog="qmap toy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/toy"), help="output folder (runs/toy)")
    parser.add_argument("--paper", action="store_true",
                        help=f"the toy suite's width {PAPER_WIDTH} and seeds {list(PAPER_SEEDS)} (slow on a CPU)")
    parser.add_argument("--iterations", type=int, default=5000, help="generator iterations (5000)")
    parser.add_argument("--snapshots", type=int, nargs="+", default=None,
                        help="iterations shown in the figure and tables (2500 5000, or the last iteration)")
    parser.add_argument("--eval-every", type=int, default=500, help="metric interval in generator iterations")
    parser.add_argument("--width", type=int, default=None, help="MLP width (64; --paper: 512)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (0; --paper: 0 1 2)")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--objectives", nargs="+", choices=list(OBJECTIVES), default=list(OBJECTIVES))
    parser.add_argument("--penalty", choices=("one_sided", "two_sided"), default="one_sided")
    parser.add_argument("--features", type=int, default=None, help="d of the sliced head (16; --paper: 128)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="runs trained at once, one process each (default: min(2, CPU cores))")
    parser.add_argument("--projections", type=int, default=1000, help="SW1 directions (1000)")
    args = parser.parse_args(argv)
    snapshots = args.snapshots or [s for s in (2500, 5000) if s <= args.iterations] or [args.iterations]
    bad = [s for s in snapshots if not 1 <= s <= args.iterations]
    if bad:
        parser.error(f"snapshots {bad} lie outside 1..{args.iterations}")
    config = ToyConfig(
        iterations=args.iterations, snapshots=tuple(sorted(set(snapshots))), eval_every=args.eval_every,
        width=args.width or (PAPER_WIDTH if args.paper else 64),
        seeds=tuple(args.seeds or (PAPER_SEEDS if args.paper else (0,))),
        features=args.features or (PAPER_FEATURES if args.paper else 16), jobs=max(1, args.jobs),
        swd_projections=args.projections, penalty=args.penalty,
        datasets=tuple(args.datasets), objectives=tuple(args.objectives), paper=args.paper)
    return config, args.out


def main(argv: Sequence[str] | None = None) -> int:
    """``qmap toy [--out DIR] [--paper] [--iterations N] [--snapshots N ...] ...``"""
    config, out = parse_args(list(sys.argv[1:] if argv is None else argv))
    torch.set_num_threads(1)  # tiny MLPs: extra threads only add overhead
    paths = run_toy(config, out)
    print("[toy] done. Outputs:")
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
