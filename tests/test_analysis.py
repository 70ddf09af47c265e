import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import davies_bouldin_score, silhouette_score

from abalone_core import analysis
from abalone_core.evaluation.metrics import frequency_groups


def random_labels(n, n_labels, p=0.25, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, n_labels)) < p).astype(int)


def long_tailed(n=2000, n_labels=24, seed=0):
    """Zipf-like label frequencies, at least one label per document."""
    rng = np.random.default_rng(seed)
    p = 0.6 / np.arange(1, n_labels + 1)
    y = (rng.random((n, n_labels)) < p).astype(int)
    empty = ~y.any(axis=1)
    y[empty, rng.integers(0, n_labels, empty.sum())] = 1
    return y


# ---------------------------------------------------------------- lack of positives

def brute_missing(batch, keys_extra, prototypes=False):
    """Direct loops: keys are the batch, then the extra keys, then prototypes."""
    keys = [set(np.flatnonzero(r)) for r in batch] + [set(np.flatnonzero(r)) for r in keys_extra]
    if prototypes:
        keys += [{c} for c in range(batch.shape[1])]
    pairs = np.zeros(batch.shape, bool)
    anchors = np.zeros(batch.shape[0], bool)
    for i in range(batch.shape[0]):
        mine = keys[i]
        others = [k for j, k in enumerate(keys) if j != i]
        for c in mine:
            pairs[i, c] = not any(c in k for k in others)
        anchors[i] = bool(mine) and not any(mine & k for k in others)
    return pairs, anchors


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("prototypes", [False, True])
def test_missing_positives_matches_loops(seed, prototypes):
    batch = random_labels(9, 7, p=0.2, seed=seed)
    queue = random_labels(5, 7, p=0.15, seed=seed + 10)
    for q in (None, queue):
        pairs, anchors = analysis.missing_positives(batch, q, prototypes=prototypes)
        want_pairs, want_anchors = brute_missing(batch, np.zeros((0, 7)) if q is None else q, prototypes)
        np.testing.assert_array_equal(pairs, want_pairs)
        np.testing.assert_array_equal(anchors, want_anchors)
        if q is None and not prototypes:
            assert pairs.any()  # the case is not trivial


@pytest.mark.parametrize("seed", [3, 4])
def test_lack_of_positives_full_batch_matches_loops(seed):
    # B = N and K = 0: every draw is the whole matrix, so the shares are exact
    y = random_labels(12, 6, p=0.2, seed=seed)
    groups = frequency_groups(y.sum(axis=0))
    frame = analysis.lack_of_positives(y, [12], n_draws=3, seed=seed, groups=groups)
    pairs, anchors = brute_missing(y, np.zeros((0, 6)))
    labelled = y.any(axis=1)
    row = frame.set_index("group")
    assert row.loc["all", "anchors_without_positive"] == pytest.approx(anchors[labelled].mean())
    assert row.loc["all", "pairs_without_positive"] == pytest.approx(pairs.sum() / y.sum())
    silent = pairs & ~anchors[:, None]                  # no positive for the label, one for the anchor
    assert row.loc["all", "silent_pairs"] == pytest.approx(silent.sum() / y.sum())
    assert row.loc["all", "anchors_without_label"] == pytest.approx(1 - labelled.mean())
    for g in ("head", "medium", "tail"):
        cols = groups == g
        if y[:, cols].sum() == 0:
            assert np.isnan(row.loc[g, "pairs_without_positive"])
            continue
        assert row.loc[g, "pairs_without_positive"] == pytest.approx(pairs[:, cols].sum() / y[:, cols].sum())
        assert row.loc[g, "silent_pairs"] == pytest.approx(silent[:, cols].sum() / y[:, cols].sum())
        carriers = y[:, cols].any(axis=1)
        assert row.loc[g, "anchors_without_positive"] == pytest.approx(anchors[carriers].mean())
        assert row.loc[g, "pairs"] == pytest.approx(y[:, cols].sum())


