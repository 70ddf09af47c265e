"""abalone_core.evaluation.evaluate: embeddings and probabilities in input order, scores at two thresholds."""
import numpy as np
import pytest
import torch

from abalone_core.evaluation.evaluate import embed, predict_proba, split_scores
from abalone_core.evaluation.metrics import best_global_threshold, label_thresholds, multilabel_scores, per_label_f1
from abalone_core.method.model import TextClassifier
from helpers import tiny_encoder


def documents(n=13, seed=0):
    """Token-id lists of very different lengths, so that length buckets reorder them."""
    rng = np.random.default_rng(seed)
    return [[2] + rng.integers(5, 50, int(k)).tolist() + [3] for k in rng.permutation(np.arange(1, n + 1) * 3)]


@torch.no_grad()
def one_at_a_time(fn, ids):
    return np.stack([fn(torch.tensor([x]), torch.ones(1, len(x), dtype=torch.long))[0].numpy() for x in ids])


def test_embed_returns_representations_in_input_order():
    enc = tiny_encoder().eval()
    ids = documents()
    x = embed(enc, ids, pad_token_id=0, batch_size=4, progress=False)
    assert x.shape == (len(ids), enc.hidden) and x.dtype == np.float32
    np.testing.assert_allclose(x, one_at_a_time(enc.represent, ids), rtol=1e-4, atol=1e-5)
    reversed_x = embed(enc, ids[::-1], pad_token_id=0, batch_size=4, progress=False)
    np.testing.assert_allclose(reversed_x[::-1], x, rtol=1e-4, atol=1e-5)


def test_embed_discards_the_projection_head():
    enc = tiny_encoder(dim=3).eval()
    assert embed(enc, documents(4), pad_token_id=0, progress=False).shape == (4, enc.hidden)


def test_predict_proba_is_the_sigmoid_of_the_logits_in_input_order():
    torch.manual_seed(0)
    model = TextClassifier(tiny_encoder(), num_labels=4).eval()
    ids = documents()
    p = predict_proba(model, ids, pad_token_id=0, batch_size=5, progress=False)
    assert p.shape == (len(ids), 4) and p.dtype == np.float32 and ((p > 0) & (p < 1)).all()
    expected = torch.sigmoid(torch.from_numpy(one_at_a_time(model, ids))).numpy()
    np.testing.assert_allclose(p, expected, rtol=1e-4, atol=1e-5)


