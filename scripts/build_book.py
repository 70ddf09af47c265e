"""Execute the book's chapters with papermill, then build the HTML book with Jupyter Book.

    python scripts/build_book.py                   # cpu profile: execute every chapter, build _build/html
    python scripts/build_book.py --profile gpu     # paper-like profile (abalone_core.notebook.PROFILES)
    python scripts/build_book.py --only 01 02      # some chapters only (others keep their last executed copy)
    python scripts/build_book.py --no-execute      # rebuild the HTML from the last executed copies

The sources are staged in ``_build/source`` with the repository's layout (``_config.yml``,
``_toc.yml``, ``book/``, ``notebooks/``) so that launch buttons and repository links point
at the committed files; the staged ``notebooks/`` hold the executed copies,
``book/_static/plotly.min.js`` the one copy of plotly.js the figures use and
``book/_static/mathjax/`` MathJax 3 (``mathjax_path`` in ``_config.yml``): the book loads no CDN script. Training runs go
to ``runs/book-<profile>/`` (reused: a finished run is not trained again) and data to
``.cache/abalone`` unless ``ABALONE_DATA_DIR`` is set. Exits with status 1 when a
chapter fails, after executing the others.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "_build"
STAGE = BUILD / "source"


def chapters(only=None) -> list[Path]:
    """The chapter notebooks listed in ``_toc.yml``, in order; ``only``: prefixes or names to keep
    (e.g. ``["01", "04"]``). Other notebooks in ``notebooks/`` are not part of the book."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [ch["file"] for part in toc.get("parts", []) for ch in part.get("chapters", [])]
    found = [ROOT / f"{e}.ipynb" for e in entries if (ROOT / f"{e}.ipynb").is_file()]
    if not found:
        raise FileNotFoundError(f"_toc.yml lists no notebook that exists under {ROOT}")
    if only:
        keep = [p for p in found if any(p.name.startswith(o) or p.stem == o for o in only)]
        unknown = [o for o in only if not any(p.name.startswith(o) or p.stem == o for p in found)]
        if unknown:
            raise ValueError(f"no chapter matches {unknown}; chapters: {[p.stem for p in found]}")
        return keep
    return found


def plotly_js() -> Path:
    """plotly.min.js shipped inside the installed plotly package."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall plotly (pip install --force-reinstall plotly)")
    return path


MATHJAX_ENTRY = "tex-chtml.js"  # _config.yml: sphinx.config.mathjax_path = mathjax/tex-chtml.js


def mathjax_dir() -> Path:
    """MathJax 3's browser build (``es5/``) shipped by the PyPI package ``django-static-mathjax``
    (in the ``book`` extra)."""
    try:
        import mathjax
    except ImportError as err:
        raise FileNotFoundError("MathJax is missing: pip install 'django-static-mathjax>=3.2.2' "
                                "(in the book extra: pip install -e '.[book]')") from err
    path = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (path / MATHJAX_ENTRY).is_file():
        raise FileNotFoundError(f"{path / MATHJAX_ENTRY} is missing: reinstall django-static-mathjax")
    return path


def _mathjax_ignore(folder: str, names: list[str]) -> list[str]:
    """What the book does not load: the other combined bundles and the SVG output (the entry,
    tex-chtml.js, loads the TeX extensions, CHTML fonts, menu and accessibility parts it needs from
    the folders beside it)."""
    top = Path(folder).name == "es5"
    return [n for n in names if (top and n.endswith(".js") and n != MATHJAX_ENTRY)
            or (Path(folder).name == "output" and n == "svg") or n.endswith(".map")]


def copy_mathjax(static: Path) -> Path:
    """Copy MathJax into ``static/mathjax``; returns the entry script's path."""
    target = static / "mathjax"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(mathjax_dir(), target, ignore=_mathjax_ignore)
    return target / MATHJAX_ENTRY


