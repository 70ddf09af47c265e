"""The built book in a real browser: figures and formulas render offline and no page raises a JavaScript error.

Builds the book once per session from the chapters that tests/test_notebooks.py executes (the
``book_html`` fixture of conftest.py: one execution for both), opens each page in headless
Debian chromium and reads the DOM after 5 s of virtual time. On every page: no JavaScript error
(uncaught exceptions, rejected promises and ``console.error``, recorded by a script put first in a
copy of the page, and chromium's console log), every plotly figure drawn, every formula typeset by
MathJax (no raw ``\\(`` or ``$$`` left in the text), no absolute path of the build machine in the text.
Screenshots of every page go to book/screenshots/ (ignored by git) for a look by eye.
Skipped when chromium is not installed (`apt-get install -y chromium`; `bash dev.sh test` installs
it when it runs as root, unless ABALONE_NO_APT=1).

Also here, without the executed book: MathJax is served from the book itself (a minimal book built
with scripts/build_book.py's functions) and the GitHub Pages workflow names the steps it needs.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from helpers import CHAPTERS, ROOT, WITH_FIGURES, load_build_script

EXPECTED = CHAPTERS
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
# every page of the book that is not a chapter: the root and the prose pages of _toc.yml
PROSE = [_TOC["root"]] + [c["file"] for part in _TOC.get("parts", []) for c in part.get("chapters", [])
                          if c["file"].startswith("book/")]
SCREENSHOTS = ROOT / "book" / "screenshots"
# Pages known to show a path of the build machine, and where it comes from: reported as xfail
# until the chapter is fixed (then the entry goes; a page not listed here fails).
KNOWN_PATH_LEAKS = {
}

needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="Debian chromium is not installed (apt-get install -y chromium)")
BROWSER = [pytest.mark.browser, pytest.mark.slow, needs_chromium]

# Also put in <head>: once the page has loaded and its scripts have run, every <table> that is cut
# off is named in the attribute data-cut-tables of <html>. A table is cut off when no box around it
# scrolls sideways (overflow-x auto or scroll) and it is wider than its parent, reaches past the
# window's right edge, or past the edge of a box around it that hides what overflows.
TABLE_PROBE = """<script>(function () {
  function check() {
    var cut = [], wide = [], tables = document.querySelectorAll("table");
    for (var i = 0; i < tables.length; i++) {
      var t = tables[i], right = t.getBoundingClientRect().right, scrolls = false, clipped = false;
      for (var a = t.parentElement; a && a !== document.documentElement; a = a.parentElement) {
        var o = getComputedStyle(a).overflowX;
        if (o === "auto" || o === "scroll") { scrolls = true; break; }
        if (o !== "visible" && right > a.getBoundingClientRect().right + 1) { clipped = true; break; }
      }
      var over = t.scrollWidth > t.parentElement.clientWidth + 1 || right > document.documentElement.clientWidth + 1;
      var head = (t.querySelector("th, td") || t).textContent.trim().slice(0, 40);
      var what = "table " + (i + 1) + " (" + head + "): " + Math.round(t.scrollWidth) + " px in " +
                 Math.round(t.parentElement.clientWidth) + " px";
      if (!scrolls && (clipped || over)) cut.push(what);
      if (over || clipped) wide.push(what);
    }
    document.documentElement.setAttribute("data-cut-tables", JSON.stringify(cut));
    document.documentElement.setAttribute("data-wide-tables", JSON.stringify(wide));
  }
  window.addEventListener("load", function () { setTimeout(check, 1000); });
})();</script>"""

# Put first in <head> of a copy of each page: every error the page raises ends up in an attribute
# of <html>, which --dump-dom returns.
ERROR_PROBE = """<script>(function () {
  var errors = [];
  function keep(text) {
    errors.push(String(text).slice(0, 500));
    document.documentElement.setAttribute("data-js-errors", JSON.stringify(errors));
  }
  window.addEventListener("error", function (e) {
    keep("error: " + (e.message || (e.target && (e.target.src || e.target.href)) || e));
  }, true);
  window.addEventListener("unhandledrejection", function (e) { keep("unhandled rejection: " + e.reason); });
  var original = console.error;
  console.error = function () {
    keep("console.error: " + Array.prototype.map.call(arguments, String).join(" "));
    return original.apply(console, arguments);
  };
})();</script>""" + TABLE_PROBE


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


def rendered_dom(path: Path, width: int = 1280) -> tuple[str, list[str]]:
    """The DOM of ``path`` after its scripts ran in a window ``width`` px wide (a desktop
    reader's), and the JavaScript errors it raised (the probe's and chromium's console log).
    Loads a copy of the page with :data:`ERROR_PROBE` beside the original, so that its relative
    links still resolve."""
    source = path.read_text()
    probed = path.with_name(f".probe-{path.name}")
    probed.write_text(re.sub(r"<head([^>]*)>", lambda m: m.group(0) + ERROR_PROBE, source, count=1))
    try:
        done = chromium(probed.as_uri(), "--dump-dom", f"--window-size={width},900")
    finally:
        probed.unlink(missing_ok=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, (_attribute_list(done.stdout, "data-js-errors") or []) + js_errors(done.stderr)


def _attribute_list(dom: str, name: str) -> list[str] | None:
    """The JSON list a probe wrote into the attribute ``name`` of <html>; None when it is absent."""
    found = re.search(name + r'="([^"]*)"', dom)
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")) if found else None


def _table_probe(dom: str, name: str) -> list[str]:
    found = _attribute_list(dom, name)
    assert found is not None, "the table probe did not run (the page never finished loading)"
    return found


def wide_tables(dom: str) -> list[str]:
    """The tables of a rendered page that are wider than their box, whether the box scrolls
    them or not: at a desktop reader's width the book's tables fit, and a reader never has to
    scroll sideways to find a column (on a narrow screen they scroll, see :func:`cut_tables`)."""
    return _table_probe(dom, "data-wide-tables")


def cut_tables(dom: str) -> list[str]:
    """The tables of a rendered page (:func:`rendered_dom`) that are cut off (:data:`TABLE_PROBE`):
    wider than their box, which neither scrolls nor wraps them."""
    return _table_probe(dom, "data-cut-tables")


class _Text(HTMLParser):
    """The text of a page, without scripts and styles; ``code=False`` also leaves out code
    (``pre``, ``code``) and MathJax's output (``mjx-*``)."""

    SKIP = {"script", "style", "noscript", "template"}
    CODE = {"pre", "code", "textarea"}

    def __init__(self, code: bool):
        super().__init__(convert_charrefs=True)
        self.skip = self.SKIP | (set() if code else self.CODE)
        self.depth, self.parts = 0, []
        self.code = code

    def _skipped(self, tag):
        return tag in self.skip or (not self.code and tag.startswith("mjx-"))

    def handle_starttag(self, tag, attrs):
        if self._skipped(tag):
            self.depth += 1

    def handle_endtag(self, tag):
        if self._skipped(tag) and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


def page_text(dom: str, code: bool = True) -> str:
    parser = _Text(code)
    parser.feed(dom)
    return "".join(parser.parts)


def raw_tex(dom: str) -> list[str]:
    """Untypeset TeX in the prose of a page: ``\\(``, ``\\[`` or ``$$`` outside code and MathJax's output."""
    text = page_text(dom, code=False)
    return [text[max(0, m.start() - 40):m.end() + 40] for m in re.finditer(r"\\\(|\\\[|\$\$", text)]


def machine_paths(text: str) -> list[str]:
    """Absolute paths of the build machine in ``text``: the repository's, the home folder's and the
    usual roots of build and temporary folders."""
    roots = {str(ROOT), str(Path.home()), tempfile.gettempdir(), "/work/", "/root/", "/tmp/", "/home/"}
    pattern = "|".join(re.escape(r) for r in sorted({r for r in roots if r not in ("", "/")}, key=len, reverse=True))
    return sorted({text[max(0, m.start() - 30):m.end() + 60] for m in re.finditer(pattern, text)})


def teaching_parts(text: str) -> dict:
    """What a chapter page teaches with: its numbered exercises and whether it has its opening
    list ("You will learn") and its closing summary ("What we saw")."""
    return {"exercises": len(set(re.findall(r"Exercise (\d+)", text))), "opening": "You will learn" in text,
            "summary": "What we saw" in text}


def undrawn_figures(dom: str) -> int:
    """How many plotly figure divs hold no ``svg.main-svg`` (plotly.js did not draw them)."""
    chunks = re.split(r'<div[^>]*class="[^"]*plotly-graph-div', dom)[1:]
    return sum('class="main-svg"' not in chunk for chunk in chunks)


@pytest.fixture(scope="session")
def html(book_html) -> Path:
    return book_html


@pytest.mark.browser
@pytest.mark.slow
def test_plotly_and_mathjax_are_served_locally(html):
    js = html / "_static" / "plotly.min.js"
    assert js.is_file() and js.stat().st_size > 1_000_000
    page = (html / "notebooks" / f"{EXPECTED[0]}.html").read_text()
    assert re.search(r'<script src="\.\./_static/plotly\.min\.js[^"]*"></script>', page)
    assert "cdn.plot.ly" not in page
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    for name in ("book/method.html", f"notebooks/{EXPECTED[0]}.html"):
        page = (html / name).read_text()
        tags = mathjax_tags(page)
        assert tags and all("cdn." not in t and "https://" not in t for t in tags), tags


PAGES = [f"notebooks/{n}" for n in EXPECTED] + PROSE


def open_page(html: Path, page: str) -> dict:
    """``page`` in chromium: its DOM and JavaScript errors (:func:`rendered_dom`), and its
    screenshot taken into :data:`SCREENSHOTS` (``taken``: chromium's completed process)."""
    path = html / f"{page}.html"
    dom, errors = rendered_dom(path)
    shot = SCREENSHOTS / f"{Path(page).name}.png"
    taken = chromium(path.as_uri(), f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars")
    return {"dom": dom, "errors": errors, "shot": shot, "taken": taken}


@pytest.fixture(scope="session")
def opened(html):
    """Every page of :data:`PAGES` opened by :func:`open_page`, two chromium processes at a time:
    the pages are independent, and the book's tests run last, when the second core is free.
    Maps each page to its future; a page that fails raises in its own test only."""
    SCREENSHOTS.mkdir(exist_ok=True)
    (SCREENSHOTS / ".gitignore").write_text("*\n")  # screenshots are for looking at, not for committing
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        yield {page: pool.submit(open_page, html, page) for page in PAGES}
    finally:
        pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_page_renders_without_javascript_errors(html, opened, page):
    source = (html / f"{page}.html").read_text()
    figures = source.count('class="plotly-graph-div"')
    result = opened[page].result()
    dom, errors = result["dom"], result["errors"]
    assert not errors, errors
    if page.removeprefix("notebooks/") in WITH_FIGURES:
        assert figures > 0, f"{page} has no figure"
    # plotly draws each figure into <svg class="main-svg"> elements: none means plotly.js did not run
    assert dom.count('class="main-svg"') >= figures
    assert undrawn_figures(dom) == 0, f"{undrawn_figures(dom)} of {figures} figures not drawn"
    assert not raw_tex(dom), f"formulas left untypeset by MathJax: {raw_tex(dom)}"
    assert not cut_tables(dom), f"tables cut off (widen their box or let it scroll): {cut_tables(dom)}"
    assert not wide_tables(dom), f"tables wider than their box at 1280 px (narrow them): {wide_tables(dom)}"
    leaks = machine_paths(page_text(dom))
    assert not leaks or page in KNOWN_PATH_LEAKS, f"paths of the build machine on the page: {leaks}"
    if page.startswith("notebooks/"):
        parts = teaching_parts(page_text(dom, code=False))
        assert parts["exercises"] >= 2 and parts["opening"] and parts["summary"], parts
        repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
        slug = repo["url"].removeprefix("https://github.com/")
        colab = f"colab.research.google.com/github/{slug}/blob/{repo['branch']}/{page}.ipynb"
        assert colab in source, "missing Colab launch button"
    taken, shot = result["taken"], result["shot"]
    assert taken.returncode == 0 and shot.stat().st_size > 10_000, taken.stderr[-2000:]
    if leaks:  # the page's other checks passed
        pytest.xfail(f"{KNOWN_PATH_LEAKS[page]}: {leaks}")


# --------------------------------------------------------------------------- MathJax, without the executed book
def mathjax_tags(page: str) -> list[str]:
    """The <script> tags of a page that load MathJax (its entry script, not its configuration)."""
    return [t for t in re.findall(r"<script[^>]*\ssrc=\"[^\"]*\"[^>]*>", page) if re.search(r"mathjax|tex-(chtml|svg)", t, re.I)]


def test_config_points_mathjax_at_the_local_copy():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    path = config["mathjax_path"]
    assert "//" not in path and not path.startswith("/"), path  # relative to _static: this site
    build = load_build_script()
    assert path == f"mathjax/{build.MATHJAX_ENTRY}"
    assert (build.mathjax_dir() / build.MATHJAX_ENTRY).is_file()


TINY_NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Tiny\n", "\n", "Inline $a^2 + b^2$ and\n", "\n",
                                                             "$$x^2$$\n"]},
        {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": ["1 + 1"],
         "outputs": [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                      "data": {"text/plain": ["2"]}}]},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                 "language_info": {"name": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


@pytest.fixture(scope="module")
def minimal_book(tmp_path_factory) -> Path:
    """A book of one markdown page and one tiny executed notebook, both with a formula, built
    with the project's _config.yml and scripts/build_book.py's staging of _static; its HTML folder."""
    build = load_build_script()
    source = tmp_path_factory.mktemp("minimal_book") / "source"
    source.mkdir()
    shutil.copy2(ROOT / "_config.yml", source / "_config.yml")
    (source / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/tiny\n")
    book = source / "book"
    shutil.copytree(ROOT / "book" / "_ext", book / "_ext")
    shutil.copy2(ROOT / "book" / "references.bib", book / "references.bib")
    (book / "intro.md").write_text("# Minimal\n\nA formula:\n\n$$x^2$$\n\nand an inline one, $y_i$.\n")
    static = book / "_static"
    shutil.copytree(ROOT / "book" / "_static", static)  # the book's own stylesheet
    shutil.copy2(build.plotly_js(), static / "plotly.min.js")
    build.copy_mathjax(static)
    (source / "notebooks").mkdir()
    (source / "notebooks" / "tiny.ipynb").write_text(json.dumps(TINY_NOTEBOOK))
    return build.build_html(source, source.parent)


@pytest.mark.slow
def test_minimal_book_serves_mathjax_itself(minimal_book):
    entry = minimal_book / "_static" / "mathjax" / "tex-chtml.js"
    assert entry.is_file() and entry.stat().st_size > 500_000
    fonts = minimal_book / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert list(fonts.glob("*.woff"))
    for name, prefix in (("book/intro.html", "../"), ("notebooks/tiny.html", "../")):
        page = (minimal_book / name).read_text()
        tags = mathjax_tags(page)
        assert tags, f"{name} loads no MathJax"
        for tag in tags:
            assert "cdn." not in tag and "https://" not in tag and "http://" not in tag, tag
            src = re.search(r'src="([^"?]*)', tag).group(1)
            assert src == f"{prefix}_static/mathjax/tex-chtml.js", tag
            assert ((minimal_book / name).parent / src).resolve().is_file()


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_minimal_book_typesets_formulas_offline(minimal_book):
    for name in ("book/intro.html", "notebooks/tiny.html"):
        dom, errors = rendered_dom(minimal_book / name)
        assert not errors, errors
        assert "<mjx-container" in dom, f"MathJax did not typeset {name}"
        assert not raw_tex(dom), raw_tex(dom)
        assert not machine_paths(page_text(dom)), machine_paths(page_text(dom))


def test_page_checks_find_what_they_look_for():
    """The helpers above on hand-made DOMs (they must fail where a page is broken)."""
    parts = teaching_parts("You will learn ... Exercise 1: a ... Exercise 2. b ... Exercise 1 again ... What we saw")
    assert parts == {"exercises": 2, "opening": True, "summary": True}
    assert teaching_parts("Exercises") == {"exercises": 0, "opening": False, "summary": False}
    assert raw_tex("<p>see \\(x\\) here</p>") and raw_tex("<p>$$x^2$$</p>")
    assert not raw_tex("<p><mjx-container>x</mjx-container></p><pre>$$ in code</pre><script>'\\('</script>")
    assert machine_paths(f"<p>saved in {ROOT}/runs</p>") and machine_paths("<p>/tmp/abc</p>")
    assert not machine_paths("<p>runs/book-cpu</p>")
    drawn = '<div class="plotly-graph-div js-plotly-plot"><svg class="main-svg"></svg></div>'
    assert undrawn_figures(drawn + '<div id="x" class="plotly-graph-div"></div>') == 1
    assert undrawn_figures(drawn * 2) == 0


WIDE_TABLE = "<table><tr>" + "".join(f"<th>column number {i}</th>" for i in range(30)) + "</tr></table>"


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("box, cut, wide", [
    ("<div style='width:300px; overflow:hidden'>{}</div>", True, True),       # a wide table cut off
    ("<div style='width:300px; overflow-x:auto'>{}</div>", False, True),      # the same table scrolls
    ("<div style='width:300px'>{}</div>", True, True),                        # it spills out of its box
    ("<div style='width:300px'><table><tr><th>a</th><th>b</th></tr></table></div>", False, False),  # it fits
])
def test_cut_tables_finds_a_table_that_is_cut_off(tmp_path, box, cut, wide):
    """The checks of the book's pages on hand-made pages: ``cut_tables`` must fail on a page whose
    wide table is cut off, and pass where the table scrolls inside its box or fits;
    ``wide_tables`` fails wherever the table does not fit, scrolling or not."""
    page = tmp_path / "page.html"
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body style='margin:0'>"
                    f"{box.format(WIDE_TABLE)}</body></html>")
    dom, errors = rendered_dom(page)
    assert not errors, errors
    found = cut_tables(dom)
    assert bool(found) == cut, found
    assert bool(wide_tables(dom)) == wide, wide_tables(dom)
    if cut:
        assert "px in 300 px" in found[0] or "column number 0" in found[0]


@pytest.mark.browser
@needs_chromium
def test_the_book_css_lets_a_wide_output_table_scroll(tmp_path):
    """The book's stylesheet (book/_static/tables.css) on a page laid out like a chapter's output:
    a wide table inside a narrow output box that hides overflow scrolls instead of being cut off."""
    css = (ROOT / "book" / "_static" / "tables.css").read_text()
    body = ("<div class='cell_output docutils container' style='width:300px; overflow:hidden'>"
            "<div class='output text_html'>{}</div></div>").format(WIDE_TABLE)
    for style, cut in (("", True), (f"<style>{css}</style>", False)):
        page = tmp_path / "page.html"
        page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'>{style}</head><body>{body}</body></html>")
        dom, _ = rendered_dom(page)
        assert bool(cut_tables(dom)) == cut, (style[:40], cut_tables(dom))


# --------------------------------------------------------------------------- GitHub Pages
def test_pages_workflow_builds_with_the_readme_command_and_deploys():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "workflow_dispatch" in triggers and triggers["push"]["branches"] == ["main"]
    assert workflow["permissions"]["pages"] == "write" and workflow["permissions"]["id-token"] == "write"
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    for action in ("actions/checkout", "actions/setup-python", "actions/upload-pages-artifact",
                   "actions/deploy-pages"):
        assert action in uses, f"{action} missing from the workflow"
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert str(python["with"]["python-version"]) == "3.11"
    assert any("bash dev.sh book" in s.get("run", "") for s in steps)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"].rstrip("/") == "_build/html"
    assert uses.index("actions/upload-pages-artifact") < uses.index("actions/deploy-pages")
    assert os.path.basename(upload["with"]["path"].rstrip("/")) == "html"