def test_silent_pairs_are_those_whose_anchor_keeps_a_positive():
    # whole matrix as the batch; labels 1 to 5 occur once each
    y = np.array([[1, 0, 1, 0, 0, 0],    # label 2 alone, label 0 shared: silent pair (0, 2)
                  [1, 0, 0, 0, 0, 0],
                  [0, 1, 0, 0, 0, 0],    # label 1 alone and nothing else: the anchor lacks, not silent
                  [1, 0, 0, 1, 0, 0],    # silent pair (3, 3)
                  [0, 0, 0, 0, 1, 1]])   # both labels alone: the anchor lacks, not silent
    groups = np.array(["head", "tail", "tail", "tail", "tail", "tail"])
    frame = analysis.lack_of_positives(y, [5], n_draws=2, seed=0, groups=groups).set_index("group")
    assert frame.loc["all", "pairs_without_positive"] == pytest.approx(5 / 8)
    assert frame.loc["all", "silent_pairs"] == pytest.approx(2 / 8)
    assert frame.loc["tail", "silent_pairs"] == pytest.approx(2 / 5)
    assert frame.loc["head", "silent_pairs"] == 0
    assert frame.loc["all", "anchors_without_positive"] == pytest.approx(2 / 5)


def test_lack_of_positives_falls_with_batch_and_queue_and_prototypes_fix_it():
    y = long_tailed()
    sizes = [4, 16, 64, 256]
    frame = analysis.lack_of_positives(y, sizes, queue_sizes=(0, 256), n_draws=60, seed=0)
    assert set(frame["group"]) == {"all", "head", "medium", "tail"}
    assert len(frame) == len(sizes) * 2 * 4
    no_queue = frame[(frame["queue_size"] == 0)]
    for g in ("all", "tail"):
        for col in ("pairs_without_positive", "anchors_without_positive"):
            curve = no_queue[no_queue["group"] == g].sort_values("batch_size")[col].to_numpy()
            assert np.all(np.diff(curve) < 0), (g, col, curve)
    # tail labels lack positives far more often than head labels
    small = no_queue[no_queue["batch_size"] == 16].set_index("group")
    assert small.loc["tail", "pairs_without_positive"] > 3 * small.loc["head", "pairs_without_positive"]
    # a queue supplies positives
    both = frame[frame["group"] == "all"].pivot(index="batch_size", columns="queue_size",
                                                 values="pairs_without_positive")
    assert (both[256] < both[0]).all()
    # a silent pair lacks a positive, so there are never more silent pairs than pairs without one
    assert (frame["silent_pairs"] <= frame["pairs_without_positive"]).all()
    assert (frame["silent_pairs"] > 0).any()
    # prototypes: by construction nothing lacks a positive
    assert (frame["pairs_without_positive_proto"] == 0).all()
    assert (frame["anchors_without_positive_proto"] == 0).all()


def test_lack_of_positives_is_seeded_and_checks_input():
    y = long_tailed(300)
    a = analysis.lack_of_positives(y, [8], n_draws=10, seed=5)
    b = analysis.lack_of_positives(y, [8], n_draws=10, seed=5)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match="distinct documents"):
        analysis.lack_of_positives(y, [200], queue_sizes=[200])
    with pytest.raises(ValueError, match="0/1"):
        analysis.lack_of_positives(y * 2, [8])
    with pytest.raises(ValueError, match="batch_sizes"):
        analysis.lack_of_positives(y, [0])


# ---------------------------------------------------------------- attraction / repulsion

def test_attraction_repulsion_matches_loops():
    rng = np.random.default_rng(0)
    y = random_labels(15, 5, p=0.35, seed=1)
    y[:, 4] = 0
    y[0, 4] = 1                         # a label with a single document: S_att undefined
    z = rng.normal(size=(15, 4))
    frame = analysis.attraction_repulsion(z, y)
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    for c in range(5):
        pos = np.flatnonzero(y[:, c])
        neg = np.flatnonzero(y[:, c] == 0)
        att = [-np.mean([zn[i] @ zn[j] for j in pos if j != i]) for i in pos if len(pos) > 1]
        rep = [np.mean([zn[i] @ zn[j] for j in neg]) for i in pos]
        row = frame.iloc[c]
        assert row["n_anchors"] == len(pos)
        if len(pos) > 1:
            assert row["s_att"] == pytest.approx(np.mean(att))
        else:
            assert np.isnan(row["s_att"])
        assert row["s_rep"] == pytest.approx(np.mean(rep))


