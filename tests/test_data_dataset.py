"""The container (MultiLabelDataset), its views, the rare-label rule and the stratified split."""
import logging
import warnings

import numpy as np
import pytest

from abalone_core.data import SPLITS, LabelCoverageError, MultiLabelDataset, stratified_split


def toy(n_train=6, n_val=2, n_test=2):
    """A small valid dataset: label 'a' on even rows, 'b' on rows divisible by 3."""
    n = n_train + n_val + n_test
    labels = np.array([[i % 2 == 0, i % 3 == 0, 0] for i in range(n)], dtype=np.uint8)
    splits = ["train"] * n_train + ["validation"] * n_val + ["test"] * n_test
    texts = [f"doc {i} " + "word " * i for i in range(n)]
    return MultiLabelDataset("toy", texts, labels, ["a", "b", "c"], np.array(splits))


def interleaved(n=60):
    """Documents whose splits alternate (train, train, validation, test, ...), so positions matter."""
    pattern = ["train", "train", "validation", "train", "test"]
    splits = np.array([pattern[i % len(pattern)] for i in range(n)])
    labels = np.array([[i % 2 == 0, i % 7 == 0] for i in range(n)], dtype=np.uint8)
    return MultiLabelDataset("mixed", [f"document {i}" for i in range(n)], labels, ["p", "q"], splits)


def draw_before_head_was_fixed(splits, wanted: dict, seed: int) -> np.ndarray:
    """Rows that ``head(wanted, seed=seed)`` returned before it took the first documents.

    This is the algorithm of commit 3d79d79 (one generator for all splits, train then
    validation then test, without replacement, sorted). Runs with a ``subset`` setting
    trained on exactly these rows, so ``sample`` and ``head(..., seed=)`` must keep them.
    """
    rng = np.random.default_rng(seed)
    keep = []
    for s in ("train", "validation", "test"):
        rows = np.flatnonzero(splits == s)
        keep.append(rng.choice(rows, size=min(int(wanted.get(s, 0)), rows.size), replace=False))
    return np.sort(np.concatenate(keep))


# --------------------------------------------------------------------------- construction

def test_construction_validates_inputs():
    ds = toy()
    assert len(ds) == 10 and ds.labels.dtype == np.uint8
    with pytest.raises(ValueError, match="2 of 3 texts are empty"):
        MultiLabelDataset("x", ["ok", "", " "], np.zeros((3, 1)), ["a"], np.array(["train"] * 3))
    with pytest.raises(ValueError, match="0/1"):
        MultiLabelDataset("x", ["a", "b"], np.array([[2], [0]]), ["a"], np.array(["train"] * 2))
    with pytest.raises(ValueError, match="shape"):
        MultiLabelDataset("x", ["a", "b"], np.zeros(2), ["a"], np.array(["train"] * 2))
    with pytest.raises(ValueError, match="label names"):
        MultiLabelDataset("x", ["a", "b"], np.zeros((2, 2)), ["a"], np.array(["train"] * 2))
    with pytest.raises(ValueError, match="unknown split"):
        MultiLabelDataset("x", ["a", "b"], np.zeros((2, 1)), ["a"], np.array(["train", "dev"]))


def test_label_only_outside_training_is_refused_with_advice():
    labels = np.array([[1, 0], [1, 0], [0, 1]])
    with pytest.raises(LabelCoverageError, match=r"\['rare'\].*min_train_count") as err:
        MultiLabelDataset("x", ["a", "b", "c"], labels, ["common", "rare"], np.array(["train", "train", "test"]))
    assert err.value.missing == ["rare"] and isinstance(err.value, ValueError)


# --------------------------------------------------------------------------- views

def test_split_subset_and_views():
    ds = toy()
    test = ds.split("test")
    assert len(test) == 2 and set(test.splits) == {"test"}
    assert test.texts == ds.texts[-2:]
    with pytest.raises(ValueError, match="unknown split"):
        ds.split("dev")
    mask = np.zeros(len(ds), dtype=bool)
    mask[[1, 4]] = True
    sub = ds.subset(mask)
    assert sub.texts == [ds.texts[1], ds.texts[4]]
    assert np.array_equal(sub.labels, ds.labels[[1, 4]])
    assert ds.subset([4, 1]).texts == [ds.texts[4], ds.texts[1]]
    with pytest.raises(ValueError):
        ds.subset(np.ones(3, dtype=bool))


def test_head_returns_first_documents_of_each_split():
    ds = interleaved()
    first = ds.head(2)
    rows = {s: np.flatnonzero(ds.splits == s) for s in SPLITS}
    expected = np.sort(np.concatenate([rows[s][:2] for s in SPLITS]))
    assert first.texts == [ds.texts[i] for i in expected]
    assert first.texts[:3] == ["document 0", "document 1", "document 2"]
    some = ds.head({"train": 3, "test": 100})
    assert some.split("train").texts == [ds.texts[i] for i in rows["train"][:3]]
    assert some.split("test").texts == ds.split("test").texts  # bounded by the split's size
    assert not (some.splits == "validation").any()
    assert ds.head(0).texts == []
    with pytest.raises(ValueError):
        ds.head({"dev": 3})
    with pytest.raises(ValueError):
        ds.head(-1)


