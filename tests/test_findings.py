"""Chapter 8's tables and sentences, built from made-up records whose answer is known."""
import re

import numpy as np
import pandas as pd
import pytest

from abalone_core.report import findings


def records(msc_gain=(2.0, 2.5, 1.5, 2.2, 1.8), bce_micro=(70, 71, 69.5, 70.2, 70.8), layers="all",
            dataset="d", converged=True):
    rows = []
    for s, (g, bm) in enumerate(zip(msc_gain, bce_micro)):
        base = 40.0 + s
        rows += [
            {"objective": "base", "seed": s, "macro_f1": base, "macro_f1_label_tuned": base + 5, "micro_f1": 60.0,
             "silhouette": 0.10 + 0.01 * s, "davies_bouldin": 2.0, "steps": 900 + s},
            {"objective": "msc", "seed": s, "macro_f1": base + g, "macro_f1_label_tuned": base + 5 + g / 2,
             "micro_f1": bm - 5 - 0.3 * s, "silhouette": 0.12 + 0.012 * s, "davies_bouldin": 1.9 - 0.01 * s,
             "steps": 1000 + s},
            {"objective": "bce", "seed": s, "macro_f1": base - 3, "macro_f1_label_tuned": base + 9 + 0.2 * s,
             "micro_f1": bm, "silhouette": np.nan, "davies_bouldin": np.nan, "steps": 1500.0},
        ]
    out = pd.DataFrame(rows).assign(dataset=dataset, train_layers=layers, converged=converged)
    return out


def test_the_paragraph_states_each_verdict_as_check_claims_gives_it():
    runs = records()
    claims = findings.depth_claims(runs)
    text = findings.finding_paragraph(claims, "d", "all")
    stated = findings.paragraph_verdicts(text)
    expected = dict(zip(claims["claim"], claims["verdict"]))
    assert stated == expected
    # known answers: msc gains about 2 points over base at 0.5; 5 points below bce in micro-F1
    assert stated["L_MSC above L_Base in macro-F1"] == "holds"
    assert stated["L_MSC on par with BCE in micro-F1 (at most 1 point below)"] == "fails"
    assert stated["L_MSC above BCE in macro-F1 (per-label thresholds)"] == "fails"
    assert text.startswith("**d, whole encoder.**") and "Holm" in text
    assert "+2.00 points" in text  # the mean gain, in points


def test_open_claims_say_what_the_seeds_could_resolve_and_unconverged_rows_are_not_testable():
    noisy = records(msc_gain=(3.0, -2.0, 2.5, -1.5, 0.5))
    claims = findings.depth_claims(noisy)
    text = findings.finding_paragraph(claims, "d", "all")
    row = claims.set_index("claim").loc["L_MSC above L_Base in macro-F1"]
    assert row["verdict"] == "inconclusive"
    assert f"larger than {row['resolvable']:.2f} points" in text
    assert findings.paragraph_verdicts(text)["L_MSC above L_Base in macro-F1"] == "inconclusive"
    stuck = records(converged=False)
    text = findings.finding_paragraph(findings.depth_claims(stuck), "d", "all")
    assert set(findings.paragraph_verdicts(text).values()) == {"not testable"} and "did not converge" in text


def test_paragraphs_per_dataset_and_depth_whole_encoder_first():
    runs = pd.concat([records(layers="1"), records(layers="all"), records(dataset="e", layers="all")])
    text = findings.what_we_found(findings.depth_claims(runs))
    heads = [p.split(".**")[0] for p in text.split("\n\n")]
    assert heads == ["**d, whole encoder", "**d, 1 layer", "**e, whole encoder"]


def test_depth_table_shows_seeds_steps_and_convergence_without_a_spread_for_constant_rows():
    runs = pd.concat([records(layers="all"), records(layers="1"),
                      pd.DataFrame([{"objective": "tfidf-linear", "seed": 0, "macro_f1": 55.0, "macro_f1_label_tuned": 57.0,
                                     "micro_f1": 66.0, "map": 50.0, "steps": 0, "converged": None,
                                     "dataset": "d", "train_layers": "1"}])])
    t = findings.depth_table(runs, "d", metrics=("macro_f1",))
    assert list(t.columns.get_level_values(0).unique()) == ["1 layer", "whole encoder"]
    assert t.loc["TF-IDF", ("1 layer", "macro-F1 at 0.5")] == "55.00 (1)"  # no "± 0.00"
    assert t.loc["L_MSC", ("whole encoder", "steps")] == "1002" and t.loc["L_MSC", ("whole encoder", "converged")] == "5/5"
    assert "±" in t.loc["L_MSC", ("whole encoder", "macro-F1 at 0.5")]
    assert t.loc["TF-IDF", ("1 layer", "converged")] == "n/a"
    with pytest.raises(ValueError, match="no run of dataset"):
        findings.depth_table(runs, "nope")


