"""Tables of finished runs (abalone_core.sweep.tables): the paper's layout, the flat table of
runs, the committed export, datasets labelled by their names, and the committed results
reproduced byte for byte from their records."""
from __future__ import annotations

import filecmp
import json
import os
import sqlite3

import numpy as np
import pandas as pd
import pytest
import yaml

from abalone_core.report import claims, paper
from abalone_core import sweep as sw
from test_sweep_support import ROOT, fake_results


def test_aggregate_gives_mean_and_std_over_seeds_beside_the_paper(tmp_path):
    rng = np.random.default_rng(0)
    scores, rows = {}, []
    for objective in ("msc", "bce"):
        for dataset in ("aapd", "disaster"):
            for seed in range(3):
                s = {"micro_f1": rng.uniform(40, 80), "macro_f1": rng.uniform(20, 60), "hamming": rng.uniform(5, 30)}
                scores.setdefault((objective, dataset), []).append(s)
                rows.append(({"objective": objective, "dataset": dataset, "seed": seed, "max_steps": 10},
                             {"test": s, "silhouette": 0.1 * seed}, "done"))
    rows.append(({"objective": "msc", "dataset": "aapd", "seed": 9, "max_steps": 10}, None, "failed"))
    db = fake_results(tmp_path, rows)

    text = sw.aggregate(db)
    mean = sw.aggregate(tmp_path, stat="mean")
    assert list(text.index) == ["msc", "bce"]
    for (objective, dataset), runs in scores.items():
        for m in ("micro_f1", "macro_f1", "hamming"):
            values = np.array([r[m] for r in runs])
            assert mean.at[objective, f"{dataset} {m}"] == pytest.approx(values.mean())
            assert text.at[objective, f"{dataset} {m}"] == f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"
    assert text.at["msc", "aapd micro_f1 (paper)"] == f"{paper.scores()[('aapd', 'msc')]['micro_f1']:.2f}"
    assert mean.at["bce", "aapd hamming (paper)"] == paper.scores()[("aapd", "bce")]["hamming"]
    assert not [c for c in text.columns if c.startswith("disaster") and "paper" in c]
    assert sw.aggregate(db, stat="count").at["msc", "aapd micro_f1"] == 3  # the failed run is left out

    sil = sw.aggregate(db, columns=(), metrics=("silhouette",), stat="mean", where={"dataset": "aapd"})
    assert sil.at["msc", "silhouette"] == pytest.approx(0.1)
    every = sw.aggregate(db, paper="all")
    assert "rcv1 micro_f1 (paper)" in every and every.at["msc", "rcv1 macro_f1 (paper)"] == "77.05"

    paths = sw.write_table(text, tmp_path / "table")
    assert "msc" in paths[1].read_text() and "±" in paths[1].read_text()
    assert len(paths[0].read_text().splitlines()) == 3


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc")
def test_a_table_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A full disk while the table is written (reported when the file is flushed to disk)
    leaves the previous table.md as it was, and no temporary file."""
    import errno

    old = pd.DataFrame({"micro_f1": [1.0]}, index=pd.Index(["msc"], name="objective"))
    sw.write_table(old, tmp_path / "table")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = os.fsync

    def fsync(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".table.md."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    new = pd.DataFrame({"micro_f1": [2.0, 3.0]}, index=pd.Index(["msc", "bce"], name="objective"))
    with pytest.raises(OSError, match="no space left on device while writing .*table.md"):
        sw.write_table(new, tmp_path / "table")
    assert (tmp_path / "table.md").read_bytes() == before["table.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv", "table.md"]


def test_aggregate_gives_the_95_percent_t_interval_over_seeds(tmp_path):
    values = {"msc": [50.0, 52.0, 57.0], "bce": [40.0]}
    rows = [({"objective": o, "dataset": "disaster", "seed": i, "max_steps": 10}, {"test": {"macro_f1": v}}, "done")
            for o, vs in values.items() for i, v in enumerate(vs)]
    db = fake_results(tmp_path, rows)
    half = sw.aggregate(db, metrics=("macro_f1",), stat="half_width")
    v = np.array(values["msc"])
    expected = 4.302652729911275 * v.std(ddof=1) / np.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert half.at["msc", "disaster macro_f1"] == pytest.approx(expected)
    assert np.isnan(half.at["bce", "disaster macro_f1"])
    text = sw.aggregate(db, metrics=("macro_f1",), stat="interval")
    assert text.at["msc", "disaster macro_f1"] == f"{v.mean():.2f} ± {expected:.2f} (3)"
    assert text.at["bce", "disaster macro_f1"] == "40.00 (1)"
    lo, hi = claims.t_interval(v)
    assert (hi - lo) / 2 == pytest.approx(expected)


def test_a_row_without_seed_variation_shows_its_value_alone(tmp_path):
    """TF-IDF, or L_MLM's clustering scores, give the same value on every seed: no "± 0.00"."""
    values = {"tfidf-linear": [57.35] * 3, "msc": [50.0, 50.004, 50.0]}
    rows = [({"objective": o, "dataset": "disaster", "seed": i, "max_steps": 10}, {"test": {"macro_f1": v}}, "done")
            for o, vs in values.items() for i, v in enumerate(vs)]
    db = fake_results(tmp_path, rows)
    interval = sw.aggregate(db, metrics=("macro_f1",), stat="interval")
    text = sw.aggregate(db, metrics=("macro_f1",), stat="text")
    assert interval.at["tfidf-linear", "disaster macro_f1"] == "57.35 (3)"
    assert text.at["tfidf-linear", "disaster macro_f1"] == "57.35"
    assert "±" in interval.at["msc", "disaster macro_f1"]   # a spread that only rounds to 0 is still a spread


