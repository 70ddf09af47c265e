import numpy as np
import pandas as pd
import pytest
from scipy import stats

from abalone_core.report.claims import CLAIMS, Claim, check_claims, t_interval

ABOVE = Claim("msc above base", "msc", "base", "macro_f1")
PAR = [c for c in CLAIMS if c.tolerance == 1.0]  # msc at most 1 micro-F1 point below bce
DB = [c for c in CLAIMS if c.metric == "davies_bouldin"]  # lower is better


def runs_with(scores: dict, seeds=(0, 1, 2), dataset="d", **columns) -> pd.DataFrame:
    """scores: objective -> {metric: per-seed values}; columns: extra constant columns."""
    rows = [{"objective": o, "dataset": dataset, "seed": s, **columns,
             **{m: values[i] for m, values in metrics.items()}}
            for o, metrics in scores.items() for i, s in enumerate(seeds)]
    return pd.DataFrame(rows)


def one(runs, claim=ABOVE, **kwargs) -> pd.Series:
    out = check_claims(runs, claims=[claim] if isinstance(claim, Claim) else claim, **kwargs)
    assert len(out) == 1
    return out.iloc[0]


def test_holds_when_the_interval_is_above_zero_and_matches_scipy():
    runs = runs_with({"msc": {"macro_f1": [41, 42, 43.5]}, "base": {"macro_f1": [40, 40.5, 42]}})
    r = one(runs)
    d = np.array([1.0, 1.5, 1.5])
    low, high = stats.t.interval(0.95, df=2, loc=d.mean(), scale=stats.sem(d))
    assert low > 0
    assert r["ci_low"] == pytest.approx(low) and r["ci_high"] == pytest.approx(high)
    assert r["difference"] == pytest.approx(d.mean()) and r["std"] == pytest.approx(d.std(ddof=1))
    assert r["better"] == pytest.approx(np.mean([41, 42, 43.5]))
    assert r["worse"] == pytest.approx(np.mean([40, 40.5, 42]))
    assert r["seeds"] == 3 and r["holds_on"] == 3 and r["verdict"] == "holds" and r["caveat"] == ""
    assert t_interval(d, 0.99)[0] < low < high < t_interval(d, 0.99)[1]
    wider = one(runs, confidence=0.99)
    assert wider["ci_low"] == pytest.approx(stats.t.interval(0.99, 2, d.mean(), stats.sem(d))[0])


def test_fails_when_the_interval_is_below_zero():
    runs = runs_with({"msc": {"macro_f1": [40, 40.5, 42]}, "base": {"macro_f1": [41, 42, 43.5]}})
    r = one(runs)
    assert r["ci_high"] < 0 and r["verdict"] == "fails" and r["holds_on"] == 0


def test_inconclusive_when_the_interval_straddles_zero_or_too_few_seeds():
    runs = runs_with({"msc": {"macro_f1": [40, 41, 42]}, "base": {"macro_f1": [39, 42, 43]}})
    r = one(runs)  # differences 1, -1, -1
    assert r["ci_low"] < 0 < r["ci_high"] and r["verdict"] == "inconclusive" and r["holds_on"] == 1
    assert "interval" in r["caveat"]
    # only one seed where both ran: no interval
    runs = pd.concat([runs_with({"msc": {"macro_f1": [50, 50, 50]}}),
                      runs_with({"base": {"macro_f1": [40]}}, seeds=(1,))])
    r = one(runs)
    assert r["seeds"] == 1 and r["holds_on"] == 1 and r["verdict"] == "inconclusive"
    assert np.isnan(r["ci_low"]) and np.isnan(r["std"]) and "at least 3" in r["caveat"]
    r = one(pd.concat([runs_with({"msc": {"macro_f1": [50]}}, seeds=(0,)),
                       runs_with({"base": {"macro_f1": [40]}}, seeds=(1,))]))
    assert r["seeds"] == 0 and r["verdict"] == "inconclusive"