def test_tfidf_decomposition_parts_add_up_to_the_lead():
    runs = pd.DataFrame([
        {"objective": "tfidf-linear", "macro_f1": 57.0, "macro_f1_label_tuned": 56.0},
        {"objective": "tfidf-cut", "macro_f1": 50.0, "macro_f1_label_tuned": 53.0},
        {"objective": "bce", "macro_f1": 42.0, "macro_f1_label_tuned": 50.0, "seed": 0},
        {"objective": "bce", "macro_f1": 44.0, "macro_f1_label_tuned": 52.0, "seed": 1},
    ]).assign(dataset="d", train_layers="all")
    d = findings.tfidf_decomposition(runs, "d", "bce", "all")
    assert d["lead"] == pytest.approx(57 - 43)
    assert d["decision_rule"] == pytest.approx(14 - (56 - 51))  # 9 points of the lead is the rule
    assert d["text_length"] == pytest.approx(3) and d["remainder"] == pytest.approx(2)
    assert d["decision_rule"] + d["text_length"] + d["remainder"] == pytest.approx(d["lead"])
    s = findings.decomposition_sentence(d)
    assert "by 14.00 macro-F1 points" in s and "+9.00" in s and "+3.00" in s and "+2.00" in s
    with pytest.raises(ValueError, match="no tfidf-cut run"):
        findings.tfidf_decomposition(runs[runs["objective"] != "tfidf-cut"], "d")


def test_seeds_needed_from_the_measured_paired_spread():
    from scipy import stats

    runs = records(msc_gain=(3.0, -1.0, 2.5, 0.0, 1.5))
    p = findings.seeds_needed(runs, "d", "all", half_width=1.0)
    d = np.array([3.0, -1.0, 2.5, 0.0, 1.5])
    assert p["measured"] == 5 and p["std"] == pytest.approx(d.std(ddof=1))
    n = p["needed"]
    assert stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n) <= 1.0
    assert stats.t.ppf(0.975, n - 2) * d.std(ddof=1) / np.sqrt(n - 1) > 1.0
    assert f"needs {n} seeds" in findings.power_sentence(p)
    with pytest.raises(ValueError, match="no paired"):
        findings.seeds_needed(runs, "d", "all", better="bqueue")


