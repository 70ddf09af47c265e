"""The book's chapters: structure of the committed notebooks, the helpers they call
(abalone_core.notebook) and a papermill execution of every chapter with its defaults.

All chapters execute once per test session (shared by parallel workers and by
tests/test_book_browser.py): chapters 4 to 7 share one run folder, so each training
run happens once.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ["01_long_tails", "02_lack_of_positives", "03_attraction_repulsion", "04_contrastive_pretraining",
            "05_evaluation", "06_supervised_baselines", "07_representations", "08_results"]
NOTEBOOKS = [ROOT / "notebooks" / f"{name}.ipynb" for name in EXPECTED]
TRAINING = {"04_contrastive_pretraining", "05_evaluation", "06_supervised_baselines", "07_representations"}
WITH_FIGURES = set(EXPECTED)  # chapter 8: the committed sweep results in results/sweep_cpu


def load_build_script():
    spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_book", module)
    spec.loader.exec_module(module)
    return module


def shared_base(tmp_path_factory) -> Path:
    """A folder common to every xdist worker of this session (the workers' basetemp parent).

    ``ABALONE_BOOK_BUILD=<folder>`` names a folder instead, so that a later session reuses the
    execution recorded there (its ``report.json``) rather than running every chapter again.
    """
    if os.environ.get("ABALONE_BOOK_BUILD"):
        return Path(os.environ["ABALONE_BOOK_BUILD"])
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "book"


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


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
    assert {"book/intro", "book/method", "book/reproduce", "book/references"} <= set(files)


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


def test_run_or_load_reuses_a_finished_run(tmp_path, monkeypatch):
    from abalone_core import notebook as nb
    from abalone_core import train

    cfg = nb.config_for("cpu", "base", runs_dir=tmp_path)
    calls = []

    def fake_run(config, resume=True, progress=True):
        calls.append((config.max_steps, resume))
        out = {"objective": config.objective, "test": {"micro_f1": 1.0}, "config": config.to_dict()}
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        config.save(Path(config.output_dir) / "config.yaml")
        (Path(config.output_dir) / "metrics.json").write_text(json.dumps(out))
        return out

    monkeypatch.setattr(train, "run", fake_run)
    first = nb.run_or_load(cfg)
    again = nb.run_or_load(cfg)
    assert calls == [(cfg.max_steps, True)] and again == first
    nb.run_or_load(cfg.replace(max_steps=7))  # another budget in the same folder: trained again, from scratch
    assert calls[-1] == (7, False)


def test_collect_results_reads_records_and_skips_others(tmp_path):
    from abalone_core import notebook as nb

    record = {"objective": "bce", "test": {"micro_f1": 50.0, "macro_f1": 20.0, "hamming": 9.0},
              "config": {"dataset": "disaster", "backbone": "minilm", "max_steps": 30, "seed": 0,
                         "init_from": "runs/msc"},
              "n_documents": {"train": 600}, "steps": 30, "train_seconds": 120.0,
              "hardware": {"cpu_threads": 2}}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.json").write_text(json.dumps(record))
    (tmp_path / "other.json").write_text(json.dumps({"name": "not a run"}))
    (tmp_path / "broken.json").write_text("{")
    table = nb.collect_results(tmp_path, tmp_path / "missing")
    assert len(table) == 1
    row = table.iloc[0]
    assert row["objective"] == "msc-ft" and row["micro_f1"] == 50.0 and row["train_minutes"] == 2.0
    assert row["hardware"] == "CPU (2 threads)"


def test_label_group_of_docs_uses_the_rarest_label():
    from abalone_core import notebook as nb

    counts = np.array([100, 50, 10, 5, 2, 1])          # head: 0, 1; medium: 2, 3; tail: 4, 5
    y = np.array([[1, 0, 0, 0, 0, 0], [1, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]])
    assert nb.label_group_of_docs(y, counts).tolist() == ["head", "medium", "tail", "none"]


# --------------------------------------------------------------------------- execution
@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    """Every chapter executed once with its defaults (cpu profile), in a shared folder."""
    build = load_build_script()
    base = shared_base(tmp_path_factory)
    report = build.build_once(base, profile="cpu", html=False, log=lambda *a: None)
    return base, report


@pytest.mark.parametrize("name", EXPECTED)
def test_chapter_executes_with_its_defaults(executed, name):
    base, report = executed
    result = report["chapters"][name]
    assert result["error"] is None, f"{name} failed under papermill:\n{result['error']}"
    nb = nbformat.read(base / "source" / "notebooks" / f"{name}.ipynb", as_version=4)
    outputs = [o for c in code_cells(nb) for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and all("remove-cell" in c.metadata["tags"] for c in injected)  # no local paths on the page
    figures = [o for o in outputs if "text/html" in o.get("data", {}) and "plotly-graph-div" in o["data"]["text/html"]]
    if name in WITH_FIGURES:
        assert figures, f"{name} shows no plotly figure"
        assert all("application/vnd.plotly.v1+json" in o["data"] for o in figures)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Traceback" not in text


def test_training_chapters_share_their_runs(executed):
    """Later chapters read the runs of earlier ones instead of training them again."""
    base, report = executed
    runs, done = base / "runs", base / "source" / "notebooks"
    trained_in = {"base": "04_contrastive_pretraining", "bqueue": "04_contrastive_pretraining",
                  "bqproto": "04_contrastive_pretraining", "msc": "04_contrastive_pretraining",
                  "msc-ft": "05_evaluation", "bce": "06_supervised_baselines", "focal": "06_supervised_baselines",
                  "asymmetric": "06_supervised_baselines", "frozen": "07_representations"}
    for run, chapter in trained_in.items():
        metrics = runs / run / "metrics.json"
        assert metrics.exists(), f"{run} was not trained"
        # metrics.json is written last by a training: it must predate the end of the chapter that trained it
        assert metrics.stat().st_mtime <= (done / f"{chapter}.ipynb").stat().st_mtime, f"{run} was trained again later"
