"""Preference matrices: counts, Bradley–Terry, Thurstone Case V (JOD), bootstrap CIs, outliers.

Torch-free (numpy, scipy, pandas, choix); matplotlib only when plots are written.

Inputs (design.md section 5; datasets_protocols.md C):

- **trials** — one row per judgement, ``observer, key, method_a, method_b, choice``; ``choice``
  names the preferred method or is ``tie`` (half a win each). Extra columns are ignored.
- **counts** — a published count matrix (DPE's README layout): square, method names as header
  and first column, ``C[i, j]`` = times row ``i`` was preferred over column ``j``; a ``total``
  column is ignored, the diagonal may be empty, ``-`` or ``–``.
- **virtual raters** — :func:`virtual_trials` turns per-image result rows into trials in which
  every full-reference metric (PSNR, SSIM, ...) judges every pair of methods on every image and
  protocol. Everything derived from them says so (:data:`VIRTUAL_RATERS`): they are *not* human
  judgements.

Models (both fitted to the count matrix; ties count half to each side):

- Bradley–Terry: ``P(i ≻ j) = 1 / (1 + exp(s_j − s_i))``, maximum likelihood with ``choix``'s
  I-LSR (Maystre & Grossglauser 2015), reported as natural-log strengths centred to mean 0.
- Thurstone Case V as pwcmp scales it (Pérez-Ortiz & Mantiuk 2017, ``pw_scale.m``):
  ``P(i ≻ j) = Φ((q_i − q_j) / σ)`` with σ = 1.4826, so that a difference of 1 JOD is 75 %
  preference; maximum likelihood by Newton's method with the exact constraint mean(q) = 0
  (pwcmp adds a weak penalty ``0.01·mean(q)²`` instead; the optimum is the same). No prior by
  default; ``prior="gaussian"`` adds pwcmp's "gaussian" distance prior as ``pw_scale.m``
  (2017-09 revision) computes it.

The maximum-likelihood estimate exists only when the "i beat j at least once" graph is strongly
connected (Zermelo/Ford): a method that never lost would get an infinite score. Then, and only
then, both models are fitted to the counts plus 0.5 in both cells of every compared pair (a
continuity correction, whose ML estimate always exists) and the output says so. pwcmp's
Gaussian prior is no good fallback: under complete separation it bounds the scores only weakly
(tens of JOD, depending on where the optimiser stops).

Confidence intervals are percentile bootstrap intervals of the JOD scores:

- from trials: resampling observers *and* images (keys) with replacement, each trial weighted
  by how often its observer and its image were drawn (a dimension with a single level is not
  resampled; with neither, single trials are). Resampling both crossed factors is conservative
  (McCullagh 2000): without observer or image effects the intervals come out about 1.4–1.6
  times the asymptotic width (the tests bound them at twice). ``resample="observers"`` is
  pwcmp's choice (images treated as fixed), close to the asymptotic width;
- from a count matrix (observers and images unknown): a parametric bootstrap of the binomial
  counts, ``C*_ij ~ Binomial(n_ij, C_ij / n_ij)`` independently per pair.

Bootstrap samples whose ML estimate does not exist get the same continuity correction and are
counted in the output; samples whose comparison graph falls apart are dropped and counted.

Significance: a pair of methods differs significantly when the bootstrap percentile interval of
their JOD difference excludes 0 (two-sided, level ``alpha``); the two-sided bootstrap p-value is
``2·min(P*(d ≤ 0), P*(d ≥ 0))``.

Observer outliers (pwcmp ``pw_outlier_analysis``, Pérez-Ortiz & Mantiuk 2017, section 9): for
each observer, the JOD scores are refitted without that observer (no prior) and the observer's
own judgements are scored by their log-likelihood under that fit, divided by the observer's
number of trials (pwcmp has normalised by the trial count since 2024). ``dist_L = (Q1 − L) /
IQR`` for observers below the first quartile ``Q1`` of ``L`` (else 0); ``dist_L ≥ 1.5`` flags a
possible outlier worth inspecting — never a reason to drop someone automatically.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special
from scipy.sparse.csgraph import connected_components

from benchmark.results import HIGHER_IS_BETTER, atomic_write_text, write_json

__all__ = [
    "FULL_REFERENCE_METRICS",
    "SIGMA",
    "TRIAL_COLUMNS",
    "VIRTUAL_RATERS",
    "PreferenceResult",
    "analyse_counts",
    "analyse_trials",
    "bootstrap_counts_parametric",
    "bootstrap_counts_trials",
    "bradley_terry",
    "count_matrix",
    "fit_thurstone",
    "main",
    "matrix_latex",
    "matrix_markdown",
    "ml_exists",
    "observer_outliers",
    "read_counts",
    "read_trials",
    "significance",
    "thurstone_jod",
    "trial_tensor",
    "virtual_trials",
    "write_preference",
]

SIGMA = 1.4826  # pwcmp's sigma_cdf: Φ(1 / σ) = 0.75, so 1 JOD = 75 % preference
TRIAL_COLUMNS: tuple[str, ...] = ("observer", "key", "method_a", "method_b", "choice")
TIE = "tie"
VIRTUAL_RATERS = "virtual raters: full-reference metrics, not human judgements"
# Metrics that compare an output with its target; `seconds` and the video metrics are not.
FULL_REFERENCE_METRICS: tuple[str, ...] = ("psnr", "ssim", "ms_ssim", "delta_e76", "delta_e2000", "lpips")
OUTLIER_THRESHOLD = 1.5
_DIAGONAL_BLANKS = ("", "-", "–", "—", "nan", "NaN")


# --------------------------------------------------------------------------------------------
# Reading inputs
# --------------------------------------------------------------------------------------------


def read_trials(path: str | Path) -> pd.DataFrame:
    """Read and validate a trials CSV (``observer, key, method_a, method_b, choice``).

    Args:
        path: CSV file with a header row; extra columns are kept but unused.

    Returns:
        The trials with the five columns as stripped strings.

    Raises:
        ValueError: missing columns, empty cells, a method compared with itself or a choice that
            is neither method nor ``tie``; the message names the file and the line.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV ({err})") from err
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in TRIAL_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: trials need columns {list(TRIAL_COLUMNS)}; missing {missing}")
    if frame.empty:
        raise ValueError(f"{path}: no trials")
    for column in TRIAL_COLUMNS:
        frame[column] = frame[column].str.strip()
    check_trials(frame, source=str(path))
    return frame