def test_the_readme_and_the_committed_records_state_the_same_verdicts():
    """The README's findings block is report() over the committed grids, and every verdict its
    paragraphs name equals check_claims on those records."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    check = subprocess.run([sys.executable, "scripts/write_findings.py", "--check"], cwd=root,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    runs = findings.grid_records(root / "results")
    if runs.empty:
        pytest.skip("no comparison grid committed yet")
    claims = findings.depth_claims(runs)
    for (dataset, layers), part in claims.groupby(["dataset", "train_layers"]):
        stated = findings.paragraph_verdicts(findings.finding_paragraph(claims, dataset, layers))
        assert stated == dict(zip(part["claim"], part["verdict"]))


def test_report_covers_each_dataset_with_its_decomposition_and_power():
    tfidf = pd.DataFrame([{"objective": "tfidf-linear", "macro_f1": 57.0, "macro_f1_label_tuned": 56.0, "seed": 0},
                          {"objective": "tfidf-cut", "macro_f1": 50.0, "macro_f1_label_tuned": 53.0, "seed": 0}]
                         ).assign(dataset="d", train_layers="1", converged=None)
    text = findings.report(pd.concat([records(), tfidf]))
    assert text.startswith("**d, whole encoder.**") and "TF-IDF as shipped leads BCE (whole encoder)" in text
    assert "needs 5 seeds" in text or "needs" in text
    assert findings.report(pd.DataFrame()) == "No run of the comparison grids is committed yet."


def test_one_paired_seed_gives_the_difference_without_an_interval():
    one_seed = records(msc_gain=(2.0,), bce_micro=(70,))
    text = findings.finding_paragraph(findings.depth_claims(one_seed), "d", "all")
    assert "+2.00 points on 1 paired seed; an interval needs two, a verdict three" in text
    assert "n/a" not in text and set(findings.paragraph_verdicts(text).values()) == {"inconclusive"}


def test_the_geometry_paragraph_states_only_the_clustering_claims_with_the_full_correction():
    claims = findings.depth_claims(records())
    geometry = ("silhouette", "davies_bouldin")
    text = findings.finding_paragraph(claims, "d", "all", metrics=geometry)
    stated = findings.paragraph_verdicts(text)
    expected = claims[claims["metric"].isin(geometry)].set_index("claim")["verdict"].to_dict()
    assert stated == expected and len(stated) == 2
    # known answer: L_MSC's silhouette is 0.02 + 0.002 s above L_Base's, its Davies-Bouldin lower
    assert stated["L_MSC clusters better than L_Base (silhouette)"] == "holds"
    assert "+0.024" in text  # the mean silhouette gain, three decimals and no unit
    judged = int(claims["p_value"].notna().sum())
    assert f"corrected for the {judged} comparisons" in text and judged > 2
    table = findings.depth_table(records(), "d", metrics=geometry, rows=("base", "msc"))
    assert table.loc["L_Base", ("whole encoder", "silhouette")] == "0.120 ± 0.020 (5)"
    with pytest.raises(ValueError, match="no claim on"):
        findings.finding_paragraph(claims, "d", "all", metrics=("hamming",))


def test_an_open_claim_whose_interval_excludes_zero_names_the_correction():
    # a gain of about 1.7 points on 3 seeds: the t-interval excludes zero (p about 0.03), but with
    # six claims judged together Holm's correction keeps it open
    runs = records(msc_gain=(1.2, 2.2, 1.6), bce_micro=(70, 71, 69.5))
    claims = findings.depth_claims(runs)
    row = claims.set_index("claim").loc["L_MSC above L_Base in macro-F1"]
    assert row["verdict"] == "inconclusive" and row["ci_low"] > 0 and row["p_holm"] > 0.05
    text = findings.finding_paragraph(claims, "d", "all")
    assert f"its interval excludes zero, but not after Holm's correction" in text
    assert f"adjusted p = {row['p_holm']:.2g}" in text
    assert findings.paragraph_verdicts(text)["L_MSC above L_Base in macro-F1"] == "inconclusive"


def test_an_on_par_claim_is_judged_against_its_tolerance_not_zero():
    # L_MSC's micro-F1 minus BCE's: -0.3, -2.5, -1.0, -3.2, -0.8 (mean -1.56): the interval
    # lies below zero but includes -1, the tolerance; the interval, not Holm, keeps it open
    runs = records()
    gaps = {0: -0.3, 1: -2.5, 2: -1.0, 3: -3.2, 4: -0.8}
    msc = runs["objective"] == "msc"
    runs.loc[msc, "micro_f1"] = [runs.loc[(runs["objective"] == "bce") & (runs["seed"] == s), "micro_f1"].item()
                                 + gaps[s] for s in runs.loc[msc, "seed"]]
    claims = findings.depth_claims(runs)
    claim = "L_MSC on par with BCE in micro-F1 (at most 1 point below)"
    row = claims.set_index("claim").loc[claim]
    assert row["verdict"] == "inconclusive" and row["bound"] == -1.0
    assert row["ci_high"] < 0 < row["ci_high"] + 1 and row["ci_low"] < -1
    text = findings.finding_paragraph(claims, "d", "all")
    sentence = re.split(r"\); |\)\. ", text[text.index(claim):])[0]  # this claim's parenthesis only
    assert "excludes zero" not in sentence and "Holm" not in sentence
    assert ("its interval includes -1.00 points (the claim's tolerance), and these seeds resolve only differences "
            f"more than {row['resolvable']:.2f} points away from it") in sentence
    assert findings.paragraph_verdicts(text)[claim] == "inconclusive"


def test_the_claims_table_lists_the_whole_encoder_first_whatever_the_order_of_the_records():
    claims = findings.depth_claims(pd.concat([records(layers="1"), records(layers="all")]))
    table = findings.claims_table(claims)
    trained = table["trained"].tolist()
    assert trained == ["whole encoder"] * trained.count("whole encoder") + ["1 layer"] * trained.count("1 layer")
    assert table["claim"].tolist()[:3] == claims.loc[claims["train_layers"] == "all", "claim"].tolist()[:3]


def test_the_claims_table_writes_each_number_as_the_paragraph_does():
    claims = findings.depth_claims(pd.concat([records(layers="1"), records(msc_gain=(2.0,), bce_micro=(70,))]))
    table = findings.claims_table(claims)
    assert list(table.columns) == ["trained", "claim", "difference", "95 % interval", "resolvable", "seeds",
                                   "Holm p", "verdict"]
    row = table[(table["trained"] == "1 layer") & (table["claim"] == "L_MSC above L_Base in macro-F1")].iloc[0]
    # known answer: the gains 2.0, 2.5, 1.5, 2.2, 1.8 average +2.00 points over 5 seeds
    assert row["difference"] == "+2.00" and row["seeds"] == "5" and row["verdict"] == "holds"
    low, high = row["95 % interval"].strip("[]").split(", ")
    assert float(low) < 2.0 < float(high)
    source = claims[(claims["train_layers"] == "1") & (claims["claim"] == row["claim"])].iloc[0]
    assert row["Holm p"] == f"{source['p_holm']:.2g}"  # as the paragraph writes it, not rounded to 0.001
    silhouette = table[(table["trained"] == "1 layer") & table["claim"].str.contains("silhouette")].iloc[0]
    assert silhouette["difference"] == "+0.024"  # scores without units keep three decimals
    one = table[(table["trained"] == "whole encoder") & (table["claim"] == "L_MSC above L_Base in macro-F1")].iloc[0]
    assert one["seeds"] == "1" and one["95 % interval"] == "" and one["difference"] == "+2.00"


def test_the_claim_summary_names_where_each_claim_holds_fails_or_stays_open():
    runs = pd.concat([records(layers="all"), records(layers="1", msc_gain=(3.0, -2.0, 2.5, -1.5, 0.5)),
                      records(dataset="e", layers="1", converged=False)])
    claims = findings.depth_claims(runs)
    text = findings.claim_summary(claims)
    lines = {line.split("*")[1]: line for line in text.splitlines()}
    assert list(lines) == list(claims["claim"].unique())
    gain = lines["L_MSC above L_Base in macro-F1"]
    # known answers: a steady gain with the whole encoder, a noisy one with one layer, no convergence on e
    assert "holds on d (whole encoder)" in gain and "stays open on d (1 layer)" in gain
    assert "is not testable on e (1 layer)" in gain and "fails" not in gain
    assert "fails on d (whole encoder) and d (1 layer)" in lines["L_MSC on par with BCE in micro-F1 (at most 1 point below)"]
    words = {"holds": "holds on ", "fails": "fails on ", "inconclusive": "stays open on ",
             "not testable": "is not testable on ", "not run": "has not run yet on "}
    for _, r in claims.iterrows():  # every verdict of check_claims stands at its place, and only there
        place = f"{r['dataset']} ({findings.layers_label(r['train_layers'])})"
        segments = lines[r["claim"]].split("* ", 1)[1].rstrip(".").split("; ")
        holding = [s for s in segments if place in s]
        assert len(holding) == 1 and holding[0].startswith(words[r["verdict"]])
    assert findings.claim_summary(claims.iloc[0:0]) == "No claim has been judged yet."


def test_the_cost_sentence_sums_the_wall_times_of_one_grid():
    runs = pd.DataFrame({"grid": ["g", "g", "g", "h"], "minutes": [30.0, 45.0, np.nan, 600.0],
                         "hardware": ["CPU (2 cores)", "CPU (2 cores)", None, "H100"]})
    assert findings.cost_sentence(runs, "g") == ("results/g: 3 runs, 1.2 hours of run time (the sum of the runs' "
                                                 "wall times) on CPU (2 cores).")
    assert findings.cost_sentence(runs, "x") == "results/x: no run committed yet."
    runs["precision"] = ["bf16", "bf16", None, "no"]
    assert findings.cost_sentence(runs, "g").endswith("on CPU (2 cores), trained in bfloat16 autocast.")


def test_records_of_two_precisions_in_one_comparison_are_refused():
    runs = records().assign(grid="g", precision="bf16")
    findings.check_one_precision(runs)  # one precision: nothing to say
    tfidf = pd.DataFrame([{"objective": "tfidf-cut", "seed": 0, "macro_f1": 50.0, "dataset": "d",
                           "train_layers": "all", "grid": "g", "precision": None}])
    findings.check_one_precision(pd.concat([runs, tfidf]))  # a run that records none is not counted
    other_depth = records(layers="1").assign(grid="g", precision="no")
    findings.check_one_precision(pd.concat([runs, other_depth]))  # another depth is another comparison
    mixed = runs.copy()
    mixed.loc[mixed["seed"] >= 3, "precision"] = "no"
    with pytest.raises(ValueError, match=r"grid=g, dataset=d, train_layers=all: the runs trained in two precisions "
                                         r"\(9 in bfloat16 autocast, 6 in float32\)"):
        findings.check_one_precision(mixed)


def test_the_ladder_claims_are_judged_only_where_a_grid_trains_its_rungs():
    with_ladder = records(dataset="many", layers="1")
    rungs = with_ladder[with_ladder["objective"] == "base"].copy()
    queue = rungs.assign(objective="bqueue", macro_f1=rungs["macro_f1"] + 1.0 + 0.1 * rungs["seed"])
    proto = rungs.assign(objective="bqproto", macro_f1=rungs["macro_f1"] + 1.0 + 0.1 * rungs["seed"]
                         + np.array([0.5, -0.5, 0.3, -0.2, 0.1]))
    runs = pd.concat([records(dataset="few", layers="1"), with_ladder, queue, proto])
    claims = findings.depth_claims(runs)
    names = {d: set(claims.loc[claims["dataset"] == d, "claim"]) for d in ("few", "many")}
    ladder = {c.name for c in findings.LADDER_CLAIMS}
    assert not names["few"] & ladder and ladder <= names["many"]
    verdicts = claims[claims["dataset"] == "many"].set_index("claim")["verdict"]
    # known answers: the queue adds about a point on every seed; the prototypes add nothing steady
    assert verdicts["queue adds macro-F1 (L_BQueue above L_Base)"] == "holds"
    assert verdicts["prototypes add macro-F1 (L_BQProto above L_BQueue)"] == "inconclusive"
    # the correction counts the ladder where it is judged
    many = claims[claims["dataset"] == "many"]
    assert int(many["p_value"].notna().sum()) == len(findings.DEPTH_CLAIMS) + len(findings.LADDER_CLAIMS)
    table = findings.depth_table(runs, "many", metrics=("macro_f1",))
    assert list(table.index) == ["L_Base", "L_BQueue", "L_BQProto", "L_MSC", "BCE"]


def test_the_power_computation_uses_the_deepest_depth_with_paired_seeds():
    one_layer = records(layers="1", msc_gain=(1.0, 3.0, 2.0, 2.5, 1.5))
    whole = records(layers="all")
    p = findings.deepest_power(pd.concat([one_layer, whole]), "d")
    assert p["layers"] == "all" and p["std"] == pytest.approx(np.std([2.0, 2.5, 1.5, 2.2, 1.8], ddof=1))
    lone = whole[(whole["objective"] == "base") & (whole["seed"] == 0)]  # one whole-encoder run, no pair
    p = findings.deepest_power(pd.concat([one_layer, lone]), "d")
    assert p["layers"] == "1" and p["std"] == pytest.approx(np.std([1.0, 3.0, 2.0, 2.5, 1.5], ddof=1))
    assert "(1 layer)" in findings.power_sentence(p)
    with pytest.raises(ValueError, match="paired"):
        findings.deepest_power(lone, "d")


def test_depths_order_by_how_much_of_the_encoder_trains_everywhere():
    # k = 3 and k = 10 expose a text sort ("10" < "3" < "all") or "whole encoder last" in sentences
    assert findings.depths(["1", "all", "10", "3", "1"]) == ["all", "10", "3", "1"]
    assert findings.depths(["1", "all", "10", "3"], deepest_first=False) == ["1", "3", "10", "all"]
    runs = pd.concat([records(layers=k) for k in ("1", "3", "all")])
    heads = [p.split(".**")[0] for p in findings.what_we_found(findings.depth_claims(runs)).split("\n\n")]
    assert heads == ["**d, whole encoder", "**d, 3 layers", "**d, 1 layer"]
    table = findings.depth_table(runs, "d", metrics=("macro_f1",))
    assert list(table.columns.get_level_values(0).unique()) == ["1 layer", "3 layers", "whole encoder"]
    summary = findings.claim_summary(findings.depth_claims(runs))
    assert "d (whole encoder), d (3 layers) and d (1 layer)" in summary
    # the decomposition and the power computation take the deepest depth that has the rows
    refs = pd.DataFrame([{"objective": o, "seed": 0, "macro_f1": 50.0, "macro_f1_label_tuned": 52.0,
                          "dataset": "d", "train_layers": "1"} for o in ("tfidf-linear", "tfidf-cut")])
    no_whole_bce = pd.concat([runs[~((runs["objective"] == "bce") & (runs["train_layers"] == "all"))], refs])
    assert findings.deepest_with(no_whole_bce, "d", "bce") == "3"
    assert findings.deepest_with(no_whole_bce, "d", "bqueue") is None
    (sentence,) = findings.decomposition_sentences(no_whole_bce)
    assert "BCE (3 layers)" in sentence
    assert findings.deepest_power(runs[runs["train_layers"] != "all"], "d")["layers"] == "3"