def test_not_run_when_an_objective_or_the_metric_is_missing():
    runs = runs_with({"msc": {"macro_f1": [40, 41, 42]}, "base": {"macro_f1": [30, 31, 32]}})
    r = one(runs, Claim("queue", "bqueue", "base", "macro_f1"))
    assert r["verdict"] == "not run" and r["seeds"] == 0 and "bqueue" in r["caveat"]
    r = one(runs, Claim("sil", "msc", "base", "silhouette"))
    assert r["verdict"] == "not run" and "silhouette" in r["caveat"]
    r = one(runs.assign(macro_f1=runs["macro_f1"].where(runs["objective"] != "base")))  # base has no value
    assert r["verdict"] == "not run"


def test_not_testable_when_a_compared_run_did_not_converge():
    runs = runs_with({"msc": {"macro_f1": [41, 42, 43.5]}, "base": {"macro_f1": [40, 40.5, 42]},
                      "bce": {"macro_f1": [1, 1, 1]}})
    assert one(runs)["verdict"] == "holds"  # no converged column: unknown, nothing blocked
    flags = runs.assign(converged=[True, False, True, True, None, True, False, False, False])
    r = one(flags)
    assert r["verdict"] == "not testable" and r["caveat"] == "msc did not converge (seed 1)"
    assert r["difference"] == pytest.approx(np.mean([1, 1.5, 1.5]))  # numbers still reported
    # a missing value is unknown, and another objective's failures do not matter
    fine = runs.assign(converged=[True, None, True, True, None, True, False, False, False])
    assert one(fine)["verdict"] == "holds"
    assert one(flags, converged=None)["verdict"] == "holds"
    # a run that failed to converge on a seed without a pair does not block either
    unpaired = pd.concat([runs, runs_with({"msc": {"macro_f1": [90]}}, seeds=(7,))]).assign(
        converged=[True] * 9 + [False])
    assert one(unpaired)["verdict"] == "holds"


def test_require_converged_makes_unrecorded_convergence_not_testable():
    runs = runs_with({"msc": {"macro_f1": [41, 42, 43.5]}, "base": {"macro_f1": [40, 40.5, 42]}})
    assert one(runs, require_converged=True)["verdict"] == "not testable"  # no column at all
    r = one(runs.assign(converged=[True, True, True, True, None, True]), require_converged=True)
    assert r["verdict"] == "not testable" and r["caveat"] == "base: convergence not recorded (seed 1)"
    assert one(runs.assign(converged=True), require_converged=True)["verdict"] == "holds"
    assert one(runs.assign(converged=[True, True, True, True, None, True]))["verdict"] == "holds"  # default


def test_not_testable_when_a_row_scores_below_the_frozen_encoder():
    runs = runs_with({"msc": {"micro_f1": [60, 61, 62]}, "bce": {"micro_f1": [1, 2.5, 3]},
                      "frozen": {"micro_f1": [50, 50, 50]}})
    r = one(runs, PAR)
    assert r["verdict"] == "not testable" and r["caveat"] == "bce below frozen: undertrained"
    fine = runs.assign(micro_f1=runs["micro_f1"].where(runs["objective"] != "bce", [55, 56.5, 56] * 3))
    assert one(fine, PAR)["verdict"] == "holds"
    assert one(runs, PAR, reference=None)["verdict"] == "holds"
    # lower is better: a Davies-Bouldin above the frozen encoder's is the weak side
    db = runs_with({"msc": {"davies_bouldin": [2.0, 2.1, 2.2]}, "base": {"davies_bouldin": [3.0, 3.1, 3.3]},
                    "frozen": {"davies_bouldin": [2.5, 2.5, 2.5]}})
    r = one(db, DB)
    assert r["verdict"] == "not testable" and r["caveat"] == "base below frozen: undertrained"


