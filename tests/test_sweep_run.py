"""Running a grid (abalone_core.sweep.runner, .execute, .store): execution records, resume,
failures, stale rows, read-only reads, parallel workers, the export kept up to date, and a
stopped sweep that takes its notebooks with it; executed with the toy notebook."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys

import nbformat
import pytest

from abalone_core import sweep as sw
from abalone_core.sweep.grid import digest
from abalone_core.sweep.store import SCHEMA, Store, as_seen, now, process_start, read_rows
from abalone_core.sweep.store import alive as row_alive
from test_sweep_support import ROOT, TOY, alive, cli, mtimes, parent, wait_for, write_grid

HAS_PSUTIL = importlib.util.find_spec("psutil") is not None


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


def test_a_failing_run_is_recorded_the_others_finish_and_retry_reruns_it(tmp_path, capsys):
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

    capsys.readouterr()
    assert cli(["sweep", str(tmp_path / "grid.yaml"), "--quiet"]) == 1  # failures remain: not retried
    summary = capsys.readouterr().out.splitlines()
    assert summary[-2].startswith("done 1, failed 1") and "--retry-failed" in summary[-1]
    assert sw.records(sweep).loc["seed=1", "attempts"] == 1

    flag.unlink()
    status = sweep.run(retry_failed=True, progress=False)
    assert (status["status"] == "done").all()
    recs = sw.records(sweep)
    assert recs.loc["seed=1", "attempts"] == 2 and recs.loc["seed=0", "attempts"] == 1
    assert recs.loc["seed=1", "error"] is None
    assert recs.loc["seed=1", "metrics"]["test"]["micro_f1"] == 61


def insert_row(sweep, rid: str, status: str, pid: int | None = None) -> None:
    store = Store(sweep.db)
    with sqlite3.connect(sweep.db) as db:
        db.execute("INSERT INTO runs (run_id, parameters, status, started, pid, host) VALUES (?, ?, ?, ?, ?, ?)",
                   (rid, json.dumps(dict(sweep.runs())[rid], sort_keys=True), status, now(), pid,
                    socket.gethostname()))
    assert store.rows()[rid]["status"] == status


def stored(db) -> tuple:
    """The store's rows as written, and the file's bytes and modification time."""
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT run_id, status, error FROM runs ORDER BY rowid").fetchall()
    return rows, db.read_bytes(), db.stat().st_mtime_ns


def test_running_rows_of_a_dead_process_read_as_failed_and_reading_writes_nothing(tmp_path, capsys):
    path = write_grid(tmp_path, grid={"seed": [0, 1]})
    sweep = sw.Sweep.from_file(path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    insert_row(sweep, "seed=0", "running", dead.pid)
    insert_row(sweep, "seed=1", "running", os.getpid())  # alive: left to the process running it
    before = stored(sweep.db)
    status = sweep.status()
    assert status.loc["seed=0", "status"] == "failed"
    assert f"pid {dead.pid}" in sw.records(sweep).loc["seed=0", "error"]
    assert status.loc["seed=1", "status"] == "running"
    assert sweep.estimate()["failed"] == 1
    assert cli(["sweep", str(path), "--dry-run"]) == 0
    assert "failed" in capsys.readouterr().out
    assert stored(sweep.db) == before  # every read above left the file as it was
    assert before[0][0] == ("seed=0", "running", None)

    sweep.run(progress=False)  # neither retried nor taken over: nothing executes
    assert not (sweep.output_dir / "notebooks").exists()
    assert list(sweep.status()["status"]) == ["failed", "running"]
    assert stored(sweep.db)[0][0][:2] == ("seed=0", "failed")  # running the sweep writes it down


def test_a_running_row_is_alive_only_with_the_pid_start_and_host_it_recorded(tmp_path):
    """After a crash, a later process may get the pid of the sweep that ran a row: the row
    names that process by its start time too, so it reads as failed. Rows of another host
    cannot be checked and stay running; rows recorded without a start time go by the pid."""
    me, host = os.getpid(), socket.gethostname()
    start = process_start(me)
    assert start is not None and process_start(me) == start
    psutil = pytest.importorskip("psutil") if sys.platform.startswith("linux") and HAS_PSUTIL else None
    if psutil is not None:  # the start in clock ticks since boot, as psutil reads it
        since_boot = int(start.rsplit(":", 1)[1]) / os.sysconf("SC_CLK_TCK")
        assert abs(psutil.boot_time() + since_boot - psutil.Process(me).create_time()) < 2
    assert row_alive(me, host, start) and row_alive(me, host, None)
    assert not row_alive(me, host, start + "0")  # this pid, but another process
    assert row_alive(me, "another-host", start + "0")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not row_alive(dead.pid, host, None)
    with pytest.raises(ProcessLookupError):
        process_start(dead.pid)

    sweep = sw.Sweep.from_file(write_grid(tmp_path, grid={"seed": [0, 1, 2, 3]}))
    Store(sweep.db)
    rows = {"seed=0": (host, start + "0"), "seed=1": (host, start), "seed=2": ("another-host", start + "0"),
            "seed=3": (host, None)}
    with sqlite3.connect(sweep.db) as db:
        for rid, (where, when) in rows.items():
            db.execute("INSERT INTO runs (run_id, parameters, status, started, pid, host, process_start) "
                       "VALUES (?, ?, 'running', ?, ?, ?, ?)",
                       (rid, json.dumps(dict(sweep.runs())[rid], sort_keys=True), now(), me, where, when))
    assert list(sweep.status()["status"]) == ["failed", "running", "running", "running"]
    assert f"pid {me}" in sw.records(sweep).loc["seed=0", "error"]
    assert Store(sweep.db).reconcile() == ["seed=0"]
    info = {"device": None, "notebook": None, "hardware": {}, "versions": {}, "git_revision": None, "git_dirty": None}
    assert Store(sweep.db).claim("seed=0", {}, True, info)  # failed: taken over and retried
    assert not Store(sweep.db).claim("seed=1", {}, True, info)  # running in a live process
    assert sw.records(sweep).loc["seed=0", "process_start"] == start


def test_a_store_made_before_process_start_times_gains_the_column(tmp_path):
    db = tmp_path / "results.sqlite"
    with sqlite3.connect(db) as con:
        con.execute(re.sub(r"\n\s*process_start\s+TEXT,[^\n]*", "", SCHEMA))
        con.execute("INSERT INTO runs (run_id, parameters, status, pid, host) VALUES ('a', '{}', 'running', ?, ?)",
                    (os.getpid(), socket.gethostname()))
    assert "process_start" not in read_rows(db)["a"]
    assert as_seen(read_rows(db))["a"]["status"] == "running"  # judged by its pid
    Store(db)
    assert read_rows(db)["a"]["process_start"] is None and read_rows(db)["a"]["status"] == "running"


def test_reading_a_missing_store_creates_nothing(tmp_path):
    sweep = sw.Sweep.from_file(write_grid(tmp_path, grid={"seed": [0]}))
    assert list(sweep.status()["status"]) == ["pending"]
    with pytest.raises(FileNotFoundError, match="no results database"):
        sw.records(sweep)
    assert not (tmp_path / "out").exists()


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
    # each run sleeps 2 s, so the two overlap even when one kernel starts later than the other under load
    sweep = sw.Sweep.from_file(write_grid(tmp_path, parameters={"pause": 2.0}, grid={"seed": [0, 1]}))
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


# --------------------------------------------------------------------------- stopping
def kill_quietly(*pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, TypeError):
            pass


def notebook_pids(pid_file) -> list[int] | None:
    """[kernel, helper] written by the toy notebook once it runs."""
    text = pid_file.read_text().strip() if pid_file.is_file() else ""
    return [int(p) for p in text.split()] if len(text.split()) == 2 else None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_a_killed_sweep_takes_its_notebooks_with_it(tmp_path, sig):
    """papermill, the kernel (which would write the result) and the kernel's own children end
    with the sweep, so no orphan writes a result behind a run recorded as failed."""
    pid_file = tmp_path / "notebook.pids"
    path = write_grid(tmp_path, parameters={"pause": 300.0, "pid_file": str(pid_file), "helper": True},
                      grid={"seed": [0]})
    # As a sweep started from a terminal: Ctrl-C's signal at its default disposition, even when
    # this test runs under a shell that started it in the background (which ignores SIGINT).
    proc = subprocess.Popen([sys.executable, "-m", "abalone_core.cli", "sweep", str(path), "--quiet"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    kernel = papermill = helper = None
    try:
        kernel, helper = wait_for(lambda: notebook_pids(pid_file), 180, "the notebook to start")
        papermill = parent(kernel)
        assert parent(helper) == kernel
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        if sig == signal.SIGKILL:  # nothing runs in the sweep: papermill's parent-death signal ends it,
            assert proc.returncode == -signal.SIGKILL  # and the kernel ends when papermill is gone
            wait_for(lambda: not alive(kernel) and not alive(papermill), 15, "the notebook's processes to end")
        else:  # the sweep ends the whole tree before it exits
            assert proc.returncode == 130 and "interrupted" in err, err
            assert not alive(kernel) and not alive(papermill) and not alive(helper)
    finally:
        kill_quietly(proc.pid if proc.poll() is None else None, kernel, papermill, helper)
    sweep = sw.Sweep.from_file(path)
    record = sw.records(sweep).loc["seed=0"]
    assert record["status"] == "failed"
    assert ("killed or crashed" if sig == signal.SIGKILL else "interrupted") in record["error"]
    assert not sweep.paths("seed=0")["result"].exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_an_error_in_the_sweep_stops_its_notebooks(tmp_path, monkeypatch):
    pid_file = tmp_path / "notebook.pids"
    sweep = sw.Sweep.from_file(write_grid(tmp_path, parameters={"pause": 300.0, "pid_file": str(pid_file),
                                                                "helper": True}, grid={"seed": [0]}))
    real_wait = sw.executors.LocalPool.wait

    def wait(self, handles):
        if notebook_pids(pid_file):
            raise RuntimeError("the sweep broke")
        return real_wait(self, handles)

    monkeypatch.setattr(sw.executors.LocalPool, "wait", wait)
    try:
        with pytest.raises(RuntimeError, match="the sweep broke"):
            sweep.run(progress=False)
        assert not any(alive(pid) for pid in notebook_pids(pid_file))  # ended before run() returned
    finally:
        kill_quietly(*(notebook_pids(pid_file) or []))
    assert sw.records(sweep).loc["seed=0", "status"] == "failed"
    assert not sweep.paths("seed=0")["result"].exists()


def test_changed_runs_stop_the_sweep_unless_rerun_and_nothing_of_them_is_lost(tmp_path):
    spec = dict(grid={"seed": [0, 1]}, parameters={"pause": 0.0})
    path = write_grid(tmp_path, **spec)
    sw.Sweep.from_file(path).run(progress=False)
    old_result = json.loads((tmp_path / "out" / "results" / "seed=1.json").read_text())

    path = write_grid(tmp_path, **spec, parameters_by={"seed": {1: {"pause": 0.01}}})
    sweep = sw.Sweep.from_file(path)
    assert sweep.status().loc["seed=1", "status"] == "changed"
    with pytest.raises(ValueError, match="--rerun-changed"):
        sweep.run(progress=False)
    assert sweep.status().loc["seed=1", "status"] == "changed"  # refused before touching anything

    st = sweep.run(progress=False, rerun_changed=True)
    assert (st["status"] == "done").all()
    assert sw.records(sweep).loc["seed=1", "parameters"]["pause"] == 0.01
    (kept,) = (tmp_path / "out" / "superseded").iterdir()
    old = [json.loads(l) for l in (kept / "runs.jsonl").read_text().splitlines()]
    assert [r["run_id"] for r in old] == ["seed=1"] and old[0]["parameters"]["pause"] == 0.0
    assert json.loads((kept / "result" / "seed=1.json").read_text()) == old_result
    assert (kept / "notebook" / "seed=1.ipynb").is_file()
    assert not (kept / "result" / "seed=0.json").exists()  # the unchanged run stays where it was


def test_a_run_that_depends_on_a_changed_run_is_changed_too(tmp_path):
    """msc-ft starts from msc's run folder: when the grid file changes msc alone, msc-ft
    (made from the old msc) is changed too and runs again after the new msc; frozen, which
    depends on nothing, stays done and keeps its recorded parameters."""
    # fail_flag stands for init_from: the toy notebook only checks whether that path exists
    spec = dict(grid={"objective": ["msc", "msc-ft", "frozen"]}, parameters={"pause": 0.0},
                depends_on={"fail_flag": {"objective": {"msc-ft": "msc"}}})
    path = write_grid(tmp_path, **spec)
    assert (sw.Sweep.from_file(path).run(progress=False)["status"] == "done").all()
    first = sw.records(sw.Sweep.from_file(path))
    assert first.loc["objective=frozen", "parameters"] == {"pause": 0.0, "objective": "frozen"}
    frozen = mtimes(tmp_path / "out" / "notebooks")["objective=frozen.ipynb"]

    path = write_grid(tmp_path, **spec, parameters_by={"objective": {"msc": {"pause": 0.01}}})
    sweep = sw.Sweep.from_file(path)
    assert dict(sweep.status()["status"]) == {"objective=msc": "changed", "objective=msc-ft": "changed",
                                              "objective=frozen": "done"}
    assert cli(["sweep", str(path), "--rerun-changed", "--quiet"]) == 0
    recs = sw.records(sweep)
    assert (recs["status"] == "done").all()
    assert recs.loc["objective=msc-ft", "started"] > recs.loc["objective=msc", "finished"]
    for rid in ("objective=msc", "objective=msc-ft"):
        assert recs.loc[rid, "started"] > first.loc[rid, "finished"]  # both ran again
    needs = recs.loc["objective=msc-ft", "parameters"]["depends_on"]
    assert needs == {"fail_flag": {"run_id": "objective=msc",
                                   "parameters": digest(recs.loc["objective=msc", "parameters"])}}
    (kept,) = (tmp_path / "out" / "superseded").iterdir()
    assert sorted(json.loads(l)["run_id"] for l in (kept / "runs.jsonl").read_text().splitlines()) == [
        "objective=msc", "objective=msc-ft"]
    assert mtimes(tmp_path / "out" / "notebooks")["objective=frozen.ipynb"] == frozen
    assert recs.loc["objective=frozen", "attempts"] == 1
    table = sw.aggregate(sweep, columns=(), where={"pause": 0.0})  # depends_on is no setting of a row
    assert sorted(table.index) == ["frozen", "msc-ft"]


def test_an_exported_run_recorded_without_what_it_depends_on_runs_again_with_it(tmp_path):
    """An export's msc-ft recorded before runs named what they depend on is not taken, and the
    msc it needs is not taken either on a clone without msc's run folder: both run again."""
    spec = dict(grid={"objective": ["msc", "msc-ft"]}, export="committed",
                depends_on={"fail_flag": {"objective": {"msc-ft": "msc"}}})
    first = tmp_path / "first"
    sw.Sweep.from_file(write_grid(first, **spec)).run(progress=False)
    rows = [json.loads(l) for l in (first / "committed" / "runs.jsonl").read_text().splitlines()]
    for row in rows:
        row["parameters"].pop("depends_on", None)
    clone = tmp_path / "clone"
    (clone / "committed").mkdir(parents=True)
    (clone / "committed" / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    sweep = sw.Sweep.from_file(write_grid(clone, **spec))
    assert sweep.import_export() == []
    assert (sweep.run(progress=False)["status"] == "done").all()
    assert {p.stem for p in (clone / "out" / "notebooks").glob("*.ipynb")} == {"objective=msc", "objective=msc-ft"}


def test_a_record_states_the_threads_its_notebook_ran_with(monkeypatch):
    # two workers on one machine: each notebook gets cores // 2 threads, and its record says so,
    # not the threads of the sweep's own process, which measures the hardware
    from abalone_core.sweep.runner import run_hardware, thread_env

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    env = thread_env(2)
    assert env["OMP_NUM_THREADS"] == "4"
    assert run_hardware(None, env)["cpu_threads"] == 4
    import torch

    assert run_hardware(None, {})["cpu_threads"] == torch.get_num_threads()  # one worker: the notebook's own


# --------------------------------------------------------------------------- precision
def test_runs_left_in_another_precision_than_the_finished_ones_are_refused_before_running(tmp_path, capsys):
    """A grid whose finished runs trained in one precision is not continued in another: the
    sweep says so in one line naming the export before any notebook runs (--any-precision
    overrides), and goes on where this machine resolves the grid's precision the same way."""
    from abalone_core.sweep.precision import pinned_precision, precision_here

    here = precision_here("auto")
    other = "fp16" if here != "fp16" else "bf16"  # a CPU never resolves auto to float16
    for folder, recorded, refused in (("differs", other, True), ("same", here, False)):
        first = tmp_path / folder / "first"
        sw.Sweep.from_file(write_grid(first, grid={"seed": [0]}, export="committed")).run(progress=False)
        line = json.loads((first / "committed" / "runs.jsonl").read_text())
        line["metrics"]["precision"] = recorded  # as the run notebook records it
        clone = tmp_path / folder / "clone"
        (clone / "committed").mkdir(parents=True)
        (clone / "committed" / "runs.jsonl").write_text(json.dumps(line) + "\n")
        grid = write_grid(clone, grid={"seed": [0, 1, 2]}, export="committed")
        sweep = sw.Sweep.from_file(grid)
        if refused:
            assert cli(["sweep", str(grid), "--dry-run"]) == 0
            assert "refused without --any-precision" in capsys.readouterr().out
            with pytest.raises(ValueError, match=r"committed/runs.jsonl: its 1 finished runs trained in float16 "
                                                 r"autocast, and this machine would train the 2 runs left in"):
                sweep.run(progress=False)
            assert not (clone / "out" / "notebooks").exists() or not list((clone / "out" / "notebooks").glob("*"))
            st = sweep.run(progress=False, any_precision=True)
        else:
            st = sweep.run(progress=False)
        assert (st["status"] == "done").all() and len(st) == 3
    assert pinned_precision({"overrides": {"mixed_precision": "no"}, "seed": 0}) == "no"
    assert pinned_precision({"seed": 0}) == "auto"
