import numpy as np
import pandas as pd
import pytest

from abalone_core.claims import CLAIMS, Claim, check_claims


def runs_with(scores: dict, seeds=(0, 1, 2), dataset="d") -> pd.DataFrame:
    """scores: objective -> list of per-seed dicts of metrics."""
    rows = [{"objective": o, "dataset": dataset, "seed": s, **values[i]}
            for o, values in scores.items() for i, s in enumerate(seeds)]
    return pd.DataFrame(rows)


def test_verdicts_follow_the_per_seed_differences():
    runs = runs_with({
        "msc": [{"macro_f1": 40, "micro_f1": 60}, {"macro_f1": 41, "micro_f1": 61}, {"macro_f1": 42, "micro_f1": 62}],
        "base": [{"macro_f1": 39, "micro_f1": 50}, {"macro_f1": 42, "micro_f1": 50}, {"macro_f1": 43, "micro_f1": 50}],
        "bce": [{"macro_f1": 10, "micro_f1": 60.5}, {"macro_f1": 10, "micro_f1": 63}, {"macro_f1": 10, "micro_f1": 62.9}],
    })
    out = check_claims(runs).set_index("claim")
    msc_base = out.loc["L_MSC above L_Base in macro-F1"]
    assert msc_base["holds_on"] == 1 and msc_base["seeds"] == 3 and msc_base["verdict"] == "mixed"
    assert msc_base["difference"] == pytest.approx(np.mean([1, -1, -1]))
    assert msc_base["std"] == pytest.approx(np.std([1, -1, -1], ddof=1))
    assert msc_base["better"] == pytest.approx(41) and msc_base["worse"] == pytest.approx(124 / 3)
    # on par within 1 point: -0.5 and -0.9 count, -2 does not
    par = out.loc["L_MSC on par with BCE in micro-F1 (at most 1 point below)"]
    assert par["holds_on"] == 2 and par["verdict"] == "mixed"
    assert out.loc["queue adds macro-F1 (L_BQueue above L_Base)", "verdict"] == "not run"
    assert out.loc["L_MSC clusters better than L_Base (silhouette)", "verdict"] == "not run"


def test_lower_is_better_metrics_and_one_verdict_per_dataset():
    a = runs_with({"msc": [{"davies_bouldin": 2.0}] * 3, "base": [{"davies_bouldin": 2.5}] * 3}, dataset="a")
    b = runs_with({"msc": [{"davies_bouldin": 3.0}] * 3, "base": [{"davies_bouldin": 2.5}] * 3}, dataset="b")
    claim = [c for c in CLAIMS if c.metric == "davies_bouldin"]
    out = check_claims(pd.concat([a, b]), claims=claim).set_index("dataset")
    assert out.at["a", "verdict"] == "holds" and out.at["b", "verdict"] == "fails"
    assert out.at["a", "difference"] == pytest.approx(-0.5)


def test_unpaired_seeds_are_left_out_and_missing_columns_are_named():
    runs = pd.concat([runs_with({"msc": [{"macro_f1": 5}] * 3}), runs_with({"base": [{"macro_f1": 4}]}, seeds=(1,))])
    out = check_claims(runs, claims=[Claim("x", "msc", "base", "macro_f1")])
    assert out.loc[0, "seeds"] == 1 and out.loc[0, "verdict"] == "holds"
    with pytest.raises(ValueError, match="seed"):
        check_claims(runs.drop(columns="seed"))


def test_a_row_below_the_frozen_encoder_gets_a_caveat():
    runs = runs_with({"msc": [{"micro_f1": 60}] * 3, "bce": [{"micro_f1": 1}] * 3, "frozen": [{"micro_f1": 50}] * 3})
    claim = [c for c in CLAIMS if c.better == "msc" and c.worse == "bce"]
    out = check_claims(runs, claims=claim)
    assert out.loc[0, "verdict"] == "holds" and out.loc[0, "caveat"] == "bce below frozen: undertrained"
    fine = runs.assign(micro_f1=runs["micro_f1"].where(runs["objective"] != "bce", 55))
    assert check_claims(fine, claims=claim).loc[0, "caveat"] == ""
    assert check_claims(runs, claims=claim, reference=None).loc[0, "caveat"] == ""
