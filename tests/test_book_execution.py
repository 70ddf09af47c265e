"""Every chapter of the book executed by papermill with its defaults (cpu profile).

The chapters execute once per test session (the ``book_execution`` fixture of conftest.py), into
the folder the book's HTML build then uses (tests/test_book_browser.py): chapters 4 to 7 share one
run folder, so each training run happens once. Under ``pytest -n N`` the tests of the modules
``test_book_*.py`` run in one worker while the others run the rest of the suite (conftest.py).
"""
from __future__ import annotations

import nbformat
import pytest

from helpers import CHAPTERS, WITH_FIGURES, code_cells

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_executes_with_its_defaults(book_execution, name):
    base, report = book_execution
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


def test_training_chapters_share_their_runs(book_execution):
    """Later chapters read the runs of earlier ones instead of training them again."""
    base, report = book_execution
    runs, done = base / "runs", base / "source" / "notebooks"
    trained_in = {"base": "04_contrastive_pretraining", "bqueue": "04_contrastive_pretraining",
                  "bqproto": "04_contrastive_pretraining", "msc": "04_contrastive_pretraining",
                  "msc-ft": "05_evaluation", "bce": "06_supervised_baselines", "focal": "06_supervised_baselines",
                  "asymmetric": "06_supervised_baselines"}
    # chapter 7 trains nothing: it embeds with the converged encoders shipped in results/ (its
    # demonstration fallback would have trained the untrained encoder's run)
    assert not (runs / "frozen" / "metrics.json").exists(), "chapter 7 trained demonstration runs"
    for run, chapter in trained_in.items():
        metrics = runs / run / "metrics.json"
        assert metrics.exists(), f"{run} was not trained"
        # metrics.json is written last by a training: it must predate the end of the chapter that trained it
        assert metrics.stat().st_mtime <= (done / f"{chapter}.ipynb").stat().st_mtime, f"{run} was trained again later"
