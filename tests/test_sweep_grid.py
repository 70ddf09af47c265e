"""The grid (abalone_core.sweep.grid, .check): expansion, run ids, bad grid files, the dry
run and its check of every run's full configuration, data paths relative to the grid file."""
from __future__ import annotations

import json

import nbformat
import pytest

from abalone_core import sweep as sw
from abalone_core.sweep.check import config_call, run_config
from abalone_core.sweep.grid import digest
from test_sweep_support import ROOT, cli, write_grid


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
    ({"parameters": {"depends_on": 1}, "grid": {"objective": ["msc", "msc-ft"]},
      "depends_on": {"fail_flag": {"objective": {"msc-ft": "msc"}}}}, "names the runs a run depends on"),
    ({"executor": {"name": "slurm", "partition": "gpu"}}, "time limit"),
    ({"executor": {"name": "local", "partition": "gpu"}}, "cluster executor"),
    ({"executor": {"name": "pbs"}}, "executor must be one of"),
    ({"executor": {"name": "slurm", "time_limit": 10, "gpus": 1}}, "unknown keys"),
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


def run_grid(folder, **spec):
    """A grid of notebooks/run.ipynb (nothing is executed in these tests)."""
    return write_grid(folder, notebook=str(ROOT / "notebooks" / "run.ipynb"), **spec)


def test_dry_run_checks_the_full_configuration_of_every_run(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "mine.jsonl").write_text('{"text": "a", "labels": ["x"]}\n')
    path = run_grid(tmp_path, parameters={"max_steps": 5, "overrides": {"lr_head": 0.001}},
                    grid={"objective": ["msc", "focal"], "temperature": [0.1, 0.0],
                          "dataset_kwargs": [{"path": "data/mine.jsonl"}, {"path": "data/gone.jsonl"}],
                          "dataset": ["jsonl"]})
    assert cli(["sweep", str(path), "--dry-run"]) == 1
    out = capsys.readouterr().out
    reasons = sw.Sweep.from_file(path).check()
    ok = "dataset=jsonl,dataset_kwargs=path-data-mine.jsonl,objective=msc,temperature=0.1"
    assert reasons[ok] is None
    for rid, why in reasons.items():
        if "temperature=0.0" in rid:
            assert "temperature must be > 0, got 0.0" in why
        elif "gone.jsonl" in rid:
            assert why == f"dataset_kwargs path {(data / 'gone.jsonl').resolve()} does not exist"
        assert (why is None) == (rid.endswith("temperature=0.1") and "mine.jsonl" in rid)
        assert rid in out
    assert out.count("temperature must be > 0, got 0.0") == 4 and out.count("gone.jsonl does not exist") == 2
    assert "6 runs have an invalid configuration" in out
    assert not (tmp_path / "out").exists()

    # a key of overrides that Config does not know, and a dataset argument its loader does not take
    path = run_grid(tmp_path, parameters={"overrides": {"lr_haed": 0.01}, "dataset": "disaster"},
                    grid={"objective": ["msc"], "dataset_kwargs": [{}, {"colour": "red"}]})
    reasons = sw.Sweep.from_file(path).check()
    assert all("unknown configuration keys ['lr_haed']" in why for why in reasons.values())
    path = run_grid(tmp_path, grid={"objective": ["msc", "msc-ft"], "dataset_kwargs": [{}, {"colour": "red"}]},
                    parameters={"supervised_overrides": {"probe": {"epochs": 1, "lrs": [0.1]}}},
                    depends_on={"init_from": {"objective": {"msc-ft": "msc"}}})
    reasons = sw.Sweep.from_file(path).check()
    assert reasons["dataset_kwargs=-,objective=msc"] is None
    assert "takes no argument(s) ['colour']" in reasons["dataset_kwargs=colour-red,objective=msc"]
    assert reasons["dataset_kwargs=-,objective=msc-ft"] is None


def test_the_check_builds_the_configuration_the_run_notebook_builds(tmp_path):
    """run_config evaluates notebooks/run.ipynb's own row_config(...) call with a run's values."""
    call = config_call(ROOT / "notebooks" / "run.ipynb")
    assert call is not None and {k.arg for k in call.keywords} >= {"init_from", "overrides", "supervised_overrides",
                                                                    "dataset_kwargs", "output_dir"}
    path = run_grid(tmp_path, parameters={"max_steps": 7, "overrides": {"lr_head": 0.001},
                                          "supervised_overrides": {"lr_head": 0.01},
                                          "dataset_kwargs": {"path": "d.csv", "label_sep": "|"}, "dataset": "csv"},
                    grid={"objective": ["msc", "msc-ft"], "seed": [3]},
                    depends_on={"init_from": {"objective": {"msc-ft": "msc"}}})
    sweep = sw.Sweep.from_file(path)
    msc, ft = (run_config(sweep, rid) for rid in ("objective=msc,seed=3", "objective=msc-ft,seed=3"))
    assert (msc.objective, msc.lr_head, msc.init_from, msc.max_steps, msc.seed) == ("msc", 0.001, None, 7, 3)
    assert (ft.objective, ft.lr_head, ft.init_from) == ("bce", 0.01, str(sweep.paths("objective=msc,seed=3")["run_dir"]))
    assert ft.output_dir == str(sweep.paths("objective=msc-ft,seed=3")["run_dir"])
    assert msc.subset == {"train": 600, "validation": 200, "test": 400}  # the notebook's default
    assert msc.dataset_kwargs == {"path": str(tmp_path / "d.csv"), "label_sep": "|"}
    assert dict(sweep.runs())["objective=msc,seed=3"]["dataset_kwargs"]["path"] == "d.csv"  # recorded as written


