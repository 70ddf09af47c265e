import numpy as np
import pytest
from sklearn.metrics import f1_score, hamming_loss

from abalone_core.evaluation.metrics import frequency_groups, grouped_f1, multilabel_scores, per_label_f1


@pytest.mark.parametrize("seed", range(5))
def test_scores_match_sklearn_in_paper_units(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((50, 9)) < 0.2).astype(int)
    p = (rng.random((50, 9)) < 0.25).astype(int)
    s = multilabel_scores(y, p)
    assert s["micro_f1"] == pytest.approx(100 * f1_score(y, p, average="micro", zero_division=0))
    assert s["macro_f1"] == pytest.approx(100 * f1_score(y, p, average="macro", zero_division=0))
    assert s["hamming"] == pytest.approx(1000 * hamming_loss(y, p))
    np.testing.assert_allclose(per_label_f1(y, p), 100 * f1_score(y, p, average=None, zero_division=0))


def test_one_label_is_scored_on_its_positives_only():
    """scikit-learn reads an (N, 1) matrix as a binary target; a single label must still score
    the F1 of that label, not count the documents without it as a second class."""
    y_true = np.array([[1], [0], [0], [0]])
    y_pred = np.array([[1], [1], [0], [0]])
    s = multilabel_scores(y_true, y_pred)
    assert s["micro_f1"] == pytest.approx(100 * 2 / 3) and s["macro_f1"] == pytest.approx(100 * 2 / 3)
    assert per_label_f1(y_true, y_pred).tolist() == pytest.approx([100 * 2 / 3])
    two = multilabel_scores(np.hstack([y_true, y_true]), np.hstack([y_pred, y_pred]))
    assert two["micro_f1"] == pytest.approx(s["micro_f1"])  # the same label twice: the same F1


def test_frequency_groups_are_thirds_by_training_count():
    counts = np.array([5, 100, 1, 50, 7, 3, 9])  # 7 labels -> 3 head, 2 medium, 2 tail
    g = frequency_groups(counts)
    assert list(g[[1, 3, 6]]) == ["head"] * 3
    assert list(g[[4, 0]]) == ["medium"] * 2
    assert list(g[[5, 2]]) == ["tail"] * 2
    # ties are broken by label index: the first of equal counts is more "head"
    assert list(frequency_groups([4, 4, 4])) == ["head", "medium", "tail"]


def test_grouped_f1_is_the_macro_f1_inside_each_group():
    rng = np.random.default_rng(0)
    y = (rng.random((40, 6)) < 0.3).astype(int)
    p = (rng.random((40, 6)) < 0.3).astype(int)
    counts = np.array([30, 20, 10, 5, 3, 1])
    out = grouped_f1(y, p, counts)
    f1 = 100 * f1_score(y, p, average=None, zero_division=0)
    assert out["head"] == pytest.approx(f1[:2].mean())
    assert out["medium"] == pytest.approx(f1[2:4].mean())
    assert out["tail"] == pytest.approx(f1[4:].mean())


def test_bad_input():
    with pytest.raises(ValueError, match="0/1"):
        multilabel_scores(np.array([[0.2, 1]]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="same shape"):
        multilabel_scores(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="2-D"):
        multilabel_scores(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="labels"):
        grouped_f1(np.zeros((2, 3)), np.zeros((2, 3)), [1, 2])


# ----------------------------------------------------------------------------- ranking metrics

import math  # noqa: E402

from sklearn.metrics import average_precision_score, ndcg_score  # noqa: E402

from abalone_core.evaluation.metrics import best_global_threshold, propensities, ranking_scores  # noqa: E402


def random_case(seed, n=40, n_labels=8, empty_docs=True):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, n_labels)) < 0.3).astype(int)
    y[:, -1] = 0  # a label without any positive
    if empty_docs:
        y[:3] = 0  # documents without any label
    return y, rng.normal(size=(n, n_labels))  # continuous scores: no ties


