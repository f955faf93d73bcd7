"""Preference matrices: DPE's published matrix, interval coverage, validation, virtual raters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.stats import norm

from benchmark.cli import main as qmap
from reports import preference

SIGMA = 1.4826
DPE_NAMES = ["CycleGAN", "DPED", "NPEA", "CLHE", "Ours"]
# nothinglo/Deep-Photo-Enhancer README: C[i, j] = times row i was preferred over column j.
DPE_COUNTS = np.array([
    [0, 32, 27, 23, 11],
    [368, 0, 141, 119, 29],
    [373, 259, 0, 142, 50],
    [377, 281, 258, 0, 77],
    [389, 371, 350, 323, 0],
], dtype=float)


SHIPPED = Path(__file__).resolve().parents[1] / "reports" / "examples" / "dpe_counts.csv"


def bt_by_mm(counts: np.ndarray) -> np.ndarray:
    """Bradley-Terry by Hunter's (2004) MM iterations; log-strengths with mean 0."""
    total = counts + counts.T
    wins = counts.sum(axis=1)
    p = np.ones(len(counts))
    for _ in range(20000):
        denom = (total / (p[:, None] + p[None, :])).sum(axis=1)
        new = wins / denom
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(new - p)) < 1e-13:
            break
        p = new
    return np.log(p) - np.log(p).mean()


def jod_by_bfgs(counts: np.ndarray) -> np.ndarray:
    """Thurstone Case V by BFGS on the probit likelihood, mean-0 penalty (dpe_scaling_example.py)."""
    def nll(q):
        prob = np.clip(norm.cdf(q[:, None] - q[None, :], 0, SIGMA), 1e-12, 1 - 1e-12)
        return -(counts * np.log(prob)).sum() + 1e3 * q.mean() ** 2

    result = minimize(nll, np.zeros(len(counts)), method="BFGS", options={"gtol": 1e-8})
    return result.x - result.x.mean()


def test_dpe_published_matrix(tmp_path: Path, capsys):
    out = tmp_path / "out"
    np.testing.assert_array_equal(preference.read_counts(SHIPPED).to_numpy(), DPE_COUNTS)  # the README's example
    assert qmap(["preference", "--counts", str(SHIPPED), "--out", str(out), "--bootstrap", "200"]) == 0
    assert "Written to" in capsys.readouterr().out
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["method", "wins", "win_rate", "bt", "jod", "jod_ci_low", "jod_ci_high"]
    # The paper's ranking (by total wins): CycleGAN < DPED < NPEA < CLHE < Ours.
    assert list(scores.sort_values("jod")["method"]) == DPE_NAMES
    assert list(scores.sort_values("bt")["method"]) == DPE_NAMES
    assert list(scores["wins"]) == [93, 657, 824, 993, 1433]
    assert scores["win_rate"].tolist() == pytest.approx([93 / 1600, 657 / 1600, 824 / 1600, 993 / 1600, 1433 / 1600])
    np.testing.assert_allclose(scores["bt"], bt_by_mm(DPE_COUNTS), atol=0.01)
    np.testing.assert_allclose(scores["jod"], jod_by_bfgs(DPE_COUNTS), atol=0.01)
    assert scores["bt"].sum() == pytest.approx(0, abs=1e-9) and scores["jod"].sum() == pytest.approx(0, abs=1e-9)
    assert ((scores["jod_ci_low"] < scores["jod"]) & (scores["jod"] < scores["jod_ci_high"])).all()

    matrix = (out / "matrix.md").read_text(encoding="utf-8")
    assert "| row \\ col | CycleGAN | DPED | NPEA | CLHE | Ours | total |" in matrix
    assert "| Ours | 389 | 371 | 350 | 323 | – | 1433 |" in matrix
    assert pd.read_csv(out / "matrix.csv", index_col=0)["total"].tolist() == [93, 657, 824, 993, 1433]
    tex = (out / "matrix.tex").read_text(encoding="utf-8")
    assert r"\toprule" in tex and r"Ours & 389 & 371 & 350 & 323 & -- & 1433 \\" in tex
    meta = json.loads((out / "preference.json").read_text(encoding="utf-8"))
    assert meta["bootstrap"].startswith("parametric bootstrap of the binomial counts")
    assert meta["prior"] == "none" and meta["virtual_raters"] is False
    assert "parametric bootstrap" in (out / "preference.md").read_text(encoding="utf-8")
    significance = pd.read_csv(out / "significance.csv")
    ours_clhe = significance[(significance.method_a == "Ours") & (significance.method_b == "CLHE")].iloc[0]
    assert ours_clhe["significant"] and ours_clhe["ci_low"] > 0  # 323 of 400 is far from 50 %
    for name in ("heatmap.png", "jod.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")


