"""The registry: load_dataset, register_dataset, data_dir, argument checks and label-coverage advice."""
import inspect
import re

import numpy as np
import pandas as pd
import pytest

from abalone_core import data as D
from abalone_core.data import LabelCoverageError, load_dataset
from test_data_dataset import toy


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
        with pytest.raises(TypeError, match=r"no argument\(s\) \['sise'\].*\['size'\]"):
            load_dataset("mine-test", sise=4)
    finally:
        D.DATASETS.pop("mine-test")
    monkeypatch.delenv("ABALONE_DATA_DIR")
    assert D.data_dir().parts[-2:] == (".cache", "abalone")


def test_loader_returning_something_else_is_refused():
    D.register_dataset("broken-test", lambda: [1, 2])
    try:
        with pytest.raises(TypeError, match="returned list"):
            load_dataset("broken-test")
    finally:
        D.DATASETS.pop("broken-test")


@pytest.fixture
def tagged_csv(tmp_path):
    df = pd.DataFrame({"text": [f"t {i}" for i in range(30)],
                       "labels": ["a|b" if i % 2 else "a" for i in range(30)],
                       "split": ["train"] * 20 + ["validation"] * 5 + ["test"] * 5})
    path = tmp_path / "tagged.csv"
    df.to_csv(path, index=False)
    return path


def test_name_in_dataset_kwargs_reaches_the_loader(tagged_csv):
    dataset_kwargs = {"path": tagged_csv, "label_sep": "|", "split_column": "split", "name": "my-corpus"}
    ds = load_dataset("csv", **dataset_kwargs)  # as abalone_core.data.run_data.prepare_data calls it
    assert ds.name == "my-corpus"
    assert load_dataset("csv", path=tagged_csv, label_sep="|").name == "tagged"
    with pytest.raises(TypeError, match=r"'disaster' takes no argument\(s\) \['name'\].*csv_path"):
        load_dataset("disaster", name="x")


def _suggested_arguments(message: str) -> set:
    return set(re.findall(r"\b([a-z_]+)=", message.split("never in training")[1]))


def test_label_missing_from_training_suggests_arguments_the_loader_has(tmp_path):
    df = pd.DataFrame({"text": [f"t {i}" for i in range(12)],
                       "labels": ["a"] * 10 + ["z", "z"],
                       "split": ["train"] * 8 + ["validation"] * 2 + ["test"] * 2})
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    with pytest.raises(LabelCoverageError, match=r"\['z'\]") as err:
        load_dataset("csv", path=path, split_column="split")
    suggested = _suggested_arguments(str(err.value))
    assert suggested == {"min_train_count", "split_column", "split_sizes"}
    assert suggested <= set(inspect.signature(D.DATASETS["csv"]).parameters)
    assert "\n" not in str(err.value)
    assert load_dataset("csv", path=path, split_column="split", min_train_count=1).label_names == ["a"]


def test_label_missing_from_training_advice_for_other_loaders(tmp_path):
    def fixed_split():
        labels = np.array([[1, 0], [1, 0], [0, 1]])
        return D.MultiLabelDataset("x", ["a", "b", "c"], labels, ["common", "rare"],
                                   np.array(["train", "train", "test"]))

    D.register_dataset("fixed-test", fixed_split)
    try:
        with pytest.raises(LabelCoverageError, match="no argument that drops labels") as err:
            load_dataset("fixed-test")
        assert _suggested_arguments(str(err.value)) == set()
    finally:
        D.DATASETS.pop("fixed-test")