def test_aggregate_refuses_to_average_over_a_parameter_that_varies(tmp_path):
    rows = [({"objective": "msc", "dataset": "d", "seed": s, "temperature": t},
             {"test": {"micro_f1": 50.0 + s}}, "done") for s in (0, 1) for t in (0.1, 0.2)]
    db = fake_results(tmp_path, rows)
    with pytest.raises(ValueError, match="temperature"):
        sw.aggregate(db)
    table = sw.aggregate(db, where={"temperature": 0.1}, metrics=("micro_f1",), stat="mean")
    assert table.at["msc", "d micro_f1"] == 50.5
    by_t = sw.aggregate(db, rows=("objective", "temperature"), metrics=("micro_f1",), stat="count")
    assert by_t.loc[("msc", 0.2), "d micro_f1"] == 2


def test_export_writes_a_committable_copy_that_aggregates_the_same(tmp_path):
    run_dir = str((tmp_path / "sweep" / "runs" / "r").resolve())
    rows = [({"objective": o, "dataset": "disaster", "seed": s, "subset": {"train": 10}},
             {"test": {"micro_f1": 50.0 + s + (o == "msc"), "macro_f1": 30.0 - s, "hamming": 9.0},
              "silhouette": 0.1 * s, "config": {"output_dir": run_dir, "backbone": "/elsewhere/model"}}, "done")
            for o in ("msc", "base") for s in range(3)]
    rows.append(({"objective": "bce", "dataset": "disaster", "seed": 0, "subset": {"train": 10}}, None, "failed"))
    db = fake_results(tmp_path / "sweep", rows)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE runs SET hardware = ?", (json.dumps({"host": "secret-host", "cpu_count": 2}),))

    paths = sw.export(db, tmp_path / "published")
    runs = tmp_path / "published" / "runs.jsonl"
    assert paths[0] == runs and [p.name for p in paths[1:]] == ["table.csv", "table.md"]
    assert len(runs.read_text().splitlines()) == 6  # the failed run is not published
    assert "secret-host" not in runs.read_text() and str(tmp_path) not in runs.read_text()
    config = sw.records(runs).iloc[0]["metrics"]["config"]
    assert config == {"output_dir": os.path.join("runs", "r"), "backbone": "/elsewhere/model"}
    pd_testing = pytest.importorskip("pandas").testing
    pd_testing.assert_frame_equal(sw.aggregate(runs), sw.aggregate(db))
    pd_testing.assert_frame_equal(sw.aggregate(tmp_path / "published"), sw.aggregate(db))

    flat = sw.records_table(runs)
    assert len(flat) == 6 and {"objective", "dataset", "seed", "micro_f1", "silhouette", "minutes"} <= set(flat)
    assert "subset" not in flat  # dict parameters stay in runs.jsonl
    one = flat[(flat["objective"] == "msc") & (flat["seed"] == 2)].iloc[0]
    assert one["micro_f1"] == 53.0 and one["silhouette"] == pytest.approx(0.2) and one["hardware"] == "CPU (2 cores)"