def test_attraction_repulsion_sees_clusters():
    # documents of label 0 sit together, label 1 elsewhere: S_att near -1, S_rep near -1
    y = np.array([[1, 0]] * 5 + [[0, 1]] * 5)
    z = np.array([[1.0, 0.01 * i] for i in range(5)] + [[-1.0, 0.01 * i] for i in range(5)])
    frame = analysis.attraction_repulsion(z, y, groups=["head", "tail"], names=["a", "b"])
    assert list(frame["name"]) == ["a", "b"] and list(frame["group"]) == ["head", "tail"]
    assert (frame["s_att"] < -0.99).all() and (frame["s_rep"] < -0.99).all()


# ---------------------------------------------------------------- term counts

def brute_terms(batch, queue, loss, beta):
    keys = np.concatenate([batch, queue]) if queue is not None else batch
    n_b, n_l = batch.shape
    att = np.zeros(n_l)
    rep = np.zeros(n_l)
    rep_from = np.zeros(n_l)
    for i in range(n_b):
        yi = set(np.flatnonzero(batch[i]))
        others = [k for k in range(len(keys)) if k != i]
        sets = {k: set(np.flatnonzero(keys[k])) for k in others}
        if loss == "base":
            w = {k: len(yi & sets[k]) / len(yi | sets[k]) if yi | sets[k] else 0.0 for k in others}
            n_i = sum(w.values())
            if n_i == 0:
                continue
            for k in others:
                for c in yi & sets[k]:
                    att[c] += w[k] / n_i / len(yi & sets[k])
            g = {k: 1.0 for k in others}
            protos = 0.0
        else:
            if not yi:
                continue
            for c in yi:
                att[c] += 1 / len(yi)
            g = {k: beta for k in others}
            protos = 1.0
        total = sum(g.values()) + protos * n_l
        for c in yi:
            rep[c] += total / len(yi)
        for k in others:
            for c in sets[k]:
                rep_from[c] += g[k] / len(sets[k])
        rep_from += protos
    return att, rep, rep_from


@pytest.mark.parametrize("loss", ["base", "msc"])
@pytest.mark.parametrize("with_queue", [False, True])
def test_term_counts_match_loops(loss, with_queue):
    batch = random_labels(8, 5, p=0.3, seed=7)
    queue = random_labels(6, 5, p=0.3, seed=8) if with_queue else None
    frame = analysis.term_counts(batch, loss=loss, beta=0.2, queue_labels=queue)
    att, rep, rep_from = brute_terms(batch, queue, loss, 0.2)
    np.testing.assert_allclose(frame["attraction"], att, atol=1e-12)
    np.testing.assert_allclose(frame["repulsion"], rep, atol=1e-12)
    np.testing.assert_allclose(frame["repulsion_from"], rep_from, atol=1e-12)
    for col in ("attraction_share", "repulsion_share", "repulsion_from_share"):
        assert frame[col].sum() == pytest.approx(1.0)


def test_msc_attraction_is_one_per_anchor_split_evenly():
    y = long_tailed(64, 12, seed=2)
    frame = analysis.term_counts(y, loss="msc")
    # each anchor spreads exactly 1 over its labels, 1/|y_i| each
    assert frame["attraction"].sum() == pytest.approx(y.any(axis=1).sum())
    np.testing.assert_allclose(frame["attraction"], (y / y.sum(axis=1, keepdims=True)).sum(axis=0))
    proto = frame["attraction_prototype"]
    assert ((proto > 0) <= (frame["attraction"] > 0)).all() and (proto <= frame["attraction"] + 1e-12).all()


