"""Local files (csv, jsonl): columns, label formats, one file per split, and errors that name file and row."""
import json

import numpy as np
import pandas as pd
import pytest

from abalone_core.data import SPLITS, load_dataset


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
    assert set(ds.splits) == set(SPLITS)
    with pytest.raises(ValueError, match=r"available columns: \['text', 'tags'\]"):
        load_dataset("csv", path=path, label_column="labels")
    with pytest.raises(FileNotFoundError):
        load_dataset("csv", path=tmp_path / "missing.csv")


def test_comma_separated_labels_ask_for_label_sep(tmp_path):
    df = pd.DataFrame({"text": [f"t {i}" for i in range(30)],
                       "labels": ["sports" if i != 3 else "sports,politics" for i in range(30)]})
    path = tmp_path / "news.csv"
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"news\.csv, data row 4: .*'sports,politics'.*label_sep=','") as err:
        load_dataset("csv", path=path)
    assert "\n" not in str(err.value)
    ds = load_dataset("csv", path=path, label_sep=",")
    assert ds.label_names == ["politics", "sports"] and ds.labels[3].tolist() == [1, 1]
    whole = load_dataset("csv", path=path, label_sep="")  # one name that holds a comma
    assert whole.label_names == ["sports", "sports,politics"]


def test_one_binary_column_per_label_explains_label_column_list(tmp_path):
    df = pd.DataFrame({"text": [f"t {i}" for i in range(40)],
                       "water": [i % 2 for i in range(40)], "food": [int(i % 3 == 0) for i in range(40)],
                       "source": [i % 5 for i in range(40)]})
    path = tmp_path / "flags.csv"
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"flags\.csv: column 'water' holds 0/1 values.*label_column=\[.*"
                                         r"\['water', 'food'\]"):
        load_dataset("csv", path=path, label_column="water")
    ds = load_dataset("csv", path=path, label_column=["water", "food"])
    assert ds.label_names == ["water", "food"]
    assert np.array_equal(ds.labels, df[["water", "food"]].to_numpy())
    with pytest.raises(ValueError, match=r"flags\.csv, data row 3: binary label column 'source' holds 2"):
        load_dataset("csv", path=path, label_column=["water", "source"])


def test_non_utf8_bytes_name_file_and_line(tmp_path):
    rows = ["text,labels", "caf\u00e9 one,a", "two,a", "caf\u00e9 three,b", "four,b"]
    path = tmp_path / "latin.csv"
    path.write_bytes("\n".join(rows).encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv, line 2: .*not valid utf-8.*encoding="):
        load_dataset("csv", path=path)
    assert load_dataset("csv", path=path, encoding="latin-1", split_sizes=(2, 1, 1)).texts[0] == "caf\u00e9 one"
    jsonl = tmp_path / "latin.jsonl"
    lines = [json.dumps({"text": t, "labels": ["a"]}, ensure_ascii=False) for t in ("one", "two", "caf\u00e9")]
    jsonl.write_bytes("\n".join(lines).encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.jsonl, line 3: .*not valid utf-8"):
        load_dataset("jsonl", path=jsonl)


def test_truncated_json_line_names_file_and_line(tmp_path):
    lines = [json.dumps({"text": f"doc {i}", "labels": ["a"]}) for i in range(5)]
    lines[3] = lines[3][:-7]  # cut short, as by an interrupted export
    path = tmp_path / "cut.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    with pytest.raises(ValueError, match=r"cut\.jsonl, line 4: not a complete JSON object"):
        load_dataset("jsonl", path=path)
    path.write_text("\n".join(lines[:3] + ['["a list"]']))
    with pytest.raises(ValueError, match=r"cut\.jsonl, line 4: expected a JSON object"):
        load_dataset("jsonl", path=path)


def test_blank_lines_of_jsonl_do_not_shift_line_numbers(tmp_path):
    path = tmp_path / "gaps.jsonl"
    path.write_text('{"text": "a", "labels": ["x"]}\n\n{"text": "b", "labels": "x;y"}\n')
    with pytest.raises(ValueError, match=r"gaps\.jsonl, line 3: .*label_sep=';'"):
        load_dataset("jsonl", path=path)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_one_file_per_split(tmp_path, fmt):
    paths = {}
    for split, n in [("train", 12), ("dev", 4), ("test", 5)]:
        frame = pd.DataFrame({"text": [f"{split} doc {i}" for i in range(n)],
                              "labels": [["a"] if i % 2 else ["a", "b"] for i in range(n)]})
        paths[split] = tmp_path / f"{split}.{fmt}"
        if fmt == "csv":
            frame.assign(labels=frame["labels"].map("|".join)).to_csv(paths[split], index=False)
        else:
            frame.to_json(paths[split], orient="records", lines=True)
    kwargs = {"label_sep": "|"} if fmt == "csv" else {}
    ds = load_dataset(fmt, path=paths, **kwargs)
    assert [int((ds.splits == s).sum()) for s in SPLITS] == [12, 4, 5]
    assert ds.split("validation").texts[0] == "dev doc 0" and ds.split("test").texts[-1] == "test doc 4"
    assert ds.label_names == ["a", "b"] and ds.labels[0].tolist() == [1, 1]
    with pytest.raises(ValueError, match="not both"):
        load_dataset(fmt, path=paths, split_column="split", **kwargs)
    with pytest.raises(ValueError, match="unknown split 'holdout'"):
        load_dataset(fmt, path={"train": paths["train"], "holdout": paths["test"]}, **kwargs)


def test_one_file_per_split_label_only_in_test(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    pd.DataFrame({"text": ["x", "y"], "labels": ["a", "a"]}).to_csv(train, index=False)
    pd.DataFrame({"text": ["z"], "labels": ["b"]}).to_csv(test, index=False)
    with pytest.raises(ValueError, match=r"\['b'\].*min_train_count=1") as err:
        load_dataset("csv", path={"train": train, "test": test})
    assert "split_column" not in str(err.value)  # not a remedy with one file per split
    assert load_dataset("csv", path={"train": train, "test": test}, min_train_count=1).label_names == ["a"]