def test_sample_is_reproducible_and_bounded():
    ds = toy(n_train=30, n_val=10, n_test=10)
    h1, h2 = ds.sample(4, seed=1), ds.sample(4, seed=1)
    assert h1.texts == h2.texts
    assert [int((h1.splits == s).sum()) for s in SPLITS] == [4, 4, 4]
    assert ds.sample(4, seed=2).texts != h1.texts
    assert h1.texts != ds.head(4).texts  # a random draw, not the first documents
    h3 = ds.sample({"train": 5, "test": 100})
    assert int((h3.splits == "train").sum()) == 5 and int((h3.splits == "test").sum()) == 10
    assert not (h3.splits == "validation").any()
    with pytest.raises(ValueError):
        ds.sample({"dev": 3})


@pytest.mark.parametrize("seed", [0, 1, 7, 42])
@pytest.mark.parametrize("subset", [{"train": 9, "validation": 4, "test": 5}, {"train": 100}, {"test": 3}])
def test_training_subset_keeps_the_same_documents(seed, subset):
    """The call of abalone_core.data.run_data.prepare_data draws the same documents as before the fix."""
    ds = interleaved()
    wanted = {s: subset.get(s, len(ds)) for s in SPLITS}  # as prepare_data builds it
    expected = [ds.texts[i] for i in draw_before_head_was_fixed(ds.splits, wanted, seed)]
    with pytest.warns(DeprecationWarning, match="sample"):
        drawn = ds.head(wanted, seed=seed)
    assert drawn.texts == expected
    assert ds.sample(wanted, seed=seed).texts == expected
    assert np.array_equal(drawn.labels, ds.labels[draw_before_head_was_fixed(ds.splits, wanted, seed)])


def test_head_without_seed_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        interleaved().head(3)


# --------------------------------------------------------------------------- labels

def test_drop_unlabelled_logs_count(caplog):
    ds = toy()
    n_unlabelled = int((ds.labels.sum(1) == 0).sum())
    assert n_unlabelled > 0
    with caplog.at_level(logging.WARNING, logger="abalone_core.data"):
        kept = ds.drop_unlabelled()
    assert len(kept) == len(ds) - n_unlabelled
    assert (kept.labels.sum(1) > 0).all()
    assert f"dropped {n_unlabelled}" in caplog.text


def test_label_counts_rare_labels_and_stats(caplog):
    ds = toy()
    counts = ds.label_counts("train")
    assert counts.tolist() == [3, 2, 0]
    assert ds.label_counts("test").tolist() == ds.labels[-2:].sum(0).tolist()
    with caplog.at_level(logging.WARNING, logger="abalone_core.data"):
        assert ds.drop_rare_labels(3).label_names == ["a"]
    assert "dropped 2 label(s) with < 3 training documents: ['b', 'c']" in caplog.text
    assert ds.drop_rare_labels(0).label_names == ["a", "b", "c"]
    st = ds.stats()
    splits, labels = st["splits"], st["labels"]
    assert splits.loc["train", "docs"] == 6
    assert splits.loc["train", "labels_per_doc"] == pytest.approx(5 / 6)
    assert splits.loc["train", "share_unlabelled"] == pytest.approx(2 / 6)
    assert splits.loc["train", "words_per_doc"] == pytest.approx(np.mean([2 + i for i in range(6)]))
    assert labels.index.tolist() == ["a", "b", "c"]
    assert labels["group"].tolist() == ["head", "medium", "tail"]
    assert labels.loc["a", "train"] == 3


def test_stratified_split_sizes_coverage_and_seed():
    rng = np.random.default_rng(0)
    y = (rng.random((400, 6)) < [0.5, 0.3, 0.2, 0.1, 0.05, 0.03]).astype(np.uint8)
    s = stratified_split(y, (0.8, 0.1, 0.1), seed=0)
    counts = {k: int((s == k).sum()) for k in SPLITS}
    assert abs(counts["test"] - 40) <= 4 and abs(counts["validation"] - 40) <= 4
    assert (y[s == "train"].sum(0) > 0).all()
    assert np.array_equal(s, stratified_split(y, (0.8, 0.1, 0.1), seed=0))
    assert not np.array_equal(s, stratified_split(y, (0.8, 0.1, 0.1), seed=1))
    # label frequencies stay close to the whole-data frequencies in each split
    for k in SPLITS:
        assert np.abs(y[s == k].mean(0) - y.mean(0)).max() < 0.06