def test_data_paths_start_at_the_grid_file_folder(tmp_path):
    """dataset_kwargs paths reach the notebook absolute, from the grid file's folder (papermill
    runs it in its own folder), and are recorded as written."""
    grid_dir = tmp_path / "sweeps"
    spec = {"parameters": {"dataset_kwargs": {"path": {"train": "data/a.csv", "test": "/abs/b.csv"},
                                              "data_dir": "cache", "label_sep": "|"}},
            "grid": {"seed": [0]}}
    sweep = sw.Sweep.from_file(write_grid(grid_dir, **spec))
    sent = sweep.notebook_parameters("seed=0")["dataset_kwargs"]
    assert sent == {"path": {"train": str(grid_dir / "data" / "a.csv"), "test": "/abs/b.csv"},
                    "data_dir": str(grid_dir / "cache"), "label_sep": "|"}
    st = sweep.run(progress=False)
    assert (st["status"] == "done").all()
    recs = sw.records(sweep)
    assert recs.loc["seed=0", "metrics"]["dataset_kwargs"] == sent  # what the notebook received
    assert recs.loc["seed=0", "parameters"]["dataset_kwargs"] == spec["parameters"]["dataset_kwargs"]


def test_run_notebook_is_clean_and_declares_the_sweep_parameters():
    path = ROOT / "notebooks" / "run.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    grid = sw.Sweep.from_file(ROOT / "sweeps" / "paper_grid.yaml")  # every grid key is a parameter
    assert {"result_path", "run_dir", "device", "init_from"} <= grid.declared_parameters()
    assert len(grid.runs()) == 2 * 10 * 3
    assert grid.needs("dataset=foldoc,objective=msc-ft,seed=2") == {"init_from": "dataset=foldoc,objective=msc,seed=2"}
    cpu = sw.Sweep.from_file(ROOT / "sweeps" / "cpu_grid.yaml")
    assert len(cpu.runs()) == 2 * 9 * 3 and "supervised_overrides" in cpu.declared_parameters()
    assert [cell["seed"] for _, cell in cpu.runs()][:18] == [0] * 18  # seeds first


@pytest.mark.parametrize("name", ["cpu_grid", "cpu_converged", "gpu_grid", "paper_grid", "encoder_depth", "gpu_depth", "debtags", "gpu_debtags"])
def test_the_committed_grids_are_valid_run_by_run(name):
    sweep = sw.Sweep.from_file(ROOT / "sweeps" / f"{name}.yaml")
    bad = {rid: why for rid, why in sweep.check().items() if why is not None}
    assert not bad, json.dumps(bad, indent=1)[:2000]


def test_parameters_by_gives_one_value_its_own_settings_and_keeps_the_others_ids(tmp_path):
    """A dataset (here: a seed) can get its own budget; the other cells keep their parameters,
    so their exported runs stay done while the changed cells run again."""
    base = dict(grid={"seed": [0, 1]}, parameters={"pause": 0.0, "dataset_kwargs": {"a": 1, "b": 2}},
                export="committed")
    first = tmp_path / "first"
    sw.Sweep.from_file(write_grid(first, **base)).run(progress=False)

    clone = tmp_path / "clone"
    (clone / "committed").mkdir(parents=True)
    (clone / "committed" / "runs.jsonl").write_text((first / "committed" / "runs.jsonl").read_text())
    sweep = sw.Sweep.from_file(write_grid(clone, **base, parameters_by={"seed": {1: {"pause": 0.01,
                                                                                     "dataset_kwargs": {"b": 3}}}}))
    runs = dict(sweep.runs())
    assert runs["seed=0"] == {"pause": 0.0, "dataset_kwargs": {"a": 1, "b": 2}, "seed": 0}
    # a mapping is merged key by key, a plain value replaced
    assert runs["seed=1"] == {"pause": 0.01, "dataset_kwargs": {"a": 1, "b": 3}, "seed": 1}
    assert sweep.notebook_parameters("seed=1")["pause"] == 0.01
    assert sweep.import_export() == ["seed=0"]
    st = sweep.run(progress=False)
    assert (st["status"] == "done").all()
    assert {p.stem for p in (clone / "out" / "notebooks").glob("*.ipynb")} == {"seed=1"}
    recs = sw.records(clone / "committed" / "runs.jsonl")
    assert recs.loc["seed=1", "metrics"]["dataset_kwargs"] == {"a": 1, "b": 3}  # what the notebook received
    assert recs.loc["seed=0", "parameters"]["dataset_kwargs"] == {"a": 1, "b": 2}


