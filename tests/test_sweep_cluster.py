"""Cluster execution (abalone_core.sweep.executors): grids run as submitit jobs, tested with
submitit's local executor (jobs on this machine), the Slurm job script built from the grid
file and the command line, and the executor settings checked."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

import pytest

from abalone_core import sweep as sw
from abalone_core.sweep.cli import add_parser, executor_spec
from abalone_core.sweep.executors import ExecutorSpec, make_submitit_executor
from test_sweep_support import alive, parent, wait_for, write_grid

submitit = pytest.importorskip("submitit")
LOCAL = {"name": "submitit-local", "time_limit": 30, "poll_s": 0.2}


def test_a_grid_runs_as_submitit_jobs_and_the_store_records_them(tmp_path):
    sweep = sw.Sweep.from_file(write_grid(tmp_path, grid={"objective": ["msc", "base"], "seed": [1]},
                                          executor=LOCAL, export="published"))
    assert sweep.executor == LOCAL
    st = sweep.run(progress=False)
    assert (st["status"] == "done").all(), sw.records(sweep)["error"].to_dict()
    recs = sw.records(sweep)
    assert recs.loc["objective=msc,seed=1", "metrics"]["test"]["micro_f1"] == 61
    assert recs.loc["objective=base,seed=1", "metrics"]["test"]["micro_f1"] == 56
    for rid, r in recs.iterrows():
        assert r["pid"] == os.getpid()  # recorded by the submitting process
        assert r["metrics"]["pid"] != os.getpid()  # run by a job
        assert r["hardware"]["platform"] and r["duration_s"] > 0 and r["attempts"] == 1
        assert sweep.paths(rid)["notebook"].is_file()
    assert list((sweep.output_dir / "jobs").glob("*_log.err"))  # submitit's job logs
    assert len((tmp_path / "published" / "runs.jsonl").read_text().splitlines()) == 2
    assert (sweep.run(progress=False)["status"] == "done").all()  # nothing left to submit
    assert (sw.records(sweep)["attempts"] == 1).all()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_job_that_dies_is_recorded_failed(tmp_path):
    """The job of seed 1 is killed (as by a node failure or the OOM killer) while its notebook
    runs: the run is recorded failed with the job's logs, seed 0 finishes, and the notebook
    does not outlive its job."""
    pid_file = tmp_path / "notebook.pids"
    sweep = sw.Sweep.from_file(write_grid(  # seed 1 alone waits and writes its pids
        tmp_path, executor=LOCAL, grid={"seed": [0, 1], "pause": [0.0, 300.0], "pid_file": ["", str(pid_file)]},
        exclude=[{"seed": 0, "pause": 300.0}, {"seed": 0, "pid_file": str(pid_file)},
                 {"seed": 1, "pause": 0.0}, {"seed": 1, "pid_file": ""}]))
    (first, _), (second, _) = sweep.runs()
    killed = {}

    def kill_the_job():
        kernel = wait_for(lambda: pid_file.is_file() and pid_file.read_text().split(), 180, "the notebook")[0]
        killed["kernel"] = int(kernel)
        killed["papermill"] = parent(int(kernel))
        killed["job"] = parent(killed["papermill"])  # the job's task process runs papermill
        os.kill(killed["job"], signal.SIGKILL)

    thread = threading.Thread(target=kill_the_job, daemon=True)
    thread.start()
    try:
        st = sweep.run(progress=False)
        thread.join(5)
        assert st.loc[first, "status"] == "done"
        assert st.loc[second, "status"] == "failed"
        error = sw.records(sweep).loc[second, "error"]
        assert error.startswith("job ") and "ended without a result" in error and "_log.err" in error
        wait_for(lambda: not alive(killed["kernel"]) and not alive(killed["papermill"]), 15, "the notebook to end")
        assert not sweep.paths(second)["result"].exists()
    finally:
        for pid in killed.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def parse(argv):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["sweep", "grid.yaml", *argv])


def test_slurm_settings_reach_the_job_script(tmp_path, monkeypatch):
    """The grid file's executor section and the command line make the sbatch script
    (submitit's Slurm executor, without a cluster: its check for srun is bypassed)."""
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    sweep = sw.Sweep.from_file(write_grid(tmp_path, grid={"seed": [0]},
                                          executor={"name": "slurm", "partition": "small", "time_limit": 30,
                                                    "setup": ["module load cuda"], "slurm": {"qos": "normal"}}))
    args = parse(["--partition", "gpu", "--gpus-per-run", "1", "--cpus-per-run", "8", "--mem-gb", "32",
                  "--time-limit", "120", "--slurm", "account=myproject"])
    spec = executor_spec(sweep, args)
    assert (spec.name, spec.partition, spec.time_limit) == ("slurm", "gpu", 120)  # the command line wins
    assert spec.slurm == {"qos": "normal", "account": "myproject"}
    executor = make_submitit_executor(spec, tmp_path / "jobs")
    executor.update_parameters(**spec.submitit_parameters("abalone:seed=0"))
    script = executor._executor._make_submission_file_text("python -m submitit.core._submit", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --mem=32GB", "#SBATCH --time=120", "#SBATCH --account=myproject", "#SBATCH --qos=normal",
                 "#SBATCH --job-name=abalone:seed=0", "module load cuda"):
        assert line in script, script
    assert executor_spec(sweep, parse([])).partition == "small"  # the grid file's, without options
    assert executor_spec(sweep, parse(["--executor", "local"])) == ExecutorSpec()  # the file's Slurm set-up left out
    with pytest.raises(ValueError, match="cluster executor"):
        executor_spec(sweep, parse(["--executor", "local", "--partition", "gpu"]))


@pytest.mark.parametrize("spec, message", [
    ({"name": "slurm", "partition": "gpu"}, "time limit"),
    ({"name": "local", "gpus_per_run": 1}, "cluster executor"),
    ({"name": "slurm", "time_limit": 1.5}, "whole number"),
    ({"name": "slurm", "time_limit": 10, "slurm": ["account"]}, "sbatch options"),
])
def test_executor_settings_are_checked(spec, message):
    with pytest.raises(ValueError, match=message):
        ExecutorSpec.of(spec)


def test_devices_are_for_the_local_executor(tmp_path):
    sweep = sw.Sweep.from_file(write_grid(tmp_path, grid={"seed": [0]}))
    with pytest.raises(ValueError, match="devices are for the local executor"):
        sweep.run(devices="cuda:0", executor=LOCAL, progress=False)
    assert not (tmp_path / "out").exists()
