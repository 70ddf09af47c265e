"""abalone_core.evaluate: embeddings and probabilities in input order, scores at two thresholds."""
import numpy as np
import pytest
import torch

from abalone_core.evaluate import embed, predict_proba, split_scores
from abalone_core.metrics import best_global_threshold, multilabel_scores
from abalone_core.model import TextClassifier
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
