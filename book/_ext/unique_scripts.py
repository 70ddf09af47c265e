"""Sphinx extension: drop repeated <script> entries from a page.

sphinx-thebe adds its inline configuration script once per reading phase; under
Sphinx 7 the page then declares ``const THEBE_JS_URL`` twice and the browser
reports "Identifier 'THEBE_JS_URL' has already been declared". The copies differ
only by a filename of None or "", so Sphinx's own check does not catch them.
"""


def _key(script):
    attrs = getattr(script, "attributes", {}) or {}
    name = getattr(script, "filename", script) or ""  # inline scripts: None or ""
    return str(name), tuple(sorted((k, str(v)) for k, v in attrs.items()))


def unique_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", unique_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