def test_base_gives_head_labels_the_attraction_msc_does_not():
    # every document: one head label (0-2) and one rarer label (3-11); per-anchor
    # attraction under L_MSC is then 1/2 for every label, under L_Base it follows frequency
    rng = np.random.default_rng(0)
    y = np.zeros((48, 12), int)
    y[np.arange(48), rng.integers(0, 3, 48)] = 1
    y[np.arange(48), 3 + np.minimum(rng.geometric(0.4, 48) - 1, 8)] = 1
    groups = frequency_groups(y.sum(axis=0))
    base = analysis.term_counts(y, loss="base", groups=groups)
    msc = analysis.term_counts(y, loss="msc", groups=groups)
    used = msc["n_anchors"] > 0
    np.testing.assert_allclose(msc["attraction_per_anchor"][used], 0.5)
    per_group = base.groupby("group")["attraction_per_anchor"].mean()
    assert per_group["head"] > per_group["tail"] + 0.2
    share_base = base.groupby("group")["attraction_share"].sum()
    share_msc = msc.groupby("group")["attraction_share"].sum()
    assert share_base["head"] > share_base["tail"]
    assert share_msc["tail"] > share_base["tail"]
    # beta moves repulsion mass from instances to prototypes: more even over labels
    spread = lambda f: f["repulsion_from_share"].max() - f["repulsion_from_share"].min()
    assert spread(msc) < spread(base)


def test_term_counts_rejects_bad_input():
    y = random_labels(5, 3)
    with pytest.raises(ValueError, match="loss"):
        analysis.term_counts(y, loss="bce")
    with pytest.raises(ValueError, match="beta"):
        analysis.term_counts(y, loss="msc", beta=0)
    with pytest.raises(ValueError, match="labels"):
        analysis.term_counts(y, queue_labels=random_labels(4, 2))


# ---------------------------------------------------------------- gradient mass

def test_gradient_mass_with_a_toy_loss():
    # loss = scale * sum_i |y_i| ||z_i||^2  ->  grad_i = 2 scale |y_i| z_i
    def toy(z, y, scale):
        return scale * (y.sum(dim=1) * (z ** 2).sum(dim=1)).sum()

    rng = np.random.default_rng(0)
    z = rng.normal(size=(10, 3))
    y = random_labels(10, 4, p=0.4, seed=3)
    frame = analysis.gradient_mass(z, y, toy, scale=0.5)
    norms = 2 * 0.5 * y.sum(axis=1) * np.linalg.norm(z, axis=1)
    for c in range(4):
        carriers = y[:, c] == 1
        assert frame.loc[c, "n_docs"] == carriers.sum()
        if carriers.any():
            assert frame.loc[c, "grad_norm"] == pytest.approx(norms[carriers].mean(), rel=1e-5)
    assert frame["grad_share"].sum() == pytest.approx(1.0)


def test_gradient_mass_rejects_constant_loss():
    with pytest.raises(ValueError, match="depend"):
        analysis.gradient_mass(np.ones((3, 2)), np.eye(3, dtype=int), lambda z, y: torch.tensor(1.0))


def test_gradient_mass_with_project_losses():
    losses = pytest.importorskip("abalone_core.method.losses")
    rng = np.random.default_rng(1)
    y = long_tailed(32, 6, seed=1)
    z = rng.normal(size=(32, 8))
    base = analysis.gradient_mass(z, y, losses.base_loss, temperature=0.1)
    protos = torch.tensor(rng.normal(size=(6, 8)), dtype=torch.float32)
    msc = analysis.gradient_mass(z, y, losses.msc_loss, prototypes=protos, temperature=0.1, beta=0.1)
    for frame in (base, msc):
        assert np.isfinite(frame["grad_norm"]).all() and (frame["grad_norm"] > 0).all()


# ---------------------------------------------------------------- representation quality

def hand_made():
    # combinations: A=[1,0,0] x3, B=[0,1,0] x2, C=[1,1,0] x2 (after B), D=[0,0,1] x1, empty x2
    A, B, C, D, E = [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]
    return np.array([B, A, E, C, A, B, D, C, A, E])


