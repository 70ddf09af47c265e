"""Hugging Face Hub datasets: the generic hub loader and the paper's aapd, rcv1 and uk-lex (Hub faked)."""
import inspect

import numpy as np
import pytest

from abalone_core import data as D
from abalone_core.data import SPLITS, load_dataset


@pytest.fixture
def fake_hub(monkeypatch):
    """Replace datasets.load_dataset with a dict of hub_id -> DatasetDict factories."""
    import datasets

    registry, calls = {}, []

    def fake(path, name=None, **kw):
        calls.append((path, name))
        if path not in registry:
            raise ConnectionError("Couldn't reach the Hugging Face Hub")
        return registry[path]()

    monkeypatch.setattr(datasets, "load_dataset", fake)
    return registry, calls


def make_dd(splits: dict, features=None):
    import datasets

    return datasets.DatasetDict({k: datasets.Dataset.from_dict(v, features=features) for k, v in splits.items()})


def test_hub_unreachable_gives_instructions(fake_hub):
    with pytest.raises(RuntimeError, match="huggingface-cli download.*load_dataset\\('csv'"):
        load_dataset("aapd")


def test_aapd_is_resplit_to_paper_proportions(fake_hub):
    registry, calls = fake_hub
    rng = np.random.default_rng(0)
    names = [f"cs.{c}" for c in "ABCDEF"]
    rows = {"text": [f"abstract {i}" for i in range(558)],
            "labels": [list(rng.choice(names, size=rng.integers(1, 3), replace=False)) for _ in range(558)]}
    registry["my/aapd"] = lambda: make_dd({"train": {k: v[:500] for k, v in rows.items()},
                                           "test": {k: v[500:] for k, v in rows.items()}})
    ds = load_dataset("aapd", hub_id="my/aapd", seed=0)
    assert calls[-1][0] == "my/aapd"
    assert ds.label_names == names and len(ds) == 558
    n = {s: int((ds.splits == s).sum()) for s in SPLITS}
    assert abs(n["test"] - 558 * 8500 / 55840) <= 5 and abs(n["validation"] - 558 * 4800 / 55840) <= 5


def test_rcv1_classlabel_threshold_and_carved_validation(fake_hub, caplog):
    import datasets

    registry, _ = fake_hub
    names = ["CCAT", "ECAT", "GMIL"]
    feats = datasets.Features({"text": datasets.Value("string"),
                               "labels": datasets.Sequence(datasets.ClassLabel(names=names))})
    train = {"text": [f"news {i}" for i in range(200)],
             "labels": [[0] if i % 2 else [0, 1] for i in range(200)]}
    train["labels"][0] = [2]  # GMIL: one training document, below 30
    test = {"text": [f"later {i}" for i in range(40)], "labels": [[1, 2]] * 40}
    registry["my/rcv1"] = lambda: make_dd({"train": train, "test": test}, feats)
    ds = load_dataset("rcv1", hub_id="my/rcv1", seed=0)
    assert ds.label_names == ["CCAT", "ECAT"]
    assert "rcv1: dropped 1 label(s) with < 30 training documents: ['GMIL']" in caplog.text  # the one rule
    assert int((ds.splits == "test").sum()) == 40
    assert ds.splits[-40:].tolist() == ["test"] * 40  # the original test set is untouched
    assert abs(int((ds.splits == "validation").sum()) - 30) <= 3
    assert ds.labels[0].tolist() == [0, 0]  # lost its only label, kept unlabelled
    assert load_dataset("rcv1", hub_id="my/rcv1", min_train_count=1).label_names == names


def test_uklex_keeps_release_split_and_joins_title_body(fake_hub):
    registry, calls = fake_hub

    def part(k, n):
        return {"title": [f"{k} act {i}" for i in range(n)], "body": [f"section {i}" for i in range(n)],
                "labels": [["HEALTH CARE"] if i % 2 else ["EDUCATION", "HEALTH CARE"] for i in range(n)]}
    uklex = D.PAPER_HUB["uk-lex"]
    registry[uklex.hub_id] = lambda: make_dd(
        {"train": part("train", 10), "validation": part("val", 4), "test": part("test", 4)})
    ds = load_dataset("uk-lex")
    assert calls[-1] == (uklex.hub_id, uklex.config)
    assert ds.texts[0] == "train act 0\nsection 0"
    assert [int((ds.splits == s).sum()) for s in SPLITS] == [10, 4, 4]
    assert ds.label_names == ["EDUCATION", "HEALTH CARE"]


def test_paper_loaders_come_from_one_table():
    assert set(D.PAPER_HUB) == {"aapd", "rcv1", "uk-lex"}
    for key, spec in D.PAPER_HUB.items():
        params = inspect.signature(D.DATASETS[key]).parameters
        assert set(params) == set(D.hub.HUB_SOURCE_ARGS) | set(spec.options)
        assert {a: params[a].default for a in spec.options} == spec.options
    assert D.DATASETS["aapd"] is D.load_aapd and D.PAPER_HUB["aapd"].options["split_sizes"] == D.AAPD_SIZES
    with pytest.raises(TypeError, match=r"'aapd' takes no argument\(s\) \['validation_size'\]"):
        load_dataset("aapd", validation_size=0.2)
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['resplit'\]"):
        D.load_paper("uk-lex", resplit=True)


def test_generic_hub_loader(fake_hub):
    registry, _ = fake_hub
    registry["someone/tags"] = lambda: make_dd({"train": {
        "sentence": [f"s {i}" for i in range(40)],
        "tags": ["p;q" if i % 2 else "q" for i in range(40)]}})
    ds = load_dataset("hub", hub_id="someone/tags", text_column="sentence", label_column="tags", label_sep=";")
    assert ds.label_names == ["p", "q"] and set(ds.splits) == set(SPLITS)  # only train -> re-split
    with pytest.raises(ValueError, match=r"available columns: \['sentence', 'tags'\]"):
        load_dataset("hub", hub_id="someone/tags", text_column="text", label_column="tags")
    with pytest.raises(ValueError, match=r"someone/tags \[train\], row 2: .*label_sep=';'"):
        load_dataset("hub", hub_id="someone/tags", text_column="sentence", label_column="tags")