def probabilities(seed=0, n=60, labels=6):
    """Labels and probabilities that are informative but low: 0.5 predicts few labels."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, labels)) < 0.3).astype(np.int8)
    y[:, 0] = 1
    p = np.clip(0.25 * y + rng.random((n, labels)) * 0.3, 0, 1)
    return y, p


def test_split_scores_at_the_fixed_and_the_tuned_threshold():
    yv, pv = probabilities(0)
    yt, pt = probabilities(1)
    counts = yv.sum(0) * 10 + np.arange(6)
    out = split_scores({"validation": yv, "test": yt}, {"validation": pv, "test": pt}, counts, n_train=600)
    tuned = best_global_threshold(yv, pv)
    assert out["threshold"] == 0.5 and out["tuned_threshold"] == pytest.approx(tuned) and tuned < 0.5
    for split, y, p in (("validation", yv, pv), ("test", yt, pt)):
        s = out[split]
        at_half = multilabel_scores(y, (p >= 0.5).astype(np.int8))
        at_tuned = multilabel_scores(y, (p >= tuned).astype(np.int8))
        for k in ("micro_f1", "macro_f1", "hamming"):
            assert s[k] == pytest.approx(at_half[k]) and s[f"{k}_tuned"] == pytest.approx(at_tuned[k])
        assert s["micro_f1_tuned"] > s["micro_f1"]
        assert {"f1_head", "f1_medium", "f1_tail", "p_at_1"} <= set(s) and len(s["per_label_f1"]) == 6

    # the tuned threshold comes from validation only: other test probabilities leave it alone
    again = split_scores({"validation": yv, "test": yt}, {"validation": pv, "test": pt[::-1]}, counts, n_train=600)
    assert again["tuned_threshold"] == out["tuned_threshold"]
    assert again["validation"] == out["validation"]

    # another fixed threshold moves the untuned scores only
    low = split_scores({"validation": yv, "test": yt}, {"validation": pv, "test": pt}, counts, n_train=600,
                       threshold=0.3)
    assert low["threshold"] == 0.3 and low["tuned_threshold"] == out["tuned_threshold"]
    assert low["test"]["micro_f1"] == pytest.approx(multilabel_scores(yt, (pt >= 0.3).astype(np.int8))["micro_f1"])
    assert low["test"]["micro_f1_tuned"] == out["test"]["micro_f1_tuned"]


def test_label_thresholds_maximise_each_labels_validation_f1():
    # label 0: positives score 0.6 and 0.7, negatives 0.1 and 0.65 -> best cut keeps {0.7, 0.65, 0.6}
    # (F1 0.8) over {0.7} (F1 0.67); label 1: perfectly separated at a low score.
    y = np.array([[1, 0], [1, 1], [0, 1], [0, 0], [0, 0]], dtype=np.int8)
    s = np.array([[0.6, 0.1], [0.7, 0.2], [0.1, 0.21], [0.65, 0.05], [0.0, 0.06]])
    t = label_thresholds(y, s, fallback=0.5)
    assert 0.1 < t[0] <= 0.6  # midpoint between 0.6 and the next lower score, 0.1
    assert t[0] == pytest.approx(0.35)
    assert 0.1 < t[1] <= 0.2 and t[1] == pytest.approx(0.15)  # between 0.2 (positive) and 0.1 (negative)
    pred = (s >= t).astype(np.int8)
    assert per_label_f1(y, pred)[1] == pytest.approx(100.0)
    assert per_label_f1(y, pred)[0] == pytest.approx(80.0)


def test_label_thresholds_keep_the_fallback_for_labels_without_a_validation_positive():
    y = np.array([[1, 0], [0, 0], [1, 0]], dtype=np.int8)
    s = np.array([[0.9, 0.8], [0.2, 0.7], [0.8, 0.1]])
    t = label_thresholds(y, s, fallback=0.45)
    assert t[1] == 0.45 and t[0] != 0.45


def test_label_thresholds_depend_only_on_the_order_of_a_labels_scores():
    # decision values and their sigmoid choose the same cut: same predictions on new scores
    yv, pv = probabilities(3)
    yt, pt = probabilities(4)
    logit = lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))  # noqa: E731
    on_probs = label_thresholds(yv, pv, fallback=0.5)
    on_values = label_thresholds(yv, logit(pv), fallback=0.0)
    cut_p = yv.any(0)
    a = (pt >= on_probs)[:, cut_p]
    b = (logit(pt) >= on_values)[:, cut_p]
    assert (a == b).mean() > 0.99  # midpoints differ by the transform's curvature only


def test_split_scores_add_the_per_label_rule_for_probabilities_and_decision_values():
    yv, pv = probabilities(0)
    yt, pt = probabilities(1)
    counts = yv.sum(0) * 10 + np.arange(6)
    out = split_scores({"validation": yv, "test": yt}, {"validation": pv, "test": pt}, counts, n_train=600)
    t = np.asarray(out["label_thresholds"])
    assert t.shape == (6,) and np.allclose(t, label_thresholds(yv, pv, out["tuned_threshold"]))
    expected = multilabel_scores(yt, (pt >= t).astype(np.int8))
    for k in ("micro_f1", "macro_f1", "hamming"):
        assert out["test"][f"{k}_label_tuned"] == pytest.approx(expected[k])
    assert {"f1_head_label_tuned", "f1_medium_label_tuned", "f1_tail_label_tuned"} <= set(out["test"])
    # tuned on validation, each label's F1 there is at least its F1 at the global threshold
    assert out["validation"]["macro_f1_label_tuned"] >= out["validation"]["macro_f1_tuned"] - 1e-9

    # decision values: the fixed rule is the sign, the global rule works on their sigmoid
    dv, dt = 4 * (pv - 0.4), 4 * (pt - 0.4)
    d = split_scores({"validation": yv, "test": yt}, {"validation": dv, "test": dt}, counts, n_train=600,
                     threshold=0.0, decision_values=True)
    assert d["test"]["micro_f1"] == pytest.approx(multilabel_scores(yt, (dt >= 0).astype(np.int8))["micro_f1"])
    sig = 1 / (1 + np.exp(-dv))
    g = best_global_threshold(yv, sig)
    assert d["tuned_threshold"] == pytest.approx(np.log(g / (1 - g)))
    assert d["test"]["micro_f1_tuned"] == pytest.approx(
        multilabel_scores(yt, (1 / (1 + np.exp(-dt)) >= g).astype(np.int8))["micro_f1"])
    assert d["test"]["macro_f1_label_tuned"] == pytest.approx(multilabel_scores(
        yt, (dt >= np.asarray(d["label_thresholds"])).astype(np.int8))["macro_f1"])


def test_scores_are_saved_as_float16_and_read_back(tmp_path):
    from abalone_core.evaluation.evaluate import read_scores, save_scores

    p = {"validation": np.random.default_rng(0).random((5, 3)), "test": np.random.default_rng(1).random((4, 3))}
    path = save_scores(tmp_path / "scores.npz", p)
    back = read_scores(path)
    assert set(back) == {"validation", "test"} and back["test"].shape == (4, 3)
    assert np.allclose(back["validation"], p["validation"], atol=1e-3)
    assert np.load(path)["test"].dtype == np.float16
