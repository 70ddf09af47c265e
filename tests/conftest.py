"""Fixtures shared by the test modules; plain helpers live in tests/helpers.py."""
from pathlib import Path

import pytest

from helpers import BOOK_GROUP, book_folder, is_book_test, load_build_script, make_documents, save_tiny_backbone


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> str:
    """A randomly initialised 2-layer BERT with a 25-word vocabulary, saved to a folder."""
    return save_tiny_backbone(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory) -> str:
    """A CSV with text, labels ("a|b") and split columns; every label occurs in training."""
    import pandas as pd

    texts, labels = make_documents(160)
    split = ["train"] * 100 + ["validation"] * 30 + ["test"] * 30
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    pd.DataFrame({"text": texts, "labels": ["|".join(l) for l in labels], "split": split}).to_csv(path, index=False)
    return str(path)


@pytest.fixture
def tiny_config(tiny_backbone, tiny_csv, tmp_path, monkeypatch):
    """Factory of small, fast configurations on the tiny backbone and CSV."""
    from abalone_core.training.config import Config

    monkeypatch.setenv("ABALONE_DATA_DIR", str(tmp_path / "cache"))

    def make(**kw):
        base = dict(
            dataset="csv", dataset_kwargs={"path": tiny_csv, "label_sep": "|", "split_column": "split"},
            backbone=tiny_backbone, max_length=16, proj_dim=16, batch_size=8, max_steps=6, queue_size=20,
            momentum=0.9, lr_backbone=1e-3, lr_head=1e-3, output_dir=str(tmp_path / "run"),
            # float32, so that tests comparing two runs (resumed, distributed) compare arithmetic, not
            # bfloat16 rounding; tests/test_precision.py trains under bfloat16
            mixed_precision="no",
            probe={"epochs": 3, "lrs": [0.1], "weight_decays": [0.01], "heads": 2},
        )
        base.update(kw)
        return Config(**base)

    return make


# --------------------------------------------------------------------------- the book
@pytest.fixture(scope="session")
def book_execution(tmp_path_factory):
    """Every chapter executed once with its defaults (cpu profile), papermill's copies in
    ``<folder>/source/notebooks`` and the training runs in ``<folder>/runs``.

    One execution serves the execution tests and the browser test of the built book
    (:func:`book_html`). Only the modules ``test_book_*.py`` may use it: under ``pytest -n N``
    they form one unit of work, run by one worker while the others run the rest of the suite
    (:func:`pytest_xdist_make_scheduler`). Should two processes ask for it all the same, a file
    lock in ``build_once`` makes them share the one execution.

    Returns:
        (folder, report): report as written by ``scripts/build_book.py``'s ``build_once``.
    """
    base = book_folder(tmp_path_factory)
    report = load_build_script().build_once(base, profile="cpu", html=False, log=lambda *a: None)
    return base, report


@pytest.fixture(scope="session")
def book_html(book_execution):
    """The HTML book built from :func:`book_execution`'s executed chapters (no second execution)."""
    base, report = book_execution
    assert not report["failed"], f"chapters failed: {report['failed']}"
    report = load_build_script().build_once(base, profile="cpu", html=True, log=lambda *a: None)
    assert report["html"], f"the book did not build:\n{report.get('html_error')}"
    return Path(report["html"])


BOOK_FIXTURES = {"book_execution", "book_html"}


def pytest_collection_modifyitems(config, items):
    """The scheduler below finds the tests of the executed book by their module's name: a test
    elsewhere that asks for the book would make a second worker wait for the execution."""
    misplaced = [item.nodeid for item in items
                 if BOOK_FIXTURES & set(getattr(item, "fixturenames", ())) and not is_book_test(item.nodeid)]
    if misplaced:
        raise pytest.UsageError(f"tests using {sorted(BOOK_FIXTURES)} belong in a module tests/test_book_*.py: "
                                f"{misplaced}")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under ``pytest -n N`` (xdist's default ``--dist load``): every test runs as its own unit
    of work, as with ``load``, except the tests of the modules ``test_book_*.py``, which form one
    unit that one worker runs from the start of the session (the book's chapters execute once,
    in that worker) while the others run the rest of the suite. xdist's ``loadgroup`` would do
    this from ``xdist_group`` marks, but it stopped grouping with pytest 9.2 (pytest-xdist
    issue 1386), so the rule is the module name, which the controller sees in every test id."""
    if config.getvalue("dist") != "load":
        return None
    try:
        from xdist.scheduler import LoadScopeScheduling
    except ImportError:  # pragma: no cover - another xdist layout: its default scheduler
        return None

    class BookInOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return BOOK_GROUP if is_book_test(nodeid) else nodeid

    return BookInOneWorker(config, log)