def test_combination_classes_hand_made():
    y = hand_made()
    mask, ids = analysis.combination_classes(y, 0.5)          # ceil(0.5 * 4) = 2 classes
    np.testing.assert_array_equal(mask, [1, 1, 0, 0, 1, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(ids, [1, 0, 0, 1, 0])       # A most frequent, B beats C by first sight
    mask, ids = analysis.combination_classes(y, 0.6)          # ceil(2.4) = 3
    np.testing.assert_array_equal(mask, [1, 1, 0, 1, 1, 1, 0, 1, 1, 0])
    assert sorted(set(ids)) == [0, 1, 2]
    mask, ids = analysis.combination_classes(y, 0.1)          # at least 2
    assert len(set(ids)) == 2
    mask, ids = analysis.combination_classes(y, 1.0)
    assert mask.sum() == 8 and len(set(ids)) == 4
    mask, ids = analysis.combination_classes(y, 1.0, drop_empty=False)
    assert mask.all() and len(set(ids)) == 5


def test_combination_classes_errors():
    with pytest.raises(ValueError, match="at least 2 classes"):
        analysis.combination_classes(np.array([[1, 0], [1, 0], [0, 0]]), 1.0)
    with pytest.raises(ValueError, match="share"):
        analysis.combination_classes(hand_made(), 0.0)


def clustered(n_per=30, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    combos = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1]])
    counts = [n_per * 3, n_per * 2, n_per * 2, n_per, n_per, n_per // 2]
    y = np.concatenate([np.repeat(c[None], k, axis=0) for c, k in zip(combos, counts)])
    centres = rng.normal(size=(len(combos), 16))
    which = np.concatenate([np.full(k, i) for i, k in enumerate(counts)])
    z = centres[which] + noise * rng.normal(size=(len(y), 16))
    return z, y


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_clustering_scores_match_sklearn(metric):
    z, y = clustered()
    frame = analysis.clustering_scores(z, y, shares=(0.5, 1.0), metric=metric)
    assert list(frame["share"]) == [0.5, 1.0]
    for _, row in frame.iterrows():
        mask, ids = analysis.combination_classes(y, row["share"])
        assert row["n_docs"] == mask.sum() and row["n_classes"] == len(set(ids))
        assert row["silhouette"] == pytest.approx(silhouette_score(z[mask], ids, metric=metric))
        x = z / np.linalg.norm(z, axis=1, keepdims=True) if metric == "cosine" else z
        assert row["davies_bouldin"] == pytest.approx(davies_bouldin_score(x[mask], ids))
        assert row["silhouette_metric"] == metric
    assert frame.loc[0, "n_classes"] == math.ceil(0.5 * 6)


def test_clustering_scores_separate_beats_random():
    z, y = clustered()
    noise = np.random.default_rng(1).normal(size=z.shape)
    good = analysis.clustering_scores(z, y, shares=(1.0,)).iloc[0]
    bad = analysis.clustering_scores(noise, y, shares=(1.0,)).iloc[0]
    assert good["silhouette"] > bad["silhouette"] + 0.3
    assert good["davies_bouldin"] < bad["davies_bouldin"]


def test_clustering_scores_sampling_is_seeded_and_errors_are_clear():
    z, y = clustered()
    a = analysis.clustering_scores(z, y, sample_size=60, seed=3)
    b = analysis.clustering_scores(z, y, sample_size=60, seed=3)
    assert a["silhouette"].iloc[0] == b["silhouette"].iloc[0]
    with pytest.raises(ValueError, match="metric"):
        analysis.clustering_scores(z, y, metric="manhattan")
    with pytest.raises(ValueError, match="rows"):
        analysis.clustering_scores(z[:-1], y)
    with pytest.raises(ValueError, match="fewer classes than documents"):
        analysis.clustering_scores(np.eye(3), np.eye(3, dtype=int), shares=(1.0,))


@pytest.mark.slow
def test_project_umap_shape_and_seed():
    z, _ = clustered(n_per=10)
    a = analysis.project_umap(z, n_neighbors=5, seed=0)
    b = analysis.project_umap(z, n_neighbors=5, seed=0)
    assert a.shape == (len(z), 2) and np.isfinite(a).all()
    np.testing.assert_allclose(a, b)


def test_project_umap_rejects_too_few_documents():
    with pytest.raises(ValueError, match="n_neighbors"):
        analysis.project_umap(np.ones((5, 3)), n_neighbors=15)
