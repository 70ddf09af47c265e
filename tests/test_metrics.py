import numpy as np
import pytest
from sklearn.metrics import f1_score, hamming_loss

from abalone_core.metrics import frequency_groups, grouped_f1, multilabel_scores, per_label_f1


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