def test_the_flat_table_says_how_far_each_run_is_from_converging(tmp_path):
    record = {"test": {"micro_f1": 50.0}}
    rows = [({"objective": "bce", "seed": 0, "dataset": "disaster"},
             {**record, "converged": False,
              "convergence": {"metric": "val_micro_f1", "improvement": 1.5, "tolerance": 0.5}}, "done"),
            ({"objective": "msc", "seed": 0, "dataset": "disaster"},
             {**record, "converged": True,
              "convergence": {"metric": "val_loss", "improvement": 0.002, "tolerance": 0.01}}, "done"),
            ({"objective": "frozen", "seed": 0, "dataset": "disaster"},
             {**record, "converged": None, "convergence": {"reason": "frozen: nothing trained"}}, "done")]
    flat = sw.records_table(fake_results(tmp_path, rows)).set_index("objective")
    assert flat.at["bce", "gain_vs_tolerance"] == pytest.approx(3.0)
    assert flat.at["msc", "gain_vs_tolerance"] == pytest.approx(0.2)
    assert flat["gain_vs_tolerance"].isna().sum() == 1 and pd.isna(flat.at["frozen", "gain_vs_tolerance"])


# --------------------------------------------------------------------------- datasets by name
@pytest.mark.parametrize("params, label", [
    ({"dataset": "disaster"}, "disaster"),
    ({"dataset": "disaster", "dataset_kwargs": {"resplit": True}}, "disaster"),
    ({"dataset": "jsonl", "dataset_kwargs": {"path": "data/legal.jsonl"}}, "legal"),
    ({"dataset": "csv", "dataset_kwargs": {"path": {"train": "a/news_train.csv", "test": "a/news_test.csv"}}},
     "news_train"),
    ({"dataset": "csv", "dataset_kwargs": {"path": "x.csv", "name": "reuters"}}, "reuters"),
    ({"dataset": "hub", "dataset_kwargs": {"hub_id": "owner/papers"}}, "owner/papers"),
    ({"dataset": "hub", "dataset_kwargs": {"hub_id": "owner/papers", "name": "papers"}}, "papers"),
])
def test_a_dataset_is_labelled_by_the_name_its_loader_gives_it(params, label):
    assert sw.dataset_label(params) == label


def custom_runs(tmp_path):
    """Two JSON-lines datasets in one grid, msc and base, 3 seeds each."""
    rows = []
    for name, bonus in (("legal", 0.0), ("news", 20.0)):
        for objective in ("msc", "base"):
            for seed in range(3):
                rows.append(({"objective": objective, "seed": seed, "dataset": "jsonl",
                              "dataset_kwargs": {"path": f"data/{name}.jsonl", "label_sep": "|"}},
                             {"test": {"micro_f1": 50.0 + bonus + seed + (objective == "msc"),
                                       "macro_f1": 30.0 + bonus + seed + 2 * (objective == "msc"),
                                       "hamming": 10.0}}, "done"))
    return fake_results(tmp_path, rows)


def test_custom_datasets_get_their_own_columns_and_claims(tmp_path):
    db = custom_runs(tmp_path)
    table = sw.aggregate(db, metrics=("micro_f1",), stat="mean")
    assert list(table.columns) == ["legal micro_f1", "news micro_f1"]
    assert table.at["msc", "legal micro_f1"] == 52.0 and table.at["msc", "news micro_f1"] == 72.0
    assert sw.aggregate(db, where={"dataset": "news"}, columns=(), metrics=("micro_f1",), stat="mean").at[
        "base", "micro_f1"] == 71.0
    flat = sw.records_table(db)
    assert sorted(set(flat["dataset"])) == ["legal", "news"]
    verdicts = claims.check_claims(flat, claims=[claims.Claim("msc above base", "msc", "base", "macro_f1")], reference=None)
    assert sorted(verdicts["dataset"]) == ["legal", "news"]
    assert (verdicts["difference"] == 2.0).all()


