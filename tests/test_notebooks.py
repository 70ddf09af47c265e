"""The book's chapters: structure of the committed notebooks and of their paired scripts, and the
helpers they call (abalone_core.notebook). Their execution is tested in tests/test_book_execution.py.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from helpers import CHAPTERS, ROOT, code_cells, load_build_script

EXPECTED = CHAPTERS
NOTEBOOKS = [ROOT / "notebooks" / f"{name}.ipynb" for name in EXPECTED]
TRAINING = {"04_contrastive_pretraining", "05_evaluation", "06_supervised_baselines", "07_representations"}


@pytest.fixture(scope="module")
def notebooks():
    return {p.stem: nbformat.read(p, as_version=4) for p in NOTEBOOKS}


# --------------------------------------------------------------------------- structure
def test_every_chapter_is_present_and_built():
    assert all(p.is_file() for p in NOTEBOOKS)
    assert [p.stem for p in load_build_script().chapters()] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_valid_and_has_no_outputs(notebooks, name):
    nb = notebooks[name]
    nbformat.validate(nb)
    for cell in code_cells(nb):
        assert cell.outputs == [], f"{name}: committed outputs in cell {cell.get('id')}"
        assert cell.execution_count is None, f"{name}: execution count committed in cell {cell.get('id')}"


@pytest.mark.parametrize("name", EXPECTED)
def test_colab_cell_then_parameters_cell(notebooks, name):
    cells = code_cells(notebooks[name])
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [1], f"{name}: the second code cell (only) must be tagged 'parameters', got {tagged}"
    colab = cells[0].source
    assert 'if "google.colab" in sys.modules:' in colab
    assert "%pip install" in colab.split('if "google.colab" in sys.modules:')[1], "install must be guarded"
    params = ast.parse(cells[1].source)
    names = {t.id for node in params.body if isinstance(node, ast.Assign) for t in node.targets}
    assert "profile" in names
    if name != "08_results":  # chapter 8 only reads results
        assert "seed" in names
    if name in TRAINING:
        assert {"dataset", "backbone", "max_steps", "device", "runs_dir"} <= names


@pytest.mark.parametrize("name", EXPECTED)
def test_chapter_teaches_with_an_opening_exercises_with_hidden_solutions_and_a_summary(notebooks, name):
    cells = notebooks[name].cells
    markdown = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert "You will learn" in markdown, f"{name}: no opening list of what the reader will learn"
    assert "## What we saw" in markdown, f"{name}: no closing summary"
    exercises = sorted(set(re.findall(r"Exercise (\d+)", markdown)), key=int)
    assert len(exercises) >= 2, f"{name}: {len(exercises)} exercise(s), at least 2 wanted"
    hidden = [c for c in cells if c.cell_type == "code" and "hide-cell" in c.metadata.get("tags", [])]
    assert len(hidden) >= 2, f"{name}: the exercises' solutions must be code cells tagged hide-cell"


@pytest.mark.parametrize("name", EXPECTED)
def test_every_code_cell_is_valid_python(notebooks, name):
    from IPython.core.inputtransformer2 import TransformerManager

    for cell in code_cells(notebooks[name]):
        source = TransformerManager().transform_cell(cell.source)  # %pip and other magics -> Python
        try:
            ast.parse(source)
        except SyntaxError as err:
            pytest.fail(f"{name}, cell {cell.get('id')}: {err}")


# --------------------------------------------------------------------------- paired scripts
PAIRED = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_every_notebook_is_paired_with_a_percent_script():
    """``notebooks/X.ipynb`` and ``notebooks/X.py`` come in pairs, and jupytext knows the pairing
    (``jupytext --sync notebooks/*.ipynb`` needs it)."""
    from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file

    assert len(PAIRED) >= len(EXPECTED)
    scripts = {p.stem for p in (ROOT / "notebooks").glob("*.py")}
    assert scripts == {p.stem for p in PAIRED}, "every .ipynb needs its .py and every .py its .ipynb"
    found = find_jupytext_configuration_file(str(ROOT / "notebooks"))
    assert found is not None and Path(found) == ROOT / "notebooks" / "jupytext.toml"
    assert load_jupytext_configuration_file(found).formats in ("ipynb,py:percent", ["ipynb,py:percent"])


def _cells(notebook) -> list[tuple]:
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags", [])), dict(c.metadata)) for c in notebook.cells]


@pytest.mark.parametrize("path", PAIRED, ids=lambda p: p.stem)
def test_paired_script_holds_the_notebook_cells(path):
    """The .py and the .ipynb of a pair hold the same cells (type, source, tags, metadata):
    fails when one was edited without ``jupytext --sync notebooks/*.ipynb``."""
    import difflib

    import jupytext

    notebook = jupytext.read(path)
    script = jupytext.read(path.with_suffix(".py"))
    assert script.metadata["jupytext"]["text_representation"]["format_name"] == "percent"
    assert script.metadata.get("kernelspec") == notebook.metadata.get("kernelspec")
    # What the .py must hold: the notebook written as a percent script and read back. Cell
    # metadata that jupytext leaves out of scripts (UI state such as "scrolled") is not compared.
    expected = _cells(jupytext.reads(jupytext.writes(notebook, fmt="py:percent"), fmt="py:percent"))
    got = _cells(script)
    # the round trip itself keeps every cell, its tags (parameters, remove-cell, hide-input...)
    assert [(t, s, tags) for t, s, tags, _ in expected] == [(t, s, tags) for t, s, tags, _ in _cells(notebook)]
    for i, (want, have) in enumerate(zip(expected, got)):
        if want != have:
            diff = "\n".join(difflib.unified_diff(want[1].splitlines(), have[1].splitlines(), f"{path.name}",
                                                   f"{path.stem}.py", lineterm=""))
            pytest.fail(f"{path.stem}: cell {i} differs between the .ipynb and the .py (run `jupytext --sync "
                        f"notebooks/*.ipynb`): type {want[0]} / {have[0]}, tags {want[2]} / {have[2]}, "
                        f"metadata {want[3]} / {have[3]}\n{diff}")
    assert len(got) == len(expected), (f"{path.stem}: {len(expected)} cells in the .ipynb, {len(got)} in the .py "
                                       "(run `jupytext --sync notebooks/*.ipynb`)")


def test_colab_install_names_the_configured_repository(notebooks):
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    for name, nb in notebooks.items():
        assert f"git+{repo['url']}@{repo['branch']}" in code_cells(nb)[0].source, name


def test_table_of_contents_lists_every_page():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    for f in files:
        assert (ROOT / f"{f}.md").exists() or (ROOT / f"{f}.ipynb").exists(), f"{f} listed in _toc.yml is missing"
    assert {f"notebooks/{n}" for n in EXPECTED} <= set(files)
    assert {"book/intro", "book/method", "book/reproduce", "book/own_data", "book/references"} <= set(files)


def test_references_cover_the_cited_works():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = {line.split("{", 1)[1].rstrip(",").strip() for line in bib.splitlines() if line.startswith("@")}
    assert len(keys) >= 10
    cited = set()
    for page in (ROOT / "book").glob("*.md"):
        text = page.read_text()
        for chunk in text.split("{cite:")[1:]:
            cited.update(k.strip() for k in chunk.split("`")[1].split(","))
    assert cited and cited <= keys, f"cited but not in references.bib: {sorted(cited - keys)}"


# --------------------------------------------------------------------------- helpers
def test_importing_the_helpers_changes_nothing_in_the_process():
    """Warnings filters, logging levels, plotly's renderers and pandas' options are set by
    setup(), for the kernel that calls it, not by ``import abalone_core.notebook``."""
    code = """
import logging, sys, warnings
import numpy, pandas, abalone_core.training.config, abalone_core.report.paper  # what the module imports anyway
import plotly.io as pio
pio.renderers.default  # plotly loads its renderers (and their warnings filters) on first use
before = (list(warnings.filters), pio.renderers.default, list(pio.renderers),
          {n: logging.getLogger(n).level for n in ("transformers", "abalone_core", "umap", "numba")},
          pandas.get_option("display.precision"), logging.root.level, len(logging.root.handlers))
import abalone_core.notebook as nb
after = (list(warnings.filters), pio.renderers.default, list(pio.renderers),
         {n: logging.getLogger(n).level for n in ("transformers", "abalone_core", "umap", "numba")},
         pandas.get_option("display.precision"), logging.root.level, len(logging.root.handlers))
assert after == before, [(b, a) for b, a in zip(before, after) if a != b]
nb.setup()
assert pio.renderers.default == nb.RENDERER and any("IProgress" in str(f[1]) for f in warnings.filters)
assert logging.getLogger("transformers").level == logging.ERROR
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_renderer_emits_html_without_plotly_js():
    import plotly.graph_objects as go
    import plotly.io as pio

    from abalone_core import notebook as nb

    name = nb.register_renderer()
    bundle = pio.renderers[name].to_mimebundle(go.Figure(go.Bar(x=[1, 2], y=[3, 4])).to_dict())
    html = bundle["text/html"]
    assert 'class="plotly-graph-div"' in html and "Plotly.newPlot" in html
    assert len(html) < 100_000, "the fragment must not embed plotly.js"
    assert "application/vnd.plotly.v1+json" in bundle


def test_setup_picks_renderer_and_detects_colab(monkeypatch):
    import plotly.io as pio

    from abalone_core import notebook as nb

    monkeypatch.setattr(pio.renderers, "default", pio.renderers.default)  # restored after the test
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert nb.setup() == {"colab": False, "renderer": nb.RENDERER}
    assert pio.renderers.default == nb.RENDERER
    monkeypatch.setitem(sys.modules, "google.colab", object())
    assert nb.setup()["renderer"] == "colab"


def test_paper_rows_and_tables_come_from_paper_py():
    from abalone_core import notebook as nb
    from abalone_core.report import paper

    assert not [n for n in dir(nb) if n.startswith("PAPER_") or n == "LOSS_NAMES"], "no copies of paper.py"
    assert all(nb.row_name(o) == name for o, name in paper.NAMES.items())
    assert nb.row_name("frozen") == paper.NAMES["frozen"]  # one name for the frozen row, everywhere
    assert nb.row_name("bqueue-ft") == f"{paper.NAMES['bqueue']}-FT" and nb.row_name("tfidf-linear") == "TF-IDF" and nb.row_name("custom") == "custom"
    assert nb.row_order(["tfidf-linear", "msc-ft", "bce", "frozen", "msc"]) == ["frozen", "msc", "bce", "msc-ft",
                                                                               "tfidf-linear"]
    linear = nb.paper_table("linear").set_index("objective")
    assert list(linear.index) == ["frozen", "base", "bqueue", "bqproto", "msc"]
    assert linear.at["msc", "AAPD macro_f1"] == paper.TABLE2["aapd"]["msc"][1]
    assert linear.at["frozen", "RCV1 hamming"] == paper.TABLE2["rcv1"]["frozen"][2]
    assert linear.at["frozen", "loss"] == paper.NAMES["frozen"]
    supervised = nb.paper_table("supervised").set_index("objective")
    assert supervised.at["msc-ft", "AAPD micro_f1"] == paper.TABLE3["aapd"]["msc-ft"][0]
    assert "AAPD hamming" not in supervised
    clustering = nb.paper_table("clustering").set_index("objective")
    assert clustering.at["base", "RCV1 davies_bouldin"] == paper.TABLE4["base"][1]
    with pytest.raises(ValueError, match="unknown paper table"):
        nb.paper_table("table9")


def test_chapters_use_the_shared_helpers(notebooks):
    """The chapters that train share one preamble (nb.chapter), and name rows through paper.py."""
    for name, nb in notebooks.items():
        source = "\n".join(c.source for c in code_cells(nb))
        assert "LOSS_NAMES" not in source and "PAPER_" not in source and '"L_MLM' not in source, name
        if name in TRAINING:
            assert "nb.chapter(profile, runs_dir," in source and "def config(" not in source, name


def test_chapter_prepares_the_kernel_and_configures_its_runs(tmp_path, monkeypatch):
    import plotly.io as pio

    from abalone_core import notebook as nb

    monkeypatch.setattr(pio.renderers, "default", pio.renderers.default)
    chapter = nb.chapter("cpu", tmp_path, dataset=None, backbone=None, max_steps=None, seed=3, device="cpu")
    assert pio.renderers.default == nb.RENDERER and chapter.env["renderer"] == nb.RENDERER
    assert chapter.root == tmp_path and chapter.run_dir("msc-ft") == tmp_path / "msc-ft"
    cfg = chapter.config("msc")
    assert (cfg.seed, cfg.device, cfg.max_steps) == (3, "cpu", nb.PROFILES["cpu"]["max_steps"])
    assert cfg == nb.config_for("cpu", "msc", runs_dir=tmp_path, seed=3, device="cpu")
    ft = chapter.config("bce", name="msc-ft", init_from=str(tmp_path / "msc"), seed=4)
    assert Path(ft.output_dir) == tmp_path / "msc-ft" and ft.seed == 4 and ft.lr_head != cfg.lr_head
    calls = []
    monkeypatch.setattr(nb, "run_or_load", lambda config: calls.append(config) or {"objective": config.objective})
    assert chapter.run("focal") == {"objective": "focal"} and calls[0] == chapter.config("focal")
    default = nb.chapter("gpu")
    assert default.root == nb.runs_dir(None, "gpu") and default.root.name == "book-gpu"
    for wrong in (("tpu",), ("tpu", tmp_path)):
        with pytest.raises(ValueError, match="unknown profile"):
            nb.chapter(*wrong)


def test_config_for_merges_profile_and_ignores_none(tmp_path):
    from abalone_core import notebook as nb

    cfg = nb.config_for("cpu", "msc", runs_dir=tmp_path, max_steps=None, seed=3)
    assert cfg.max_steps == nb.PROFILES["cpu"]["max_steps"] and cfg.seed == 3
    assert cfg.output_dir == str(tmp_path / "msc")
    ft = nb.config_for("cpu", "bce", runs_dir=tmp_path, name="msc-ft", init_from=str(tmp_path / "msc"), max_steps=5)
    assert ft.output_dir.endswith("msc-ft") and ft.save_every == 5
    assert ft.lr_head == nb.PROFILES["cpu"]["supervised"]["lr_head"] != cfg.lr_head
    with pytest.raises(ValueError, match="unknown profile"):
        nb.config_for("tpu", "msc")


def _fake_training(monkeypatch, checkpoint_only=()):
    """runs.run replaced by a recorder that writes config.yaml and (unless the run's folder is
    in ``checkpoint_only``) metrics.json."""
    from abalone_core.training import runs

    calls = []

    def fake_run(config, resume=True, progress=True):
        calls.append((config.max_steps, resume))
        out = {"objective": config.objective, "test": {"micro_f1": 1.0}, "config": config.to_dict()}
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        config.save(Path(config.output_dir) / "config.yaml")
        if Path(config.output_dir).name not in checkpoint_only:
            (Path(config.output_dir) / "metrics.json").write_text(json.dumps(out))
        return out

    monkeypatch.setattr(runs, "run", fake_run)
    return calls


def test_run_or_load_reuses_a_finished_run(tmp_path, monkeypatch):
    from abalone_core import notebook as nb

    cfg = nb.config_for("cpu", "base", runs_dir=tmp_path)
    calls = _fake_training(monkeypatch)
    first = nb.run_or_load(cfg)
    again = nb.run_or_load(cfg)
    assert calls == [(cfg.max_steps, True)] and again == first
    nb.run_or_load(cfg.replace(max_steps=7))  # another budget in the same folder: trained again, from scratch
    assert calls[-1] == (7, False)


def test_run_or_load_ignores_the_device_and_how_lists_are_written(tmp_path, monkeypatch):
    """A finished run is read again on another device, and with its probe grid given as tuples;
    a run stopped half-way on another device resumes instead of starting over."""
    from abalone_core import notebook as nb

    calls = _fake_training(monkeypatch, checkpoint_only={"msc"})
    cfg = nb.config_for("cpu", "base", runs_dir=tmp_path, device="cpu")
    nb.run_or_load(cfg)
    probe = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.probe.items()}
    assert any(isinstance(v, tuple) for v in probe.values())
    for same in (cfg.replace(device="auto"), cfg.replace(device="cuda:1"), cfg.replace(probe=probe)):
        assert nb.run_or_load(same)["objective"] == "base"
    assert calls == [(cfg.max_steps, True)], "a finished run was trained again"
    nb.run_or_load(cfg.replace(probe={**cfg.probe, "epochs": 3}))  # the probe is part of the run
    assert calls[-1] == (cfg.max_steps, False)

    stopped = nb.config_for("cpu", "msc", runs_dir=tmp_path, device="cpu")
    nb.run_or_load(stopped)  # leaves config.yaml without metrics.json, as a stopped run does
    nb.run_or_load(stopped.replace(device="auto"))
    assert calls[-1] == (stopped.max_steps, True), "a checkpoint of the same run must be resumed"
    nb.run_or_load(stopped.replace(seed=9))
    assert calls[-1] == (stopped.max_steps, False)


@pytest.mark.parametrize("change", [{"device": "cuda:1"}, {"output_dir": "elsewhere"}, {"seed": 5},
                                    {"probe": {"epochs": 3}}, {"temperature": 0.2}])
def test_run_or_load_compares_configurations_as_the_trainer_resumes(tmp_path, change):
    """One rule: Config.differences, by which run_or_load decides "another run", says so exactly
    when train.Trainer.restore refuses the checkpoint."""
    from types import SimpleNamespace

    from abalone_core import notebook as nb
    from abalone_core.training.train import Trainer

    class Accepted(Exception):
        pass

    def accepted(*args, **kwargs):
        raise Accepted

    cfg = nb.config_for("cpu", "msc", runs_dir=tmp_path, device="cpu")
    other = cfg.replace(**change)
    trainer = SimpleNamespace(config=other, out=tmp_path, model=SimpleNamespace(load_state_dict=accepted))
    try:
        Trainer.restore(trainer, {"config": cfg.to_dict(), "model": {}})
    except Accepted:  # the configuration was accepted: restore went on to load the model
        refused = False
    except ValueError:
        refused = True
    else:
        pytest.fail("Trainer.restore neither refused the checkpoint nor loaded it")
    assert bool(other.differences(cfg.to_dict())) == refused
    assert set(other.differences(cfg.to_dict())) == {*change} - {"output_dir", "device"}


def _record(objective="bce", **config):
    return {"objective": objective, "test": {"micro_f1": 50.0, "macro_f1": 20.0, "hamming": 9.0},
            "config": {"objective": objective, "dataset": "disaster", "backbone": "minilm", "max_steps": 30, "seed": 0,
                       **config},
            "n_documents": {"train": 600}, "steps": 30, "train_seconds": 120.0, "hardware": {"cpu_threads": 2}}


def _write(path: Path, record: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def test_collect_results_reads_records_and_skips_others(tmp_path):
    from abalone_core import notebook as nb

    _write(tmp_path / "a" / "metrics.json", _record(init_from="runs/msc"))
    (tmp_path / "other.json").write_text(json.dumps({"name": "not a run"}))
    (tmp_path / "broken.json").write_text("{")
    table = nb.collect_results(tmp_path, tmp_path / "missing")
    assert len(table) == 1
    row = table.iloc[0]
    assert row["objective"] == "msc-ft" and row["micro_f1"] == 50.0 and row["train_minutes"] == 2.0
    assert row["hardware"] == "CPU (2 threads)"
    assert row["budget"] == 30
    one = _write(tmp_path / "b" / "metrics.json", {**_record(), "hardware": {"cpu_threads": 1}})
    assert nb.collect_results(one).iloc[0]["hardware"] == "CPU (1 thread)"


def test_a_row_that_trains_nothing_has_no_step_budget(tmp_path):
    """TF-IDF and L_MLM carry the profile's max_steps in their config, but train no step."""
    from abalone_core import notebook as nb

    for objective in ("tfidf-linear", "frozen", "bce"):
        _write(tmp_path / objective / "metrics.json", _record(objective))
    table = nb.collect_results(tmp_path).set_index("objective")
    assert table["budget"].isna().tolist() == [o in ("tfidf-linear", "frozen") for o in table.index]


def test_collect_results_counts_a_sweep_run_once_and_names_its_row(tmp_path):
    """A sweep run's folder holds the run's metrics.json (loss bce, started from the msc run)
    and the record the sweep notebook writes (row msc-ft): one row, msc-ft."""
    from abalone_core import notebook as nb

    source = tmp_path / "runs" / "dataset=disaster,objective=msc,seed=0"
    _write(source / "metrics.json", _record("msc", output_dir=str(source)))
    run_dir = tmp_path / "runs" / "dataset=disaster,objective=msc-ft,seed=0"
    metrics = _record("bce", init_from=str(source), output_dir=str(run_dir))
    _write(run_dir / "metrics.json", metrics)
    _write(run_dir / "result.json", {**metrics, "objective": "msc-ft", "loss": "bce", "silhouette": 0.1})
    table = nb.collect_results(tmp_path)
    assert sorted(table["objective"]) == ["msc", "msc-ft"]
    assert table.set_index("objective").at["msc-ft", "source"] == str(run_dir / "result.json")

    # the sweep's own layout: results/<run id>.json for the run in runs/<run id>
    sweep = tmp_path / "sweep"
    rid = "dataset=disaster,objective=bce,seed=1"
    bce = _record("bce", seed=1, output_dir=str(sweep / "runs" / rid))
    _write(sweep / "runs" / rid / "metrics.json", bce)
    _write(sweep / "results" / f"{rid}.json", {**bce, "loss": "bce"})
    assert list(nb.collect_results(sweep)["source"]) == [str(sweep / "results" / f"{rid}.json")]

    # a metrics.json alone names the fine-tuning row from the run it started from, not from a folder name
    alone = tmp_path / "alone"
    _write(alone / "ft" / "metrics.json", _record("bce", init_from=str(source)))
    _write(alone / "ft-of-gone" / "metrics.json", _record("bce", init_from=str(tmp_path / "gone,seed=0")))
    assert sorted(nb.collect_results(alone)["objective"]) == ["?-ft", "msc-ft"]


def test_collect_results_counts_a_head_learning_rate_grid_once(tmp_path):
    from abalone_core import notebook as nb

    run = tmp_path / "bce"
    for lr in (0.01, 0.1):
        _write(run / f"lr_head={lr:g}" / "metrics.json", _record(lr_head=lr, output_dir=str(run / f"lr_head={lr:g}")))
    _write(run / "metrics.json", {**_record(lr_head_grid=[0.01, 0.1], output_dir=str(run)),
                                  "lr_head_search": {"grid": [0.01, 0.1], "selected": 0.1}})
    table = nb.collect_results(tmp_path)
    assert list(table["source"]) == [str(run / "metrics.json")]


def test_label_group_of_docs_uses_the_rarest_label():
    from abalone_core.evaluation.metrics import label_group_of_docs

    counts = np.array([100, 50, 10, 5, 2, 1])          # head: 0, 1; medium: 2, 3; tail: 4, 5
    y = np.array([[1, 0, 0, 0, 0, 0], [1, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]])
    assert label_group_of_docs(y, counts).tolist() == ["head", "medium", "tail", "none"]


def test_book_build_executes_chapters_without_runs_beside_the_chain_that_shares_them(tmp_path):
    """scripts/build_book.py's execute_all: a chapter that declares no ``runs_dir`` runs while the
    chapters that share the runs are still busy (here the first of them waits for a file the other
    writes, which a one-at-a-time execution would never do), and results keep the chapters' order."""

    flag = tmp_path / "written"

    def chapter(name: str, parameters: str, code: str) -> Path:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell(code)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = tmp_path / name
        nbformat.write(nb, path)
        return path

    waits = chapter("04_waits.ipynb", "profile = 'cpu'\nruns_dir = None",
                    f"import pathlib, time\nstart = time.time()\nwhile not pathlib.Path({str(flag)!r}).exists():\n"
                    "    assert time.time() - start < 30, 'no chapter ran beside this one'\n    time.sleep(0.1)")
    writes = chapter("01_writes.ipynb", "profile = 'cpu'", f"import pathlib\npathlib.Path({str(flag)!r}).write_text('x')")
    build = load_build_script()
    assert build.shares_runs(waits) and not build.shares_runs(writes)
    results = build.execute_all([waits, writes], tmp_path / "executed", log=lambda *a: None)
    assert list(results) == ["04_waits", "01_writes"]
    assert [r["error"] for r in results.values()] == [None, None], results
    assert (tmp_path / "executed" / "04_waits.ipynb").is_file()