def fisher_se(q: np.ndarray, pairs_n: np.ndarray) -> np.ndarray:
    """Asymptotic standard errors of mean-0 Thurstone scores from the expected Fisher information."""
    n = len(q)
    info = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            z = (q[i] - q[j]) / SIGMA
            weight = pairs_n[i, j] * norm.pdf(z) ** 2 / (norm.cdf(z) * norm.sf(z)) / SIGMA**2
            e = np.zeros(n)
            e[i], e[j] = 1, -1
            info += weight * np.outer(e, e)
    # The mean-0 constraint removes the constant direction: the pseudo-inverse is its covariance.
    return np.sqrt(np.diag(np.linalg.pinv(info)))


def simulate_trials(q: np.ndarray, rng: np.random.Generator, observers: int, images: int) -> pd.DataFrame:
    names = [f"m{i}" for i in range(len(q))]
    rows = []
    for o in range(observers):
        for k in range(images):
            for i in range(len(q)):
                for j in range(i + 1, len(q)):
                    a_wins = rng.random() < norm.cdf((q[i] - q[j]) / SIGMA)
                    rows.append((f"o{o}", f"k{k}", names[i], names[j], names[i] if a_wins else names[j]))
    return pd.DataFrame(rows, columns=list(preference.TRIAL_COLUMNS))


@pytest.mark.parametrize(("resample", "described"), [("both", "observers (30) and images (4)"),
                                                    ("observers", "observers (30) with")])
def test_bootstrap_intervals_cover_true_scores(resample: str, described: str):
    """Resampling both crossed factors is conservative (about 1.6x here, no observer or image
    effects in the simulation); observers only is close to the asymptotic width."""
    truth = np.array([-1.2, -0.4, 0.0, 0.5, 1.1])
    observers, images, repetitions = 30, 4, 20
    rng = np.random.default_rng(7)
    covered, widths = [], []
    for rep in range(repetitions):
        trials = simulate_trials(truth, rng, observers, images)
        result = preference.analyse_trials(trials, methods=[f"m{i}" for i in range(5)], bootstrap=200, seed=rep,
                                           resample=resample)
        scores = result.scores
        covered += list((scores["jod_ci_low"] <= truth) & (truth <= scores["jod_ci_high"]))
        widths += list(scores["jod_ci_high"] - scores["jod_ci_low"])
        assert described in result.meta["bootstrap"]
    asymptotic = 2 * 1.96 * fisher_se(truth, np.full((5, 5), observers * images))
    assert np.mean(covered) >= 0.9, np.mean(covered)
    assert np.mean(widths) <= 2 * np.mean(asymptotic), (np.mean(widths), np.mean(asymptotic))
    assert np.mean(widths) >= 0.8 * np.mean(asymptotic)  # not suspiciously narrow either


def test_outlier_observer_is_flagged():
    rng = np.random.default_rng(3)
    trials = simulate_trials(np.array([-1.5, -0.5, 0.5, 1.5]), rng, observers=12, images=3)
    rebel = trials["observer"] == "o5"
    flipped = trials.loc[rebel].apply(lambda r: r.method_b if r.choice == r.method_a else r.method_a, axis=1)
    trials.loc[rebel, "choice"] = flipped
    result = preference.analyse_trials(trials, bootstrap=50)
    observers = result.observers.set_index("observer")
    assert observers.loc["o5", "outlier"] and observers.loc["o5", "dist_L"] >= 1.5
    assert observers["outlier"].sum() == 1
    assert observers.loc["o5", "log_lik_per_trial"] == observers["log_lik_per_trial"].min()