@pytest.mark.parametrize("seed", range(4))
def test_ndcg_and_map_match_sklearn(seed):
    y, s = random_case(seed)
    out = ranking_scores(y, s)
    for k in (3, 5):
        assert out[f"ndcg_at_{k}"] == pytest.approx(100 * ndcg_score(y, s, k=k))
    has_pos = [j for j in range(y.shape[1]) if y[:, j].any()]
    assert len(has_pos) < y.shape[1]
    ap = [average_precision_score(y[:, j], s[:, j]) for j in has_pos]
    assert out["map"] == pytest.approx(100 * np.mean(ap))
    assert "ndcg_at_1" not in out and set(out) == {"p_at_1", "p_at_3", "p_at_5", "ndcg_at_3", "ndcg_at_5", "map"}


@pytest.mark.parametrize("seed", range(3))
def test_precision_at_k_counts_hits_in_the_top_k(seed):
    y, s = random_case(seed)
    out = ranking_scores(y, s, ks=(1, 2, 4))
    for k in (1, 2, 4):
        per_doc = [sum(y[i, j] for j in sorted(range(y.shape[1]), key=lambda j: -s[i, j])[:k]) / k
                   for i in range(len(y))]
        assert out[f"p_at_{k}"] == pytest.approx(100 * np.mean(per_doc))


def test_precision_and_ndcg_by_hand():
    y = np.array([[1, 0, 1, 0],
                  [0, 1, 0, 0],
                  [0, 0, 0, 0]])  # third document has no label
    s = np.array([[0.9, 0.8, 0.1, 0.7],   # ranking 0, 1, 3, 2
                  [0.2, 0.1, 0.3, 0.4],   # ranking 3, 2, 0, 1
                  [0.5, 0.4, 0.3, 0.2]])
    out = ranking_scores(y, s, ks=(1, 3))
    # P@1: doc 0 hit, doc 1 miss, doc 2 (no label) counts 0 -> 1/3
    assert out["p_at_1"] == pytest.approx(100 * (1 + 0 + 0) / 3)
    # P@3: doc 0 has label 0 in its top 3 (not label 2) -> 1/3; doc 1 none -> 0
    assert out["p_at_3"] == pytest.approx(100 * (1 / 3 + 0 + 0) / 3)
    # nDCG@3: doc 0 DCG = 1/log2(2), IDCG = 1/log2(2) + 1/log2(3); doc 1 and doc 2 -> 0
    assert out["ndcg_at_3"] == pytest.approx(100 * (1 / (1 + 1 / math.log2(3))) / 3)


def test_ties_are_broken_by_label_index():
    y = np.array([[0, 1, 1], [1, 0, 0]])
    s = np.zeros((2, 3))  # every score equal: ranking 0, 1, 2
    out = ranking_scores(y, s, ks=(1, 2))
    assert out["p_at_1"] == pytest.approx(100 * (0 + 1) / 2)
    assert out["p_at_2"] == pytest.approx(100 * (1 / 2 + 1 / 2) / 2)
    # the same ranking with explicit scores gives the same nDCG
    assert out["ndcg_at_2"] == pytest.approx(ranking_scores(y, np.tile([3.0, 2.0, 1.0], (2, 1)), ks=(2,))["ndcg_at_2"])


def test_k_larger_than_the_number_of_labels():
    y = np.array([[1, 1, 0], [0, 0, 1]])
    s = np.array([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]])
    out = ranking_scores(y, s, ks=(5,), train_label_counts=[4, 2, 1], n_train=10)
    assert out["p_at_5"] == pytest.approx(100 * (2 / 5 + 1 / 5) / 2)  # all labels ranked, still / k
    # doc 0 ranks 2, 1, 0: its labels at ranks 2 and 3; doc 1 ranks 0, 1, 2: its label at rank 3
    doc0 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert out["ndcg_at_5"] == pytest.approx(100 * (doc0 + 1 / math.log2(4)) / 2)
    assert out["psp_at_5"] == pytest.approx(100.0)  # every true label is in the top 5
    assert out["ndcg_at_5"] == pytest.approx(100 * ndcg_score(y, s, k=5))


def test_propensities_follow_the_formula():
    n, a, b = 20, 0.55, 1.5
    c = (math.log(20) - 1) * (1.5 + 1) ** 0.55
    expected = [1 / (1 + c * math.exp(-a * math.log(count + b))) for count in (10, 1, 0, 4)]
    np.testing.assert_allclose(propensities([10, 1, 0, 4], n), expected)
    p = propensities([10, 1, 0, 4], n)
    assert p[0] > p[3] > p[1] > p[2] and ((p > 0) & (p < 1)).all()  # rarer label, smaller propensity


