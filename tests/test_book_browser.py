"""The built book in a real browser: figures render offline and no page raises a JavaScript error.

Builds the book once per session from the chapters that tests/test_notebooks.py executes (the
``book_html`` fixture of conftest.py: one execution for both), opens each page in headless
Debian chromium and reads the DOM after 5 s of virtual time.
Screenshots of every page go to book/screenshots/ (ignored by git) for a look by eye.
Skipped when chromium is not installed (`apt-get install -y chromium`; `bash dev.sh test` installs
it when it runs as root, unless ABALONE_NO_APT=1).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from helpers import CHAPTERS, ROOT, WITH_FIGURES

EXPECTED = CHAPTERS
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROSE = ["book/intro", "book/method", "book/reproduce", "book/references"]
SCREENSHOTS = ROOT / "book" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install -y chromium)"),
]


def chromium(url: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run headless chromium on ``url`` with a fresh profile; stderr carries the console log."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
               *args, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def js_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Uncaught" in line or "CONSOLE" in line and "Error" in line]


@pytest.fixture(scope="session")
def html(book_html) -> Path:
    return book_html


def test_plotly_is_served_locally(html):
    js = html / "_static" / "plotly.min.js"
    assert js.is_file() and js.stat().st_size > 1_000_000
    page = (html / "notebooks" / f"{EXPECTED[0]}.html").read_text()
    assert re.search(r'<script src="\.\./_static/plotly\.min\.js[^"]*"></script>', page)
    assert "cdn.plot.ly" not in page


@pytest.mark.parametrize("page", [f"notebooks/{n}" for n in EXPECTED] + PROSE)
def test_page_renders_without_javascript_errors(html, page):
    path = html / f"{page}.html"
    source = path.read_text()
    figures = source.count('class="plotly-graph-div"')
    done = chromium(path.as_uri(), "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not js_errors(done.stderr), js_errors(done.stderr)
    dom = done.stdout
    if page.removeprefix("notebooks/") in WITH_FIGURES:
        assert figures > 0, f"{page} has no figure"
    # plotly draws each figure into <svg class="main-svg"> elements: none means plotly.js did not run
    assert dom.count('class="main-svg"') >= figures
    if page.startswith("notebooks/"):
        repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
        slug = repo["url"].removeprefix("https://github.com/")
        colab = f"colab.research.google.com/github/{slug}/blob/{repo['branch']}/{page}.ipynb"
        assert colab in source, "missing Colab launch button"
    SCREENSHOTS.mkdir(exist_ok=True)
    (SCREENSHOTS / ".gitignore").write_text("*\n")  # screenshots are for looking at, not for committing
    shot = SCREENSHOTS / f"{Path(page).name}.png"
    taken = chromium(path.as_uri(), f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars")
    assert taken.returncode == 0 and shot.stat().st_size > 10_000, taken.stderr[-2000:]