def test_ties_count_half_and_counts_by_hand():
    trials = pd.DataFrame([
        ("o1", "k1", "A", "B", "A"),
        ("o1", "k2", "A", "B", "tie"),
        ("o2", "k1", "B", "A", "B"),
        ("o2", "k1", "C", "A", "A"),
    ], columns=list(preference.TRIAL_COLUMNS))
    counts = preference.count_matrix(trials)
    assert list(counts.index) == ["A", "B", "C"]
    np.testing.assert_array_equal(counts.to_numpy(), [[0, 1.5, 1], [1.5, 0, 0], [0, 0, 0]])
    assert "| A | – | 1.5 | 1 | 2.5 |" in preference.matrix_markdown(counts)


@pytest.mark.parametrize(("text", "message"), [
    ("observer,key,method_a,method_b,choice\no1,k1,A,B,A\no1,k2,A,B,C\n", r"line 3: choice 'C' is neither 'A', 'B' nor 'tie'"),
    ("observer,key,method_a,method_b,choice\no1,k1,A,A,A\n", r"line 2: method 'A' is compared with itself"),
    ("observer,key,method_a,method_b,choice\no1,,A,B,A\n", r"line 2: empty key"),
    ("observer,key,a,b,choice\no1,k1,A,B,A\n", r"missing \['method_a', 'method_b'\]"),
])
def test_bad_trials_name_file_and_line(tmp_path: Path, text: str, message: str, capsys):
    path = tmp_path / "trials.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as err:
        preference.read_trials(path)
    assert str(path) in str(err.value)
    assert preference.main([str(path), "--out", str(tmp_path / "o")]) == 1
    assert str(path) in capsys.readouterr().err


@pytest.mark.parametrize(("text", "message"), [
    ("m,A,B\nA,0,3\nC,2,0\n", "same method names"),
    ("m,A,B\nA,0,x\nB,2,0\n", r"row 'A', column 'B': 'x' is not a number"),
    ("m,A,B\nA,0,-1\nB,2,0\n", "finite and >= 0"),
    ("m,A,B\nA,4,1\nB,2,0\n", "cannot be preferred over itself"),
])
def test_bad_counts_are_refused(tmp_path: Path, text: str, message: str):
    path = tmp_path / "counts.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        preference.read_counts(path)


def test_counts_round_trip_through_our_matrix_csv(tmp_path: Path):
    result = preference.analyse_counts(pd.DataFrame(DPE_COUNTS, index=DPE_NAMES, columns=DPE_NAMES), bootstrap=20)
    paths = preference.write_preference(result, tmp_path, plots=False)
    again = preference.read_counts(paths["matrix_csv"])  # its total column is ignored
    np.testing.assert_array_equal(again.to_numpy(), DPE_COUNTS)


def test_no_ml_estimate_uses_the_continuity_correction_and_says_so():
    counts = pd.DataFrame([[0, 5, 6], [0, 0, 3], [0, 2, 0]], index=list("ABC"), columns=list("ABC"), dtype=float)
    assert not preference.ml_exists(counts.to_numpy())  # A never loses: its ML score is infinite
    with pytest.raises(ValueError, match="does not exist"):
        preference.thurstone_jod(counts.to_numpy())
    result = preference.analyse_counts(counts, bootstrap=30)
    assert any("continuity correction" in note for note in result.meta["notes"])
    assert np.isfinite(result.scores[["bt", "jod", "jod_ci_low", "jod_ci_high"]].to_numpy()).all()
    corrected = counts.to_numpy() + 0.5 * (1 - np.eye(3))
    np.testing.assert_allclose(result.scores["jod"], jod_by_bfgs(corrected), atol=0.01)
    np.testing.assert_allclose(result.scores["bt"], bt_by_mm(corrected), atol=0.01)
    assert "continuity correction" in preference.caption_of(result)