def stage(stage_dir: Path = STAGE) -> Path:
    """Copy the book's sources (not the notebooks) into ``stage_dir``, with plotly.min.js and
    MathJax in _static."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, stage_dir / name)
    if (stage_dir / "book").exists():
        shutil.rmtree(stage_dir / "book")
    shutil.copytree(ROOT / "book", stage_dir / "book", ignore=shutil.ignore_patterns("screenshots", "_build"))
    static = stage_dir / "book" / "_static"
    static.mkdir(parents=True, exist_ok=True)
    shutil.copy2(plotly_js(), static / "plotly.min.js")
    copy_mathjax(static)
    (stage_dir / "notebooks").mkdir(exist_ok=True)
    return stage_dir


def execute(notebook: Path, output: Path, profile: str = "cpu", runs_dir: str | None = None,
            timeout: int | None = None) -> float:
    """Run one chapter with papermill (cwd: ``notebooks/``); returns seconds. Raises on failure."""
    import papermill as pm

    declared = pm.inspect_notebook(str(notebook))
    params = {"profile": profile} if "profile" in declared else {}
    if runs_dir is not None and "runs_dir" in declared:
        params["runs_dir"] = str(Path(runs_dir).resolve())
    output.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pm.execute_notebook(str(notebook), str(output), parameters=params, kernel_name="python3", cwd=str(NOTEBOOKS),
                        progress_bar=False, log_output=False, execution_timeout=timeout)
    seconds = time.perf_counter() - t0
    hide_injected_parameters(output)
    return seconds


def hide_injected_parameters(path: Path) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell``: the page shows the chapter's
    own parameters cell, not this build's local paths."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(nb, path)


def shares_runs(notebook: Path) -> bool:
    """Whether a chapter reads or writes the book's training runs (it declares ``runs_dir``).
    A chapter papermill cannot read counts as sharing them: its execution then reports why."""
    import papermill as pm

    try:
        return "runs_dir" in pm.inspect_notebook(str(notebook))
    except Exception:  # noqa: BLE001 - any unreadable notebook; execute() raises the real error
        return True


def execute_all(notebooks, out_dir: Path, profile: str = "cpu", runs_dir: str | None = None,
                timeout: int | None = None, log=print) -> dict:
    """Execute chapters, going on after a failure.

    The chapters that share the training runs (:func:`shares_runs`) execute one after the
    other, in order, since a later one reads the runs of an earlier one; the others share
    nothing with them and execute beside them, in a second kernel.

    Returns:
        ``{chapter stem: {"seconds": float, "error": str | None}}``, in the order of ``notebooks``.
    """
    lock = threading.Lock()  # one line of the log at a time

    def say(text: str) -> None:
        with lock:
            log(text)

    def one(nb: Path) -> tuple[str, dict]:
        say(f"executing {nb.name} ...")
        try:
            seconds, error = execute(nb, out_dir / nb.name, profile, runs_dir, timeout), None
        except Exception as err:  # papermill's error names the failing cell; keep going, fail at the end
            seconds, error = float("nan"), f"{type(err).__name__}: {err}"
        say(f"  {nb.name}: " + (f"{seconds:.1f} s" if error is None else f"FAILED\n{error}"))
        return nb.stem, {"seconds": seconds, "error": error}

    shared = [nb for nb in notebooks if shares_runs(nb)]
    alone = [nb for nb in notebooks if nb not in shared]
    with ThreadPoolExecutor(max_workers=2) as pool:
        chains = [pool.submit(lambda chain: [one(nb) for nb in chain], chain) for chain in (shared, alone)]
        done = dict(item for chain in chains for item in chain.result())
    return {nb.stem: done[nb.stem] for nb in notebooks}


def build_html(stage_dir: Path = STAGE, output_root: Path = ROOT) -> Path:
    """``jupyter-book build`` of the staged sources; returns the HTML folder (``output_root/_build/html``)."""
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(stage_dir), "--path-output", str(output_root), "--all"]
    proc = subprocess.run(cmd, cwd=stage_dir, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n"
                           f"{proc.stderr[-4000:]}")
    warnings = [line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if "WARNING" in line]
    for line in warnings:
        print(f"  {line}")
    html = output_root / "_build" / "html"
    if not (html / "index.html").exists():
        raise RuntimeError(f"jupyter-book build wrote no {html / 'index.html'}:\n{proc.stdout[-4000:]}")
    return html


def build(profile: str = "cpu", only=None, runs_dir: str | None = None, do_execute: bool = True,
          html: bool = True, timeout: int | None = None, stage_dir: Path = STAGE, output_root: Path = ROOT,
          log=print) -> dict:
    """Stage, execute and build; returns a report (timings per chapter, html folder, failures)."""
    os.environ.setdefault("ABALONE_DATA_DIR", str(ROOT / ".cache" / "abalone"))
    t0 = time.perf_counter()
    stage(stage_dir)
    selected = chapters(only) if do_execute else []
    for nb in chapters():  # chapters neither executed now nor before are shown without outputs
        target = stage_dir / "notebooks" / nb.name
        if nb not in selected and not target.exists():
            shutil.copy2(nb, target)
    t_execute = time.perf_counter()
    results = execute_all(selected, stage_dir / "notebooks", profile, runs_dir, timeout, log)
    report = {"profile": profile, "chapters": results,
              "execute_seconds": time.perf_counter() - t_execute,  # wall time: chapters run two at a time
              "failed": [k for k, r in results.items() if r["error"]], "html": None}
    if not report["failed"] and html:
        t1 = time.perf_counter()
        report["html"] = str(build_html(stage_dir, output_root))
        report["html_seconds"] = time.perf_counter() - t1
    report["total_seconds"] = time.perf_counter() - t0
    (output_root / "_build").mkdir(parents=True, exist_ok=True)
    (output_root / "_build" / "timings.json").write_text(json.dumps(report, indent=2))
    return report


def build_once(base: Path, profile: str = "cpu", html: bool = True, log=print) -> dict:
    """Execute every chapter and build the HTML once per ``base`` folder, safely across processes.

    Used by the tests (the ``book_execution`` and ``book_html`` fixtures of tests/conftest.py):
    the execution tests read the executed copies (``base/source/notebooks``, runs in
    ``base/runs``) and the HTML build (``base/_build/html``) uses the same copies, so the
    chapters execute once. A file lock makes concurrent callers (other processes) wait for
    that one execution; later callers read ``base/report.json``.

    Returns:
        the report of the execution (chapters, failed) with ``html`` set once built.
    """
    from filelock import FileLock

    os.environ.setdefault("ABALONE_DATA_DIR", str(ROOT / ".cache" / "abalone"))
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    record = base / "report.json"
    with FileLock(str(base / "build.lock")):
        report = json.loads(record.read_text()) if record.exists() else None
        if report is None:
            source = stage(base / "source")
            results = execute_all(chapters(), source / "notebooks", profile, str(base / "runs"), log=log)
            report = {"profile": profile, "chapters": results, "html": None,
                      "failed": [k for k, r in results.items() if r["error"]]}
            record.write_text(json.dumps(report, indent=2))
        if html and report["html"] is None and "html_error" not in report:
            try:
                report["html"] = str(build_html(base / "source", base))
            except RuntimeError as err:
                report["html_error"] = str(err)
            record.write_text(json.dumps(report, indent=2))
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="cpu", choices=("cpu", "gpu"), help="training budget (default cpu)")
    p.add_argument("--only", nargs="+", metavar="CHAPTER", help="execute only these chapters (e.g. 01 04)")
    p.add_argument("--runs-dir", help="folder of the training runs (default runs/book-<profile>)")
    p.add_argument("--no-execute", action="store_true", help="build from the last executed copies")
    p.add_argument("--no-html", action="store_true", help="execute only, skip jupyter-book")
    p.add_argument("--timeout", type=int, default=None, help="seconds allowed per notebook cell")
    args = p.parse_args(argv)
    report = build(args.profile, args.only, args.runs_dir, not args.no_execute, not args.no_html, args.timeout)
    print("\nchapter timings:")
    for name, r in report["chapters"].items():
        print(f"  {name:<32} " + (f"{r['seconds']:7.1f} s" if r["error"] is None else "  FAILED"))
    print(f"  {'execution':<32} {report['execute_seconds']:7.1f} s")
    if report.get("html_seconds") is not None:
        print(f"  {'jupyter-book build':<32} {report['html_seconds']:7.1f} s")
    print(f"  {'total':<32} {report['total_seconds']:7.1f} s")
    if report["failed"]:
        print(f"\nFAILED chapters: {', '.join(report['failed'])}; their executed copies (with the error) are in "
              f"{STAGE / 'notebooks'}", file=sys.stderr)
        return 1
    if report["html"]:
        print(f"\nbook: {report['html']}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