def check_trials(trials: pd.DataFrame, source: str = "trials") -> None:
    """Raise ``ValueError`` naming the first bad row (line numbers count the header as line 1)."""
    for index, row in enumerate(trials[list(TRIAL_COLUMNS)].itertuples(index=False), start=2):
        observer, key, a, b, choice = (str(v) for v in row)
        empty = [c for c, v in zip(TRIAL_COLUMNS, (observer, key, a, b, choice), strict=True) if not v]
        if empty:
            raise ValueError(f"{source}: line {index}: empty {', '.join(empty)}")
        if a == b:
            raise ValueError(f"{source}: line {index}: method {a!r} is compared with itself")
        if choice not in (a, b, TIE):
            raise ValueError(f"{source}: line {index}: choice {choice!r} is neither {a!r}, {b!r} nor 'tie'")


def read_counts(path: str | Path) -> pd.DataFrame:
    """Read a published count matrix (DPE layout) as a square float DataFrame.

    Args:
        path: CSV whose header holds the method names (after one corner cell) and whose first
            column holds the same names in the same order; ``C[i, j]`` = times row ``i`` was
            preferred over column ``j``. A ``total`` column is ignored.

    Raises:
        ValueError: not square, names differing between header and first column, or a cell that
            is not a non-negative number; the message names the file, row and column.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV ({err})") from err
    raw.columns = [str(c).strip() for c in raw.columns]
    raw.index = [str(i).strip() for i in raw.index]
    raw = raw[[c for c in raw.columns if c.lower() != "total"]]
    if list(raw.index) != list(raw.columns):
        raise ValueError(
            f"{path}: a count matrix needs the same method names, in the same order, in the header "
            f"and the first column; header {list(raw.columns)}, first column {list(raw.index)}"
        )
    if len(raw) < 2:
        raise ValueError(f"{path}: a count matrix needs at least two methods")
    values = np.zeros(raw.shape)
    for i, name in enumerate(raw.index):
        for j, column in enumerate(raw.columns):
            text = str(raw.iat[i, j]).strip()
            if i == j and text in _DIAGONAL_BLANKS:
                continue
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{path}: row {name!r}, column {column!r}: {text!r} is not a number") from None
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{path}: row {name!r}, column {column!r}: counts must be finite and >= 0")
            if i == j and value != 0:
                raise ValueError(f"{path}: row {name!r}: a method cannot be preferred over itself ({value})")
            values[i, j] = value
    return pd.DataFrame(values, index=list(raw.index), columns=list(raw.columns))


# --------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------


def _methods_of(trials: pd.DataFrame, methods: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(pd.concat([trials["method_a"], trials["method_b"]]).astype(str)))
    if methods is None:
        return present
    unknown = sorted(set(present) - set(methods))
    if unknown:
        raise ValueError(f"trials name methods {unknown} that are not in {list(methods)}")
    return list(methods)


def trial_tensor(
    trials: pd.DataFrame, methods: Sequence[str] | None = None
) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """Counts per observer and image: ``T[o, k, i, j]`` = times ``i`` beat ``j`` (ties half).

    Returns:
        ``(methods, observers, keys, T)``; summing ``T`` over the first two axes gives the count
        matrix.
    """
    methods = _methods_of(trials, methods)
    observers = list(dict.fromkeys(trials["observer"].astype(str)))
    keys = list(dict.fromkeys(trials["key"].astype(str)))
    index = {m: i for i, m in enumerate(methods)}
    o = trials["observer"].astype(str).map({v: i for i, v in enumerate(observers)}).to_numpy()
    k = trials["key"].astype(str).map({v: i for i, v in enumerate(keys)}).to_numpy()
    a = trials["method_a"].astype(str).map(index).to_numpy()
    b = trials["method_b"].astype(str).map(index).to_numpy()
    choice = trials["choice"].astype(str).to_numpy()
    a_wins = np.where(choice == trials["method_a"].astype(str).to_numpy(), 1.0, 0.0)
    tie = choice == TIE
    a_wins = np.where(tie, 0.5, a_wins)
    tensor = np.zeros((len(observers), len(keys), len(methods), len(methods)))
    np.add.at(tensor, (o, k, a, b), a_wins)
    np.add.at(tensor, (o, k, b, a), 1.0 - a_wins)
    return methods, observers, keys, tensor


def count_matrix(trials: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """``C[i, j]`` = times method ``i`` was preferred over ``j`` (a tie counts half to each)."""
    methods, _, _, tensor = trial_tensor(trials, methods)
    return pd.DataFrame(tensor.sum(axis=(0, 1)), index=methods, columns=methods)


def virtual_trials(rows: pd.DataFrame, metrics: Sequence[str] = FULL_REFERENCE_METRICS,
                   order: Sequence[str] | None = None) -> pd.DataFrame:
    """Trials in which each full-reference metric judges each pair of methods on each image.

    Per (protocol, image key, metric), the per-image values are averaged over seeds, then every
    pair of labels is compared: the better value by ``higher_is_better`` wins, equal values tie,
    and a NaN on either side (e.g. LPIPS without weights) casts no vote. The observer is the
    metric, the key is ``<protocol>:<image key>``. These are **virtual raters**, not people.

    Args:
        rows: result rows of one dataset (``benchmark.results.ROW_COLUMNS``).
        metrics: which metrics vote (only full-reference metrics make sense).
        order: label order of ``method_a``/``method_b`` (default: first appearance).
    """
    subset = rows[rows["metric"].isin(metrics)]
    if subset.empty:
        return pd.DataFrame(columns=list(TRIAL_COLUMNS))
    if subset["dataset"].nunique() > 1:
        raise ValueError(f"virtual raters compare methods on one dataset; got {sorted(subset['dataset'].unique())}")
    frame = subset.assign(protocol=subset["protocol"].astype(str), key=subset["key"].astype(str))
    values = frame.pivot_table(index=["protocol", "key", "metric"], columns="label", values="value",
                               aggfunc="mean", dropna=False)
    first = list(dict.fromkeys(order or []))
    labels = first + [label for label in dict.fromkeys(frame["label"]) if label not in first]
    labels = [label for label in labels if label in values.columns]
    higher = np.array([HIGHER_IS_BETTER.get(metric, True) for metric in values.index.get_level_values("metric")])
    keys = [f"{p}:{k}" for p, k in zip(values.index.get_level_values("protocol"),
                                       values.index.get_level_values("key"), strict=True)]
    observers = list(values.index.get_level_values("metric"))
    parts = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            va, vb = values[a].to_numpy(dtype=float), values[b].to_numpy(dtype=float)
            vote = ~(np.isnan(va) | np.isnan(vb))
            a_better = np.where(higher, va > vb, va < vb)
            b_better = np.where(higher, vb > va, vb < va)
            choice = np.where(a_better, a, np.where(b_better, b, TIE))
            part = pd.DataFrame({"observer": observers, "key": keys, "method_a": a, "method_b": b, "choice": choice})
            parts.append(part[vote])
    if not parts:
        return pd.DataFrame(columns=list(TRIAL_COLUMNS))
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def ml_exists(counts: np.ndarray) -> bool:
    """True when the maximum-likelihood scores are finite: the "beat at least once" graph is
    strongly connected (Zermelo 1929; Ford 1957)."""
    counts = np.asarray(counts, dtype=float)
    if len(counts) < 2:
        return True
    n_components, _ = connected_components(counts > 0, directed=True, connection="strong")
    return n_components == 1


def comparisons_connected(counts: np.ndarray) -> bool:
    """True when every method is compared with every other, directly or through others."""
    counts = np.asarray(counts, dtype=float)
    n_components, _ = connected_components((counts + counts.T) > 0, directed=False)
    return n_components == 1


def bradley_terry(counts: np.ndarray, alpha: float = 0.0) -> np.ndarray:
    """Bradley–Terry log-strengths (natural log, mean 0) by choix's I-LSR maximum likelihood.

    Args:
        counts: ``C[i, j]`` = times ``i`` beat ``j`` (may hold halves from ties).
        alpha: choix's I-LSR regularisation; 0 is the plain ML estimate, which exists only when
            :func:`ml_exists`.
    """
    import choix

    counts = np.asarray(counts, dtype=float)
    if alpha == 0 and not ml_exists(counts):
        raise ValueError("the Bradley–Terry ML estimate does not exist (some methods never lose to the rest)")
    params = choix.ilsr_pairwise_dense(counts, alpha=alpha, max_iter=1000, tol=1e-12)
    return params - params.mean()


def _thurstone_terms(q: np.ndarray, counts: np.ndarray, sigma: float) -> tuple[np.ndarray, ...]:
    """Negative log-likelihood, gradient and Hessian of Thurstone Case V, batched over axis 0."""
    z = (q[:, :, None] - q[:, None, :]) / sigma
    log_cdf = special.log_ndtr(z)
    nll = -(counts * log_cdf).sum(axis=(1, 2))
    mills = np.exp(-0.5 * z**2 - 0.5 * np.log(2 * np.pi) - log_cdf)  # φ(z) / Φ(z)
    pull = counts * mills
    grad = -(pull.sum(axis=2) - pull.sum(axis=1)) / sigma
    weight = counts * mills * (z + mills)  # d²(−log Φ)/dz² = λ(z + λ) > 0
    weight = weight + weight.transpose(0, 2, 1)
    hess = (np.einsum("bij->bi", weight)[:, :, None] * np.eye(q.shape[1]) - weight) / sigma**2
    return nll, grad, hess


def fit_thurstone(counts: np.ndarray, sigma: float = SIGMA, max_iter: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Thurstone Case V maximum-likelihood JOD scores with mean 0, batched Newton's method.

    Args:
        counts: ``(n, n)`` or ``(B, n, n)`` count matrices, each with a finite ML estimate
            (:func:`ml_exists`); otherwise the iterates drift off and the result is meaningless.
        sigma: the probit scale (1.4826 makes 1 unit a 75 % preference).

    Returns:
        ``(n,)`` or ``(B, n)`` scores, each row summing to 0.
    """
    counts = np.asarray(counts, dtype=float)
    single = counts.ndim == 2
    batch = counts[None] if single else counts
    b, n, _ = batch.shape
    q = np.zeros((b, n))
    # The Hessian is a graph Laplacian (null space: constants); adding J/n makes the mean-0
    # Newton step unique without changing it (the gradient sums to 0).
    shift = np.ones((n, n)) / n
    nll, grad, hess = _thurstone_terms(q, batch, sigma)
    for _ in range(max_iter):
        step = -np.linalg.solve(hess + shift, grad[:, :, None])[:, :, 0]
        slope = (grad * step).sum(axis=1)
        t = np.ones(b)
        accepted = np.zeros(b, dtype=bool)
        for _ in range(40):  # backtracking (Armijo) line search, per sample
            trial_q = q + t[:, None] * step
            trial_nll = _thurstone_terms(trial_q, batch, sigma)[0]
            ok = trial_nll <= nll + 1e-4 * t * slope + 1e-12 * np.abs(nll)
            accepted |= ok
            t = np.where(ok, t, t / 2)
            if accepted.all():
                break
        q = q + t[:, None] * step
        q -= q.mean(axis=1, keepdims=True)
        nll, grad, hess = _thurstone_terms(q, batch, sigma)
        if np.max(np.abs(t[:, None] * step)) < tol:
            break
    return q[0] if single else q