def test_psp_at_k_by_hand():
    counts, n = [10, 1, 0, 4], 20
    c = (math.log(20) - 1) * 2.5 ** 0.55
    w = [1 + c * (count + 1.5) ** -0.55 for count in counts]  # inverse propensities 1 / p_l
    y = np.array([[1, 1, 0, 0],
                  [0, 0, 1, 1],
                  [0, 0, 0, 0]])  # the empty document adds nothing to either side
    s = np.array([[0.9, 0.1, 0.5, 0.3],   # ranking 0, 2, 3, 1
                  [0.1, 0.2, 0.3, 0.9],   # ranking 3, 2, 1, 0
                  [0.4, 0.3, 0.2, 0.1]])
    out = ranking_scores(y, s, counts, n, ks=(1, 2))
    # k=1: hits doc0 label 0, doc1 label 3; best: doc0 label 1 (w1 > w0), doc1 label 2 (w2 > w3)
    assert out["psp_at_1"] == pytest.approx(100 * (w[0] + w[3]) / (w[1] + w[2]))
    # k=2: doc0 top {0, 2} -> label 0; doc1 top {3, 2} -> both; best: all four true labels
    assert out["psp_at_2"] == pytest.approx(100 * (w[0] + w[3] + w[2]) / (w[0] + w[1] + w[2] + w[3]))
    assert out["p_at_2"] == pytest.approx(100 * (1 / 2 + 2 / 2 + 0) / 3)
    # other A, B change the weights
    assert ranking_scores(y, s, counts, n, ks=(1,), propensity_a=0.5, propensity_b=0.4)["psp_at_1"] \
        != pytest.approx(out["psp_at_1"])


def test_a_perfect_ranking_scores_100_and_empty_documents_only_lower_precision():
    y, _ = random_case(0)
    y[3:, 0] = 1  # every non-empty document has a label
    counts = np.arange(1, y.shape[1] + 1) * 3
    # true labels outrank the rest, and among them the rarer (larger 1 / p_l) come first
    perfect = y * (2 + 1 / counts) + 0.001 * np.random.default_rng(1).random(y.shape)
    out = ranking_scores(y, perfect, counts, 100, ks=(1,))
    assert out["psp_at_1"] == pytest.approx(100.0)
    assert out["p_at_1"] == pytest.approx(100 * (len(y) - 3) / len(y))  # 3 empty documents count 0
    frequent_first = ranking_scores(y, y * (2 + counts / 100), counts, 100, ks=(1,))
    assert frequent_first["p_at_1"] == pytest.approx(out["p_at_1"]) and frequent_first["psp_at_1"] < 100
    non_empty = ranking_scores(y[3:], perfect[3:], counts, 100, ks=(1,))
    assert non_empty["p_at_1"] == pytest.approx(100.0) and non_empty["map"] == pytest.approx(100.0)


def test_map_ignores_labels_without_positives():
    y, s = random_case(2)
    base = ranking_scores(y, s)["map"]
    s2 = s.copy()
    s2[:, -1] = np.arange(len(y))  # rescoring the label with no positive changes nothing
    assert ranking_scores(y, s2)["map"] == pytest.approx(base)
    assert math.isnan(ranking_scores(np.zeros((3, 4), int), s[:3, :4])["map"])


def test_ranking_bad_input():
    y, s = random_case(0, n=5, n_labels=4)
    with pytest.raises(ValueError, match="y_score.*NaN"):
        ranking_scores(y, np.where(np.eye(5, 4) > 0, np.nan, s))
    with pytest.raises(ValueError, match="same shape"):
        ranking_scores(y, s[:, :3])
    with pytest.raises(ValueError, match="y_score must be a 2-D"):
        ranking_scores(y, s[0])
    with pytest.raises(ValueError, match="y_true must hold 0/1"):
        ranking_scores(s, s)
    with pytest.raises(ValueError, match="n_train"):
        ranking_scores(y, s, train_label_counts=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="train_label_counts must have shape"):
        ranking_scores(y, s, [1, 2, 3], 10)
    with pytest.raises(ValueError, match="n_train"):
        ranking_scores(y, s, [1, 2, 3, 40], 10)  # a label count above the number of documents
    with pytest.raises(ValueError, match="ks"):
        ranking_scores(y, s, ks=(0, 3))
    with pytest.raises(ValueError, match="y_score contains infinite"):
        ranking_scores(y, np.where(np.eye(5, 4) > 0, np.inf, s))