@pytest.mark.parametrize("by, message", [
    ({"dataset": {"x": {"pause": 1}}}, "must be a grid key"),
    ({"seed": {7: {"pause": 1}}}, "not among"),
    ({"seed": {0: {}}}, "non-empty mapping"),
    ({"seed": {0: {"seed": 1}}}, "cannot be overridden"),
    ({"seed": {0: {"paws": 1}}}, "not parameters of"),
    ({"seed": {0: {"result_path": "x.json"}}}, "set by the sweep"),
])
def test_bad_parameters_by_entries_are_rejected(tmp_path, by, message):
    with pytest.raises(ValueError, match=message):
        sw.Sweep.from_file(write_grid(tmp_path, grid={"seed": [0, 1]}, parameters_by=by))


def sibling_imports(path, siblings) -> list[tuple[str, str]]:
    """``(module, where)`` of each import of a module of ``siblings`` in ``path``; where is
    ``module`` (runs when the file loads), ``function`` (inside a function) or ``type``
    (under ``if TYPE_CHECKING:``, never run)."""
    import ast

    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            targets = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("abalone_core.sweep."):
            targets = [node.module.split(".")[2]]
        else:
            continue
        where, up = "module", parents.get(node)
        while up is not None:
            if isinstance(up, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                where = "function"
                break
            if isinstance(up, ast.If) and ast.unparse(up.test).endswith("TYPE_CHECKING"):
                where = "type"
                break
            up = parents.get(up)
        out += [(t, where) for t in targets if t in siblings]
    return out


def test_the_sweep_modules_import_each_other_without_a_cycle():
    """Each module of abalone_core/sweep imports its siblings when it loads, none inside a
    function, and these imports form no cycle (the imports under TYPE_CHECKING, for
    annotations only, never run and are left out)."""
    import graphlib

    folder = ROOT / "abalone_core" / "sweep"
    siblings = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    graph, late = {}, []
    for name in sorted(siblings):
        found = sibling_imports(folder / f"{name}.py", siblings)
        late += [f"{name} -> {target}" for target, where in found if where == "function"]
        graph[name] = {target for target, where in found if where == "module"}
    assert not late, f"imports of sibling modules inside functions: {late}"
    order = list(graphlib.TopologicalSorter(graph).static_order())  # CycleError on a cycle
    assert set(order) == siblings
    assert order.index("store") < order.index("grid") < order.index("cli")


def test_the_committed_export_keeps_the_ids_and_parameters_of_its_independent_runs():
    """results/cpu_converged is matched against its grid file by run id and parameters: the
    runs that depend on no other run record what they always did, and the msc-ft runs differ
    only by the runs they start from (``depends_on``), so they alone are made again."""
    sweep = sw.Sweep.from_file(ROOT / "sweeps" / "cpu_converged.yaml")
    runs = dict(sweep.runs())
    rows = [json.loads(line) for line in (ROOT / "results" / "cpu_converged" / "runs.jsonl").read_text().splitlines()
            if line.strip()]
    assert {r["run_id"] for r in rows} == set(runs)
    independent = [r for r in rows if not sweep.needs(r["run_id"])]
    assert independent and all(r["parameters"] == runs[r["run_id"]] for r in independent)
    for r in rows:
        needs = sweep.needs(r["run_id"])
        if needs:
            assert r["parameters"]["objective"] == "msc-ft"
            recorded = runs[r["run_id"]]
            assert {k: v for k, v in recorded.items() if k != "depends_on"} == r["parameters"]
            assert recorded["depends_on"] == {"init_from": {
                "run_id": needs["init_from"], "parameters": digest(runs[needs["init_from"]])}}


def test_a_dry_run_on_a_fresh_clone_counts_the_exported_runs_as_done_and_writes_nothing(tmp_path, capsys):
    base = dict(grid={"seed": [0, 1, 2]}, parameters={"pause": 0.0}, export="committed",
                estimate_minutes_per_run=10)
    first = tmp_path / "first"
    sw.Sweep.from_file(write_grid(first, **base)).run(progress=False)
    lines = (first / "committed" / "runs.jsonl").read_text().splitlines()
    clone = tmp_path / "clone"
    (clone / "committed").mkdir(parents=True)
    # seed 1 was exported with another parameter: it is not this grid's run, so it runs again
    changed = json.loads(lines[1])
    changed["parameters"]["pause"] = 0.5
    (clone / "committed" / "runs.jsonl").write_text("\n".join([lines[0], json.dumps(changed), lines[2]]) + "\n")
    path = write_grid(clone, **base)
    assert cli(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    status = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith("seed=")}
    assert status == {"seed=0": "done", "seed=1": "pending", "seed=2": "done"}
    assert "pending 1, done 2" in out and "1 to run x" in out and "mean of 2 finished runs" in out
    assert not (clone / "out").exists()  # a dry run reads; the sweep itself imports
    sweep = sw.Sweep.from_file(path)
    assert sorted(sweep.import_export()) == ["seed=0", "seed=2"]
    assert list(sweep.status()["status"]) == ["done", "pending", "done"]
