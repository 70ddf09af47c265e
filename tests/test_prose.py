"""The book's sentences that state numbers, orders and verdicts, on tables whose answer is known."""
import math

import pytest

from abalone_core.report import prose


def test_converged_runs_counts_only_trained_runs():
    flags = [True] * 65 + [False] * 15 + [None] * 16
    assert prose.converged_runs(flags) == "65 of 80 trained runs converged (15 did not)"
    assert "every" not in prose.converged_runs(flags)
    assert prose.converged_runs([True, True, None, float("nan")]) == "every one of its 2 trained runs converged"
    assert prose.converged_runs([False, None]) == "none of its 1 trained runs converged"
    assert prose.converged_runs([None]) == "no run records whether it converged"


def test_rows_closer_than_their_spread_are_not_ordered():
    means = {"L_MSC": 48.3, "L_BQProto": 47.6, "L_Base": 47.1}
    spreads = {"L_MSC": 0.6, "L_BQProto": 0.9, "L_Base": 1.2}
    assert prose.tiers(means, spreads) == [["L_MSC", "L_BQProto", "L_Base"]]
    text = prose.order_sentence(means, spreads, paper=["L_MSC", "L_BQProto", "L_Base"])
    assert "do not order them" in text
    assert "reproduces" not in text.replace("neither reproduces", "")
    assert "neither reproduces nor contradicts" in text


def test_rows_further_apart_than_their_spread_are_ordered_and_compared_with_the_paper():
    means = {"a": 50.0, "b": 45.0, "c": 40.0}
    spreads = {"a": 1.0, "b": 1.0, "c": 1.0}
    assert prose.tiers(means, spreads) == [["a"], ["b"], ["c"]]
    assert "This reproduces the paper's order (a > b > c)" in prose.order_sentence(means, spreads, paper=["a", "b", "c"])
    against = prose.order_sentence(means, spreads, paper=["c", "b", "a"])
    assert "contradicts" in against and "reproduces" not in against
    assert prose.paper_verdict(means, spreads, ["a", "b", "c"]) == "This reproduces the paper's order (a > b > c)."
    partial = prose.order_sentence({"a": 50.0, "b": 49.5, "c": 40.0}, spreads, paper=["b", "a", "c"])
    assert "agree with the paper's order" in partial and "a and b differ by less" in partial


def test_one_seed_has_no_spread_and_orders_nothing():
    text = prose.order_sentence({"a": 50.0, "b": 10.0}, {"a": math.nan, "b": math.nan})
    assert "do not order" in text


def test_share_words_and_the_largest_share():
    assert prose.share_word(0.03) == "rarely"
    assert prose.share_word(0.42) == "often"
    shares = {"head": 0.75, "medium": 0.19, "tail": 0.06}
    text = prose.largest_share(shares, "the denominator's weight")
    assert text.startswith("head keys carry 75% of the denominator's weight and tail keys 6%")
    assert "mostly from the head" in text and "from the tail" not in text
    assert "mostly" not in prose.largest_share({"head": 0.4, "medium": 0.35, "tail": 0.25}, "x")


@pytest.mark.parametrize("rho, words", [(0.57, "rises moderately"), (0.05, "does not follow"),
                                        (-0.2, "falls weakly"), (0.8, "rises strongly")])
def test_trend_phrase(rho, words):
    phrase = prose.trend_phrase(rho)
    assert phrase.startswith(words)
    assert ("does not follow" in phrase) == (abs(rho) < 0.1)


def test_alone_sentence_says_often_only_where_it_is_often():
    text = prose.alone_sentence({"disaster": 0.03, "FOLDOC": 0.42}, 256)
    assert "a FOLDOC tail label is often left without another document carrying it (42% of its pairs)" in text
    assert text.endswith("a disaster tail label rarely (3%)")
    assert "often" not in prose.alone_sentence({"disaster": 0.01}, 256)


def test_lead_sentence_tells_a_lead_that_disappears_from_one_that_holds():
    gone = prose.lead_sentence("L_MSC", "BCE", (48.3, 42.1), (50.2, 50.6), 1.6, "disaster")
    assert "+6.2" in gone and "-0.4" in gone and "disappears" in gone
    held = prose.lead_sentence("L_MSC", "BCE", (48.3, 42.1), (50.2, 45.0), 1.0, "disaster")
    assert "holds" in held and "disappears" not in held
    behind = prose.lead_sentence("L_MSC", "BCE", (35.7, 37.9), (35.7, 43.5), 1.3, "foldoc")
    assert "BCE is ahead" in behind and "disappears" not in behind


def test_asl_sentence_states_the_configuration():
    from abalone_core.training.config import Config

    c = Config()
    text = prose.asl_sentence(c.asl_gamma_pos, c.asl_gamma_neg, c.asl_margin)
    assert f"γ− = {c.asl_gamma_neg:g}" in text and f"m = {c.asl_margin:g}" in text
    assert "γ− = 4" in prose.asl_sentence(0, 4, 0.05) and "below 0.05" in prose.asl_sentence(0, 4, 0.05)