def test_on_par_holds_at_exactly_the_tolerance():
    # scores as printed, one point apart; in floating point 31.2 - 32.2 is a hair below -1
    at = runs_with({"msc": {"micro_f1": [31.2, 15.1, 7.3]}, "bce": {"micro_f1": [32.2, 16.1, 8.3]}})
    assert 31.2 - 32.2 < -1
    r = one(at, PAR)
    assert r["difference"] == pytest.approx(-1.0) and r["holds_on"] == 3
    # three equal differences: an interval of width 0, which says nothing about the next seed
    assert r["verdict"] == "inconclusive" and "no spread" in r["caveat"]
    bce = [60.1, 59.3, 61.7]
    near = runs_with({"msc": {"micro_f1": [b + d for b, d in zip(bce, (-0.99, -0.98, -0.985))]},
                      "bce": {"micro_f1": bce}})
    assert one(near, PAR)["verdict"] == "holds"  # within the tolerance, with spread
    below = runs_with({"msc": {"micro_f1": [b + d for b, d in zip(bce, (-1.01, -1.02, -1.015))]},
                       "bce": {"micro_f1": bce}})
    assert one(below, PAR)["verdict"] == "fails"
    spread = runs_with({"msc": {"micro_f1": [b + d for b, d in zip(bce, (-0.5, -1.0, -1.5))]},
                        "bce": {"micro_f1": bce}})
    r = one(spread, PAR)  # mean exactly -1 with spread: the interval reaches below -1
    assert r["verdict"] == "inconclusive" and r["holds_on"] == 2
    # without a tolerance, a difference of exactly 0 does not make "above"
    tie = runs_with({"msc": {"macro_f1": [40, 41, 42]}, "base": {"macro_f1": [40, 41, 42]}})
    assert one(tie)["verdict"] == "inconclusive" and one(tie)["holds_on"] == 0


def test_lower_is_better_metrics_and_one_verdict_per_dataset():
    a = runs_with({"msc": {"davies_bouldin": [2.0, 2.1, 1.9]}, "base": {"davies_bouldin": [2.5, 2.7, 2.6]}},
                  dataset="a")
    b = runs_with({"msc": {"davies_bouldin": [3.0, 3.25, 3.1]}, "base": {"davies_bouldin": [2.5, 2.7, 2.6]}},
                  dataset="b")
    out = check_claims(pd.concat([a, b]), claims=DB).set_index("dataset")
    assert out.at["a", "verdict"] == "holds" and out.at["b", "verdict"] == "fails"
    assert out.at["a", "difference"] == pytest.approx(-0.6) and out.at["a", "ci_high"] < 0
    # "on par" with lower-is-better: at most `tolerance` above
    hamming = Claim("msc on par with bce in Hamming loss", "msc", "bce", "hamming", direction=-1, tolerance=0.5)
    bce = [10.0, 12.0, 11.0]
    at = runs_with({"msc": {"hamming": [h + d for h, d in zip(bce, (0.3, 0.35, 0.32))]}, "bce": {"hamming": bce}})
    assert one(at, hamming)["verdict"] == "holds"
    over = runs_with({"msc": {"hamming": [h + d for h, d in zip(bce, (0.6, 0.62, 0.61))]}, "bce": {"hamming": bce}})
    assert one(over, hamming)["verdict"] == "fails"


def test_runs_are_never_averaged_across_budgets():
    short = runs_with({"msc": {"macro_f1": [41, 42, 43.5]}, "base": {"macro_f1": [40, 40.5, 42]}}, max_steps=60)
    long = runs_with({"msc": {"macro_f1": [40, 40.5, 42]}, "base": {"macro_f1": [41, 42, 43.5]}}, max_steps=600)
    runs = pd.concat([short, long])
    with pytest.raises(ValueError, match="max_steps"):
        check_claims(runs, claims=[ABOVE])
    out = check_claims(runs, claims=[ABOVE], group=["max_steps"]).set_index("max_steps")
    assert out.at[60, "verdict"] == "holds" and out.at[600, "verdict"] == "fails"
    assert list(out.columns[:2]) == ["dataset", "claim"]
    with pytest.raises(ValueError, match="subset"):
        check_claims(runs, claims=[ABOVE], group=["subset"])