def pwcmp_gaussian_nll(q: np.ndarray, counts: np.ndarray) -> float:
    """pw_scale.m (2017-09) with prior 'gaussian', written with loops as the MATLAB reads."""
    n = len(counts)
    d_sum = counts + counts.T
    pairs = [(i, j) for j in range(n) for i in range(n) if d_sum[i, j] > 0]  # MATLAB column order
    prob = np.array([norm.cdf(q[i] - q[j], 0, SIGMA) for i, j in pairs])
    lik = np.array([prob[m] ** counts[i, j] * (1 - prob[m]) ** counts[j, i] for m, (i, j) in enumerate(pairs)])
    prior = np.zeros(len(pairs))
    for zz, hh in pairs:
        k = counts[zz, hh]
        if counts[zz, hh] == 0 or counts[hh, zz] == 0:  # unanimous: shift by one
            k = 1 if counts[zz, hh] == 0 else counts[zz, hh] - 1
        aux = prob**k * (1 - prob) ** (d_sum[zz, hh] - k)
        prior += aux / aux.sum()
    return -(np.log(np.maximum(lik, 1e-300)) + np.log(prior + 0.1)).sum()


def test_gaussian_prior_matches_a_loop_transcription_of_pw_scale():
    counts = DPE_COUNTS / 10  # fewer judgements: the prior matters more
    reference = minimize(lambda q: pwcmp_gaussian_nll(q - q.mean(), counts), np.zeros(5), method="Nelder-Mead",
                         options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 20000}).x
    reference -= reference.mean()
    ours = preference.thurstone_jod(counts, prior="gaussian")
    np.testing.assert_allclose(ours, reference, atol=2e-3)
    assert np.max(np.abs(ours - preference.thurstone_jod(counts))) > 1e-3  # the prior does something


def test_gaussian_prior_is_close_to_ml_with_plenty_of_data_and_keeps_the_order():
    ml = preference.thurstone_jod(DPE_COUNTS)
    prior = preference.thurstone_jod(DPE_COUNTS, prior="gaussian")
    assert list(np.argsort(prior)) == list(np.argsort(ml))
    assert np.max(np.abs(prior - ml)) < 0.05
    assert prior.sum() == pytest.approx(0, abs=1e-9)


def test_virtual_raters_vote_per_metric_image_and_protocol(tmp_path: Path):
    def row(label, key, metric, value, protocol="d"):
        from benchmark.results import HIGHER_IS_BETTER

        return {"suite": "s", "run_id": f"{label}__x__s0", "label": label, "method": label, "dataset": "x",
                "protocol": protocol, "split": "t", "seed": 0, "key": key, "frame": 0, "metric": metric,
                "value": value, "higher_is_better": HIGHER_IS_BETTER[metric]}

    rows = pd.DataFrame([
        row("A", "k1", "psnr", 30.0), row("B", "k1", "psnr", 25.0),            # A wins (higher is better)
        row("A", "k1", "delta_e76", 5.0), row("B", "k1", "delta_e76", 3.0),    # B wins (lower is better)
        row("A", "k2", "psnr", 20.0), row("B", "k2", "psnr", 20.0),            # tie: half each
        row("A", "k2", "lpips", np.nan), row("B", "k2", "lpips", 0.2),         # NaN: no vote
        row("A", "k1", "seconds", 0.1), row("B", "k1", "seconds", 0.2),        # not a quality metric
        row("A", "k1", "psnr", 10.0, "f"), row("B", "k1", "psnr", 11.0, "f"),  # other protocol: B wins
    ])
    trials = preference.virtual_trials(rows)
    assert len(trials) == 4
    assert set(trials["observer"]) == {"psnr", "delta_e76"}
    assert set(trials["key"]) == {"d:k1", "d:k2", "f:k1"}
    counts = preference.count_matrix(trials)
    assert counts.loc["A", "B"] == 1.5 and counts.loc["B", "A"] == 2.5

    result = preference.analyse_trials(trials, bootstrap=20, virtual=True, source="rows")
    paths = preference.write_preference(result, tmp_path, "Preference matrix, x")
    for name in ("matrix_md", "matrix_tex", "summary"):
        assert preference.VIRTUAL_RATERS in paths[name].read_text(encoding="utf-8"), name
    assert json.loads(paths["meta"].read_text(encoding="utf-8"))["virtual_raters"] is True