def _gaussian_prior_terms(z: np.ndarray, basis: np.ndarray, counts: np.ndarray,
                          sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """pwcmp's negative log posterior with its "gaussian" prior and its gradient, batched.

    As ``pw_scale.m`` (2017-09 revision) computes it, over ordered compared pairs ``p = (i, j)``
    with probability ``π_p = Φ((q_i − q_j)/σ)``: the binomial log-likelihood
    ``C_ij log π_p + C_ji log(1 − π_p)``, plus ``log(prior_p + 0.1)`` where ``prior_p`` sums, over
    every compared pair ``a``, pair ``a``'s binomial likelihood evaluated at ``π_p`` and
    normalised over ``p`` (unanimous counts first shifted by one toward the middle, as pwcmp does).

    Args:
        z: ``(B, n−1)`` coordinates; ``q = z @ basis.T`` has mean 0.
        basis: :func:`_mean_zero_basis` of size n.
        counts: ``(B, n, n)`` count matrices.
        sigma: Thurstone scale.

    Returns:
        ``(objective (B,), gradient (B, n−1))``.
    """
    q = z @ basis.T
    total = counts + counts.transpose(0, 2, 1)
    compared = total > 0  # ordered pairs; the diagonal never counts
    x = np.clip((q[:, :, None] - q[:, None, :]) / sigma, -30, 30)
    log_p, log_1p = special.log_ndtr(x), special.log_ndtr(-x)
    wins, losses = counts, counts.transpose(0, 2, 1)
    log_lik = np.where(compared, wins * log_p + losses * log_1p, 0.0).sum(axis=(1, 2))
    dlik = np.where(compared, wins * np.exp(-log_p) - losses * np.exp(-log_1p), 0.0)  # ∂/∂π

    unanimous = compared & ((wins == 0) | (losses == 0))
    k = np.where(unanimous & (wins == 0), 1.0, np.where(unanimous, wins - 1.0, wins))
    b, n = q.shape
    k, nn = k.reshape(b, -1), total.reshape(b, -1)
    mask = compared.reshape(b, -1)
    lp, l1p = log_p.reshape(b, -1), log_1p.reshape(b, -1)
    # log_aux[b, a, p]: source pair a's log-likelihood at target pair p's probability.
    log_aux = k[:, :, None] * lp[:, None, :] + (nn - k)[:, :, None] * l1p[:, None, :]
    log_aux = np.where(mask[:, None, :], log_aux, -np.inf)
    log_aux = np.where(mask[:, :, None], log_aux, 0.0)  # rows of pairs never compared: dropped below
    weights = np.exp(log_aux - log_aux.max(axis=2, keepdims=True))
    share = weights / weights.sum(axis=2, keepdims=True) * mask[:, :, None]  # A[a, p]
    prior = share.sum(axis=1)
    log_prior = np.where(mask, np.log(prior + 0.1), 0.0).sum(axis=1)
    # ∂(−Σ_p log(prior_p + 0.1))/∂π_r = −Σ_a g[a, r] A[a, r] (w_r − Σ_p w_p A[a, p]), w = 1/(prior + 0.1)
    w = np.where(mask, 1.0 / (prior + 0.1), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = k[:, :, None] * np.exp(-lp)[:, None, :] - (nn - k)[:, :, None] * np.exp(-l1p)[:, None, :]
    g = np.where(share > 0, g, 0.0)
    s_a = (share * w[:, None, :]).sum(axis=2, keepdims=True)
    dprior = -(g * share * (w[:, None, :] - s_a)).sum(axis=1).reshape(b, n, n)

    dpi = -dlik + dprior  # ∂objective/∂π for every ordered pair
    dx = dpi * np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi) / sigma  # ∂π/∂(q_i − q_j)
    grad_q = dx.sum(axis=2) - dx.sum(axis=1)
    return -(log_lik + log_prior), grad_q @ basis


def _mean_zero_basis(n: int) -> np.ndarray:
    """Orthonormal basis (n × n−1) of the vectors that sum to 0."""
    centred = np.eye(n) - 1.0 / n
    u, _, _ = np.linalg.svd(centred)
    return u[:, : n - 1]


def fit_thurstone_gaussian_prior(counts: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """JOD scores (mean 0) with pwcmp's Gaussian prior; finite even when the ML estimate is not.

    Args:
        counts: ``(n, n)`` or ``(B, n, n)`` count matrices.
        sigma: Thurstone scale.

    The prior is not log-concave, so each matrix gets its own BFGS run (analytic gradient),
    started at 0 as pwcmp starts. With complete separation the prior bounds the scores only
    weakly (tens of JOD): that is why the automatic fallback is the continuity correction.
    """
    counts = np.asarray(counts, dtype=float)
    single = counts.ndim == 2
    batch = counts[None] if single else counts
    n = batch.shape[1]
    basis = _mean_zero_basis(n)
    out = np.empty(batch.shape[:2])
    for index, matrix in enumerate(batch):
        def objective(z: np.ndarray, matrix: np.ndarray = matrix) -> tuple[float, np.ndarray]:
            value, grad = _gaussian_prior_terms(z[None], basis, matrix[None], sigma)
            return float(value[0]), grad[0]

        result = optimize.minimize(objective, np.zeros(n - 1), jac=True, method="BFGS", options={"gtol": 1e-8})
        out[index] = basis @ result.x
    out -= out.mean(axis=1, keepdims=True)
    return out[0] if single else out


def continuity_corrected(counts: np.ndarray) -> np.ndarray:
    """Counts with 0.5 added to both cells of every compared pair (the ML estimate then exists)."""
    counts = np.asarray(counts, dtype=float)
    compared = (counts + np.swapaxes(counts, -1, -2)) > 0
    return counts + 0.5 * compared


def thurstone_jod(counts: np.ndarray, prior: str = "none", sigma: float = SIGMA) -> np.ndarray:
    """Thurstone Case V JOD scores (mean 0) of one count matrix.

    Args:
        counts: ``C[i, j]`` = times ``i`` beat ``j``.
        prior: ``"none"`` (maximum likelihood; needs :func:`ml_exists`) or ``"gaussian"``
            (pwcmp's distance prior).
    """
    counts = np.asarray(counts, dtype=float)
    if not comparisons_connected(counts):
        raise ValueError("some methods are never compared, directly or through others: no common scale")
    if prior == "gaussian":
        return fit_thurstone_gaussian_prior(counts, sigma)
    if prior != "none":
        raise ValueError(f"prior must be 'none' or 'gaussian', not {prior!r}")
    if not ml_exists(counts):
        raise ValueError("the Thurstone ML estimate does not exist (some methods never lose to the rest); "
                         "use prior='gaussian'")
    return fit_thurstone(counts, sigma)


def _fit_many(samples: np.ndarray, prior: str, sigma: float) -> tuple[np.ndarray, int, int]:
    """JOD scores of many count matrices; returns ``(scores, n_fallback, n_dropped)``.

    Samples without a common scale become NaN rows (dropped); with ``prior="none"``, samples
    without a finite ML estimate are fitted after :func:`continuity_corrected` (counted).
    """
    scores = np.full(samples.shape[:2], np.nan)
    connected = np.array([comparisons_connected(c) for c in samples])
    if prior == "gaussian":
        if connected.any():
            scores[connected] = fit_thurstone_gaussian_prior(samples[connected], sigma)
        return scores, 0, int((~connected).sum())
    finite = connected & np.array([ml_exists(c) for c in samples])
    if finite.any():
        scores[finite] = fit_thurstone(samples[finite], sigma)
    fallback = connected & ~finite
    if fallback.any():
        scores[fallback] = fit_thurstone(continuity_corrected(samples[fallback]), sigma)
    return scores, int(fallback.sum()), int((~connected).sum())


# --------------------------------------------------------------------------------------------
# Bootstrap, significance, outliers
# --------------------------------------------------------------------------------------------


RESAMPLE_CHOICES: tuple[str, ...] = ("both", "observers", "images")


def bootstrap_counts_trials(tensor: np.ndarray, samples: int, rng: np.random.Generator,
                            resample: str = "both") -> tuple[np.ndarray, str]:
    """Count matrices of bootstrap resamples of observers and/or images.

    Args:
        tensor: ``T[o, k, i, j]`` from :func:`trial_tensor`.
        samples: number of resamples.
        rng: random generator.
        resample: ``both`` (default; conservative), ``observers`` (pwcmp's choice: treats the
            images as fixed) or ``images``. A dimension with one level is never resampled.

    Returns:
        ``(B, n, n)`` count matrices and a sentence saying what was resampled.
    """
    if resample not in RESAMPLE_CHOICES:
        raise ValueError(f"resample must be one of {RESAMPLE_CHOICES}, not {resample!r}")
    n_obs, n_keys = tensor.shape[:2]
    use_obs = n_obs > 1 and resample in ("both", "observers")
    use_keys = n_keys > 1 and resample in ("both", "images")
    if not (use_obs or use_keys):
        raise ValueError(f"nothing to resample: {n_obs} observer(s), {n_keys} image(s), resample={resample!r}")
    weights_obs = rng.multinomial(n_obs, np.full(n_obs, 1 / n_obs), size=samples) if use_obs else np.ones((samples, n_obs))
    weights_key = rng.multinomial(n_keys, np.full(n_keys, 1 / n_keys), size=samples) if use_keys else np.ones((samples, n_keys))
    counts = np.einsum("bo,bk,okij->bij", weights_obs, weights_key, tensor, optimize=True)
    what = [f"observers ({n_obs})" if use_obs else "", f"images ({n_keys})" if use_keys else ""]
    text = "nonparametric bootstrap resampling " + " and ".join(w for w in what if w) + " with replacement"
    return counts, text


def bootstrap_counts_parametric(counts: np.ndarray, samples: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Parametric bootstrap of a count matrix: ``C*_ij ~ Binomial(n_ij, C_ij / n_ij)`` per pair."""
    counts = np.asarray(counts, dtype=float)
    total = counts + counts.T
    upper = np.triu(np.ones(counts.shape, dtype=bool), k=1) & (total > 0)
    n = np.rint(total[upper]).astype(int)
    p = counts[upper] / total[upper]
    draws = rng.binomial(n, p, size=(samples, len(n))).astype(float)
    out = np.zeros((samples, *counts.shape))
    rows, cols = np.nonzero(upper)
    out[:, rows, cols] = draws
    out[:, cols, rows] = n - draws
    text = ("parametric bootstrap of the binomial counts, C*_ij ~ Binomial(n_ij, C_ij/n_ij) per pair "
            "(observers and images unknown)")
    return out, text


def percentile_interval(scores: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column of bootstrap ``scores`` (NaN rows ignored)."""
    low, high = np.nanpercentile(scores, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return low, high


def significance(methods: Sequence[str], jod: np.ndarray, boot: np.ndarray, alpha: float = 0.05) -> pd.DataFrame:
    """Pairwise JOD differences with bootstrap percentile intervals and two-sided p-values.

    Returns:
        One row per ordered pair ``(method_a, method_b)``, ``a != b``: ``jod_diff`` (a − b),
        ``ci_low``, ``ci_high``, ``p_value`` and ``significant`` (the interval excludes 0).
    """
    boot = boot[~np.isnan(boot).any(axis=1)]
    if not len(boot):
        raise ValueError("no bootstrap sample kept every method on a common scale: no intervals")
    records = []
    for i, a in enumerate(methods):
        for j, b in enumerate(methods):
            if i == j:
                continue
            diff = boot[:, i] - boot[:, j]
            low, high = np.percentile(diff, [100 * alpha / 2, 100 * (1 - alpha / 2)])
            p = min(1.0, 2 * min(np.mean(diff <= 0), np.mean(diff >= 0)))
            records.append({"method_a": a, "method_b": b, "jod_diff": jod[i] - jod[j], "ci_low": low,
                            "ci_high": high, "p_value": p, "significant": bool(low > 0 or high < 0)})
    return pd.DataFrame(records)


def observer_outliers(observers: Sequence[str], tensor: np.ndarray, sigma: float = SIGMA) -> pd.DataFrame:
    """pwcmp-style leave-one-out outlier score per observer (see the module docstring).

    Returns:
        ``observer, trials, log_lik_per_trial, dist_L, outlier`` (outlier: ``dist_L >= 1.5``).
        Observers whose leave-one-out data have no finite ML estimate are scored against the
        continuity-corrected fit.
    """
    per_observer = tensor.sum(axis=1)  # (O, n, n)
    rest = per_observer.sum(axis=0)[None] - per_observer
    scores, _, _ = _fit_many(rest, "none", sigma)
    log_lik, trials = [], []
    for index, q in enumerate(scores):
        counts = per_observer[index]
        n_trials = counts.sum()
        if np.isnan(q).any() or n_trials == 0:
            log_lik.append(np.nan)
        else:
            log_p = special.log_ndtr((q[:, None] - q[None, :]) / sigma)
            log_lik.append(float((counts * log_p).sum() / n_trials))
        trials.append(n_trials)
    values = np.array(log_lik)
    q1, q3 = np.nanpercentile(values, [25, 75]) if np.isfinite(values).any() else (np.nan, np.nan)
    spread = q3 - q1
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.where(values < q1, (q1 - values) / spread, 0.0) if spread > 0 else np.zeros_like(values)
    return pd.DataFrame({"observer": list(observers), "trials": trials, "log_lik_per_trial": values,
                         "dist_L": dist, "outlier": dist >= OUTLIER_THRESHOLD})


# --------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------


@dataclass
class PreferenceResult:
    """Everything ``qmap preference`` writes: matrix, scores, significance, outliers, metadata."""

    methods: list[str]
    counts: pd.DataFrame
    scores: pd.DataFrame
    significance: pd.DataFrame
    observers: pd.DataFrame | None
    meta: dict[str, Any] = field(default_factory=dict)


def _point_scores(counts: np.ndarray, prior: str, sigma: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """BT and JOD point estimates; a continuity correction (with a note) when ML does not exist."""
    if not comparisons_connected(counts):
        raise ValueError("some methods are never compared, directly or through others: no common scale exists")
    if ml_exists(counts):
        return bradley_terry(counts), thurstone_jod(counts, prior=prior, sigma=sigma), []
    note = ("the maximum-likelihood scores do not exist (some methods never lose to the others, so their "
            "scores would be infinite): BT" + (" and JOD" if prior == "none" else "")
            + " are fitted to the counts plus 0.5 in both cells of every compared pair (continuity correction); "
            "they rank the methods but their spacing depends on that correction")
    corrected = continuity_corrected(counts)
    jod = thurstone_jod(corrected if prior == "none" else counts, prior=prior, sigma=sigma)
    return bradley_terry(corrected), jod, [note]


def _assemble(methods: list[str], counts: np.ndarray, boot: np.ndarray, prior: str, sigma: float,
              alpha: float, boot_text: str, notes: list[str], observers: pd.DataFrame | None,
              meta: Mapping[str, Any]) -> PreferenceResult:
    bt, jod, fit_notes = _point_scores(counts, prior, sigma)
    boot_scores, n_fallback, n_dropped = _fit_many(boot, prior, sigma)
    notes = list(notes) + fit_notes
    if n_fallback:
        notes.append(f"{n_fallback} of {len(boot)} bootstrap samples had no finite ML estimate and were scaled "
                     "with the continuity correction")
    if n_dropped:
        notes.append(f"{n_dropped} of {len(boot)} bootstrap samples left some methods uncompared and were dropped")
    low, high = percentile_interval(boot_scores, alpha)
    wins = counts.sum(axis=1)
    games = (counts + counts.T).sum(axis=1)
    scores = pd.DataFrame({
        "method": methods,
        "wins": wins,
        "win_rate": np.divide(wins, games, out=np.full(len(wins), np.nan), where=games > 0),
        "bt": bt,
        "jod": jod,
        "jod_ci_low": low,
        "jod_ci_high": high,
    })
    info = {
        **meta,
        "model_bt": "Bradley-Terry, natural-log strengths, mean 0, ML by choix I-LSR",
        "model_jod": f"Thurstone Case V, sigma={sigma} (1 JOD = 75% preference), mean 0",
        "prior": prior,
        "bootstrap": boot_text,
        "bootstrap_samples": int(len(boot)),
        "bootstrap_used": int((~np.isnan(boot_scores).any(axis=1)).sum()),
        "interval": f"{100 * (1 - alpha):g}% percentile bootstrap interval",
        "alpha": alpha,
        "significance": (f"a pair differs significantly when the {100 * (1 - alpha):g}% bootstrap interval of its "
                         "JOD difference excludes 0"),
        "notes": notes,
        "judgements": float(counts.sum()),
    }
    frame = pd.DataFrame(counts, index=methods, columns=methods)
    return PreferenceResult(methods, frame, scores, significance(methods, jod, boot_scores, alpha), observers, info)


def analyse_trials(trials: pd.DataFrame, methods: Sequence[str] | None = None, bootstrap: int = 1000,
                   prior: str = "none", alpha: float = 0.05, seed: int = 0, sigma: float = SIGMA,
                   source: str = "trials", virtual: bool = False, resample: str = "both") -> PreferenceResult:
    """Count, scale, bootstrap (observers and images) and screen observers of a set of trials.

    Args:
        trials: validated trials (:func:`read_trials`, :func:`virtual_trials`).
        methods: method order (default: first appearance).
        bootstrap: number of bootstrap resamples (pwcmp recommends 500–1000 or more).
        prior: ``"none"`` or ``"gaussian"`` for the JOD scores.
        alpha: 1 − confidence level of the intervals and of the significance matrix.
        seed: seed of the bootstrap generator.
        sigma: Thurstone scale.
        source: where the trials came from (written into the metadata).
        virtual: the trials come from virtual raters (said in every title and caption).
        resample: what the bootstrap resamples (:func:`bootstrap_counts_trials`).
    """
    check_trials(trials, source)
    methods, observers, keys, tensor = trial_tensor(trials, methods)
    if len(methods) < 2:
        raise ValueError(f"{source}: need at least two methods, got {methods}")
    rng = np.random.default_rng(seed)
    use_obs = len(observers) > 1 and resample in ("both", "observers")
    use_keys = len(keys) > 1 and resample in ("both", "images")
    if not (use_obs or use_keys):
        # No level to resample in the requested dimension(s): every trial is its own unit.
        per_trial = trial_tensor(trials.assign(key=[str(i) for i in range(len(trials))]), methods)[3]
        boot, text = bootstrap_counts_trials(per_trial, bootstrap, rng, "images")
        text = text.replace(f"images ({len(trials)})", f"single trials ({len(trials)})")
    else:
        boot, text = bootstrap_counts_trials(tensor, bootstrap, rng, resample)
    outliers = observer_outliers(observers, tensor, sigma) if len(observers) >= 3 else None
    meta = {"source": source, "virtual_raters": virtual, "observers": len(observers), "images": len(keys),
            "seed": seed}
    return _assemble(methods, tensor.sum(axis=(0, 1)), boot, prior, sigma, alpha, text, [], outliers, meta)


def analyse_counts(counts: pd.DataFrame, bootstrap: int = 1000, prior: str = "none", alpha: float = 0.05,
                   seed: int = 0, sigma: float = SIGMA, source: str = "counts") -> PreferenceResult:
    """Scale a published count matrix; intervals from a parametric bootstrap of its counts."""
    methods = [str(m) for m in counts.index]
    values = counts.to_numpy(dtype=float)
    boot, text = bootstrap_counts_parametric(values, bootstrap, np.random.default_rng(seed))
    meta = {"source": source, "virtual_raters": False, "observers": None, "images": None, "seed": seed}
    return _assemble(methods, values, boot, prior, sigma, alpha, text, [], None, meta)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _count_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def matrix_frame(counts: pd.DataFrame) -> pd.DataFrame:
    """The count matrix with a ``total`` column (wins per row), as in DPE's README."""
    frame = counts.copy()
    frame["total"] = counts.sum(axis=1)
    return frame


def matrix_cells(counts: pd.DataFrame, diagonal: str = "–") -> pd.DataFrame:
    """The DPE layout as text: counts (halves from ties shown as ``.5``), ``diagonal`` on the
    diagonal, and a ``total`` column of wins per row."""
    methods = list(counts.index)
    cells = pd.DataFrame(
        [[diagonal if i == j else _count_text(counts.iat[i, j]) for j in range(len(methods))] for i in range(len(methods))],
        index=methods, columns=methods,
    )
    cells["total"] = [_count_text(total) for total in counts.sum(axis=1)]
    return cells


def matrix_markdown(counts: pd.DataFrame, caption: str = "") -> str:
    """DPE's layout: rows preferred over columns, ``–`` on the diagonal, a total column."""
    cells = matrix_cells(counts)
    lines = [caption.strip(), ""] if caption else []
    lines.append("| row \\ col | " + " | ".join(cells.columns) + " |")
    lines.append("|:---|" + "---:|" * len(cells.columns))
    lines += [f"| {name} | " + " | ".join(row) + " |" for name, row in zip(cells.index, cells.to_numpy(), strict=True)]
    return "\n".join(lines) + "\n"


def matrix_latex(counts: pd.DataFrame, caption: str = "") -> str:
    """The count matrix as a booktabs table (needs ``\\usepackage{booktabs}``)."""
    from reports.tables import latex_escape

    cells = matrix_cells(counts, diagonal="--")
    lines = [r"% requires \usepackage{booktabs}", r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption.strip())}}}")
    lines += [r"\begin{tabular}{l" + "c" * len(cells.columns) + "}", r"\toprule",
              r"row $\backslash$ col & " + " & ".join(latex_escape(m) for m in cells.columns) + r" \\", r"\midrule"]
    lines += [latex_escape(name) + " & " + " & ".join(row) + r" \\" for name, row in zip(cells.index, cells.to_numpy(), strict=True)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def title_of(result: PreferenceResult, title: str | None = None) -> str:
    """The title, with the virtual-rater label whenever the judgements come from metrics."""
    base = title or "Preference matrix"
    if result.meta.get("virtual_raters") and VIRTUAL_RATERS not in base:
        base += f" ({VIRTUAL_RATERS})"
    return base


def caption_of(result: PreferenceResult, extra: str = "") -> str:
    """A caption stating the source, the models, the intervals and every fallback used."""
    meta = result.meta
    parts = []
    if meta.get("virtual_raters"):
        parts.append(f"Judgements by {VIRTUAL_RATERS}: each metric prefers the method with the better per-image "
                     "value (ties count half; metrics without a value cast no vote).")
    raters = "metrics" if meta.get("virtual_raters") else "observers"
    images = "(protocol, image) pairs" if meta.get("virtual_raters") else "images"
    parts.append(f"Source: {meta.get('source')}; {_count_text(meta['judgements'])} judgements"
                 + (f" by {meta['observers']} {raters} on {meta['images']} {images}" if meta.get("observers") else "")
                 + ". C[i, j] = times row i was preferred over column j; total = wins of the row (ties count half).")
    parts.append(f"Scores: {meta['model_bt']}; {meta['model_jod']}, prior {meta['prior']}.")
    parts.append(f"Intervals: {meta['interval']} from {meta['bootstrap_used']} samples of a {meta['bootstrap']} "
                 f"(seed {meta['seed']}); {meta['significance']}.")
    if result.observers is not None:
        parts.append("Observer screening: leave-one-out log-likelihood per trial (pwcmp); dist_L >= 1.5 flags a "
                     "possible outlier.")
    if meta.get("notes"):
        parts.append("Notes: " + "; ".join(meta["notes"]) + ".")
    if extra:
        parts.append(extra.strip())
    return " ".join(parts)


def _significance_markdown(result: PreferenceResult) -> str:
    methods = result.methods
    table = result.significance.set_index(["method_a", "method_b"])
    lines = ["| JOD difference (row − col) | " + " | ".join(methods) + " |", "|:---|" + "---:|" * len(methods)]
    for a in methods:
        cells = []
        for b in methods:
            if a == b:
                cells.append("–")
                continue
            rec = table.loc[(a, b)]
            cells.append(f"{rec.jod_diff:+.2f}{'*' if rec.significant else ''}")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n`*`: the bootstrap interval of the difference excludes 0.\n"


def scores_markdown(scores: pd.DataFrame) -> str:
    """The scores table as Markdown (JOD with its interval)."""
    lines = ["| method | wins | win rate | BT | JOD | JOD interval |", "|:---|---:|---:|---:|---:|:---|"]
    for r in scores.itertuples(index=False):
        lines.append(f"| {r.method} | {_count_text(r.wins)} | {r.win_rate:.3f} | {r.bt:+.3f} | {r.jod:+.3f} | "
                     f"[{r.jod_ci_low:+.3f}, {r.jod_ci_high:+.3f}] |")
    return "\n".join(lines) + "\n"


def write_preference(result: PreferenceResult, out_dir: str | Path, title: str | None = None,
                     extra_caption: str = "", plots: bool = True) -> dict[str, Path]:
    """Write the matrix (CSV, Markdown, LaTeX), scores, significance, observers, metadata, plots.

    Returns:
        Paths by name: ``matrix_csv``, ``matrix_md``, ``matrix_tex``, ``scores``,
        ``significance``, ``summary`` (``preference.md``), ``meta`` (``preference.json``), and
        with ``plots`` ``heatmap`` and ``jod`` (PNG); ``observers`` when observers are known.
    """
    out = Path(out_dir)
    heading = title_of(result, title)
    text = caption_of(result, extra_caption)
    paths = {
        "matrix_csv": out / "matrix.csv",
        "matrix_md": out / "matrix.md",
        "matrix_tex": out / "matrix.tex",
        "scores": out / "scores.csv",
        "significance": out / "significance.csv",
        "summary": out / "preference.md",
        "meta": out / "preference.json",
    }
    frame = matrix_frame(result.counts)
    atomic_write_text(paths["matrix_csv"], frame.to_csv(index_label="method", float_format="%.10g"))
    atomic_write_text(paths["matrix_md"], f"**{heading}**\n\n" + matrix_markdown(result.counts, text))
    atomic_write_text(paths["matrix_tex"], matrix_latex(result.counts, f"{heading}. {text}"))
    atomic_write_text(paths["scores"], result.scores.to_csv(index=False, float_format="%.10g"))
    atomic_write_text(paths["significance"], result.significance.to_csv(index=False, float_format="%.10g"))
    summary = [f"# {heading}", "", text, "", matrix_markdown(result.counts), scores_markdown(result.scores),
               _significance_markdown(result)]
    if result.observers is not None:
        paths["observers"] = out / "observers.csv"
        atomic_write_text(paths["observers"], result.observers.to_csv(index=False, float_format="%.10g"))
        flagged = result.observers[result.observers["outlier"]]["observer"].tolist()
        summary.append("Possible outlier observers (dist_L >= 1.5): " + (", ".join(flagged) if flagged else "none") + ".\n")
    atomic_write_text(paths["summary"], "\n".join(summary))
    write_json(paths["meta"], {**result.meta, "title": heading, "caption": text, "methods": result.methods})
    if plots:
        from reports import plots as plotting

        paths["heatmap"] = plotting.preference_heatmap(result.counts, out / "heatmap.png", heading)
        paths["jod"] = plotting.jod_bars(result.scores, out / "jod.png", f"Thurstone JOD scores — {heading}",
                                        result.meta["interval"])
    return paths


# --------------------------------------------------------------------------------------------
# qmap preference
# --------------------------------------------------------------------------------------------

DESCRIPTION = """\
Scale pairwise-preference data. Input: a trials CSV (observer,key,method_a,method_b,choice; choice
names the preferred method or 'tie') or, with --counts, a published count matrix (square, method
names as header and first column, C[i,j] = times row i was preferred over column j). Writes to
--out: matrix.csv/.md/.tex (DPE layout with totals), scores.csv (wins, win_rate, Bradley-Terry,
Thurstone JOD with bootstrap interval), significance.csv, observers.csv (when observers are
known), preference.md/.json (caption: models, bootstrap kind, fallbacks) and heatmap.png, jod.png.
"""


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``qmap preference``."""
    parser = argparse.ArgumentParser(prog="qmap preference", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trials", nargs="?", type=Path, help="trials CSV (omit with --counts)")
    parser.add_argument("--counts", type=Path, help="a count matrix CSV instead of trials")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap samples (default 1000)")
    parser.add_argument("--prior", choices=("none", "gaussian"), default="none",
                        help="JOD prior: none (maximum likelihood, default) or pwcmp's gaussian")
    parser.add_argument("--resample", choices=RESAMPLE_CHOICES, default="both",
                        help="trials only: what the bootstrap resamples — both observers and images (default; "
                        "conservative), observers (pwcmp's choice) or images")
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--title", default=None, help="title of the matrix and plots")
    parser.add_argument("--no-plots", action="store_true", help="skip heatmap.png and jod.png")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``qmap preference``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.trials is None) == (args.counts is None):
        parser.error("give either a trials CSV or --counts FILE")
    if args.bootstrap < 2 or not 0 < args.alpha < 1:
        parser.error("--bootstrap must be >= 2 and --alpha in (0, 1)")
    try:
        if args.counts is not None:
            result = analyse_counts(read_counts(args.counts), args.bootstrap, args.prior, args.alpha, args.seed,
                                    source=f"count matrix {args.counts}")
        else:
            result = analyse_trials(read_trials(args.trials), bootstrap=args.bootstrap, prior=args.prior,
                                    alpha=args.alpha, seed=args.seed, source=f"trials {args.trials}",
                                    resample=args.resample)
        paths = write_preference(result, args.out, args.title, plots=not args.no_plots)
    except (OSError, ValueError) as err:
        print(f"qmap preference: {err}", file=sys.stderr)
        return 1
    print(paths["summary"].read_text(encoding="utf-8"))
    print(f"Written to {args.out}: " + ", ".join(sorted(p.name for p in paths.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