def test_dataset_kwargs_that_differ_within_one_dataset_still_refuse_to_average(tmp_path):
    rows = [({"objective": "msc", "seed": s, "dataset": "disaster", "dataset_kwargs": {"resplit": r}},
             {"test": {"micro_f1": 50.0}}, "done") for s in (0, 1) for r in (True, False)]
    with pytest.raises(ValueError, match="dataset_kwargs"):
        sw.aggregate(fake_results(tmp_path, rows))


def test_a_column_may_have_its_own_budget_but_its_rows_may_not_differ(tmp_path):
    """max_steps set per dataset is fine (each column compares its own rows); a row of one
    dataset trained for another budget than its neighbours is refused."""
    rows = [({"objective": o, "seed": s, "dataset": d, "max_steps": steps},
             {"test": {"micro_f1": 50.0 + s}}, "done")
            for d, steps in (("disaster", 400), ("foldoc", 800)) for o in ("msc", "base") for s in (0, 1)]
    table = sw.aggregate(fake_results(tmp_path / "ok", rows), metrics=("micro_f1",), stat="mean")
    assert table.at["msc", "foldoc micro_f1"] == 50.5
    rows[0][0]["max_steps"] = 800  # disaster msc seed 0: another budget than the rest of its column
    with pytest.raises(ValueError, match=r"\['max_steps'\] vary between the runs of one column"):
        sw.aggregate(fake_results(tmp_path / "bad", rows), metrics=("micro_f1",))


# --------------------------------------------------------------------------- the committed numbers
@pytest.mark.parametrize("folder, grid", [("sweep_cpu", "cpu_grid"), ("gpu_grid", "gpu_grid")])
def test_the_committed_tables_are_reproduced_byte_for_byte(tmp_path, folder, grid):
    """results/<folder>/table.md and .csv come again from runs.jsonl with the grid file's table section."""
    committed = ROOT / "results" / folder
    table = yaml.safe_load((ROOT / "sweeps" / f"{grid}.yaml").read_text())["table"]
    sw.write_table(sw.aggregate(committed / "runs.jsonl", **table), tmp_path / "table")
    for suffix in ("md", "csv"):
        assert filecmp.cmp(tmp_path / f"table.{suffix}", committed / f"table.{suffix}", shallow=False), suffix


def test_the_cpu_grid_export_is_reproduced_byte_for_byte(tmp_path):
    """export() of results/sweep_cpu/runs.jsonl writes the same three files again."""
    committed = ROOT / "results" / "sweep_cpu"
    table = yaml.safe_load((ROOT / "sweeps" / "cpu_grid.yaml").read_text())["table"]
    written = sw.export(committed / "runs.jsonl", tmp_path, **table)
    assert [p.name for p in written] == ["runs.jsonl", "table.csv", "table.md"]
    for path in written:
        assert filecmp.cmp(path, committed / path.name, shallow=False), path.name


def test_export_copies_each_runs_scores_once(tmp_path):
    from abalone_core.evaluation.evaluate import save_scores

    rows = []
    for s in range(2):
        folder = tmp_path / "sweep" / "runs" / f"r{s}"
        folder.mkdir(parents=True)
        if s == 0:  # the second run has no scores file (an older record)
            save_scores(folder / "scores.npz", {"validation": np.full((3, 2), 0.25), "test": np.full((4, 2), 0.75)})
        rows.append(({"objective": "msc", "dataset": "disaster", "seed": s},
                     {"test": {"micro_f1": 50.0}, "config": {"output_dir": str(folder)}}, "done"))
    db = fake_results(tmp_path / "sweep", rows)
    sw.export(db, tmp_path / "published")
    copied = sorted((tmp_path / "published" / "scores").iterdir())
    rid = sw.run_id(rows[0][0])
    assert [p.name for p in copied] == [f"{rid}.npz"]
    back = sw.read_export_scores(tmp_path / "published", rid)
    assert back["test"].shape == (4, 2) and np.allclose(back["test"], 0.75)
    assert sw.read_export_scores(tmp_path / "published", sw.run_id(rows[1][0])) is None
    before = copied[0].stat().st_mtime_ns
    assert sw.export_scores(sw.finished(db), tmp_path / "published" / "scores") == []  # same bytes: left alone
    assert copied[0].stat().st_mtime_ns == before
