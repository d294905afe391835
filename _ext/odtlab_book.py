"""Small fixes to the HTML the book's Sphinx extensions emit (a local extension).

- Every ``<script>`` is emitted once. sphinx-thebe registers its configuration
  (``const THEBE_JS_URL = ...``) at each ``env-before-read-docs``, so a full
  build wrote it twice (once with filename ``''``, once with ``None``) and every page logged "Identifier 'THEBE_JS_URL' has
  already been declared" in the browser console.
- A page that shows no widget carries no widget state or widget scripts
  (stale state saved in a notebook's metadata).
- The build fails early, with the command to run, when the offline assets
  (MathJax, widget scripts; ``scripts/offline_assets.sh``) are missing, since
  the pages would then reference files that are not there.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ConfigError


def _one_script_each(app: Sphinx, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if isinstance(scripts, list):
        unique = {}
        for js in scripts:
            # sphinx-thebe's two copies differ only in filename '' versus None
            key = (
                getattr(js, "filename", js) or "",
                getattr(js, "priority", 500),
                tuple(sorted(getattr(js, "attributes", {}).items())),
            )
            unique.setdefault(key, js)
        # in place: handlers that run later append their scripts to this same list
        scripts[:] = unique.values()


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _no_stale_widgets(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Drop widget state and scripts from a page that shows no widget.

    A notebook saved after its widget outputs were cleared (as the student
    labs are) still carries the widgets' state in its metadata; myst-nb then
    embeds it (tens of KB) and loads the widget manager for nothing.
    """
    scripts = context.get("script_files")
    if doctree is None or not isinstance(scripts, list):
        return
    if any(WIDGET_VIEW in node.astext() for node in doctree.findall(nodes.raw)):
        return
    widget_js = set(app.config.nb_ipywidgets_js)
    scripts[:] = [
        js
        for js in scripts
        if getattr(js, "attributes", {}).get("type") != WIDGET_STATE
        and getattr(js, "filename", None) not in widget_js
    ]


def _check_offline_assets(app: Sphinx) -> None:
    root = Path(app.srcdir, "_offline")
    if not (root / "mathjax" / "tex-mml-chtml.js").is_file():
        raise ConfigError(
            f"the offline assets are missing from {root}: run `scripts/offline_assets.sh` "
            "(or `make book`), which fetches MathJax and the widget scripts from npm once"
        )


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _check_offline_assets)
    # first: html-page-context stops at the first handler that returns a value
    app.connect("html-page-context", _one_script_each, priority=1)
    # last: myst-nb adds a notebook's widget scripts in its own handler
    app.connect("html-page-context", _no_stale_widgets, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
