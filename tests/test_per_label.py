"""abalone_core.evaluation.per_label: support per split and per-label F1 tables."""
import numpy as np
import pytest

from abalone_core.data import MultiLabelDataset
from abalone_core.evaluation.per_label import grid_records, mean_over_seeds, per_label_frame, support


def dataset():
    labels = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 0]], dtype=np.uint8)
    splits = np.array(["train", "train", "train", "train", "validation", "test"])
    return MultiLabelDataset(name="toy", texts=[f"doc {i}" for i in range(6)], labels=labels,
                             label_names=["a", "b", "c"], splits=splits)


def test_support_counts_documents_per_split_as_integers():
    s = support(dataset())
    assert s.loc["a", "train"] == 3 and s.loc["b", "train"] == 2 and s.loc["c", "train"] == 1
    assert s.loc["a", "validation"] == 1 and s.loc["b", "test"] == 1 and s.loc["c", "test"] == 0
    assert all(s[c].dtype.kind == "i" for c in ("train", "validation", "test"))
    assert s["group"].tolist() == ["head", "medium", "tail"]


def test_per_label_frame_aligns_runs_by_label_name_and_sorts_by_training_count():
    s = support(dataset())
    run = {"label_names": ["c", "a", "b"], "test": {"per_label_f1": [0.0, 80.0, 50.0]}}
    t = per_label_frame({"L_MSC": run}, s)
    assert t.index.tolist() == ["a", "b", "c"]
    assert t["L_MSC"].tolist() == [80.0, 50.0, 0.0]
    assert t.loc["c", "test docs"] == 0  # the empty tail label is visible


def test_per_label_frame_names_a_run_scored_on_other_labels():
    run = {"label_names": ["a", "b", "z"], "test": {"per_label_f1": [1.0, 2.0, 3.0]}}
    with pytest.raises(ValueError, match="run 'BCE' was scored on other labels"):
        per_label_frame({"BCE": run}, support(dataset()))


def test_grid_records_keeps_finished_runs_of_the_asked_rows(tmp_path):
    import json

    def line(objective, data, status="done"):
        return json.dumps({"status": status, "parameters": {"objective": objective, "dataset": data, "seed": 0},
                           "metrics": {"objective": objective, "dataset": data,
                                       "label_names": ["a"], "test": {"per_label_f1": [1.0]}}})
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join([line("msc", "disaster"), line("base", "disaster"), line("msc", "foldoc"),
                               line("msc", "disaster", status="failed"), line("msc-ft", "disaster"), ""]))
    assert [m["objective"] for m in grid_records(path, "disaster")] == ["msc", "base", "msc-ft"]
    assert len(grid_records(path, "disaster", objectives=("msc-ft",))) == 1  # the grid's row, not the loss
    assert [m["dataset"] for m in grid_records(path, objectives=("msc",))] == ["disaster", "foldoc"]
    assert grid_records(tmp_path / "missing.jsonl") == []


def test_mean_over_seeds_averages_per_label_f1_and_counts_the_seeds():
    runs = [{"label_names": ["a", "b"], "test": {"per_label_f1": [10.0, 0.0]}},
            {"label_names": ["a", "b"], "test": {"per_label_f1": [30.0, 50.0]}}]
    m = mean_over_seeds(runs)
    assert m["test"]["per_label_f1"] == [20.0, 25.0] and m["seeds"] == 2
    assert mean_over_seeds([]) is None
    with pytest.raises(ValueError, match="different labels"):
        mean_over_seeds(runs + [{"label_names": ["b", "a"], "test": {"per_label_f1": [1.0, 1.0]}}])