def test_missing_columns_are_named():
    runs = runs_with({"msc": {"macro_f1": [5, 6, 7]}, "base": {"macro_f1": [4, 4.5, 6.2]}})
    with pytest.raises(ValueError, match="seed"):
        check_claims(runs.drop(columns="seed"))
    out = check_claims(runs)
    assert len(out) == len(CLAIMS) and set(out["verdict"]) <= {"holds", "not run"}


def test_a_verdict_needs_three_seeds_and_spread():
    two = runs_with({"msc": {"macro_f1": [41, 42]}, "base": {"macro_f1": [40, 40.5]}}, seeds=(0, 1))
    r = one(two)
    assert r["seeds"] == 2 and r["verdict"] == "inconclusive" and "at least 3" in r["caveat"]
    assert r["resolvable"] == pytest.approx((r["ci_high"] - r["ci_low"]) / 2)
    flat = runs_with({"msc": {"macro_f1": [41, 42, 43]}, "base": {"macro_f1": [40, 41, 42]}})
    r = one(flat)  # three differences of exactly 1: a point interval
    assert r["verdict"] == "inconclusive" and "equal" in r["caveat"] and r["ci_low"] == r["ci_high"] == 1


def test_resolvable_is_the_half_width_and_seeds_follow_from_the_spread():
    from abalone_core.report.claims import seeds_for_half_width

    runs = runs_with({"msc": {"macro_f1": [40, 41, 42, 40.5]}, "base": {"macro_f1": [39, 42, 43, 40]}},
                     seeds=(0, 1, 2, 3))
    r = one(runs)
    d = np.array([1, -1, -1, 0.5])
    assert r["resolvable"] == pytest.approx(stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2)
    # the smallest n with t(n-1) * sd / sqrt(n) <= half-width, never fewer than the minimum
    n = seeds_for_half_width(1.37, 1.0)
    assert stats.t.ppf(0.975, n - 1) * 1.37 / np.sqrt(n) <= 1.0 < stats.t.ppf(0.975, n - 2) * 1.37 / np.sqrt(n - 1)
    assert seeds_for_half_width(0.1, 1.0) == 5 and seeds_for_half_width(0.1, 1.0, minimum=3) == 3


def test_holm_adjusts_over_the_claims_of_one_comparison():
    from abalone_core.report.claims import holm

    assert np.allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    assert np.isnan(holm([np.nan, 0.01])[0]) and holm([np.nan, 0.01])[1] == pytest.approx(0.01)
    # two claims that each hold alone (p about 0.031 and 0.035): Holm multiplies the smaller p by 2,
    # above 0.05, and the larger one then cannot pass either
    runs = runs_with({"msc": {"macro_f1": [41.0, 41.9, 43.9], "silhouette": [0.30, 0.36, 0.43]},
                      "base": {"macro_f1": [40.0, 40.5, 42.0], "silhouette": [0.20, 0.21, 0.23]}})
    claims = [ABOVE, Claim("sil", "msc", "base", "silhouette")]
    alone = check_claims(runs, claims=claims, correction=None).set_index("claim")
    held = check_claims(runs, claims=claims).set_index("claim")
    assert (alone["verdict"] == "holds").all() and (alone["p_value"] < 0.05).all()
    p = alone["p_value"].sort_values()
    assert held.at[p.index[0], "p_holm"] == pytest.approx(2 * p.iloc[0]) and 2 * p.iloc[0] > 0.05
    assert held.at[p.index[1], "p_holm"] == pytest.approx(max(2 * p.iloc[0], p.iloc[1]))
    assert (held["verdict"] == "inconclusive").all() and held["caveat"].str.contains("Holm").all()
    # p-values from scipy's paired t-test against the claim's bound
    d = np.array([1.0, 1.4, 1.9])
    assert alone.at[ABOVE.name, "p_value"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
