#!/usr/bin/env python3
"""Reference values for crates/evalstats, computed with numpy, SciPy, statsmodels
and sacrebleu.

Writes one JSON object per line to stdout: {"kind", "input", "expected"}. The inputs
come from a fixed seed, so the output is deterministic for given package versions.
`crates/evalstats/tests/reference.rs` runs this script and compares; with `--golden`
it writes the small subset committed as `crates/evalstats/tests/golden.jsonl`.

Requires the packages in tests/reference/requirements-stats.txt:
    pip install -r tests/reference/requirements-stats.txt
"""

import json
import sys
import types

import numpy as np
import scipy
import scipy.special
import scipy.stats
import statsmodels
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint
import sacrebleu
from sacrebleu import significance

SEED = 20240611


def emit(out, kind, inp, expected):
    out.append({"kind": kind, "input": inp, "expected": expected})


def normal_cases(out, rs):
    ps = [1e-300, 1e-20, 1e-10, 1e-5, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
          0.3, 0.425, 0.5, 0.575, 0.75, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999,
          1 - 1e-10]
    ps += [float(x) for x in rs.uniform(0, 1, 15)]
    for p in ps:
        emit(out, "normal_quantile", {"p": p}, {"value": float(scipy.special.ndtri(p))})


def summary_cases(out, rs):
    inputs = [[], [0.5], [0.0, 1.0], [0.3, 0.3], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    for n in [3, 5, 10, 37, 128, 129, 500, 2000]:
        inputs.append([float(x) for x in rs.uniform(0, 1, n)])
        inputs.append([float(x) for x in rs.integers(0, 2, n)])
        inputs.append([float(x) for x in rs.normal(50, 20, n)])
    for scores in inputs:
        passed = [s >= 0.5 for s in scores]
        inp = {"scores": scores, "passed": passed}
        if not scores:
            emit(out, "summary", inp, {"error": "empty"})
            continue
        x = np.array(scores, dtype=np.float64)
        n = len(scores)
        if n >= 2:
            std = float(np.std(x, ddof=1))
            sem = float(scipy.stats.sem(x, ddof=1))
            # lm-evaluation-harness: sample_stddev(arr) / sqrt(len(arr))
            assert abs(sem - std / np.sqrt(n)) <= 1e-12 * max(1.0, sem)
        else:
            std = sem = None
        emit(out, "summary", inp, {
            "n": n, "mean": float(np.mean(x)), "std_dev": std, "std_err": sem,
            "passed": int(sum(passed)), "pass_rate": sum(passed) / n,
        })


def wilson_cases(out, rs):
    pairs = [(0, 0), (0, 1), (1, 1), (0, 2), (1, 2), (2, 2), (0, 10), (10, 10),
             (5, 10), (1, 100), (99, 100), (0, 2000), (2000, 2000), (1000, 2000),
             (1, 3), (7, 9)]
    for _ in range(20):
        nobs = int(rs.integers(1, 5000))
        pairs.append((int(rs.integers(0, nobs + 1)), nobs))
    for count, nobs in pairs:
        for conf in [0.95, 0.9, 0.99, 0.5]:
            inp = {"count": count, "nobs": nobs, "confidence": conf}
            if nobs == 0:
                emit(out, "wilson", inp, {"error": "empty"})
                continue
            alpha = 1.0 - conf
            lo, hi = proportion_confint(count, nobs, alpha=alpha, method="wilson")
            emit(out, "wilson", inp, {"low": float(lo), "high": float(hi)})


def raw_draw_cases(out):
    for seed in [0, 1, 12345, 2**32 - 1, 2**32 + 7, 2**63 + 12345]:
        raw = [int(v) for v in np.random.PCG64(seed).random_raw(6)]
        for n in [1, 2, 3, 7, 10, 1000, 2000, 2**31 + 11]:
            rows = 3 if n < 100 else 1
            k = min(rows * n, 40) if n < 2**20 else 40
            if n < 2**20:
                idx = np.random.default_rng(seed).choice(n, size=(rows, n), replace=True)
                idx = idx.ravel()[:k]
            else:
                idx = np.random.default_rng(seed).choice(n, size=k, replace=True)
            emit(out, "raw_draws", {"seed": seed, "n": n, "count": k},
                 {"indices": [int(v) for v in idx], "raw_u64": raw})


def numpy_bootstrap_ci(scores, confidence, resamples, seed):
    """The documented procedure of colony_evalstats::bootstrap_mean_ci."""
    x = np.array(scores, dtype=np.float64)
    idx = np.random.default_rng(seed).choice(len(x), size=(resamples, len(x)), replace=True)
    means = x[idx].mean(axis=1)
    alpha = 1.0 - confidence
    lo, hi = np.percentile(means, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(np.mean(x)), float(lo), float(hi)


def bootstrap_cases(out, rs):
    inputs = [([], 0.95, 1000, 12345), ([0.7], 0.95, 1000, 12345),
              ([0.0, 1.0], 0.95, 1000, 12345), ([1.0] * 5, 0.95, 200, 1)]
    for n in [3, 10, 50, 300]:
        for conf, b, seed in [(0.95, 1000, 12345), (0.9, 500, 7)]:
            inputs.append(([float(v) for v in rs.uniform(0, 1, n)], conf, b, seed))
    inputs.append(([float(v) for v in rs.integers(0, 2, 2000)], 0.95, 300, 99))
    for scores, conf, b, seed in inputs:
        inp = {"scores": scores, "confidence": conf, "resamples": b, "seed": seed}
        if not scores:
            emit(out, "bootstrap_ci", inp, {"error": "empty"})
            continue
        m, lo, hi = numpy_bootstrap_ci(scores, conf, b, seed)
        emit(out, "bootstrap_ci", inp, {"mean": m, "low": lo, "high": hi})


class MeanMetric:
    """A sacrebleu metric whose sufficient statistic is the per-case score and
    whose corpus score is the mean, so sacrebleu's own `_paired_bs_test` runs
    its paired bootstrap over a sentence-level-averaged metric."""

    def __init__(self, n):
        self.n = n

    def _extract_corpus_statistics(self, hypotheses, references):
        return [[float(s)] for s in hypotheses]

    def _aggregate_and_compute(self, stats):
        total = float(np.sum(np.array(stats, dtype=np.float64)))
        return types.SimpleNamespace(score=total / self.n)

    def _compute_score_from_stats(self, stats):
        return types.SimpleNamespace(score=float(stats[0]) / self.n)


def sacrebleu_paired_bs(baseline, candidate, resamples, seed):
    n = len(baseline)
    metric = MeanMetric(n)
    bl_stats = metric._extract_corpus_statistics(baseline, None)
    bl_result = metric._aggregate_and_compute(bl_stats)
    _, results = significance._paired_bs_test(
        {"mean": (bl_stats, bl_result)}, "candidate", candidate, None,
        {"mean": metric}, n_samples=resamples, seed=seed)
    return bl_result.score, results["mean"]


def replicate_paired_bs(baseline, candidate, resamples, seed):
    """sacrebleu's procedure spelled out in numpy, to show what the crate ports."""
    b = np.array(baseline, dtype=np.float64)
    c = np.array(candidate, dtype=np.float64)
    n = len(b)
    idx = np.random.default_rng(seed).choice(n, size=(resamples, n), replace=True)
    diff = abs(b.sum() / n - c.sum() / n)
    sb = b[idx].sum(axis=1) / n
    sc = c[idx].sum(axis=1) / n
    d = np.abs(sc - sb)
    stats = d - d.mean()
    return (int(np.sum(stats > diff)) + 1) / (resamples + 1)


def dyadic(rs, n, kind):
    if kind == "binary":
        return [float(v) for v in rs.integers(0, 2, n)]
    if kind == "rubric":
        return [float(v) for v in rs.integers(0, 11, n)]
    return [float(v) / 64 for v in rs.integers(0, 65, n)]


def paired_cases(out, rs):
    specs = [(1, "binary", 1000, 12345), (2, "binary", 1000, 12345),
             (2, "quarter", 100, 3), (5, "rubric", 1000, 12345)]
    for n in [10, 30, 100, 500]:
        for kind in ["binary", "rubric", "quarter"]:
            specs.append((n, kind, 1000, 12345))
    specs += [(60, "quarter", 250, 1), (200, "binary", 2000, 77), (2000, "binary", 300, 12345),
              (40, "rubric", 39, 5)]
    for n, kind, b, seed in specs:
        base = dyadic(rs, n, kind)
        # candidate: a shifted copy with noise, sometimes identical, sometimes all ties
        mode = rs.integers(0, 4)
        if mode == 0:
            cand = list(base)
        else:
            cand = dyadic(rs, n, kind)
            if mode == 1:
                cand = [max(x, y) for x, y in zip(base, cand)]
        inp = {"baseline": base, "candidate": cand, "resamples": b, "seed": seed}
        bl_score, res = sacrebleu_paired_bs(base, cand, b, seed)
        p = replicate_paired_bs(base, cand, b, seed)
        assert p == res.p_value, (p, res.p_value)
        emit(out, "paired_bootstrap", inp, {
            "baseline_score": bl_score, "candidate_score": float(res.score),
            "p_value": float(res.p_value), "candidate_bootstrap_mean": float(res.mean),
            "candidate_ci_half_width": float(res.ci)})
        wins = int(np.sum(np.array(cand) > np.array(base)))
        ties = int(np.sum(np.array(cand) == np.array(base)))
        losses = int(np.sum(np.array(cand) < np.array(base)))
        emit(out, "win_tie_loss", {"baseline": base, "candidate": cand},
             {"wins": wins, "ties": ties, "losses": losses})


def mcnemar_cases(out, rs):
    tables = [(0, 0, 0, 0), (5, 0, 0, 5), (3, 1, 0, 2), (0, 0, 7, 0), (10, 3, 3, 10),
              (1, 5, 6, 1), (0, 1, 1, 0), (40, 25, 10, 25), (0, 1000, 1000, 0),
              (10, 0, 50, 10), (100, 480, 520, 900), (0, 1, 2500, 0), (0, 3000, 2950, 0),
              (0, 30000, 29500, 0), (0, 50000, 50000, 0), (0, 49800, 50200, 0),
              (0, 499000, 501000, 0), (0, 3, 5000000, 0)]
    for _ in range(20):
        tables.append(tuple(int(v) for v in rs.integers(0, 300, 4)))
    for a, b, c, d in tables:
        res = mcnemar([[a, b], [c, d]], exact=True)
        emit(out, "mcnemar", {"a": a, "b": b, "c": c, "d": d},
             {"statistic": int(res.statistic), "p_value": float(res.pvalue)})
    # from per-case pass flags
    for n in [0, 1, 2, 25, 300]:
        bp = [bool(v) for v in rs.integers(0, 2, n)]
        cp = [bool(v) for v in rs.integers(0, 2, n)]
        t = [[0, 0], [0, 0]]
        for x, y in zip(bp, cp):
            t[0 if x else 1][0 if y else 1] += 1
        res = mcnemar(t, exact=True)
        emit(out, "mcnemar_passes", {"baseline": bp, "candidate": cp},
             {"a": t[0][0], "b": t[0][1], "c": t[1][0], "d": t[1][1],
              "statistic": int(res.statistic), "p_value": float(res.pvalue)})


def size(case):
    return len(json.dumps(case["input"]))


def main():
    rs = np.random.default_rng(SEED)
    out = []
    emit(out, "versions", {}, {
        "numpy": np.__version__, "scipy": scipy.__version__,
        "statsmodels": statsmodels.__version__, "sacrebleu": sacrebleu.__version__})
    normal_cases(out, rs)
    summary_cases(out, rs)
    wilson_cases(out, rs)
    raw_draw_cases(out)
    bootstrap_cases(out, rs)
    paired_cases(out, rs)
    mcnemar_cases(out, rs)
    if "--golden" in sys.argv[1:]:
        # ~50 small cases, spread over every kind, for the Python-free test
        picked = []
        kinds = sorted({c["kind"] for c in out})
        for kind in kinds:
            small = [c for c in out if c["kind"] == kind and size(c) < 1500]
            step = max(1, len(small) // 6)
            picked += small[::step][:7]
        out = picked
    for case in out:
        print(json.dumps(case, sort_keys=True))


if __name__ == "__main__":
    main()