def test_global_threshold_closest_to_half_among_ties():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    s = np.where(y == 1, 0.65, 0.2)  # every threshold in (0.2, 0.65] is perfect
    assert best_global_threshold(y, s) == pytest.approx(0.5)
    s = np.where(y == 1, 0.8, 0.7)  # only 0.75 and 0.80 are perfect: 0.75 is closer to 0.5
    assert best_global_threshold(y, s) == pytest.approx(0.75)
    s = np.where(y == 1, 0.9, 0.1)
    assert best_global_threshold(y, s, grid=[0.6, 0.4]) == pytest.approx(0.4)  # equally close: the smaller


def test_global_threshold_micro_versus_macro():
    # label 0: 10 positives at 0.6, 10 negatives at 0.3; label 1 (rare): 1 positive at 0.3, rest at 0.1
    y = np.zeros((20, 2), int)
    y[:10, 0] = 1
    y[0, 1] = 1
    s = np.column_stack([np.where(y[:, 0] == 1, 0.6, 0.3), np.where(y[:, 1] == 1, 0.3, 0.1)])
    grid = [0.25, 0.55]
    # t=0.55: micro 2*10/(2*10+0+1) = 0.952, macro (1 + 0)/2; t=0.25: micro 22/32, macro (20/30 + 1)/2
    for t, micro, macro in ((0.55, 20 / 21, 0.5), (0.25, 22 / 32, (20 / 30 + 1) / 2)):
        p = (s >= t).astype(int)
        assert f1_score(y, p, average="micro") == pytest.approx(micro)
        assert f1_score(y, p, average="macro") == pytest.approx(macro)
    assert best_global_threshold(y, s, grid=grid) == pytest.approx(0.55)
    assert best_global_threshold(y, s, grid=grid, metric="macro_f1") == pytest.approx(0.25)
    with pytest.raises(ValueError, match="metric"):
        best_global_threshold(y, s, metric="accuracy")
    with pytest.raises(ValueError, match="grid"):
        best_global_threshold(y, s, grid=[])
    with pytest.raises(ValueError, match="y_score contains NaN"):
        best_global_threshold(y, np.full(y.shape, np.nan))


def test_example_labels_pick_the_label_nearest_the_median_with_test_documents():
    from abalone_core.evaluation.metrics import example_labels

    train = np.array([100, 90, 80, 40, 30, 20, 5, 4, 3])       # thirds: head 0-2, medium 3-5, tail 6-8
    test = np.array([10, 9, 8, 4, 3, 2, 0, 1, 1])
    assert example_labels(train, test) == {"head": 1, "medium": 4, "tail": 7}  # tail: median of 4 and 3 -> tie, the more frequent
    assert example_labels(train, np.array([1, 1, 1, 1, 1, 1, 0, 0, 0])) == {"head": 1, "medium": 4}
    with pytest.raises(ValueError, match="one shape"):
        example_labels(train, test[:-1])


def test_grouped_f1_of_fewer_than_three_labels_leaves_the_empty_groups_nan_without_a_warning():
    import warnings

    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    p = np.array([[1, 0], [0, 0], [1, 1], [1, 0]])
    f1 = per_label_f1(y, p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        two = grouped_f1(y, p, [3, 10])  # label 1 is the more frequent: head
        one = grouped_f1(y[:, :1], p[:, :1], [3])
    assert two["head"] == pytest.approx(f1[1]) and two["medium"] == pytest.approx(f1[0])
    assert math.isnan(two["tail"])
    assert one["head"] == pytest.approx(f1[0]) and math.isnan(one["medium"]) and math.isnan(one["tail"])
    assert list(frequency_groups([3, 10])) == ["medium", "head"] and list(frequency_groups([3])) == ["head"]
