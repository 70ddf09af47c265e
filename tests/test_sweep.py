"""Experiment grids (abalone_core.sweep): expansion, dry run, execution records, resume,
failures, stale rows, parallel workers, aggregation; executed with the toy notebook
tests/data/sweep_toy.ipynb (metrics computed from its parameters: micro_f1 = 50 + seed
+ 10 for msc / 5 for base)."""
from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from abalone_core import sweep as sw

ROOT = Path(__file__).resolve().parents[1]
TOY = Path(__file__).parent / "data" / "sweep_toy.ipynb"


def write_grid(folder: Path, **spec) -> Path:
    spec = {"notebook": str(TOY), "output_dir": "out", **spec}
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="abalone")
    sw.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.fn(args)


def mtimes(folder: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.ipynb")}


# --------------------------------------------------------------------------- the grid
def test_grid_expansion_exclude_and_run_ids(tmp_path):
    path = write_grid(tmp_path, parameters={"pause": 0.0},
                      grid={"objective": ["msc", "base", "bce"], "seed": [0, 1], "dataset": ["a", "b"]},
                      exclude=[{"objective": "bce", "dataset": "b"}, {"objective": "base", "seed": 1}])
    sweep = sw.Sweep.from_file(path)
    runs = dict(sweep.runs())
    assert len(runs) == 3 * 2 * 2 - 2 - 2
    assert "dataset=a,objective=msc,seed=0" in runs
    assert runs["dataset=b,objective=base,seed=0"] == {"pause": 0.0, "objective": "base", "seed": 0, "dataset": "b"}
    assert not [r for r, p in runs.items() if p["objective"] == "bce" and p["dataset"] == "b"]
    assert not [r for r, p in runs.items() if p["objective"] == "base" and p["seed"] == 1]
    assert sweep.output_dir == (tmp_path / "out").resolve()  # relative to the grid file
    assert sw.run_id({"b": "x/y z", "a": 0.1}) == "a=0.1,b=x-y-z"


@pytest.mark.parametrize("change, message", [
    ({"grid": {"sed": [0]}}, "not parameters of"),
    ({"grid": {"seed": []}}, "non-empty list"),
    ({"grid": {"seed": [0]}, "exclude": [{"objective": "msc"}]}, "exclude"),
    ({"parameters": {"result_path": "x.json"}}, "set by the sweep"),
    ({"grid": {"objective": ["msc"]}, "depends_on": {"fail_flag": {"objective": {"msc": "base"}}}},
     "not in the grid"),
    ({"colour": 1}, "unknown keys"),
])
def test_bad_grid_files_are_rejected(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        sw.Sweep.from_file(write_grid(tmp_path, **change))


def test_dry_run_lists_the_grid_and_estimates_without_executing(tmp_path, capsys):
    path = write_grid(tmp_path, grid={"objective": ["msc", "base"], "seed": [0, 1, 2]}, estimate_minutes_per_run=4)
    assert cli(["sweep", str(path), "--dry-run", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    for rid, _ in sw.Sweep.from_file(path).runs():
        assert rid in out
    assert "6 runs" in out and "pending 6" in out
    assert "24 min" in out and "12 min with 2 worker" in out  # 6 x 4 minutes, over 2 workers
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- execution
def test_run_records_every_cell_and_a_rerun_skips_finished_ones(tmp_path):
    sweep = sw.Sweep.from_file(write_grid(tmp_path, grid={"objective": ["msc"], "seed": [0, 3]}))
    status = sweep.run(progress=False)
    assert (status["status"] == "done").all()
    recs = sw.records(sweep)
    for rid, params in sweep.runs():
        r = recs.loc[rid]
        assert r["metrics"]["test"]["micro_f1"] == 60 + params["seed"]
        assert r["parameters"] == params
        assert r["metrics"]["run_dir"] == str(sweep.paths(rid)["run_dir"])
        assert sweep.paths(rid)["notebook"].is_file() and sweep.paths(rid)["result"].is_file()
        assert r["duration_s"] > 0 and r["finished"] > r["started"]
        assert r["pid"] == os.getpid() and r["attempts"] == 1
        assert {"platform", "python", "torch", "gpu"} <= set(r["hardware"])
        assert r["versions"]["abalone_core"] and r["versions"]["torch"] and r["versions"]["transformers"]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert set(recs["git_revision"]) == {head.stdout.strip()}
        assert recs["git_dirty"].isin([True, False]).all()

    before, notebooks = recs[["finished", "attempts"]].copy(), mtimes(sweep.output_dir / "notebooks")
    again = sweep.run(progress=False)
    assert (again["status"] == "done").all()
    assert sw.records(sweep)[["finished", "attempts"]].equals(before)
    assert mtimes(sweep.output_dir / "notebooks") == notebooks
    assert sweep.estimate()["source"] == "mean of 2 finished runs"

    assert cli(["sweep", str(tmp_path / "grid.yaml"), "--export", str(tmp_path / "published")]) == 0
    published = sw.records(tmp_path / "published" / "runs.jsonl")
    assert sorted(published.index) == sorted(recs.index)
    assert (tmp_path / "published" / "table.md").is_file()
    assert sw.records(sweep)[["finished", "attempts"]].equals(before)  # exporting runs nothing


def test_a_failing_run_is_recorded_the_others_finish_and_retry_reruns_it(tmp_path):
    flag = tmp_path / "fail"
    flag.touch()
    sweep = sw.Sweep.from_file(write_grid(tmp_path, parameters={"fail_seed": 1, "fail_flag": str(flag)},
                                          grid={"seed": [0, 1]}))
    status = sweep.run(progress=False)
    assert status.loc["seed=0", "status"] == "done"
    assert status.loc["seed=1", "status"] == "failed"
    error = sw.records(sweep).loc["seed=1", "error"]
    assert error.startswith("RuntimeError: asked to fail for seed 1")
    assert "Traceback" in error or "line" in error

    assert cli(["sweep", str(tmp_path / "grid.yaml"), "--quiet"]) == 1  # failures remain: not retried
    assert sw.records(sweep).loc["seed=1", "attempts"] == 1

    flag.unlink()
    status = sweep.run(retry_failed=True, progress=False)
    assert (status["status"] == "done").all()
    recs = sw.records(sweep)
    assert recs.loc["seed=1", "attempts"] == 2 and recs.loc["seed=0", "attempts"] == 1
    assert recs.loc["seed=1", "error"] is None
    assert recs.loc["seed=1", "metrics"]["test"]["micro_f1"] == 61


def insert_row(sweep, rid: str, status: str, pid: int | None = None) -> None:
    store = sw._Store(sweep.db)
    with sqlite3.connect(sweep.db) as db:
        db.execute("INSERT INTO runs (run_id, parameters, status, started, pid, host) VALUES (?, ?, ?, ?, ?, ?)",
                   (rid, json.dumps(dict(sweep.runs())[rid], sort_keys=True), status, sw._now(), pid,
                    socket.gethostname()))
    assert store.rows()[rid]["status"] == status


def test_running_rows_of_a_dead_process_count_as_failed(tmp_path):
    sweep = sw.Sweep.from_file(write_grid(tmp_path, grid={"seed": [0, 1]}))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    insert_row(sweep, "seed=0", "running", dead.pid)
    insert_row(sweep, "seed=1", "running", os.getpid())  # alive: left to the process running it
    status = sweep.status()
    assert status.loc["seed=0", "status"] == "failed"
    assert f"pid {dead.pid}" in sw.records(sweep).loc["seed=0", "error"]
    assert status.loc["seed=1", "status"] == "running"
    sweep.run(progress=False)  # neither retried nor taken over: nothing executes
    assert not (sweep.output_dir / "notebooks").exists()
    assert list(sweep.status()["status"]) == ["failed", "running"]


def test_a_run_whose_dependency_failed_is_recorded_failed_without_executing(tmp_path):
    # fail_flag stands for init_from: the toy notebook only checks whether that path exists
    sweep = sw.Sweep.from_file(write_grid(tmp_path, grid={"objective": ["msc", "msc-ft"]},
                                          depends_on={"fail_flag": {"objective": {"msc-ft": "msc"}}}))
    assert [rid for rid, _ in sweep.runs()] == ["objective=msc", "objective=msc-ft"]
    insert_row(sweep, "objective=msc", "failed")
    status = sweep.run(progress=False)
    assert status.loc["objective=msc-ft", "status"] == "failed"
    assert "needs run objective=msc, which is failed" in status.loc["objective=msc-ft", "error"]
    assert not (sweep.output_dir / "notebooks").exists()


def test_two_workers_run_concurrently_on_their_own_devices(tmp_path):
    sweep = sw.Sweep.from_file(write_grid(tmp_path, parameters={"pause": 0.5}, grid={"seed": [0, 1]}))
    with pytest.raises(ValueError, match="one device per worker"):
        sweep.run(workers=3, devices="cuda:0,cuda:1", progress=False)
    status = sweep.run(devices="cuda:0,cuda:1", progress=False)
    assert (status["status"] == "done").all()
    recs = sw.records(sweep)
    a, b = (recs.loc[rid] for rid in ("seed=0", "seed=1"))
    assert a["started"] < b["finished"] and b["started"] < a["finished"], "the two runs were not in flight together"
    assert {a["metrics"]["device"], b["metrics"]["device"]} == {"cuda:0", "cuda:1"}
    if "OMP_NUM_THREADS" not in os.environ:  # the cores are shared between the two notebooks
        assert a["metrics"]["threads"] == str(max(1, os.cpu_count() // 2))
    assert set(recs["device"]) == {"cuda:0", "cuda:1"}
    with sqlite3.connect(sweep.db) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0] == 2


# --------------------------------------------------------------------------- tables
def fake_results(tmp_path, rows) -> Path:
    """A results database with finished runs: rows of (parameters, metrics, status)."""
    db = tmp_path / "results.sqlite"
    store = sw._Store(db)
    info = {"device": None, "notebook": None, "hardware": {}, "versions": {}, "git_revision": None, "git_dirty": None}
    for params, metrics, status in rows:
        rid = sw.run_id(params)
        assert store.claim(rid, params, False, info)
        store.finish(rid, status, metrics, None if status == "done" else "boom", 1.0)
    return db


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
    assert text.at["msc", "aapd micro_f1 (paper)"] == f"{sw.PAPER[('aapd', 'msc')]['micro_f1']:.2f}"
    assert mean.at["bce", "aapd hamming (paper)"] == sw.PAPER[("aapd", "bce")]["hamming"]
    assert not [c for c in text.columns if c.startswith("disaster") and "paper" in c]
    assert sw.aggregate(db, stat="count").at["msc", "aapd micro_f1"] == 3  # the failed run is left out

    sil = sw.aggregate(db, columns=(), metrics=("silhouette",), stat="mean", where={"dataset": "aapd"})
    assert sil.at["msc", "silhouette"] == pytest.approx(0.1)
    every = sw.aggregate(db, paper="all")
    assert "rcv1 micro_f1 (paper)" in every and every.at["msc", "rcv1 macro_f1 (paper)"] == "77.05"

    paths = sw.write_table(text, tmp_path / "table")
    assert "msc" in paths[1].read_text() and "±" in paths[1].read_text()
    assert len(paths[0].read_text().splitlines()) == 3


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


# --------------------------------------------------------------------------- the run notebook
def test_run_notebook_is_clean_and_declares_the_sweep_parameters():
    path = ROOT / "notebooks" / "run.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    grid = sw.Sweep.from_file(ROOT / "sweeps" / "paper_grid.yaml")  # every grid key is a parameter
    assert {"result_path", "run_dir", "device", "init_from"} <= grid.declared_parameters()
    assert len(grid.runs()) == 2 * 10 * 3
    assert grid._deps["dataset=foldoc,objective=msc-ft,seed=2"] == {"init_from": "dataset=foldoc,objective=msc,seed=2"}
    cpu = sw.Sweep.from_file(ROOT / "sweeps" / "cpu_grid.yaml")
    assert len(cpu.runs()) == 2 * 9 * 3 and "supervised_overrides" in cpu.declared_parameters()
    assert [cell["seed"] for _, cell in cpu.runs()][:18] == [0] * 18  # seeds first


@pytest.mark.slow
def test_run_notebook_trains_and_fine_tunes_a_tiny_model(tmp_path, tiny_backbone, tiny_csv, monkeypatch):
    monkeypatch.setenv("ABALONE_DATA_DIR", str(tmp_path / "cache"))
    sweep = sw.Sweep(
        notebook=ROOT / "notebooks" / "run.ipynb", output_dir=tmp_path / "out",
        parameters={"dataset": "csv", "dataset_kwargs": {"path": tiny_csv, "label_sep": "|", "split_column": "split"},
                    "backbone": tiny_backbone, "subset": None, "max_length": 16, "batch_size": 8, "max_steps": 4,
                    "overrides": {"proj_dim": 16, "queue_size": 20, "probe": {"epochs": 2, "lrs": [0.1],
                                                                              "weight_decays": [0.01], "heads": 1}},
                    "supervised_overrides": {"lr_head": 0.02}},
        grid={"objective": ["msc", "msc-ft"], "seed": [0]},
        depends_on={"init_from": {"objective": {"msc-ft": "msc"}}},
    )
    status = sweep.run(devices="cpu", progress=False)
    errors = sw.records(sweep)["error"].dropna()
    assert (status["status"] == "done").all(), errors.to_dict()
    recs = sw.records(sweep)
    ft = recs.loc["objective=msc-ft,seed=0", "metrics"]
    assert ft["objective"] == "msc-ft" and ft["loss"] == "bce"
    assert ft["config"]["init_from"] == str(sweep.paths("objective=msc,seed=0")["run_dir"])
    assert ft["config"]["lr_head"] == 0.02  # supervised_overrides reach the supervised row only
    assert recs.loc["objective=msc,seed=0", "metrics"]["config"]["lr_head"] == 5e-5
    assert recs.loc["objective=msc-ft,seed=0", "started"] > recs.loc["objective=msc,seed=0", "finished"]
    for m in recs["metrics"]:
        assert 0 <= m["test"]["micro_f1"] <= 100
        assert "silhouette" in m or "clustering_error" in m


def test_export_follows_the_grid_and_a_fresh_clone_skips_exported_runs(tmp_path):
    """With ``export`` the committed folder is rewritten after every run, and a run of the same
    grid elsewhere (no results.sqlite) takes the exported runs as done instead of redoing them."""
    spec = dict(grid={"objective": ["msc", "msc-ft"], "seed": [0, 1]}, export="committed",
                depends_on={"run_dir_of": {"objective": {"msc-ft": "msc"}}})
    toy = tmp_path / "toy.ipynb"
    nb = nbformat.read(TOY, as_version=4)
    nb.cells[1].source += "\nrun_dir_of = None"
    nb.cells[-1].source += "\nPath(run_dir).mkdir(parents=True, exist_ok=True)"
    nbformat.write(nb, toy)
    first = tmp_path / "first"
    first.mkdir()
    path = write_grid(first, **{**spec, "notebook": str(toy)})
    sw.Sweep.from_file(path).run(progress=False)
    lines = (first / "committed" / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 4 and (first / "committed" / "table.md").is_file()

    # A fresh clone: the export alone, and the msc run of seed 1 whose msc-ft is not finished yet.
    clone = tmp_path / "clone"
    (clone / "committed").mkdir(parents=True)
    kept = [l for l in lines if json.loads(l)["run_id"] != "objective=msc-ft,seed=1"]
    (clone / "committed" / "runs.jsonl").write_text("\n".join(kept) + "\n")
    sweep = sw.Sweep.from_file(write_grid(clone, **{**spec, "notebook": str(toy)}))
    st = sweep.run(progress=False)
    assert (st["status"] == "done").all()
    executed = {p.stem for p in (clone / "out" / "notebooks").glob("*.ipynb")}
    # msc seed 0 and msc-ft seed 0 were taken from the export; msc seed 1 ran again because
    # msc-ft seed 1 needs its folder, which the clone does not have.
    assert executed == {"objective=msc,seed=1", "objective=msc-ft,seed=1"}
    assert len((clone / "committed" / "runs.jsonl").read_text().splitlines()) == 4


def test_exported_runs_with_other_parameters_are_run_again(tmp_path):
    first = tmp_path / "a"
    first.mkdir()
    sw.Sweep.from_file(write_grid(first, grid={"seed": [0, 1]}, parameters={"pause": 0.0},
                                  export="committed")).run(progress=False)
    clone = tmp_path / "b"
    (clone / "committed").mkdir(parents=True)
    (clone / "committed" / "runs.jsonl").write_text((first / "committed" / "runs.jsonl").read_text())
    sweep = sw.Sweep.from_file(write_grid(clone, grid={"seed": [0, 1]}, parameters={"pause": 0.01},
                                          export="committed"))
    assert sweep.import_export() == []
    sweep.run(progress=False)
    assert len(list((clone / "out" / "notebooks").glob("*.ipynb"))) == 2
